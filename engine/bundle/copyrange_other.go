//go:build !linux

package bundle

import (
	"context"
	"os"
)

var copyRangeOff bool

// copyRange is Linux-only (copy_file_range(2)); elsewhere the caller reads and writes.
func (zw *zipWriter) copyRange(context.Context, *prepEntry, *os.File, int64) ([]byte, uint32, bool, error) {
	return nil, 0, false, nil
}
