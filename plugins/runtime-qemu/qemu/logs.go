package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
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
		b = lastLines(b, n)
	}
	return b, size, nil
}

// lastLines returns the last n lines of b (a final line without a newline counts).
func lastLines(b []byte, n int) []byte {
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	i := end
	for c := 0; c < n; c++ {
		j := bytes.LastIndexByte(b[:i], '\n')
		if j < 0 {
			return b
		}
		i = j
		if c == n-1 {
			return b[i+1:]
		}
	}
	return b[i+1:]
}

// followFile copies what is appended to path after off to w until ctx ends.
// A file that shrinks (a restart truncated it) is followed from its start.
func followFile(ctx context.Context, path string, off int64, w io.Writer) error {
	buf := make([]byte, 64<<10)
	for {
		f, err := os.Open(path)
		if err == nil {
			fi, serr := f.Stat()
			if serr == nil && fi.Size() < off {
				off = 0
			}
			for {
				n, rerr := f.ReadAt(buf, off)
				if n > 0 {
					if _, werr := w.Write(buf[:n]); werr != nil {
						f.Close()
						return werr
					}
					off += int64(n)
				}
				if rerr != nil || n == 0 {
					break
				}
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
