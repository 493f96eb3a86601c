package qemu

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/volt-cli/volt/sdk/logfile"
)

// maxTailRead bounds how much of a log readTail reads from its end.
const maxTailRead = 4 << 20

// readTail returns the last n lines of path (all of it when n <= 0, up to
// maxTailRead bytes from the end) and the file size it read up to.
func readTail(path string, n int) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("stat %q: %w", path, err)
	}
	size := fi.Size()
	start := max(size-maxTailRead, 0)
	b := make([]byte, size-start)
	if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("read %q: %w", path, err)
	}
	if n > 0 {
		b = logfile.LastLines(b, n)
	}
	return b, size, nil
}
