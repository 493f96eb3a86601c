package bundle

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"sort"
)

// ErrNonCanonical: the ZIP structure is not the canonical one Volt writes
// (a local header disagrees with the central directory, entries overlap or
// leave gaps, bytes precede the first entry or follow the end records, a
// data descriptor, comment or foreign extra field). Like every Open error it
// also matches ErrStructure.
var ErrNonCanonical = errors.New("non-canonical ZIP")

// A ZIP archive describes every entry twice: in the local header in front
// of its data and in the central directory at the end. Readers disagree on
// which to believe (archive/zip and unzip use the directory, streaming
// readers the local headers), and they differ on bytes outside the entries
// (self-extractor prefixes, trailing data). A bundle whose two views
// disagree is read as one archive by Volt and as another by the next tool,
// so Open accepts only the canonical shape Volt writes (docs/formats.md,
// "Canonical ZIP"):
//
//   - the end-of-central-directory record ends the file, without comment,
//     preceded by the Zip64 end record and locator exactly when Volt
//     writes them, and the central directory ends where they begin;
//   - every central record has no comment, no extra field but one Zip64
//     field holding exactly the saturated values, and disk number 0;
//   - every entry's local header repeats the directory's name, flags,
//     method, CRC-32 and sizes (in its own Zip64 field when it has one),
//     with no data descriptor;
//   - entries start at offset 0, follow each other without gap or overlap in
//     directory order, and the last one ends where the directory starts.

// canon is what checkCanonical learned about one entry, in directory order.
type canon struct {
	name    string
	flags   uint16
	method  uint16
	crc     uint32
	csize   uint64
	usize   uint64
	offset  int64 // of the local header
	dataOff int64 // of the data
}

// flagDataDescriptor is general-purpose bit 3: sizes and CRC follow the data.
const flagDataDescriptor = 0x8

// nonCanonical is the ErrNonCanonical error for a problem described by
// format and args, with the way out.
func nonCanonical(format string, args ...any) error {
	return structErr(ErrNonCanonical, format+" (Volt reads only the ZIP layout it writes, so that every ZIP tool sees the same files; recreate the bundle with volt bundle create)", args...)
}

// checkCanonical checks that the archive of size bytes in ra has the
// canonical layout and that files (archive/zip's reading of its central
// directory) describes it. It returns each entry's data offset, in files'
// order.
func checkCanonical(ra io.ReaderAt, size int64, files []*zip.File) ([]int64, error) {
	cdStart, cdEnd, count, err := readEnd(ra, size)
	if err != nil {
		return nil, err
	}
	if count != uint64(len(files)) {
		return nil, nonCanonical("the end record counts %d entries, the central directory holds %d", count, len(files))
	}
	ents, err := readCentral(ra, cdStart, cdEnd, files)
	if err != nil {
		return nil, err
	}
	w := &window{ra: ra, size: size}
	for i := range ents {
		if err := checkLocal(w, &ents[i]); err != nil {
			return nil, err
		}
	}
	if err := checkLayout(ents, cdStart, size); err != nil {
		return nil, err
	}
	offs := make([]int64, len(ents))
	for i := range ents {
		offs[i] = ents[i].dataOff
	}
	return offs, nil
}

