package nspawn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/volt-cli/volt/sdk/logfile"
)

// noiseLines are lines systemd-nspawn 252 prints on every run (without
// systemd as PID 1, or when asked to stop) that say nothing about the
// workload. They are removed from logs and build output.
var (
	noisePrefix = []byte(`Attempted to remove disk file system under "/run/systemd/nspawn/propagate`)
	noiseExact  = []byte("Trying to halt container. Send SIGTERM again to trigger immediate termination.")
)

// isNoise reports whether a complete line (without its newline) is nspawn noise.
func isNoise(line []byte) bool {
	line = bytes.TrimRight(line, "\r")
	return bytes.HasPrefix(line, noisePrefix) || bytes.Equal(line, noiseExact)
}

// mayBeNoise reports whether an unfinished line could still turn out to be noise.
func mayBeNoise(partial []byte) bool {
	for _, n := range [][]byte{noisePrefix, noiseExact} {
		if bytes.HasPrefix(n, partial) || bytes.HasPrefix(partial, n) {
			return true
		}
	}
	return false
}

// noiseFilter is an io.Writer that drops nspawn noise lines and passes
// everything else through. Text that cannot be noise is written at once, even
// before its newline arrives; Flush writes a held final line.
type noiseFilter struct {
	w       io.Writer
	pending []byte // start of a line that may still be noise
	pass    bool   // the current line is known not to be noise
}

func newNoiseFilter(w io.Writer) *noiseFilter { return &noiseFilter{w: w} }

// Write implements io.Writer. It always reports len(p) consumed unless the
// underlying writer fails.
func (f *noiseFilter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if f.pass {
			i := bytes.IndexByte(p, '\n')
			chunk := p
			if i >= 0 {
				chunk = p[:i+1]
				f.pass = false
			}
			if _, err := f.w.Write(chunk); err != nil {
				return 0, err
			}
			p = p[len(chunk):]
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i >= 0 {
			line := append(f.pending, p[:i+1]...)
			f.pending = f.pending[:0]
			p = p[i+1:]
			if !isNoise(line[:len(line)-1]) {
				if _, err := f.w.Write(line); err != nil {
					return 0, err
				}
			}
			continue
		}
		f.pending = append(f.pending, p...)
		p = nil
		if !mayBeNoise(f.pending) {
			if _, err := f.w.Write(f.pending); err != nil {
				return 0, err
			}
			f.pending = f.pending[:0]
			f.pass = true
		}
	}
	return n, nil
}

// Flush writes a held unfinished line unless it is noise.
func (f *noiseFilter) Flush() error {
	if len(f.pending) == 0 || isNoise(f.pending) {
		f.pending = f.pending[:0]
		return nil
	}
	_, err := f.w.Write(f.pending)
	f.pending = f.pending[:0]
	return err
}

// filterBytes returns b without noise lines.
func filterBytes(b []byte) []byte {
	var out bytes.Buffer
	f := newNoiseFilter(&out)
	_, _ = f.Write(b)
	_ = f.Flush()
	return out.Bytes()
}

// readTail reads the end of the file at path, enough to hold the last n
// lines after filtering (the whole file when n <= 0), and returns those lines
// and the file size that was read up to.
func readTail(path string, n int) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("stat log: %w", err)
	}
	size := fi.Size()
	if n <= 0 {
		b, err := io.ReadAll(io.LimitReader(f, size))
		if err != nil {
			return nil, 0, fmt.Errorf("read log: %w", err)
		}
		return filterBytes(b), int64(len(b)), nil
	}
	// Read backwards in growing chunks until there are enough lines.
	chunk := int64(16 << 10)
	for {
		off := max(size-chunk, 0)
		buf := make([]byte, size-off)
		if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("read log: %w", err)
		}
		if off > 0 {
			// Drop the first, probably partial, line.
			if i := bytes.IndexByte(buf, '\n'); i >= 0 {
				buf = buf[i+1:]
			}
		}
		fb := filterBytes(buf)
		if off == 0 || bytes.Count(fb, []byte{'\n'}) > n {
			return logfile.LastLines(fb, n), size, nil
		}
		chunk *= 4
	}
}

// followFile copies what is appended to path after offset to w (through the
// noise filter) until ctx ends, then returns nil. A file that shrinks (the
// workload was restarted) is followed from its start again.
func followFile(ctx context.Context, path string, offset int64, w io.Writer) error {
	nf := newNoiseFilter(w)
	err := logfile.Follow(ctx, path, offset, nf, 100*time.Millisecond)
	_ = nf.Flush()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// lastLine is the one-line Reason of a failed workload: the last non-empty
// line of its log tail, shortened to 300 bytes.
func lastLine(b []byte) string {
	lines := bytes.Split(bytes.TrimRight(b, "\r\n \t"), []byte{'\n'})
	for i := len(lines) - 1; i >= 0; i-- {
		l := bytes.TrimSpace(lines[i])
		if len(l) > 0 {
			if len(l) > 300 {
				l = append(l[:297:297], "..."...)
			}
			return string(l)
		}
	}
	return ""
}

// reasonFromLog is lastLine of the log file at path.
func reasonFromLog(path string) string {
	b, _, err := readTail(path, 5)
	if err != nil {
		return ""
	}
	return lastLine(b)
}
