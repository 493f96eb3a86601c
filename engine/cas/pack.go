package cas

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/volt-cli/volt/engine/flock"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// Packs hold chunks back to back in large files, so a put writes one file
// sequentially instead of creating and renaming one file per chunk:
//
//	packs/<name>.pack   raw chunk bytes, one after the other
//	packs/<name>.idx    the pack's index (ParsePackIndex): its chunks in file order
//	packs/catalog       the names of the packs, one a line (for static remotes)
//
// A pack is written under a temporary name, synced, renamed, and only then
// is its index published: a pack without an index is a leftover that gc
// removes, and no index ever names bytes that are not in its pack. A pack is
// never appended to after its index exists. Loose chunks (chunks/ab/ab12…,
// the layout before packs) are still read, served, verified and collected.

const (
	packMagic = "STLRPCK\n"
	// packTarget is the size at which a writer starts a new pack: big enough
	// that a 2 GiB image is a handful of files, small enough that gc rewrites
	// little when a pack holds a few dead chunks.
	packTarget = 256 << 20
	// CatalogPath is the layout path of the list of packs.
	CatalogPath = "packs/catalog"
	// maxCatalogBytes bounds a catalog download.
	maxCatalogBytes = 16 << 20
)

// ErrBadPack: a pack index or the catalog does not parse.
var ErrBadPack = errors.New("invalid pack index")

// PackPath returns the layout path of a pack ("packs/<name>.pack").
func PackPath(name string) string { return "packs/" + name + ".pack" }

// PackIndexPath returns the layout path of a pack's index ("packs/<name>.idx").
func PackIndexPath(name string) string { return "packs/" + name + ".idx" }

// validPackName reports whether name is a pack name: 16 hex digits of the
// creation time in nanoseconds, "-", 16 random hex digits. Names sort by
// age; where two packs hold one chunk, the newer one is read.
func validPackName(name string) bool {
	if len(name) != 33 || name[16] != '-' {
		return false
	}
	var b [8]byte
	return parseHex(b[:], name[:16]) && parseHex(b[:], name[17:])
}

func newPackName() string {
	var r [8]byte
	rand.Read(r[:])
	return fmt.Sprintf("%016x-%s", time.Now().UnixNano(), hex.EncodeToString(r[:]))
}

// PackIndex lists a pack's chunks in file order: the first starts at offset
// 0 and each starts where the one before ends; Size is their sum.
//
// Its encoding is the object index's (see ParseIndex) with magic
// "STLRPCK\n" and no object BLAKE3.
type PackIndex struct {
	Size   int64
	Chunks []Chunk
}

// MarshalBinary encodes p.
func (p *PackIndex) MarshalBinary() ([]byte, error) {
	return encodeList(packMagic, nil, p.Size, p.Chunks), nil
}

// ParsePackIndex decodes and checks a pack index, with the same guarantees
// as ParseIndex; errors wrap ErrBadPack.
func ParsePackIndex(b []byte) (*PackIndex, error) {
	x, err := parseList(b, packMagic, false, ErrBadPack)
	if err != nil {
		return nil, err
	}
	return &PackIndex{Size: x.Size, Chunks: x.Chunks}, nil
}

// ParseCatalog decodes packs/catalog: pack names, one a line, each line
// ending in "\n". Errors wrap ErrBadPack.
func ParseCatalog(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: catalog does not end with a newline", ErrBadPack)
	}
	lines := strings.Split(string(b[:len(b)-1]), "\n")
	for i, l := range lines {
		if !validPackName(l) {
			return nil, fmt.Errorf("%w: catalog line %d: %.40q is not a pack name", ErrBadPack, i+1, l)
		}
	}
	return lines, nil
}

// pack is a published pack, opened on first read.
type pack struct {
	name   string
	path   string
	chunks []Chunk
	offs   []int64 // offset of each chunk
	once   sync.Once
	f      *os.File
	err    error
}

func (p *pack) file() (*os.File, error) {
	p.once.Do(func() { p.f, p.err = os.Open(p.path) })
	return p.f, p.err
}

