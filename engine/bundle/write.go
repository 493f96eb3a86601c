package bundle

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/volt-cli/volt/engine/digest"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// Entry is one file to put in a bundle: either the file at Path, read once
// while it is written, or the in-memory Data (used when Path is "").
type Entry struct {
	// Name is the entry name in the archive, e.g. "images/web/linux-amd64.tar".
	Name string
	// Path is a file on disk; its size is taken from stat before writing and
	// must not change while it is read.
	Path string
	// Data is the content when Path is empty.
	Data []byte
	// Compress deflates the entry (for text); already-compressed payloads
	// (tar.gz, tar.zst, qcow2) should be stored.
	Compress bool
}

// WriteOptions controls Write.
type WriteOptions struct {
	// Created is the fixed modification time of every entry and, in RFC 3339
	// UTC, the manifest's "created". Zero means $SOURCE_DATE_EPOCH when set,
	// otherwise the current time (which makes the output non-reproducible).
	Created time.Time
	// Sign, when set, is called with the final bundle.json bytes and returns
	// the armored signature stored as signatures/bundle.sig.
	Sign func(manifest []byte) ([]byte, error)
	// Progress, when set, is called after each buffer with the input bytes
	// written so far and the total.
	Progress func(done, total int64)
}

// Write writes a deterministic .vbundle to path and returns the final manifest.
//
// It fills a copy of m: Version (when 0), Created, Integrity (BLAKE3 of every
// entry) and, for each service image whose Path names an entry, its Size and
// Digest. Every reference in m (compose, image paths, boot files, config
// files, hooks) must name an entry. Each input is read exactly once, hashed
// (BLAKE3 and CRC-32) as it is written, with bounded memory.
//
// Layout: bundle.json (stored) is the first entry both physically and in the
// central directory, then the entries sorted by name, then
// signatures/bundle.sig (stored) when opts.Sign is set. Every entry has the
// same time (opts.Created), mode 0644, no extra fields except Zip64 ones
// when a size or offset needs them. The same inputs and options give a
// byte-identical file (with the same Volt binary: deflate output is only
// stable for a given compressor).
//
// The file is published atomically: written to a temp file in path's
// directory (named TempPrefix(path) + digits and locked while it is
// written), fsynced and renamed; on any error or cancellation nothing is
// left at path (an existing file there is left untouched). Temp files of
// earlier writers of path that were killed are removed first.
func Write(ctx context.Context, path string, m *Manifest, entries []Entry, opts WriteOptions) (*Manifest, error) {
	fail := func(err error) (*Manifest, error) { return nil, fmt.Errorf("write bundle %q: %w", path, err) }
	if m == nil {
		return fail(fmt.Errorf("%w: nil manifest", ErrManifest))
	}
	created, err := createdTime(opts.Created)
	if err != nil {
		return fail(err)
	}
	ents, total, err := prepareEntries(entries)
	if err != nil {
		return fail(err)
	}
	fm, err := prepareManifest(m, ents, created)
	if err != nil {
		return fail(err)
	}
	// bundle.json has a fixed length once sizes are known: digests are
	// fixed-length, so marshal it now with placeholder digests.
	placeholder, err := marshalManifest(fm)
	if err != nil {
		return fail(err)
	}

	// A writer killed with -9 leaves its temp file behind; the next write
	// of the same bundle removes those no live writer holds (TempPrefix).
	dir, prefix := filepath.Dir(path), TempPrefix(path)
	_, _ = atomicfile.RemoveStale(dir, prefix) // best effort: CreateTemp reports an unusable dir
	f, hold, err := atomicfile.CreateTemp(dir, prefix+"*")
	if err != nil {
		return fail(err)
	}
	defer hold.Release() // last: after the temp is renamed or removed
	published := false
	defer func() {
		if !published {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// A bundle is meant to be shared: 0644 (CreateTemp makes 0600).
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}

	tm, date := dosTime(created)
	zw := &zipWriter{f: f, wb: atomicfile.NewWriteback(f, 0), tm: tm, date: date, progress: opts.Progress, total: total}
	man := zentry{name: ManifestName, method: methodStore, usize: uint64(len(placeholder)), csize: uint64(len(placeholder))}
	zw.off = man.localHeaderLen() + int64(len(placeholder))
	zw.bw = bufio.NewWriterSize(f, 256<<10)
	if _, err := f.Seek(zw.off, io.SeekStart); err != nil {
		return fail(err)
	}
	for i := range ents {
		d, err := zw.writeEntry(ctx, &ents[i])
		if err != nil {
			return fail(err)
		}
		fm.Integrity.Files[ents[i].Name] = d
	}
	for _, svc := range fm.Services {
		for _, img := range svc.Images {
			if p := img.EntryPath(); p != "" {
				img.Digest = fm.Integrity.Files[p]
			}
		}
	}
	mb, err := marshalManifest(fm)
	if err != nil {
		return fail(err)
	}
	if len(mb) != len(placeholder) {
		// Cannot happen unless digests are not fixed-length; refuse rather than corrupt.
		return fail(fmt.Errorf("internal error: bundle.json length changed from %d to %d", len(placeholder), len(mb)))
	}
	man.crc = crc32.ChecksumIEEE(mb)
	if err := zw.bw.Flush(); err != nil {
		return fail(err)
	}
	if _, err := f.WriteAt(append(man.localHeader(tm, date), mb...), 0); err != nil {
		return fail(err)
	}
	all := append([]zentry{man}, zw.entries...)
	if opts.Sign != nil {
		sig, err := opts.Sign(mb)
		if err != nil {
			return fail(fmt.Errorf("sign: %w", err))
		}
		se, err := zw.writeStored(SignatureName, sig)
		if err != nil {
			return fail(err)
		}
		all = append(all, se)
	}
	if err := writeCentral(zw.bw, all, uint64(zw.off), tm, date); err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	published = true
	if err := publish(f, path); err != nil {
		return fail(err)
	}
	return fm, nil
}

// TempPrefix is how the names of Write's temp files for path start:
// "." + base name + ".tmp-".
func TempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// createdTime resolves WriteOptions.Created.
func createdTime(t time.Time) (time.Time, error) {
	if !t.IsZero() {
		return t.UTC().Truncate(time.Second), nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Now().UTC().Truncate(time.Second), nil
}

// prepEntry is an Entry with its size known.
type prepEntry struct {
	Entry
	size int64
}

// prepareEntries validates names, stats files and sorts by name.
func prepareEntries(entries []Entry) ([]prepEntry, int64, error) {
	out := make([]prepEntry, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	var total int64
	for _, e := range entries {
		if err := CheckName(e.Name); err != nil {
			return nil, 0, err
		}
		if integrityExempt(e.Name) {
			return nil, 0, structErr(ErrUnsafeName, "entry %q: reserved name (Write creates %s and %s itself)", e.Name, ManifestName, SignatureName)
		}
		if seen[e.Name] {
			return nil, 0, structErr(ErrUnsafeName, "entry %q: duplicate name", e.Name)
		}
		seen[e.Name] = true
		p := prepEntry{Entry: e, size: int64(len(e.Data))}
		if e.Path != "" {
			fi, err := os.Stat(e.Path)
			if err != nil {
				return nil, 0, fmt.Errorf("entry %q: %w", e.Name, err)
			}
			if !fi.Mode().IsRegular() {
				return nil, 0, fmt.Errorf("entry %q: %s is not a regular file", e.Name, e.Path)
			}
			p.size = fi.Size()
		}
		total += p.size
		out = append(out, p)
	}
	for name := range seen {
		// A name may not also be a directory of another name ("a" and "a/b").
		for dir := name; ; {
			i := strings.LastIndexByte(dir, '/')
			if i < 0 {
				break
			}
			dir = dir[:i]
			if seen[dir] {
				return nil, 0, structErr(ErrUnsafeName, "entry %q: %q is also a file", name, dir)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, total, nil
}

// zeroDigest is the placeholder used to size bundle.json before hashing.
var zeroDigest = digest.Prefix + strings.Repeat("0", 2*digest.Size)

// prepareManifest returns a deep copy of m with placeholders for every value
// Write fills in, after checking every reference names an entry.
func prepareManifest(m *Manifest, ents []prepEntry, created time.Time) (*Manifest, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	var fm Manifest
	if err := json.Unmarshal(raw, &fm); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if fm.Version == 0 {
		fm.Version = FormatVersion
	}
	if fm.Version != FormatVersion {
		return nil, fmt.Errorf("%w: manifest version %d, this Volt writes %d", ErrVersion, fm.Version, FormatVersion)
	}
	fm.Created = created.Format(time.RFC3339)
	sizes := make(map[string]int64, len(ents))
	fm.Integrity = Integrity{Algorithm: "blake3", Files: make(map[string]string, len(ents))}
	for _, e := range ents {
		sizes[e.Name] = e.size
		fm.Integrity.Files[e.Name] = zeroDigest
	}
	for _, ref := range references(&fm) {
		if _, ok := sizes[ref.name]; !ok {
			return nil, fmt.Errorf("%w: %s refers to %q, which is not among the entries", ErrMissing, ref.what, ref.name)
		}
	}
	for _, sn := range sortedKeys(fm.Services) {
		svc := fm.Services[sn]
		if svc == nil {
			return nil, fmt.Errorf("%w: service %q is null", ErrManifest, sn)
		}
		for _, pk := range sortedKeys(svc.Images) {
			img := svc.Images[pk]
			if img == nil {
				return nil, fmt.Errorf("%w: service %q image %s is null", ErrManifest, sn, pk)
			}
			if p := img.EntryPath(); p != "" {
				img.Size = sizes[p]
				img.Digest = zeroDigest
			} else if !digest.Valid(img.Digest) {
				return nil, fmt.Errorf("%w: service %q image %s: a CAS reference needs a digest, got %q", ErrManifest, sn, pk, img.Digest)
			}
		}
	}
	return &fm, nil
}

// reference is an entry name the manifest points at.
type reference struct{ what, name string }

// references lists every entry named by m (compose, hooks, image paths, boot
// files, config files), in a stable order. Null services/images are skipped.
func references(m *Manifest) []reference {
	var refs []reference
	add := func(name, format string, args ...any) {
		if name != "" {
			refs = append(refs, reference{fmt.Sprintf(format, args...), name})
		}
	}
	add(m.Compose, "compose")
	for _, h := range sortedKeys(m.Hooks) {
		add(m.Hooks[h], "hook %s", h)
	}
	for _, sn := range sortedKeys(m.Services) {
		svc := m.Services[sn]
		if svc == nil {
			continue
		}
		for _, pk := range sortedKeys(svc.Images) {
			add(svc.Images[pk].EntryPath(), "service %q image %s", sn, pk)
		}
		for _, pk := range sortedKeys(svc.Boot) {
			if b := svc.Boot[pk]; b != nil {
				add(b.Kernel, "service %q boot %s kernel", sn, pk)
				add(b.Initrd, "service %q boot %s initrd", sn, pk)
			}
		}
		for _, c := range svc.Config {
			add(c.Path, "service %q config", sn)
		}
	}
	return refs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// marshalManifest renders bundle.json: indented, keys sorted, trailing newline.
func marshalManifest(m *Manifest) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	return buf.Bytes(), nil
}

// zipWriter streams entries to f from offset off.
type zipWriter struct {
	f        *os.File
	bw       *bufio.Writer
	off      int64 // offset of the next local header
	tm, date uint16
	entries  []zentry
	progress func(done, total int64)
	done     int64
	total    int64
	wb       *atomicfile.Writeback
}

// countWriter counts bytes passed to w.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeEntry writes e at zw.off and returns its BLAKE3 digest.
func (zw *zipWriter) writeEntry(ctx context.Context, e *prepEntry) (string, error) {
	ze := zentry{name: e.Name, method: methodStore, offset: uint64(zw.off), usize: uint64(e.size)}
	if e.Compress {
		ze.method = methodDeflate
		// Deflate may expand incompressible input a little; reserve Zip64 room early.
		ze.zip64Local = ze.usize >= zip64Limit-zip64Limit/64
	} else {
		ze.zip64Local = ze.usize >= zip64Limit
	}
	hdrLen := ze.localHeaderLen()
	if _, err := zw.bw.Write(ze.localHeader(zw.tm, zw.date)); err != nil {
		return "", err
	}
	var src io.Reader = bytes.NewReader(e.Data)
	if e.Path != "" {
		f, err := os.Open(e.Path)
		if err != nil {
			return "", fmt.Errorf("entry %q: %w", e.Name, err)
		}
		defer f.Close()
		src = f
	}
	var (
		sum  []byte
		csum uint32
		clen int64
		err  error
	)
	if e.Compress || e.Path == "" {
		sum, csum, clen, err = zw.deflateOrBuffer(ctx, e, src, hdrLen)
	} else {
		// A stored file: the bulk of a bundle.
		if err = zw.bw.Flush(); err == nil {
			sum, csum, err = zw.copyStored(ctx, e, src, zw.off+hdrLen)
			clen = e.size
		}
	}
	if err != nil {
		return "", err
	}
	ze.crc = csum
	ze.csize = uint64(clen)
	if !ze.zip64Local && ze.csize >= zip64Limit {
		return "", fmt.Errorf("entry %q: compressed size %d needs Zip64; store it instead", e.Name, ze.csize)
	}
	if err := zw.bw.Flush(); err != nil {
		return "", err
	}
	if _, err := zw.f.WriteAt(ze.localHeader(zw.tm, zw.date), int64(ze.offset)); err != nil {
		return "", err
	}
	zw.off += hdrLen + clen
	zw.entries = append(zw.entries, ze)
	return digest.Format(sum), nil
}

// deflateOrBuffer writes a small entry (deflated text, or in-memory data)
// through zw.bw, hashing it on the calling goroutine, and returns its
// BLAKE3, CRC-32 and written (compressed) length.
func (zw *zipWriter) deflateOrBuffer(ctx context.Context, e *prepEntry, src io.Reader, hdrLen int64) ([]byte, uint32, int64, error) {
	cw := &countWriter{w: zw.bw}
	var dst io.Writer = cw
	var fw *flate.Writer
	if e.Compress {
		fw, _ = flate.NewWriter(cw, flate.DefaultCompression) // level is valid: no error
		dst = fw
	}
	h := digest.New()
	crc := crc32.NewIEEE()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, 0, 0, err
		}
		k, rerr := io.ReadFull(src, buf)
		if k > 0 {
			n += int64(k)
			if n > e.size {
				return nil, 0, 0, fmt.Errorf("entry %q: %w: %s grew past %d bytes", e.Name, ErrChanged, e.Path, e.size)
			}
			b := buf[:k]
			h.Write(b)
			crc.Write(b)
			if _, err := dst.Write(b); err != nil {
				return nil, 0, 0, fmt.Errorf("entry %q: %w", e.Name, err)
			}
			zw.advance(int64(k), zw.off+hdrLen+cw.n-int64(zw.bw.Buffered()))
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return nil, 0, 0, fmt.Errorf("entry %q: read %s: %w", e.Name, e.Path, rerr)
		}
	}
	if n != e.size {
		return nil, 0, 0, fmt.Errorf("entry %q: %w: %s has %d bytes, expected %d", e.Name, ErrChanged, e.Path, n, e.size)
	}
	if fw != nil {
		if err := fw.Close(); err != nil {
			return nil, 0, 0, fmt.Errorf("entry %q: %w", e.Name, err)
		}
	}
	return h.Sum(nil), crc.Sum32(), cw.n, nil
}

// advance records k more input bytes written, the file written up to pos:
// it starts writeback of what is written so far (so the final fsync
// overlaps the rest of the write instead of following it) and reports progress.
func (zw *zipWriter) advance(k, pos int64) {
	zw.done += k
	zw.wb.Advance(pos)
	if zw.progress != nil {
		zw.progress(zw.done, zw.total)
	}
}

// Copy pipeline sizes: copyBufSize is the size of each read and write
// (large sequential writes: fewer syscalls, whole pages, and the
// writeback sees long runs), copyDepth the number of buffers in flight
// between the reader and the two hashers. Memory is copyDepth ×
// copyBufSize (16 MiB).
const (
	copyBufSize = 4 << 20
	copyDepth   = 4
)

// copyBufs recycles copy buffers across entries and writes.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyStored copies a stored entry's e.size bytes from src to zw.f at off
// and returns their BLAKE3 and CRC-32. One goroutine (the caller) reads
// each buffer and writes it while a BLAKE3 worker and a CRC-32 worker hash
// the same buffer (hashPair), so hashing costs no time on the copy's path.
// The hashes are of exactly the bytes written. A buffer is reused only
// once both hashers are done with it. (copy_file_range with hashing from
// the copy's mapped pages was measured slower: docs/formats.md.)
func (zw *zipWriter) copyStored(ctx context.Context, e *prepEntry, src io.Reader, off int64) ([]byte, uint32, error) {
	free := make(chan []byte, copyDepth)
	for range copyDepth {
		free <- *copyBufs.Get().(*[]byte)
	}
	hp := newHashPair()
	finish := func() ([]byte, uint32) {
		sum, crc := hp.wait()
		for range copyDepth {
			b := <-free
			b = b[:cap(b)]
			copyBufs.Put(&b)
		}
		return sum, crc
	}

	pos := off
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			finish()
			return nil, 0, err
		}
		b := (<-free)[:copyBufSize]
		k, rerr := io.ReadFull(src, b)
		if k == 0 {
			free <- b
		} else {
			n += int64(k)
			if n > e.size {
				free <- b
				finish()
				return nil, 0, fmt.Errorf("entry %q: %w: %s grew past %d bytes", e.Name, ErrChanged, e.Path, e.size)
			}
			b = b[:k]
			hp.hash(b, func() { free <- b })
			// The hashers read b while it is written: both only read.
			if _, err := zw.f.WriteAt(b, pos); err != nil {
				finish()
				return nil, 0, fmt.Errorf("entry %q: %w", e.Name, err)
			}
			pos += int64(k)
			zw.advance(int64(k), pos)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			finish()
			return nil, 0, fmt.Errorf("entry %q: read %s: %w", e.Name, e.Path, rerr)
		}
	}
	sum, crc := finish()
	if n != e.size {
		return nil, 0, fmt.Errorf("entry %q: %w: %s has %d bytes, expected %d", e.Name, ErrChanged, e.Path, n, e.size)
	}
	// Later entries are written through zw.bw at the file offset.
	if _, err := zw.f.Seek(pos, io.SeekStart); err != nil {
		return nil, 0, err
	}
	return sum, crc, nil
}

// hashPair is a BLAKE3 worker and a CRC-32 worker hashing the same byte
// ranges in the order given, each range to both.
type hashPair struct {
	toBlake, toCRC chan *hashed
	h              hash.Hash
	crc            uint32
	wg             sync.WaitGroup
}

// hashed is a range queued to a hashPair; done runs once both workers
// have hashed it, so its memory may then be reused.
type hashed struct {
	b    []byte
	left atomic.Int32
	done func()
}

func (r *hashed) release() {
	if r.left.Add(-1) == 0 {
		r.done()
	}
}

// newHashPair starts the two workers; at most copyDepth ranges queue.
func newHashPair() *hashPair {
	hp := &hashPair{toBlake: make(chan *hashed, copyDepth), toCRC: make(chan *hashed, copyDepth), h: digest.New()}
	hp.wg.Add(2)
	go func() {
		defer hp.wg.Done()
		for r := range hp.toBlake {
			hp.h.Write(r.b)
			r.release()
		}
	}()
	go func() {
		defer hp.wg.Done()
		for r := range hp.toCRC {
			hp.crc = crc32.Update(hp.crc, crc32.IEEETable, r.b)
			r.release()
		}
	}()
	return hp
}

// hash queues b to both workers; done runs when both are done with it.
func (hp *hashPair) hash(b []byte, done func()) {
	r := &hashed{b: b, done: done}
	r.left.Store(2)
	hp.toBlake <- r
	hp.toCRC <- r
}

// wait lets the workers finish what is queued, stops them and returns the
// BLAKE3 and CRC-32 of everything queued.
func (hp *hashPair) wait() ([]byte, uint32) {
	close(hp.toBlake)
	close(hp.toCRC)
	hp.wg.Wait()
	return hp.h.Sum(nil), hp.crc
}

// writeStored appends a small stored entry and returns its record.
func (zw *zipWriter) writeStored(name string, data []byte) (zentry, error) {
	ze := zentry{name: name, method: methodStore, offset: uint64(zw.off),
		usize: uint64(len(data)), csize: uint64(len(data)), crc: crc32.ChecksumIEEE(data)}
	if _, err := zw.bw.Write(ze.localHeader(zw.tm, zw.date)); err != nil {
		return ze, err
	}
	if _, err := zw.bw.Write(data); err != nil {
		return ze, err
	}
	zw.off += ze.localHeaderLen() + int64(len(data))
	return ze, nil
}

// syncDir fsyncs the directory holding path so a rename in it is durable.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory of %s: %w", path, err)
	}
	return nil
}
