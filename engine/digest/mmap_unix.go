//go:build unix

package digest

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps [off, off+n) of f read-only. The mapping starts at the page
// boundary below off; release unmaps it.
func mapFile(f *os.File, off, n int64) (source, func(), error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if off < 0 || n <= 0 || off+n > fi.Size() || int64(int(n)) != n {
		return nil, nil, fmt.Errorf("hash: cannot map %d+%d of a %d-byte file", off, n, fi.Size())
	}
	page := int64(os.Getpagesize())
	base := off &^ (page - 1)
	m, err := unix.Mmap(int(f.Fd()), base, int(off+n-base), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	_ = unix.Madvise(m, unix.MADV_SEQUENTIAL)
	return mappedSource{m: m, base: base}, func() { unix.Munmap(m) }, nil
}