// loc is where a chunk is in a pack.
type loc struct {
	p    *pack
	off  int64
	size uint32
}

// packSet is the in-memory map of the store's packs, loaded from their
// indexes and refreshed when a chunk is not found.
type packSet struct {
	mu    sync.RWMutex
	names []string // sorted names of the indexes in packs/ when last read
	packs map[string]*pack
	bad   map[string]error // packs whose index could not be loaded
	locs  map[ChunkID]loc
	read  time.Time // when packs/ was last read
}

// packRecheck is how old the pack map may get before a Get reads packs/
// again: a long-running reader (cas serve, registry serve) thus closes,
// within this delay, packs another process's gc removed, and their space is
// freed.
const packRecheck = 10 * time.Second

// refreshIfOld refreshes the pack map if it was read over packRecheck ago.
func (s *Store) refreshIfOld() {
	s.ps.mu.RLock()
	old := time.Since(s.ps.read) > packRecheck
	s.ps.mu.RUnlock()
	if old {
		s.refreshPacks()
	}
}

// close closes the pack's file; readers that still hold the pack then read
// it as missing and look again.
func (p *pack) close() {
	p.once.Do(func() { p.err = fs.ErrNotExist })
	if p.f != nil {
		p.f.Close()
	}
}

func (s *Store) packsDir() string { return filepath.Join(s.root, "packs") }

func (s *Store) packFile(name string) string {
	return filepath.Join(s.root, filepath.FromSlash(PackPath(name)))
}

func (s *Store) packIndexFile(name string) string {
	return filepath.Join(s.root, filepath.FromSlash(PackIndexPath(name)))
}

// lookup returns where a chunk is packed.
func (s *Store) lookup(id ChunkID) (loc, bool) {
	s.ps.mu.RLock()
	defer s.ps.mu.RUnlock()
	l, ok := s.ps.locs[id]
	return l, ok
}

// packNames lists the names of the pack indexes in packs/, sorted.
func (s *Store) packNames() ([]string, error) {
	ents, err := os.ReadDir(s.packsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".idx"); ok && validPackName(n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// refreshPacks brings the pack map up to date with packs/ and reports
// whether it changed. New packs are loaded, removed ones dropped; where two
// packs hold a chunk, the newer one wins.
func (s *Store) refreshPacks() (bool, error) {
	names, err := s.packNames()
	if err != nil {
		return false, err
	}
	s.ps.mu.Lock()
	defer s.ps.mu.Unlock()
	s.ps.read = time.Now()
	if slices.Equal(names, s.ps.names) && s.ps.locs != nil {
		return false, nil
	}
	// Only newer packs added (the usual case): extend the map in place.
	appendOnly := s.ps.locs != nil && len(names) > len(s.ps.names) && slices.Equal(names[:len(s.ps.names)], s.ps.names) &&
		(len(s.ps.names) == 0 || names[len(s.ps.names)] > s.ps.names[len(s.ps.names)-1])
	old := s.ps.packs
	s.ps.packs, s.ps.bad = map[string]*pack{}, map[string]error{}
	for _, n := range names {
		if p := old[n]; p != nil {
			s.ps.packs[n] = p
			continue
		}
		p, err := s.loadPack(n)
		if errors.Is(err, fs.ErrNotExist) && s.fileGone(s.packIndexFile(n)) {
			continue // removed meanwhile
		}
		if err != nil {
			s.ps.bad[n] = err
			continue
		}
		s.ps.packs[n] = p
	}
	for n, p := range old {
		if s.ps.packs[n] == nil {
			p.close()
		}
	}
	from := 0
	if appendOnly {
		from = len(s.ps.names)
	} else {
		s.ps.locs = map[ChunkID]loc{}
	}
	for _, n := range names[from:] {
		p := s.ps.packs[n]
		if p == nil {
			continue
		}
		for i, c := range p.chunks {
			s.ps.locs[c.ID] = loc{p: p, off: p.offs[i], size: c.Size}
		}
	}
	s.ps.names = names
	return true, nil
}

func (s *Store) fileGone(path string) bool {
	_, err := os.Lstat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// loadPack reads a pack's index. Chunks that lie past the end of the pack
// file (a torn or truncated tail) are left out: they read as missing.
func (s *Store) loadPack(name string) (*pack, error) {
	b, err := os.ReadFile(s.packIndexFile(name))
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", name, err)
	}
	px, err := ParsePackIndex(b)
	if err != nil {
		return nil, fmt.Errorf("pack %s: index %s: %w", name, s.packIndexFile(name), err)
	}
	fi, err := os.Stat(s.packFile(name))
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", name, err)
	}
	p := &pack{name: name, path: s.packFile(name), offs: make([]int64, 0, len(px.Chunks))}
	var off int64
	for _, c := range px.Chunks {
		if off+int64(c.Size) > fi.Size() {
			break
		}
		p.chunks = append(p.chunks, c)
		p.offs = append(p.offs, off)
		off += int64(c.Size)
	}
	return p, nil
}

// readPacked reads a packed chunk into a pooled buffer, checking its size
// against the pack's index. It returns ErrMissing if the pack is gone.
func (s *Store) readPacked(l loc, c Chunk) (*[]byte, error) {
	if l.size != c.Size {
		return nil, fmt.Errorf("chunk %s: pack %s holds %d bytes, the index says %d: %w", c.ID, l.p.name, l.size, c.Size, ErrCorrupt)
	}
	gone := func() (*[]byte, error) {
		return nil, fmt.Errorf("chunk %s: pack %s is gone: %w", c.ID, l.p.name, ErrMissing)
	}
	f, err := l.p.file()
	if errors.Is(err, fs.ErrNotExist) {
		return gone()
	}
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", c.ID, err)
	}
	p := getBuf(int(c.Size))
	if _, err := f.ReadAt(*p, l.off); err != nil {
		putBuf(p)
		if errors.Is(err, os.ErrClosed) {
			return gone()
		}
		return nil, fmt.Errorf("chunk %s: pack %s at %d: %w", c.ID, l.p.name, l.off, err)
	}
	return p, nil
}

