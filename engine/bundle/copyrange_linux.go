package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// copyRangeOff turns copyRange off (tests of the read-and-write path).
var copyRangeOff bool

// copyRange copies a stored entry's e.size bytes from src to zw.f at off
// with copy_file_range(2), the kernel copying page to page (or sharing
// extents where the filesystem can), and hashes each copied range from
// the output file's own pages, mapped read-only: the digests are of the
// bytes in the bundle, and no byte is copied through user space. A BLAKE3
// worker and a CRC-32 worker hash a range while the next is copied.
// handled is false when the kernel or filesystems cannot copy this way,
// before anything was copied: the caller then reads and writes.
func (zw *zipWriter) copyRange(ctx context.Context, e *prepEntry, src *os.File, off int64) (sum []byte, crc uint32, handled bool, err error) {
	if copyRangeOff {
		return nil, 0, false, nil
	}
	slots := make(chan struct{}, copyDepth) // mapped ranges in flight
	hp := newHashPair()

	sfd, dfd := int(src.Fd()), int(zw.f.Fd())
	page := int64(os.Getpagesize())
	pos := off
	var n int64
	for n < e.size {
		if err := ctx.Err(); err != nil {
			hp.wait()
			return nil, 0, true, err
		}
		want := int(min(int64(copyBufSize), e.size-n))
		start := pos
		k, err := unix.CopyFileRange(sfd, nil, dfd, &pos, want, 0)
		if err != nil {
			hp.wait()
			if n == 0 && (errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) ||
				errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EBADF) || errors.Is(err, unix.EPERM)) {
				return nil, 0, false, nil
			}
			return nil, 0, true, fmt.Errorf("entry %q: copy %s: %w", e.Name, e.Path, err)
		}
		if k == 0 {
			break // the file ended early; the size check below says so
		}
		n += int64(k)
		aligned := start &^ (page - 1)
		m, err := unix.Mmap(dfd, aligned, int(pos-aligned), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			hp.wait()
			return nil, 0, true, fmt.Errorf("entry %q: map the copy to hash it: %w", e.Name, err)
		}
		slots <- struct{}{}
		hp.hash(m[start-aligned:], func() { unix.Munmap(m); <-slots })
		zw.advance(int64(k), pos)
	}
	sum, crc = hp.wait()
	if n != e.size {
		return nil, 0, true, fmt.Errorf("entry %q: %w: %s has %d bytes, expected %d", e.Name, ErrChanged, e.Path, n, e.size)
	}
	if k, _ := src.Read(make([]byte, 1)); k > 0 {
		return nil, 0, true, fmt.Errorf("entry %q: %w: %s grew past %d bytes", e.Name, ErrChanged, e.Path, e.size)
	}
	// Later entries are written through zw.bw at the file offset.
	if _, err := zw.f.Seek(pos, io.SeekStart); err != nil {
		return nil, 0, true, err
	}
	return sum, crc, true, nil
}
