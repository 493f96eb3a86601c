package bundle

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"
)

// ZIP record layout (APPNOTE.TXT 6.3). Only what the writer emits is here:
// no data descriptors, no comments, no extra fields other than Zip64.
const (
	sigLocal     = 0x04034b50
	sigCentral   = 0x02014b50
	sigEnd       = 0x06054b50
	sigEnd64     = 0x06064b50
	sigLocator64 = 0x07064b50

	localLen     = 30
	centralLen   = 46
	endLen       = 22
	end64Len     = 56
	locator64Len = 20

	methodStore   = 0
	methodDeflate = 8

	flagUTF8     = 0x800
	madeByUnix30 = 3<<8 | 30 // Unix, spec 3.0
	versionZip20 = 20
	versionZip45 = 45
	modeFile     = 0o100644 // regular file, rw-r--r--
	zip64Tag     = 0x0001
	local64Extra = 20 // tag, size, usize, csize
	max16        = 0xffff
)

// zip64Limit is the size or offset from which Zip64 fields are used.
// It is a variable so tests can exercise the Zip64 path with small files.
var zip64Limit uint64 = 0xffffffff

// zentry is one archive entry as recorded in the central directory.
type zentry struct {
	name         string
	method       uint16
	crc          uint32
	csize, usize uint64
	offset       uint64 // of the local header
	zip64Local   bool   // local header carries a Zip64 extra
}

// dosTime converts t (UTC) to MS-DOS time and date; times before 1980 are clamped.
func dosTime(t time.Time) (tm, date uint16) {
	t = t.UTC()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if t.Year() > 2107 {
		t = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	}
	return uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2),
		uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
}

// localHeaderLen is the size of e's local header including name and extra.
func (e *zentry) localHeaderLen() int64 {
	n := int64(localLen + len(e.name))
	if e.zip64Local {
		n += local64Extra
	}
	return n
}

// localHeader renders e's local file header.
func (e *zentry) localHeader(tm, date uint16) []byte {
	b := make([]byte, 0, e.localHeaderLen())
	le := binary.LittleEndian
	version := uint16(versionZip20)
	csize, usize := uint32(e.csize), uint32(e.usize)
	if e.zip64Local {
		version = versionZip45
		csize, usize = 0xffffffff, 0xffffffff
	}
	b = le.AppendUint32(b, sigLocal)
	b = le.AppendUint16(b, version)
	b = le.AppendUint16(b, flagUTF8)
	b = le.AppendUint16(b, e.method)
	b = le.AppendUint16(b, tm)
	b = le.AppendUint16(b, date)
	b = le.AppendUint32(b, e.crc)
	b = le.AppendUint32(b, csize)
	b = le.AppendUint32(b, usize)
	b = le.AppendUint16(b, uint16(len(e.name)))
	if e.zip64Local {
		b = le.AppendUint16(b, local64Extra)
	} else {
		b = le.AppendUint16(b, 0)
	}
	b = append(b, e.name...)
	if e.zip64Local {
		b = le.AppendUint16(b, zip64Tag)
		b = le.AppendUint16(b, 16)
		b = le.AppendUint64(b, e.usize)
		b = le.AppendUint64(b, e.csize)
	}
	return b
}

// centralHeader renders e's central directory record.
func (e *zentry) centralHeader(tm, date uint16) []byte {
	le := binary.LittleEndian
	var extra []byte
	usize, csize, offset := uint32(e.usize), uint32(e.csize), uint32(e.offset)
	if e.usize >= zip64Limit {
		usize = 0xffffffff
		extra = le.AppendUint64(extra, e.usize)
	}
	if e.csize >= zip64Limit {
		csize = 0xffffffff
		extra = le.AppendUint64(extra, e.csize)
	}
	if e.offset >= zip64Limit {
		offset = 0xffffffff
		extra = le.AppendUint64(extra, e.offset)
	}
	version := uint16(versionZip20)
	if extra != nil || e.zip64Local {
		version = versionZip45
	}
	b := make([]byte, 0, centralLen+len(e.name)+4+len(extra))
	b = le.AppendUint32(b, sigCentral)
	b = le.AppendUint16(b, madeByUnix30)
	b = le.AppendUint16(b, version)
	b = le.AppendUint16(b, flagUTF8)
	b = le.AppendUint16(b, e.method)
	b = le.AppendUint16(b, tm)
	b = le.AppendUint16(b, date)
	b = le.AppendUint32(b, e.crc)
	b = le.AppendUint32(b, csize)
	b = le.AppendUint32(b, usize)
	b = le.AppendUint16(b, uint16(len(e.name)))
	if extra != nil {
		b = le.AppendUint16(b, uint16(4+len(extra)))
	} else {
		b = le.AppendUint16(b, 0)
	}
	b = le.AppendUint16(b, 0)            // comment length
	b = le.AppendUint16(b, 0)            // disk number start
	b = le.AppendUint16(b, 0)            // internal attributes
	b = le.AppendUint32(b, modeFile<<16) // external attributes: Unix mode
	b = le.AppendUint32(b, offset)       // local header offset
	b = append(b, e.name...)
	if extra != nil {
		b = le.AppendUint16(b, zip64Tag)
		b = le.AppendUint16(b, uint16(len(extra)))
		b = append(b, extra...)
	}
	return b
}

// writeCentral writes the central directory for entries (in order) starting
// at offset cdStart, then the (Zip64) end records.
func writeCentral(w io.Writer, entries []zentry, cdStart uint64, tm, date uint16) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var cdSize uint64
	for i := range entries {
		h := entries[i].centralHeader(tm, date)
		cdSize += uint64(len(h))
		if _, err := bw.Write(h); err != nil {
			return err
		}
	}
	le := binary.LittleEndian
	n := uint64(len(entries))
	if n >= max16 || cdSize >= zip64Limit || cdStart >= zip64Limit {
		end64 := cdStart + cdSize
		var b []byte
		b = le.AppendUint32(b, sigEnd64)
		b = le.AppendUint64(b, end64Len-12)
		b = le.AppendUint16(b, madeByUnix30)
		b = le.AppendUint16(b, versionZip45)
		b = le.AppendUint32(b, 0) // this disk
		b = le.AppendUint32(b, 0) // disk with central directory
		b = le.AppendUint64(b, n)
		b = le.AppendUint64(b, n)
		b = le.AppendUint64(b, cdSize)
		b = le.AppendUint64(b, cdStart)
		b = le.AppendUint32(b, sigLocator64)
		b = le.AppendUint32(b, 0)
		b = le.AppendUint64(b, end64)
		b = le.AppendUint32(b, 1)
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	var b []byte
	b = le.AppendUint32(b, sigEnd)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, uint16(min(n, max16)))
	b = le.AppendUint16(b, uint16(min(n, max16)))
	b = le.AppendUint32(b, uint32(min(cdSize, 0xffffffff)))
	b = le.AppendUint32(b, uint32(min(cdStart, 0xffffffff)))
	b = le.AppendUint16(b, 0) // comment length
	if _, err := bw.Write(b); err != nil {
		return err
	}
	return bw.Flush()
}

// publish makes the temp file f visible at path: fsync, close, rename, fsync
// the directory. On error f is removed.
func publish(f *os.File, path string) error {
	tmp := f.Name()
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("publish %s: %w", path, err)
	}
	return syncDir(path)
}
