package atomicfile

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

func TestRemoveStale(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock")
	}
	dir := t.TempDir()
	exists := func(name string) bool { _, err := os.Lstat(filepath.Join(dir, name)); return err == nil }

	// A dead writer's file and directory: created and locked, then the lock
	// dropped as the kernel does when the process dies.
	deadF, h, err := CreateTemp(dir, ".out.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	deadF.WriteString("partial")
	deadF.Close()
	h.Release()
	deadD, h, err := MkdirTemp(dir, ".out.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(deadD, "x"), []byte("x"), 0o644)
	h.Release()
	// A live writer's file and directory: still held.
	liveF, hf, err := CreateTemp(dir, ".out.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Release()
	liveF.Close() // closing the file keeps the lock: Hold has its own descriptor
	liveD, hd, err := MkdirTemp(dir, ".out.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Release()
	// Not temps of ours, whatever their lock.
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, []byte("keep"), 0o644)
	others := map[string]func(string) error{
		".out.tmp-notes":  func(p string) error { return os.WriteFile(p, nil, 0o644) }, // not os.CreateTemp digits
		".out.tmp-":       func(p string) error { return os.WriteFile(p, nil, 0o644) },
		".out.tmp-12345":  func(p string) error { return os.Symlink(target, p) }, // a symlink is never followed
		".other.tmp-1234": func(p string) error { return os.WriteFile(p, nil, 0o644) },
		"out":             func(p string) error { return os.WriteFile(p, nil, 0o644) },
	}
	for name, mk := range others {
		if err := mk(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}

	removed, err := RemoveStale(dir, ".out.tmp-")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	want := []string{deadF.Name(), deadD}
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{filepath.Base(deadF.Name()), false},
		{filepath.Base(deadD), false},
		{filepath.Base(liveF.Name()), true},
		{filepath.Base(liveD), true},
		{".out.tmp-notes", true},
		{".out.tmp-", true},
		{".out.tmp-12345", true},
		{".other.tmp-1234", true},
		{"out", true},
	} {
		if got := exists(tc.name); got != tc.want {
			t.Errorf("%s exists = %v, want %v", tc.name, got, tc.want)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("symlink target changed: %q", b)
	}
	if _, err := RemoveStale(filepath.Join(dir, "missing"), ".x-"); err == nil {
		t.Error("RemoveStale of a missing directory succeeded")
	}
}

// TestCreateLocksTemp checks that atomicfile's own temp file is held while
// it is written and no longer exists once committed or aborted.
func TestCreateLocksTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	f, err := Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if removed, _ := RemoveStale(dir, ".f.tmp-"); len(removed) != 0 {
		t.Fatalf("RemoveStale removed a live writer's temp: %v", removed)
	}
	f.WriteString("data")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "data" {
		t.Errorf("committed %q", b)
	}
}
