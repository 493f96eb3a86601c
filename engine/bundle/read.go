package bundle

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/volt-cli/volt/engine/digest"
)

// ReadOptions bounds what Open accepts. Zero fields take the defaults.
type ReadOptions struct {
	// MaxTotalSize bounds the sum of declared uncompressed entry sizes
	// (default DefaultMaxTotalSize).
	MaxTotalSize int64
	// MaxRatio bounds uncompressed/compressed size of a deflated entry larger
	// than 1 MiB (default DefaultMaxRatio).
	MaxRatio int64
	// MaxManifestSize bounds bundle.json (default DefaultMaxManifestSize).
	MaxManifestSize int64
}

// Defaults for ReadOptions.
const (
	DefaultMaxTotalSize    = 1 << 40 // 1 TiB
	DefaultMaxRatio        = 1000
	DefaultMaxManifestSize = 16 << 20
	maxSignatureSize       = 1 << 20
	ratioFloor             = 1 << 20 // deflated entries up to this size are not ratio-checked
)

func (o ReadOptions) withDefaults() ReadOptions {
	if o.MaxTotalSize <= 0 {
		o.MaxTotalSize = DefaultMaxTotalSize
	}
	if o.MaxRatio <= 0 {
		o.MaxRatio = DefaultMaxRatio
	}
	if o.MaxManifestSize <= 0 {
		o.MaxManifestSize = DefaultMaxManifestSize
	}
	return o
}

// EntryInfo describes one archive entry, from the central directory.
type EntryInfo struct {
	Name           string
	Size           int64 // uncompressed
	CompressedSize int64
	Stored         bool   // not compressed: data can be read in place
	Digest         string // from integrity.files; "" for bundle.json and signatures/*
}

// Reader is an open bundle. Open reads only the central directory, the local
// headers and bundle.json; entry data is read on demand and verified as it
// streams. A Reader is safe for concurrent use.
type Reader struct {
	path     string
	ra       io.ReaderAt // the bundle bytes (an *os.File from Open)
	closer   io.Closer   // nil for NewReader
	size     int64
	files    []*zip.File // central directory order
	byName   map[string]*zip.File
	dataOff  map[string]int64
	manifest *Manifest
	mbytes   []byte
}

// Open opens the bundle at path with default ReadOptions.
func Open(path string) (*Reader, error) { return OpenWith(path, ReadOptions{}) }

// OpenWith opens the bundle at path and checks its structure: a canonical
// ZIP (see checkCanonical: local headers agree with the central directory,
// entries tile the file without gap or overlap, nothing before the first
// entry or after the end records) with bundle.json first (physically and
// in the directory), a valid manifest of FormatVersion, safe unique names,
// regular files only, every entry listed in integrity.files (except
// bundle.json and signatures/*), every listed file present, image sizes and
// digests agreeing with the archive, and declared sizes within opts. Errors
// wrap ErrStructure and one specific sentinel (ErrNonCanonical,
// ErrTruncated, ErrManifest, ErrVersion, ErrUnsafeName, ErrUnlisted,
// ErrMissing, ErrSize, ErrTooLarge). It does not hash entry data: call
// Verify or read entries with OpenEntry.
func OpenWith(path string, opts ReadOptions) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open bundle %q: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open bundle %q: %w", path, err)
	}
	r, err := newReader(f, fi.Size(), path, opts.withDefaults())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open bundle %q: %w", path, err)
	}
	r.closer = f
	return r, nil
}

// NewReader is OpenWith for a bundle held by ra (size bytes), for example in
// memory or behind HTTP range requests; name is used in messages. Close
// does not close ra.
func NewReader(ra io.ReaderAt, size int64, name string, opts ReadOptions) (*Reader, error) {
	r, err := newReader(ra, size, name, opts.withDefaults())
	if err != nil {
		return nil, fmt.Errorf("open bundle %q: %w", name, err)
	}
	return r, nil
}

func newReader(ra io.ReaderAt, size int64, path string, opts ReadOptions) (*Reader, error) {
	r := &Reader{path: path, ra: ra, size: size, byName: map[string]*zip.File{}, dataOff: map[string]int64{}}
	zr, err := zip.NewReader(ra, r.size)
	if err != nil && !(errors.Is(err, zip.ErrInsecurePath) && zr != nil) {
		var head [4]byte
		if n, _ := ra.ReadAt(head[:], 0); n == 4 && string(head[:]) == "PK\x03\x04" {
			return nil, structErr(ErrTruncated, "end of central directory not found or unreadable (%v); the file is incomplete, download or copy it again", err)
		}
		return nil, structErr(ErrStructure, "not a ZIP archive: %v", err)
	}
	r.files = zr.File
	if len(r.files) == 0 {
		return nil, structErr(ErrManifest, "archive is empty; %s must be the first entry", ManifestName)
	}
	offs, err := checkCanonical(ra, size, r.files)
	if err != nil {
		return nil, err
	}
	if r.files[0].Name != ManifestName {
		return nil, structErr(ErrManifest, "%s must be the first entry, found %q", ManifestName, r.files[0].Name)
	}
	if err := r.checkEntries(opts, offs); err != nil {
		return nil, err
	}
	if err := r.readManifest(opts); err != nil {
		return nil, err
	}
	return r, nil
}

