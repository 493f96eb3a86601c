//go:build !linux

package atomicfile

import "os"

// StartWriteback does nothing where sync_file_range(2) does not exist.
func StartWriteback(*os.File, int64, int64) {}
