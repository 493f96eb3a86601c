// Package cas is Stellarium, Volt's content-addressed store. An object (an
// image, any file) is split into content-defined chunks (FastCDC, 16/64/256
// KiB); each chunk is stored once under its BLAKE3, and the object is an
// index of chunk ids stored under the BLAKE3 of the whole object, its Ref
// ("stellarium://<hex>").
//
// The on-disk layout under the root is served as it is by any static HTTP
// server, which is what a remote is:
//
//	lock                      flock: puts and pins share it, gc holds it alone
//	packs/<name>.pack         chunks back to back (see PackIndex)
//	packs/<name>.idx          the pack's index: its chunks' ids and sizes in order
//	packs/catalog             pack names, one a line
//	chunks/ab/ab12…(64 hex)   a loose chunk (stores written before packs), BLAKE3 = file name
//	objects/ab/ab12….idx      object index (see ParseIndex), name = object BLAKE3
//	pins/NAME                 "stellarium://<hex>\n": a gc root
//
// Every file appears by rename from a temporary file in the same directory
// (".tmp-*"), so readers never see a partial file; a pack's index appears
// only after the pack is whole, and an object's index only after every
// chunk it names is on disk (and synced, per Sync). Several processes may
// put into one store at once.
package cas

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors callers branch on (with errors.Is); returned errors wrap them with
// the object, chunk, file or remote concerned.
var (
	// ErrBadRef: a string is not a valid ref or chunk id.
	ErrBadRef = errors.New("invalid stellarium ref")
	// ErrBadIndex: an object index does not parse or fails its checksum.
	ErrBadIndex = errors.New("invalid object index")
	// ErrMissing: an object or a chunk is not in the store (or on any remote).
	ErrMissing = errors.New("not in store")
	// ErrCorrupt: bytes do not match the BLAKE3 that names them.
	ErrCorrupt = errors.New("content does not match its BLAKE3")
	// ErrBadPin: a pin name is not [A-Za-z0-9._-]{1,128} starting with an alphanumeric.
	ErrBadPin = errors.New("invalid pin name")
	// ErrRemote: a remote failed (down, timed out, bad status) after retries.
	ErrRemote = errors.New("remote failed")
)

// SyncPolicy says when Put makes new data durable.
type SyncPolicy int

const (
	// SyncBatch (the default): each new pack is fdatasynced before it is
	// renamed into place and its index written, fsynced and renamed; the
	// object's index follows the same way, and each directory is fsynced.
	// A crash never leaves an index naming chunks that are not on disk.
	SyncBatch SyncPolicy = iota
	// SyncEach is SyncBatch: with packs there is no per-chunk file left to
	// sync (kept for callers that set it).
	SyncEach
	// SyncNone never syncs (tests, scratch stores): a crash may lose objects
	// or leave an index whose chunks are missing (Verify reports them).
	SyncNone
)

// Store is an open Stellarium store. Its methods are safe for concurrent
// use, and several processes may use one root at once.
type Store struct {
	root string
	// Sync is the durability policy of Put and Fetch; set it before use.
	Sync SyncPolicy
	// Workers is the number of goroutines hashing and storing chunks
	// (default: GOMAXPROCS, at least 2).
	Workers int
	// Remote configures the remotes Fetch and Verify talk to.
	Remote RemoteOptions

	ps packSet
}

// Open opens (creating if needed) the store at root.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", root, err)
	}
	s := &Store{root: abs}
	for _, d := range []string{"chunks", "objects", "pins", "packs"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o755); err != nil {
			return nil, fmt.Errorf("open store %q: %w", root, err)
		}
	}
	f, err := os.OpenFile(s.lockPath(), os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", root, err)
	}
	f.Close()
	return s, nil
}

// Root returns the store's root directory (absolute).
func (s *Store) Root() string { return s.root }

func (s *Store) lockPath() string { return filepath.Join(s.root, "lock") }

// ChunkPath returns the layout path of a chunk relative to a store root,
// with forward slashes ("chunks/ab/ab12…"): the same path on a remote.
func ChunkPath(id ChunkID) string {
	h := id.String()
	return "chunks/" + h[:2] + "/" + h
}

// IndexPath returns the layout path of an object's index relative to a
// store root ("objects/ab/ab12….idx"): the same path on a remote.
func IndexPath(r Ref) string {
	h := r.Hex()
	return "objects/" + h[:2] + "/" + h + ".idx"
}

func (s *Store) chunkFile(id ChunkID) string {
	return filepath.Join(s.root, filepath.FromSlash(ChunkPath(id)))
}

func (s *Store) indexFile(r Ref) string {
	return filepath.Join(s.root, filepath.FromSlash(IndexPath(r)))
}

// lock takes the store's flock, shared or exclusive, waiting until ctx is
// done. Each call opens the lock file anew, so locks conflict between
// goroutines of one process as between processes. Waiting is a blocking
// flock (the kernel wakes the waiter), so a stream of gc runs cannot starve
// puts the way polling would.
func (s *Store) lock(ctx context.Context, exclusive bool) (unlock func(), err error) {
	f, err := os.Open(s.lockPath())
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	fd := int(f.Fd())
	if err := unix.Flock(fd, how|unix.LOCK_NB); err == nil {
		return func() { f.Close() }, nil
	}
	got := make(chan error, 1)
	go func() {
		for {
			err := unix.Flock(fd, how)
			if !errors.Is(err, unix.EINTR) {
				got <- err
				return
			}
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock store %s: %w", s.root, err)
		}
		return func() { f.Close() }, nil
	case <-ctx.Done():
		go func() { <-got; f.Close() }() // release the lock if it comes
		return nil, fmt.Errorf("lock store %s: %w", s.root, ctx.Err())
	}
}

