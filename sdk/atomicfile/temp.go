package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Hold is the lock a live writer keeps on its temp file or directory for as
// long as the temp exists, so that RemoveStale can tell the leftovers of a
// killed writer (no lock: the kernel drops it when the process dies) from
// the work of a live one. Release it after the temp is renamed or removed.
type Hold struct{ f *os.File }

// Release drops the lock. It is safe on a nil Hold and more than once.
func (h *Hold) Release() {
	if h != nil && h.f != nil {
		h.f.Close()
		h.f = nil
	}
}

// tempAttempts bounds the retries when RemoveStale removes a temp between
// its creation and its lock (each retry needs a stale-cleaner to have won
// that microsecond race again).
const tempAttempts = 8

// CreateTemp creates a new temp file in dir like os.CreateTemp(dir,
// pattern) and locks it (flock on a close-on-exec duplicate descriptor, so
// closing f keeps the lock, and children do not inherit it) until the
// Hold is released. The pattern should end in "*", making a name
// RemoveStale(dir, prefix) recognises.
func CreateTemp(dir, pattern string) (*os.File, *Hold, error) {
	for i := 0; ; i++ {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, nil, err
		}
		h, err := hold(f, f.Name())
		if err == nil {
			return f, h, nil
		}
		f.Close()
		if err != errRemoved || i == tempAttempts {
			os.Remove(f.Name())
			return nil, nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
	}
}

// MkdirTemp creates a new temp directory in dir like os.MkdirTemp(dir,
// pattern) and locks it until the Hold is released (see CreateTemp).
func MkdirTemp(dir, pattern string) (string, *Hold, error) {
	for i := 0; ; i++ {
		name, err := os.MkdirTemp(dir, pattern)
		if err != nil {
			return "", nil, err
		}
		d, err := os.Open(name)
		if err != nil {
			os.Remove(name)
			return "", nil, err
		}
		h, err := hold(d, name)
		d.Close()
		if err == nil {
			return name, h, nil
		}
		if err != errRemoved || i == tempAttempts {
			os.RemoveAll(name)
			return "", nil, fmt.Errorf("lock %s: %w", name, err)
		}
	}
}

// RemoveStale removes the temp files and directories in dir that a writer
// made with CreateTemp or MkdirTemp and a pattern of prefix + "*", and that
// no live writer holds: those of writers that were killed. It only touches
// entries owned by the current user whose names are prefix followed by the
// digits os.CreateTemp puts there, never follows symlinks, and returns the
// names it removed. Errors reading dir are returned; an entry that cannot
// be checked or removed is skipped.
func RemoveStale(dir, prefix string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("look for stale temp files in %s: %w", dir, err)
	}
	var removed []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		if e.Type() != 0 && !e.IsDir() {
			continue // symlinks, devices, sockets: never a temp of ours
		}
		name := filepath.Join(dir, e.Name())
		if removeIfStale(name, e.IsDir()) {
			removed = append(removed, name)
		}
	}
	return removed, nil
}