// packWriter stores chunks into new packs. Several goroutines may add at
// once: each reserves its range under the lock and writes it with pwrite.
// Nothing is visible until finish; abort (or a crash) leaves only
// temporary files, which are removed by abort or by gc.
type packWriter struct {
	s    *Store
	mu   sync.Mutex
	cur  *openPack
	all  []*openPack
	done bool
}

type openPack struct {
	f      *os.File
	size   int64
	chunks []Chunk
}

func (s *Store) newPackWriter() *packWriter { return &packWriter{s: s} }

// add writes one chunk into the current pack, starting a new pack when the
// current one is full.
func (w *packWriter) add(id ChunkID, data []byte) error {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return errors.New("pack writer closed")
	}
	if w.cur == nil || w.cur.size+int64(len(data)) > packTarget {
		f, err := os.CreateTemp(w.s.packsDir(), ".tmp-*.pack")
		if err == nil {
			// Held until the pack is published or removed: a writer that
			// finds a temporary pack it can lock knows its writer is dead.
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err != nil {
				f.Close()
				os.Remove(f.Name())
			}
		}
		if err != nil {
			w.mu.Unlock()
			return fmt.Errorf("create pack: %w", err)
		}
		w.cur = &openPack{f: f}
		w.all = append(w.all, w.cur)
	}
	p := w.cur
	off := p.size
	p.size += int64(len(data))
	p.chunks = append(p.chunks, Chunk{ID: id, Size: uint32(len(data))})
	w.mu.Unlock()
	if _, err := p.f.WriteAt(data, off); err != nil {
		return fmt.Errorf("write chunk %s into pack: %w", id, err)
	}
	// Start writing back what lies behind each 8 MiB boundary crossed, so
	// the final sync overlaps the put rather than following it.
	const span = atomicfile.WritebackSpan
	if end := off + int64(len(data)); w.s.Sync != SyncNone && end/span != off/span && end >= 2*span {
		atomicfile.StartWriteback(p.f, (end/span-2)*span, span)
	}
	return nil
}