// readEnd parses the end records that close the file and returns the span
// of the central directory and the entry count they declare.
func readEnd(ra io.ReaderAt, size int64) (cdStart, cdEnd int64, count uint64, err error) {
	le := binary.LittleEndian
	var e [endLen]byte
	if size < endLen {
		return 0, 0, 0, structErr(ErrTruncated, "%d bytes is too short for a ZIP archive", size)
	}
	if _, err := ra.ReadAt(e[:], size-endLen); err != nil {
		return 0, 0, 0, structErr(ErrTruncated, "read end of central directory: %v", err)
	}
	if le.Uint32(e[:]) != sigEnd {
		return 0, 0, 0, trailingData(ra, size)
	}
	if le.Uint16(e[20:]) != 0 {
		return 0, 0, 0, nonCanonical("the end record announces a %d-byte archive comment", le.Uint16(e[20:]))
	}
	n16, total16 := le.Uint16(e[8:]), le.Uint16(e[10:])
	cdSize32, cdOff32 := le.Uint32(e[12:]), le.Uint32(e[16:])
	if le.Uint16(e[4:]) != 0 || le.Uint16(e[6:]) != 0 || n16 != total16 {
		return 0, 0, 0, nonCanonical("the end record describes a multi-disk archive")
	}
	cdEnd = size - endLen
	count, cdSize, cdOff := uint64(n16), uint64(cdSize32), uint64(cdOff32)

	// Zip64: the locator sits right before the end record and points at
	// the Zip64 end record right before it.
	var loc [locator64Len]byte
	zip64 := false
	if cdEnd >= locator64Len {
		if _, err := ra.ReadAt(loc[:], cdEnd-locator64Len); err != nil {
			return 0, 0, 0, structErr(ErrTruncated, "read Zip64 locator: %v", err)
		}
		zip64 = le.Uint32(loc[:]) == sigLocator64
	}
	saturated := n16 == max16 || cdSize32 == 0xffffffff || cdOff32 == 0xffffffff
	if !zip64 {
		if saturated {
			return 0, 0, 0, nonCanonical("the end record needs Zip64 values but no Zip64 locator precedes it")
		}
	} else {
		end64 := cdEnd - locator64Len - end64Len
		if le.Uint32(loc[4:]) != 0 || le.Uint32(loc[16:]) != 1 {
			return 0, 0, 0, nonCanonical("the Zip64 locator describes a multi-disk archive")
		}
		if end64 < 0 || le.Uint64(loc[8:]) != uint64(end64) {
			return 0, 0, 0, nonCanonical("the Zip64 locator points at offset %d, not at the Zip64 end record right before it (offset %d)", le.Uint64(loc[8:]), end64)
		}
		var z [end64Len]byte
		if _, err := ra.ReadAt(z[:], end64); err != nil {
			return 0, 0, 0, structErr(ErrTruncated, "read Zip64 end record: %v", err)
		}
		if le.Uint32(z[:]) != sigEnd64 || le.Uint64(z[4:]) != end64Len-12 {
			return 0, 0, 0, nonCanonical("no Zip64 end record of %d bytes at offset %d", end64Len, end64)
		}
		if le.Uint32(z[16:]) != 0 || le.Uint32(z[20:]) != 0 || le.Uint64(z[24:]) != le.Uint64(z[32:]) {
			return 0, 0, 0, nonCanonical("the Zip64 end record describes a multi-disk archive")
		}
		count, cdSize, cdOff = le.Uint64(z[32:]), le.Uint64(z[40:]), le.Uint64(z[48:])
		if uint64(n16) != min(count, max16) || uint64(cdSize32) != min(cdSize, 0xffffffff) || uint64(cdOff32) != min(cdOff, 0xffffffff) {
			return 0, 0, 0, nonCanonical("the end record and the Zip64 end record disagree (entries %d/%d, directory size %d/%d, offset %d/%d)",
				n16, count, cdSize32, cdSize, cdOff32, cdOff)
		}
		cdEnd = end64
	}
	if cdOff > uint64(cdEnd) || cdSize != uint64(cdEnd)-cdOff {
		if cdOff <= uint64(cdEnd) && cdSize < uint64(cdEnd)-cdOff {
			extra := uint64(cdEnd) - cdOff - cdSize
			var sig [4]byte
			if _, err := ra.ReadAt(sig[:], cdEnd-int64(cdSize)); err == nil && le.Uint32(sig[:]) == sigCentral {
				// The directory is where its size says, not where its
				// offset says: bytes were prepended (a self-extractor's stub).
				return 0, 0, 0, nonCanonical("%d bytes precede the first entry (the archive's offsets do not count them)", extra)
			}
			return 0, 0, 0, nonCanonical("%d bytes lie between the central directory and the end record", extra)
		}
		return 0, 0, 0, nonCanonical("the central directory (%d bytes at offset %d) does not end where the end record starts (offset %d)", cdSize, cdOff, cdEnd)
	}
	return int64(cdOff), cdEnd, count, nil
}

// trailingData explains an archive whose last bytes are not the end record.
func trailingData(ra io.ReaderAt, size int64) error {
	n := min(size, 1<<16+endLen)
	buf := make([]byte, n)
	if _, err := ra.ReadAt(buf, size-n); err != nil && err != io.EOF {
		return structErr(ErrTruncated, "read end of central directory: %v", err)
	}
	sig := binary.LittleEndian.AppendUint32(nil, sigEnd)
	if i := bytes.LastIndex(buf[:max(0, len(buf)-endLen+4)], sig); i >= 0 {
		return nonCanonical("%d bytes follow the end-of-central-directory record", n-int64(i)-endLen)
	}
	return nonCanonical("the file does not end with an end-of-central-directory record")
}

