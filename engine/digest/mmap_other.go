//go:build !unix

package digest

import (
	"errors"
	"os"
)

// mapFile is unavailable here; callers fall back to pread.
func mapFile(f *os.File, off, n int64) (source, func(), error) {
	return nil, nil, errors.New("mmap not supported")
}