// checkEntries validates names, kinds, methods, sizes and data placement;
// offs are the entries' data offsets found by checkCanonical.
func (r *Reader) checkEntries(opts ReadOptions, offs []int64) error {
	type span struct {
		name       string
		start, end int64
	}
	spans := make([]span, 0, len(r.files))
	var total uint64
	for i, zf := range r.files {
		name := zf.Name
		if err := CheckName(name); err != nil {
			return err
		}
		if r.byName[name] != nil {
			return structErr(ErrUnsafeName, "entry %q: duplicate name", name)
		}
		r.byName[name] = zf
		if mode := zf.Mode(); !mode.IsRegular() {
			return structErr(ErrUnsafeName, "entry %q: not a regular file (mode %v)", name, mode)
		}
		if zf.Flags&0x1 != 0 {
			return structErr(ErrStructure, "entry %q: encrypted entries are not supported", name)
		}
		us, cs := zf.UncompressedSize64, zf.CompressedSize64
		switch zf.Method {
		case zip.Store:
			if us != cs {
				return structErr(ErrStructure, "entry %q: stored entry with compressed size %d != size %d", name, cs, us)
			}
		case zip.Deflate:
			if us > ratioFloor && us/uint64(opts.MaxRatio) > cs {
				return structErr(ErrTooLarge, "entry %q: declared expansion %d -> %d bytes exceeds %d:1", name, cs, us, opts.MaxRatio)
			}
		default:
			return structErr(ErrStructure, "entry %q: unsupported compression method %d", name, zf.Method)
		}
		if us > uint64(opts.MaxTotalSize) || total+us > uint64(opts.MaxTotalSize) {
			return structErr(ErrTooLarge, "entries declare more than %d bytes in total", opts.MaxTotalSize)
		}
		total += us
		// checkCanonical parsed the records archive/zip parsed, with the
		// same Zip64 rules, and made sure its base offset is 0: this is
		// where zf.Open reads (zf.DataOffset would read the header again).
		off := offs[i]
		if cs > uint64(r.size) || off < 0 || off > r.size-int64(cs) {
			return structErr(ErrTruncated, "entry %q: data (%d bytes at %d) extends past the end of the file (%d bytes)", name, cs, off, r.size)
		}
		r.dataOff[name] = off
		spans = append(spans, span{name, off - localLen - int64(len(name)), off + int64(cs)})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	if spans[0].name != ManifestName {
		return structErr(ErrManifest, "%s must be the first entry in the file", ManifestName)
	}
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return structErr(ErrStructure, "entries %q and %q overlap", spans[i-1].name, spans[i].name)
		}
	}
	return nil
}

