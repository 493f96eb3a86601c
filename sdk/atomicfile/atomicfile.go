// Package atomicfile publishes files so that readers see either the old
// content or the new, never a part: write a temp file in the same directory,
// fsync it, rename it over the target, fsync the directory.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is a temporary file that becomes Path on Commit. Until then nothing
// is visible at Path; Abort (or a crash) leaves at most a hidden temp file
// named ".<base>.tmp-*" in the same directory, which the writer holds
// locked while it lives (see CreateTemp), so RemoveStale(dir, "."+base+
// ".tmp-") can remove what a killed writer left.
type File struct {
	*os.File
	path string
	hold *Hold
	done bool
}

// Create starts writing a file that will replace path on Commit.
// perm is applied to the final file.
func Create(path string, perm os.FileMode) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, h, err := CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create temp file for %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		h.Release()
		return nil, fmt.Errorf("chmod %s: %w", f.Name(), err)
	}
	return &File{File: f, path: path, hold: h}, nil
}

// Commit syncs the data, renames the temp file to its final path and syncs
// the directory. After Commit, Abort is a no-op.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("commit %s: already finished", f.path)
	}
	f.done = true
	defer f.hold.Release()
	if err := f.Sync(); err != nil {
		f.File.Close()
		os.Remove(f.Name())
		return fmt.Errorf("sync %s: %w", f.path, err)
	}
	if err := f.File.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("close %s: %w", f.path, err)
	}
	if err := os.Rename(f.Name(), f.path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("publish %s: %w", f.path, err)
	}
	return SyncDir(filepath.Dir(f.path))
}

// Abort removes the temp file. It is safe to call after Commit and more than once.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.Name())
	f.hold.Release()
}

// WriteFile atomically replaces path with data.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

// WriteFrom atomically replaces path with everything read from r.
func WriteFrom(path string, r io.Reader, perm os.FileMode) (int64, error) {
	f, err := Create(path, perm)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err != nil {
		f.Abort()
		return n, fmt.Errorf("write %s: %w", path, err)
	}
	return n, f.Commit()
}

// SyncDir fsyncs a directory so that a rename inside it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// Publish atomically replaces path (creating its directory if needed) with
// what fn writes into the temporary file; perm is the final file's mode.
func Publish(path string, perm os.FileMode, fn func(f *os.File) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if err := fn(f.File); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// WritebackSpan is how much newly written data makes a Writeback start
// writing a region back.
const WritebackSpan = 8 << 20

// Writeback starts the kernel writing a file back region by region as a
// writer advances through it, so that the final fsync overlaps the writing
// instead of following it. Make one with NewWriteback; it is not safe for
// concurrent use.
type Writeback struct {
	f      *os.File
	kicked int64 // offset up to which writeback has been started
}

// NewWriteback returns a Writeback for f whose writer starts at offset start.
func NewWriteback(f *os.File, start int64) *Writeback { return &Writeback{f: f, kicked: start} }

// Advance records that everything before pos is written, starting
// writeback once WritebackSpan bytes have accumulated since the last start.
func (w *Writeback) Advance(pos int64) {
	if pos-w.kicked >= WritebackSpan {
		StartWriteback(w.f, w.kicked, pos-w.kicked)
		w.kicked = pos
	}
}
