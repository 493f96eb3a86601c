package deploy

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteInRoot(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Symlinks inside the image that point out of it: absolute and relative.
	os.Symlink(outside, filepath.Join(root, "abs"))
	os.Symlink("../../outside", filepath.Join(root, "etc", "rel"))
	os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "etc", "link.conf"))

	if err := writeInRoot(root, "/etc/app/new.conf", []byte("x"), 0o644); err != nil {
		t.Fatalf("create with parents: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/app/new.conf")); string(b) != "x" {
		t.Errorf("content = %q", b)
	}
	for _, target := range []string{"/abs/pwned", "/etc/rel/pwned", "/etc/link.conf"} {
		if err := writeInRoot(root, target, []byte("pwned"), 0o644); err != nil {
			t.Logf("%s: refused: %v", target, err)
		}
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 0 {
		t.Errorf("a write escaped the root: %v", ents)
	}
	// The symlink at the final name is replaced, not followed.
	if fi, err := os.Lstat(filepath.Join(root, "etc/link.conf")); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("etc/link.conf should now be a regular file inside the root")
	}
	if err := writeInRoot(root, "/../etc/x", nil, 0o644); !errors.Is(err, ErrEscape) {
		t.Errorf("dot-dot target: %v, want ErrEscape", err)
	}
	if err := writeInRoot(root, "relative", nil, 0o644); err == nil {
		t.Errorf("relative target accepted")
	}
}