// readCentral parses the central directory [start, end) strictly and checks
// that archive/zip's files describe the same entries.
func readCentral(ra io.ReaderAt, start, end int64, files []*zip.File) ([]canon, error) {
	le := binary.LittleEndian
	br := bufio.NewReaderSize(io.NewSectionReader(ra, start, end-start), 64<<10)
	ents := make([]canon, 0, len(files))
	var h [centralLen]byte
	for i := 0; ; i++ {
		if _, err := io.ReadFull(br, h[:]); err == io.EOF {
			break
		} else if err != nil {
			return nil, nonCanonical("central directory record %d is cut short", i+1)
		}
		if le.Uint32(h[:]) != sigCentral {
			return nil, nonCanonical("central directory record %d has no central header signature", i+1)
		}
		if i >= len(files) {
			return nil, nonCanonical("the central directory holds more records than the end record counts")
		}
		nameLen, extraLen, commentLen := int(le.Uint16(h[28:])), int(le.Uint16(h[30:])), int(le.Uint16(h[32:]))
		rest := make([]byte, nameLen+extraLen+commentLen)
		if _, err := io.ReadFull(br, rest); err != nil {
			return nil, nonCanonical("central directory record %d is cut short", i+1)
		}
		c := canon{
			name: string(rest[:nameLen]), flags: le.Uint16(h[8:]), method: le.Uint16(h[10:]), crc: le.Uint32(h[16:]),
			csize: uint64(le.Uint32(h[20:])), usize: uint64(le.Uint32(h[24:])), offset: int64(le.Uint32(h[42:])),
		}
		if commentLen != 0 {
			return nil, nonCanonical("entry %q: the central directory gives it a comment", c.name)
		}
		if le.Uint16(h[34:]) != 0 {
			return nil, nonCanonical("entry %q: disk number %d", c.name, le.Uint16(h[34:]))
		}
		// Zip64 values replace, in this order, the saturated fields.
		var want []*uint64
		offset := uint64(c.offset)
		for _, p := range []*uint64{&c.usize, &c.csize, &offset} {
			if *p == 0xffffffff {
				want = append(want, p)
			}
		}
		extra := rest[nameLen : nameLen+extraLen]
		switch {
		case len(want) == 0 && extraLen == 0:
		case extraLen != 4+8*len(want) || le.Uint16(extra) != zip64Tag || int(le.Uint16(extra[2:])) != 8*len(want):
			return nil, nonCanonical("entry %q: the central directory has extra fields other than the Zip64 values its sizes and offset need", c.name)
		default:
			for k, p := range want {
				*p = le.Uint64(extra[4+8*k:])
			}
		}
		if offset > 1<<62 {
			return nil, nonCanonical("entry %q: local header offset %d is out of range", c.name, offset)
		}
		c.offset = int64(offset)
		zf := files[i]
		if zf.Name != c.name || zf.Flags != c.flags || zf.Method != c.method || zf.CRC32 != c.crc ||
			zf.CompressedSize64 != c.csize || zf.UncompressedSize64 != c.usize {
			return nil, nonCanonical("entry %q: the central directory record is ambiguous", c.name)
		}
		ents = append(ents, c)
	}
	if len(ents) != len(files) {
		return nil, nonCanonical("the central directory holds %d records, the end record counts %d", len(ents), len(files))
	}
	return ents, nil
}

// window reads local headers through one buffer: small entries share a
// read, so Open costs one system call per 32 KiB of small entries rather
// than one per entry.
type window struct {
	ra   io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
}

// windowSize is what window reads at a time.
const windowSize = 32 << 10

// at returns up to n bytes at off (fewer only at the end of the file).
func (w *window) at(off, n int64) ([]byte, error) {
	if off >= w.off && off+n <= w.off+int64(len(w.buf)) {
		return w.buf[off-w.off : off-w.off+n], nil
	}
	k := min(max(n, windowSize), w.size-off)
	if cap(w.buf) < int(k) {
		w.buf = make([]byte, k)
	}
	w.buf, w.off = w.buf[:k], off
	if _, err := w.ra.ReadAt(w.buf, off); err != nil && err != io.EOF {
		w.buf = w.buf[:0]
		return nil, err
	}
	return w.buf[:min(n, k)], nil
}

