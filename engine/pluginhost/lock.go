package pluginhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/volt-cli/volt/engine/digest"
)

// LockFileName is the plugin lock's file name inside $VOLT_ROOT/plugins.
const LockFileName = "lock.json"

// LockEntry records one installed plugin binary.
type LockEntry struct {
	Path      string    `json:"path"`
	BLAKE3    string    `json:"blake3"`
	Size      int64     `json:"size"`
	Installed time.Time `json:"installed"`
}

// Lock is the plugin lock file: {"version": 1, "plugins": {name: entry}}.
type Lock struct {
	Version int                  `json:"version"`
	Plugins map[string]LockEntry `json:"plugins"`
}

// Installed is what Install reports.
type Installed struct {
	Name string `json:"name"`
	LockEntry
}

// installDir is $VOLT_ROOT/plugins, or "" without a root.
func (h *Host) installDir() string {
	if h.opts.Root == "" {
		return ""
	}
	return filepath.Join(h.opts.Root, "plugins")
}

// ReadLock reads the plugin lock at path; a missing file is an empty lock.
func ReadLock(path string) (Lock, error) {
	l := Lock{Version: 1, Plugins: map[string]LockEntry{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("read plugin lock: %w", err)
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return l, fmt.Errorf("parse plugin lock %s: %w", path, err)
	}
	if l.Plugins == nil {
		l.Plugins = map[string]LockEntry{}
	}
	for name, e := range l.Plugins {
		if !validName(name) || !digest.Valid(e.BLAKE3) {
			return l, fmt.Errorf("parse plugin lock %s: entry %q: bad name or digest %q", path, name, e.BLAKE3)
		}
	}
	return l, nil
}

// Install copies the plugin binary at path (named volt-plugin-<name>) into
// $VOLT_ROOT/plugins atomically and records its BLAKE3 and size in the lock.
// It replaces an installed plugin of the same name. Later launches of the
// installed binary are checked against the lock.
func (h *Host) Install(path string) (Installed, error) {
	name, err := NameFromBinary(path)
	if err != nil {
		return Installed{}, fmt.Errorf("install %s: %w", path, err)
	}
	dir := h.installDir()
	if dir == "" {
		return Installed{}, fmt.Errorf("install %s: no Volt root set", path)
	}
	// 0700: when this creates the state root too, it is private (engine.RootMode).
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Installed{}, fmt.Errorf("install %s: %w", path, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return Installed{}, fmt.Errorf("install %s: %w", path, err)
	}
	defer unlock()

	src, err := os.Open(path)
	if err != nil {
		return Installed{}, fmt.Errorf("install %s: %w", path, err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return Installed{}, fmt.Errorf("install %s: not a regular file", path)
	}
	dst := filepath.Join(dir, BinaryPrefix+name)
	hasher := digest.New()
	size, err := publish(dst, 0o755, func(w io.Writer) (int64, error) {
		return io.CopyBuffer(io.MultiWriter(w, hasher), src, make([]byte, digest.BufSize))
	})
	if err != nil {
		return Installed{}, fmt.Errorf("install %s: %w", path, err)
	}
	e := LockEntry{Path: dst, BLAKE3: digest.Format(hasher.Sum(nil)), Size: size, Installed: time.Now().UTC()}
	lockPath := filepath.Join(dir, LockFileName)
	l, err := ReadLock(lockPath)
	if err != nil {
		return Installed{}, fmt.Errorf("install %s: %w", path, err)
	}
	l.Plugins[name] = e
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return Installed{}, fmt.Errorf("install %s: %w", path, err)
	}
	if _, err := publish(lockPath, 0o644, func(w io.Writer) (int64, error) {
		n, err := w.Write(append(b, '\n'))
		return int64(n), err
	}); err != nil {
		return Installed{}, fmt.Errorf("install %s: write plugin lock: %w", path, err)
	}
	return Installed{Name: name, LockEntry: e}, nil
}

// lockDir takes an exclusive flock on dir/.lock and returns its release.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// publish writes a file atomically: temp file in the same dir, fsync,
// chmod, rename over dst, fsync the dir.
func publish(dst string, mode os.FileMode, write func(io.Writer) (int64, error)) (int64, error) {
	dir := filepath.Dir(dst)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(dst)+"-*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	n, err := write(f)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return n, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return n, err
	}
	defer d.Close()
	return n, d.Sync()
}
