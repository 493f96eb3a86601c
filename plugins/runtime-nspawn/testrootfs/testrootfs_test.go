package testrootfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBuild(t *testing.T) {
	dir := New(t)
	for _, p := range []string{"bin/busybox", "bin/sh", "bin/sleep", "bin/echo", "bin/cat", "usr", "etc/passwd", "tmp"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("rootfs lacks %s: %v", p, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin", "sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh -> %q, %v; want busybox", target, err)
	}
	// Building twice into the same dir is fine.
	if err := Build(dir); err != nil {
		t.Errorf("second Build: %v", err)
	}
}
