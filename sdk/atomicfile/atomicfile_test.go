package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommitAndAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, []byte("one"), 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("two")
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Errorf("uncommitted write visible: %q", b)
	}
	f.Abort()
	f.Abort()
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Errorf("abort changed the file: %q", b)
	}
	if n, err := WriteFrom(path, strings.NewReader("three"), 0o600); err != nil || n != 5 {
		t.Fatalf("WriteFrom: %d %v", n, err)
	}
	fi, _ := os.Stat(path)
	if b, _ := os.ReadFile(path); string(b) != "three" || fi.Mode().Perm() != 0o600 {
		t.Errorf("after commit: %q %v", b, fi.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temp files left behind: %v", ents)
	}
	if err := f.Commit(); err == nil {
		t.Errorf("commit after abort succeeded")
	}
}

func TestWritebackAdvance(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const mib = 1 << 20
	w := NewWriteback(f, 4*mib)
	for _, step := range []struct{ pos, kicked int64 }{
		{5 * mib, 4 * mib},   // less than a span written: nothing started
		{12 * mib, 12 * mib}, // a span: started up to pos
		{19 * mib, 12 * mib},
		{21 * mib, 21 * mib},
	} {
		w.Advance(step.pos)
		if w.kicked != step.kicked {
			t.Errorf("after Advance(%d MiB): writeback started up to %d MiB, want %d MiB", step.pos/mib, w.kicked/mib, step.kicked/mib)
		}
	}
}
