package deploy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// TestWriteInRootDanglingLinks: a parent that is a symlink to a directory
// missing from the image gets that directory created inside the root, as
// the container resolves the link; nothing is ever created outside.
func TestWriteInRootDanglingLinks(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "etc", "deep")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"etc/abs":     outside + "/a",               // absolute, pointing out
		"etc/rel":     "../../../../../outside/r",   // relative, climbing out
		"etc/deep/up": "../srv",                     // relative, staying in
		"etc/chain":   "/etc/abs/more",              // through another dangling link
		"etc/loop1":   "/etc/loop2",                 // a loop
		"etc/loop2":   "/etc/loop1",                 //
		"etc/self":    "/etc/self/x",                // grows through itself
		"etc/tofile":  "/etc/deep/file-not-dir.txt", // a dangling link to a would-be file
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		target  string
		landsAt string // path under root; "" means refused
	}{
		{"/etc/abs/conf", strings.TrimPrefix(outside, "/") + "/a/conf"},
		{"/etc/rel/conf", "outside/r/conf"},
		{"/etc/deep/up/conf", "etc/srv/conf"},
		{"/etc/chain/conf", strings.TrimPrefix(outside, "/") + "/a/more/conf"},
		{"/etc/loop1/conf", ""},
		{"/etc/self/conf", ""},
	}
	for _, tc := range tests {
		err := writeInRoot(root, tc.target, []byte(tc.target), 0o644)
		if tc.landsAt == "" {
			if err == nil {
				t.Errorf("%s: accepted, want refused", tc.target)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.target, err)
			continue
		}
		if b, err := os.ReadFile(filepath.Join(root, tc.landsAt)); err != nil || string(b) != tc.target {
			t.Errorf("%s: not at %s: %q %v", tc.target, tc.landsAt, b, err)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("a write escaped the root: %v", ents)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("something was created beside the root: %v", ents)
	}
}