// writeAtomic publishes data at path: a temporary file in the same
// directory (created, with its parents, if missing), optionally fsynced,
// renamed over path, and the directory fsynced when sync is set.
func writeAtomic(path string, data []byte, sync bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o755); err == nil && sync {
			err = syncDir(filepath.Dir(dir))
		}
		if err == nil {
			f, err = os.CreateTemp(dir, ".tmp-*")
		}
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if sync {
		return syncDir(dir)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Ref    Ref      `json:"ref"`
	Size   int64    `json:"size"`
	Chunks int      `json:"chunks"`
	Pins   []string `json:"pins,omitempty"`
}

// readIndex loads and parses the local index of r.
func (s *Store) readIndex(r Ref) (*Index, error) {
	b, err := os.ReadFile(s.indexFile(r))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("object %s: %w", r, ErrMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", r, err)
	}
	x, err := ParseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("object %s: index %s: %w", r, s.indexFile(r), err)
	}
	if x.Ref != r {
		return nil, fmt.Errorf("object %s: index %s names object %s: %w", r, s.indexFile(r), x.Ref, ErrBadIndex)
	}
	return x, nil
}

// Index returns the index of a local object (ErrMissing if absent).
func (s *Store) Index(r Ref) (*Index, error) { return s.readIndex(r) }

// Has reports whether the object's index is in the store. It does not check
// the chunks (Verify does).
func (s *Store) Has(r Ref) bool {
	_, err := os.Stat(s.indexFile(r))
	return err == nil
}

// Stat describes a local object (ErrMissing if absent).
func (s *Store) Stat(r Ref) (ObjectInfo, error) {
	x, err := s.readIndex(r)
	if err != nil {
		return ObjectInfo{}, err
	}
	pins, err := s.Pins()
	if err != nil {
		return ObjectInfo{}, err
	}
	info := ObjectInfo{Ref: r, Size: x.Size, Chunks: len(x.Chunks)}
	for name, p := range pins {
		if p == r {
			info.Pins = append(info.Pins, name)
		}
	}
	slices.Sort(info.Pins)
	return info, nil
}

// refs lists the refs of every index file in the store.
func (s *Store) refs(ctx context.Context) ([]Ref, error) {
	var out []Ref
	dir := filepath.Join(s.root, "objects")
	shards, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list objects: %w", err)
	}
	for _, sh := range shards {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ents, err := os.ReadDir(filepath.Join(dir, sh.Name()))
		if err != nil {
			continue
		}
		for _, e := range ents {
			h, ok := strings.CutSuffix(e.Name(), ".idx")
			var r Ref
			if ok && parseHex(r[:], h) {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// List describes every object in the store, sorted by ref. Objects whose
// index does not parse are left out (ListAll and Verify report them).
func (s *Store) List(ctx context.Context) ([]ObjectInfo, error) {
	out, _, err := s.ListAll(ctx)
	return out, err
}

// ListAll is List that also returns the objects it left out, with why
// (an index that is empty, damaged or names another object).
func (s *Store) ListAll(ctx context.Context) ([]ObjectInfo, []ObjectProblem, error) {
	refs, err := s.refs(ctx)
	if err != nil {
		return nil, nil, err
	}
	pins, err := s.Pins()
	if err != nil {
		return nil, nil, err
	}
	byRef := map[Ref][]string{}
	for name, r := range pins {
		byRef[r] = append(byRef[r], name)
	}
	out := make([]ObjectInfo, 0, len(refs))
	var skipped []ObjectProblem
	for _, r := range refs {
		x, err := s.readIndex(r)
		if errors.Is(err, ErrMissing) {
			continue // removed meanwhile
		}
		if err != nil {
			skipped = append(skipped, ObjectProblem{Ref: r, Error: err.Error()})
			continue
		}
		info := ObjectInfo{Ref: r, Size: x.Size, Chunks: len(x.Chunks), Pins: byRef[r]}
		slices.Sort(info.Pins)
		out = append(out, info)
	}
	return out, skipped, nil
}

var pinName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Pin makes name a gc root for r (replacing what name pinned before). The
// object need not be in the store yet.
func (s *Store) Pin(ctx context.Context, name string, r Ref) error {
	if !pinName.MatchString(name) {
		return fmt.Errorf("pin %q: %w", name, ErrBadPin)
	}
	unlock, err := s.lock(ctx, false)
	if err != nil {
		return err
	}
	defer unlock()
	return s.pinLocked(name, r)
}

func (s *Store) pinLocked(name string, r Ref) error {
	if err := writeAtomic(filepath.Join(s.root, "pins", name), []byte(r.String()+"\n"), s.Sync != SyncNone); err != nil {
		return fmt.Errorf("pin %q: %w", name, err)
	}
	return nil
}

// Unpin removes a pin; removing a pin that does not exist is not an error.
func (s *Store) Unpin(ctx context.Context, name string) error {
	if !pinName.MatchString(name) {
		return fmt.Errorf("unpin %q: %w", name, ErrBadPin)
	}
	unlock, err := s.lock(ctx, false)
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.Remove(filepath.Join(s.root, "pins", name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unpin %q: %w", name, err)
	}
	return nil
}

// Pins returns every pin name and the ref it pins. A pin file that does not
// hold a valid ref is an error (gc must not guess its roots).
func (s *Store) Pins() (map[string]Ref, error) {
	dir := filepath.Join(s.root, "pins")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	out := map[string]Ref{}
	for _, e := range ents {
		if !pinName.MatchString(e.Name()) {
			continue // temporary files
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read pin %q: %w", e.Name(), err)
		}
		r, err := ParseRef(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("read pin %q: %w", e.Name(), err)
		}
		out[e.Name()] = r
	}
	return out, nil
}