// abort removes every pack not yet published. It is safe after finish.
func (w *packWriter) abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.done = true
	for _, p := range w.all {
		p.f.Close()
		os.Remove(p.f.Name())
	}
}

// finish publishes the packs: each is synced (per Store.Sync), renamed to
// its name, and then its index is written; the catalog follows. On an error
// the packs not yet published are removed. It returns the packs' names.
func (w *packWriter) finish(ctx context.Context) ([]string, error) {
	w.mu.Lock()
	all := w.all
	w.done = true
	w.mu.Unlock()
	sync := w.s.Sync != SyncNone
	var names []string
	var err error
	for _, p := range all {
		if err == nil {
			var name string
			name, err = w.s.publishPack(p, sync)
			if err == nil {
				names = append(names, name)
				continue
			}
		}
		p.f.Close()
		os.Remove(p.f.Name())
	}
	if len(names) > 0 {
		// The packs are published: finish the catalog even if ctx ends now.
		if cerr := w.s.writeCatalog(context.WithoutCancel(ctx)); err == nil && cerr != nil {
			err = cerr
		}
		if _, rerr := w.s.refreshPacks(); err == nil && rerr != nil {
			err = rerr
		}
	}
	return names, err
}

// publishPack makes one written pack visible; on an error nothing of it is.
func (s *Store) publishPack(p *openPack, sync bool) (string, error) {
	var err error
	if sync {
		err = unix.Fdatasync(int(p.f.Fd()))
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write pack: %w", err)
	}
	name := newPackName()
	if err := os.Rename(p.f.Name(), s.packFile(name)); err != nil {
		return "", fmt.Errorf("publish pack %s: %w", name, err)
	}
	b, _ := (&PackIndex{Size: p.size, Chunks: p.chunks}).MarshalBinary()
	if err := writeAtomic(s.packIndexFile(name), b, sync); err != nil {
		os.Remove(s.packFile(name))
		return "", fmt.Errorf("publish pack %s: write index: %w", name, err)
	}
	return name, nil
}

// writeCatalog rewrites packs/catalog from the pack indexes present. It
// takes its own lock: concurrent puts would otherwise drop each other's
// names. A catalog left stale by a crash is rewritten by the next put or gc.
func (s *Store) writeCatalog(ctx context.Context) error {
	l, err := flock.Acquire(ctx, filepath.Join(s.packsDir(), ".catalog.lock"), true, nil)
	if err != nil {
		return fmt.Errorf("write pack catalog: %w", err)
	}
	defer l.Release()
	names, err := s.packNames()
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, n := range names {
		if !s.fileGone(s.packFile(n)) {
			b.WriteString(n + "\n")
		}
	}
	if err := writeAtomic(filepath.Join(s.root, filepath.FromSlash(CatalogPath)), []byte(b.String()), s.Sync != SyncNone); err != nil {
		return fmt.Errorf("write pack catalog: %w", err)
	}
	return nil
}

// Close closes the pack files the store holds open for reading. The store
// stays usable: packs are opened again when read. Call it when done with a
// store whose filesystem must be unmounted.
func (s *Store) Close() error {
	s.ps.mu.Lock()
	defer s.ps.mu.Unlock()
	for _, p := range s.ps.packs {
		p.close()
	}
	s.ps.names, s.ps.packs, s.ps.bad, s.ps.locs = nil, nil, nil, nil
	return nil
}

// staleAge is how long a temporary pack must have gone unwritten before a
// writer checks whether its writer is dead: it covers the moment between
// creating a temporary pack and locking it.
const staleAge = time.Minute

// removeStaleTemps removes the temporary packs of dead writers (killed
// mid-put): unwritten for staleAge and not locked by a live writer. Puts
// and fetches call it, so a killed put's leftovers go with the next put
// rather than waiting for gc. Errors are ignored: gc removes what is left.
func (s *Store) removeStaleTemps() {
	ents, err := os.ReadDir(s.packsDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < staleAge {
			continue
		}
		path := filepath.Join(s.packsDir(), e.Name())
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(path)
		}
		f.Close()
	}
}