// readManifest reads, parses and cross-checks bundle.json.
func (r *Reader) readManifest(opts ReadOptions) error {
	zf := r.files[0]
	if zf.UncompressedSize64 > uint64(opts.MaxManifestSize) {
		return structErr(ErrTooLarge, "%s is %d bytes (limit %d)", ManifestName, zf.UncompressedSize64, opts.MaxManifestSize)
	}
	rc, err := zf.Open()
	if err != nil {
		return structErr(ErrManifest, "read %s: %v", ManifestName, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, int64(zf.UncompressedSize64)+1))
	if err == nil && uint64(len(b)) != zf.UncompressedSize64 {
		err = fmt.Errorf("read %d bytes, directory says %d", len(b), zf.UncompressedSize64)
	}
	if err != nil {
		return structErr(ErrManifest, "read %s: %v", ManifestName, err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		return err
	}
	r.manifest, r.mbytes = m, b
	for _, zf := range r.files {
		if integrityExempt(zf.Name) {
			continue
		}
		if _, ok := m.Integrity.Files[zf.Name]; !ok {
			return structErr(ErrUnlisted, "entry %q is in the archive but not in integrity.files", zf.Name)
		}
	}
	for _, name := range sortedKeys(m.Integrity.Files) {
		if r.byName[name] == nil {
			return structErr(ErrMissing, "entry %q is listed in integrity.files but not in the archive", name)
		}
	}
	for _, ref := range references(m) {
		if r.byName[ref.name] == nil || integrityExempt(ref.name) {
			return structErr(ErrMissing, "%s: entry %q not in the archive", ref.what, ref.name)
		}
	}
	for _, sn := range sortedKeys(m.Services) {
		for _, pk := range sortedKeys(m.Services[sn].Images) {
			img := m.Services[sn].Images[pk]
			p := img.EntryPath()
			if p == "" {
				continue
			}
			zf := r.byName[p]
			if img.Size < 0 || uint64(img.Size) != zf.UncompressedSize64 {
				return structErr(ErrSize, "service %q image %s: manifest says %d bytes, entry %q has %d", sn, pk, img.Size, p, zf.UncompressedSize64)
			}
			if img.Digest != m.Integrity.Files[p] {
				return structErr(ErrManifest, "service %q image %s: digest %s differs from integrity.files[%q] %s", sn, pk, img.Digest, p, m.Integrity.Files[p])
			}
		}
	}
	return nil
}

// ParseManifest parses and validates bundle.json bytes on their own: JSON
// syntax, version (ErrVersion), integrity algorithm and digests, safe entry
// names, well-formed services. Errors wrap ErrStructure and ErrManifest or
// ErrVersion or ErrUnsafeName.
func ParseManifest(b []byte) (*Manifest, error) {
	var v struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, structErr(ErrManifest, "%s is not valid JSON: %v", ManifestName, err)
	}
	if v.Version == nil {
		return nil, structErr(ErrManifest, `%s has no "version"`, ManifestName)
	}
	if *v.Version != FormatVersion {
		return nil, structErr(ErrVersion, "%s version %d; this Volt reads version %d (upgrade Volt for newer bundles)", ManifestName, *v.Version, FormatVersion)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return nil, structErr(ErrManifest, "%s: %v", ManifestName, err)
	}
	if m.Integrity.Algorithm != "blake3" {
		return nil, structErr(ErrManifest, `integrity.algorithm is %q, want "blake3"`, m.Integrity.Algorithm)
	}
	for _, name := range sortedKeys(m.Integrity.Files) {
		if err := CheckName(name); err != nil {
			return nil, err
		}
		if integrityExempt(name) {
			return nil, structErr(ErrManifest, "integrity.files lists %q, which is never hashed", name)
		}
		if d := m.Integrity.Files[name]; !digest.Valid(d) {
			return nil, structErr(ErrManifest, "integrity.files[%q]: malformed digest %q", name, d)
		}
	}
	for _, sn := range sortedKeys(m.Services) {
		svc := m.Services[sn]
		if svc == nil {
			return nil, structErr(ErrManifest, "service %q is null", sn)
		}
		for _, pk := range sortedKeys(svc.Images) {
			img := svc.Images[pk]
			if img == nil {
				return nil, structErr(ErrManifest, "service %q image %s is null", sn, pk)
			}
			if !digest.Valid(img.Digest) {
				return nil, structErr(ErrManifest, "service %q image %s: malformed digest %q", sn, pk, img.Digest)
			}
			if img.Path != nil && *img.Path == "" {
				return nil, structErr(ErrManifest, `service %q image %s: empty path (use null for a CAS reference)`, sn, pk)
			}
		}
	}
	for _, ref := range references(&m) {
		if err := CheckName(ref.name); err != nil {
			return nil, fmt.Errorf("%s: %w", ref.what, err)
		}
	}
	return &m, nil
}

// Manifest returns the parsed bundle.json. Callers must not modify it.
func (r *Reader) Manifest() *Manifest { return r.manifest }

// ManifestBytes returns the exact bytes of bundle.json, for signature checks.
// Callers must not modify them.
func (r *Reader) ManifestBytes() []byte { return r.mbytes }

// Path returns the file name the Reader was opened with.
func (r *Reader) Path() string { return r.path }