// checkLocal checks c's local header against its central record and sets
// c.dataOff.
func checkLocal(w *window, c *canon) error {
	le := binary.LittleEndian
	size := w.size
	if c.offset >= size {
		return structErr(ErrTruncated, "entry %q: local header offset %d is past the end of the file (%d bytes)", c.name, c.offset, size)
	}
	buf, err := w.at(c.offset, int64(localLen+len(c.name)+local64Extra))
	if err != nil || len(buf) < localLen {
		return structErr(ErrTruncated, "entry %q: local header at %d unreadable: %v", c.name, c.offset, err)
	}
	if le.Uint32(buf) != sigLocal {
		return nonCanonical("entry %q: no local header at offset %d, where the central directory puts it", c.name, c.offset)
	}
	nameLen, extraLen := int64(le.Uint16(buf[26:])), int64(le.Uint16(buf[28:]))
	if n := localLen + nameLen + extraLen; n > int64(len(buf)) {
		// Not the shape Volt writes: read it all to say what it names.
		if n > size-c.offset {
			return structErr(ErrTruncated, "entry %q: local header at %d extends past the end of the file", c.name, c.offset)
		}
		if buf, err = w.at(c.offset, n); err != nil || int64(len(buf)) < n {
			return structErr(ErrTruncated, "entry %q: local header at %d unreadable: %v", c.name, c.offset, err)
		}
	}
	if name := string(buf[localLen : localLen+nameLen]); name != c.name {
		return nonCanonical("entry %q: the local header at offset %d names it %q", c.name, c.offset, shorten(name))
	}
	flags, method, crc := le.Uint16(buf[6:]), le.Uint16(buf[8:]), le.Uint32(buf[14:])
	switch {
	case flags != c.flags:
		return nonCanonical("entry %q: local header flags %#04x, central directory %#04x", c.name, flags, c.flags)
	case flags&flagDataDescriptor != 0:
		return nonCanonical("entry %q: uses a data descriptor (its sizes and CRC-32 follow the data), which Volt never writes", c.name)
	case method != c.method:
		return nonCanonical("entry %q: local header method %d, central directory %d", c.name, method, c.method)
	case crc != c.crc:
		return nonCanonical("entry %q: local header CRC-32 %08x, central directory %08x", c.name, crc, c.crc)
	}
	csize, usize := uint64(le.Uint32(buf[18:])), uint64(le.Uint32(buf[22:]))
	switch extraLen {
	case 0:
	case local64Extra:
		extra := buf[localLen+nameLen:]
		if le.Uint16(extra) != zip64Tag || le.Uint16(extra[2:]) != 16 || csize != 0xffffffff || usize != 0xffffffff {
			return nonCanonical("entry %q: the local header has extra fields other than one Zip64 field with both sizes", c.name)
		}
		usize, csize = le.Uint64(extra[4:]), le.Uint64(extra[12:])
	default:
		return nonCanonical("entry %q: the local header has %d bytes of extra fields (Volt writes none but a Zip64 field)", c.name, extraLen)
	}
	if csize != c.csize || usize != c.usize {
		return nonCanonical("entry %q: local header sizes %d/%d (compressed/uncompressed), central directory %d/%d", c.name, csize, usize, c.csize, c.usize)
	}
	c.dataOff = c.offset + localLen + nameLen + extraLen
	return nil
}

// checkLayout checks that the entries tile [0, cdStart) in directory order.
func checkLayout(ents []canon, cdStart, size int64) error {
	order := make([]int, len(ents))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return ents[order[a]].offset < ents[order[b]].offset })
	var pos int64
	prev := ""
	for k, i := range order {
		e := &ents[i]
		switch {
		case e.offset > pos && k == 0:
			return nonCanonical("%d bytes precede the first entry %q", e.offset, e.name)
		case e.offset > pos:
			return nonCanonical("entry %q: %d-byte gap after entry %q", e.name, e.offset-pos, prev)
		case e.offset < pos:
			return nonCanonical("entries %q and %q overlap", prev, e.name)
		}
		if e.csize > uint64(size) || e.dataOff > size-int64(e.csize) {
			return structErr(ErrTruncated, "entry %q: data (%d bytes at %d) extends past the end of the file (%d bytes)", e.name, e.csize, e.dataOff, size)
		}
		pos, prev = e.dataOff+int64(e.csize), e.name
		if pos > cdStart {
			return nonCanonical("entry %q overlaps the central directory", e.name)
		}
		if i != k {
			return nonCanonical("entry %q is number %d in the file but number %d in the central directory", e.name, k+1, i+1)
		}
	}
	if pos < cdStart {
		if len(ents) == 0 {
			return nonCanonical("%d bytes precede the central directory of an empty archive", cdStart)
		}
		return nonCanonical("%d bytes lie between the last entry %q and the central directory", cdStart-pos, prev)
	}
	return nil
}

// shorten quotes at most 80 bytes of a name read from an untrusted header.
func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
