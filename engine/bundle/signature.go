package bundle

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/volt-cli/volt/sdk/atomicfile"
)

// SetSignature adds, replaces or (when sig is empty) removes
// signatures/bundle.sig in the bundle at path without rehashing payloads:
// it copies the archive up to the end of the last non-signature entry into
// a temp file, appends the signature entry and a new central directory, and
// renames the result over path. The output is byte-identical to what Write
// with a Sign function returning sig produces. The bundle must have Write's
// layout (entries contiguous from offset 0); it is checked with Open first.
func SetSignature(ctx context.Context, path string, sig []byte) error {
	fail := func(err error) error { return fmt.Errorf("set signature of bundle %q: %w", path, err) }
	r, err := Open(path)
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	if len(sig) > maxSignatureSize {
		return fail(fmt.Errorf("%w: signature is %d bytes", ErrTooLarge, len(sig)))
	}
	var keep []zentry
	var end int64
	var tm, date uint16
	for _, zf := range r.files {
		if zf.Name == SignatureName {
			continue
		}
		if integrityExempt(zf.Name) && zf.Name != ManifestName {
			return fail(structErr(ErrStructure, "unexpected entry %q under %s", zf.Name, SignaturesDir))
		}
		ze, err := r.entryAt(zf, end)
		if err != nil {
			return fail(err)
		}
		if zf.Name == ManifestName {
			tm, date = zf.ModifiedTime, zf.ModifiedDate // raw DOS fields keep the bytes identical
		}
		keep = append(keep, ze)
		end = int64(ze.offset) + ze.localHeaderLen() + int64(ze.csize)
	}

	f, hold, err := atomicfile.CreateTemp(filepath.Dir(path), TempPrefix(path)+"*")
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
	// Keep the bundle's permissions (CreateTemp makes 0600).
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := io.Copy(f, io.NewSectionReader(r.ra, 0, end)); err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	zw := &zipWriter{f: f, bw: bufio.NewWriterSize(f, 256<<10), off: end, tm: tm, date: date}
	if len(sig) > 0 {
		se, err := zw.writeStored(SignatureName, sig)
		if err != nil {
			return fail(err)
		}
		keep = append(keep, se)
	}
	if err := writeCentral(zw.bw, keep, uint64(zw.off), tm, date); err != nil {
		return fail(err)
	}
	published = true
	if err := publish(f, path); err != nil {
		return fail(err)
	}
	return nil
}

// entryAt rebuilds zf's record, checking that its local header starts at off
// and has the shape Write gives it.
func (r *Reader) entryAt(zf *zip.File, off int64) (zentry, error) {
	ze := zentry{name: zf.Name, method: zf.Method, crc: zf.CRC32, csize: zf.CompressedSize64, usize: zf.UncompressedSize64, offset: uint64(off)}
	var h [localLen]byte
	if _, err := r.ra.ReadAt(h[:], off); err != nil {
		return ze, structErr(ErrStructure, "entry %q: no local header at %d: %v", zf.Name, off, err)
	}
	le := binary.LittleEndian
	nameLen, extraLen := int64(le.Uint16(h[26:])), int64(le.Uint16(h[28:]))
	ze.zip64Local = extraLen == local64Extra
	if le.Uint32(h[:]) != sigLocal || nameLen != int64(len(zf.Name)) || (extraLen != 0 && !ze.zip64Local) ||
		off+localLen+nameLen+extraLen != r.dataOff[zf.Name] {
		return ze, structErr(ErrStructure, "entry %q: not laid out as Volt writes bundles (rewrite it with volt build)", zf.Name)
	}
	return ze, nil
}