// Signature returns the content of signatures/bundle.sig, or nil, nil when
// the bundle is unsigned.
func (r *Reader) Signature() ([]byte, error) {
	zf := r.byName[SignatureName]
	if zf == nil {
		return nil, nil
	}
	if zf.UncompressedSize64 > maxSignatureSize {
		return nil, fmt.Errorf("bundle %q: %s is %d bytes: %w", r.path, SignatureName, zf.UncompressedSize64, ErrTooLarge)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("bundle %q: read %s: %w", r.path, SignatureName, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("bundle %q: read %s: %w: %v", r.path, SignatureName, ErrIntegrity, err)
	}
	return b, nil
}

// Entries lists every entry in central-directory order (bundle.json first).
func (r *Reader) Entries() []EntryInfo {
	out := make([]EntryInfo, len(r.files))
	for i, zf := range r.files {
		out[i] = EntryInfo{
			Name:           zf.Name,
			Size:           int64(zf.UncompressedSize64),
			CompressedSize: int64(zf.CompressedSize64),
			Stored:         zf.Method == zip.Store,
			Digest:         r.manifest.Integrity.Files[zf.Name],
		}
	}
	return out
}

// Size returns the bundle file's size in bytes.
func (r *Reader) Size() int64 { return r.size }

// OpenEntry returns a reader of the named entry that bounds the read to the
// declared size and hashes as it streams. At EOF it checks the size and the
// BLAKE3 digest from integrity.files (and the CRC-32) and returns an error
// wrapping ErrIntegrity on any mismatch instead of io.EOF: do not trust the
// data until Read has returned io.EOF. bundle.json and signatures/* have no
// digest; they are checked by CRC-32 only.
func (r *Reader) OpenEntry(name string) (io.ReadCloser, error) {
	zf := r.byName[name]
	if zf == nil {
		return nil, fmt.Errorf("bundle %q: entry %q: %w", r.path, name, os.ErrNotExist)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("bundle %q: entry %q: %w", r.path, name, err)
	}
	return &verifyReader{rc: rc, name: name, size: int64(zf.UncompressedSize64),
		want: r.manifest.Integrity.Files[name], h: digest.New()}, nil
}

// EntryReaderAt gives random access to a stored entry's bytes in place, for
// callers that need to seek (for example a VM disk). The data is NOT
// verified: run Verify first, or hash what you read.
func (r *Reader) EntryReaderAt(name string) (*io.SectionReader, error) {
	zf := r.byName[name]
	if zf == nil {
		return nil, fmt.Errorf("bundle %q: entry %q: %w", r.path, name, os.ErrNotExist)
	}
	if zf.Method != zip.Store {
		return nil, fmt.Errorf("bundle %q: entry %q is compressed; use OpenEntry", r.path, name)
	}
	return io.NewSectionReader(r.ra, r.dataOff[name], int64(zf.UncompressedSize64)), nil
}

// Close closes the bundle file opened by Open or OpenWith.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// verifyReader is OpenEntry's reader.
type verifyReader struct {
	rc   io.ReadCloser
	name string
	size int64
	n    int64
	want string
	h    interface {
		io.Writer
		Sum([]byte) []byte
	}
	err error
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if rem := v.size - v.n + 1; int64(len(p)) > rem {
		p = p[:rem] // read at most one byte past the declared size
	}
	k, err := v.rc.Read(p)
	v.n += int64(k)
	v.h.Write(p[:k])
	switch {
	case v.n > v.size:
		v.err = fmt.Errorf("entry %q: %w: more than the declared %d bytes", v.name, ErrIntegrity, v.size)
		return k, v.err
	case err == io.EOF:
		v.err = v.finish()
		return k, v.err
	case err != nil:
		v.err = fmt.Errorf("entry %q: %w: %v", v.name, ErrIntegrity, err)
		return k, v.err
	}
	return k, nil
}

func (v *verifyReader) finish() error {
	if v.n != v.size {
		return fmt.Errorf("entry %q: %w: %d bytes, declared %d", v.name, ErrIntegrity, v.n, v.size)
	}
	if v.want == "" {
		return io.EOF
	}
	if got := digest.Format(v.h.Sum(nil)); got != v.want {
		return mismatch(v.name, v.want, got)
	}
	return io.EOF
}

// mismatch is the error for a wrong digest.
func mismatch(name, want, got string) error {
	return fmt.Errorf("entry %q: %w: blake3 mismatch (manifest blake3:%s…, actual blake3:%s…)", name, ErrIntegrity, digest.Short(want), digest.Short(got))
}

func (v *verifyReader) Close() error { return v.rc.Close() }

// ManifestDigest returns the BLAKE3 digest of bundle.json bytes.
func ManifestDigest(b []byte) string { return digest.Bytes(b) }

// ExtractEntry writes entry name to the file dst (created or truncated),
// verifying its size and BLAKE3 as it streams and honouring ctx. On any
// error dst is removed.
func (r *Reader) ExtractEntry(ctx context.Context, name, dst string) error {
	rc, err := r.OpenEntry(name)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for err == nil {
		if err = ctx.Err(); err != nil {
			break
		}
		var n int
		n, err = rc.Read(buf)
		if n > 0 {
			if _, werr := f.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
	}
	if err == io.EOF {
		err = nil
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("extract %s: %w", name, err)
	}
	return nil
}
