// Package logfile reads workload log files for runtime plugins: the last
// lines of a log, and what is appended to it afterwards.
package logfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// LastLines returns the last n lines of b (all of b when n <= 0). A final
// line without a newline counts as a line.
func LastLines(b []byte, n int) []byte {
	if n <= 0 {
		return b
	}
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n--
			if n == 0 {
				return b[i+1:]
			}
		}
	}
	return b
}

// Follow copies what is appended to the file at path after offset off to w,
// looking every interval, until ctx ends; then it returns ctx's error. The
// file is opened afresh each time, so one that does not exist yet is waited
// for and one that was replaced is read; one that shrank (a restarted
// workload truncated it) is followed from its start.
func Follow(ctx context.Context, path string, off int64, w io.Writer, every time.Duration) error {
	buf := make([]byte, 64<<10)
	for {
		var err error
		if off, err = copyFrom(path, off, w, buf); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// copyFrom copies the file at path from off to its current end to w and
// returns the new offset. A missing file is not an error.
func copyFrom(path string, off int64, w io.Writer, buf []byte) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return off, nil
	}
	if err != nil {
		return off, fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return off, fmt.Errorf("stat log: %w", err)
	}
	if fi.Size() < off {
		off = 0
	}
	for {
		n, rerr := f.ReadAt(buf, off)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return off, fmt.Errorf("write log: %w", err)
			}
			off += int64(n)
		}
		if errors.Is(rerr, io.EOF) || (rerr == nil && n == 0) {
			return off, nil
		}
		if rerr != nil {
			return off, fmt.Errorf("read log: %w", rerr)
		}
	}
}
