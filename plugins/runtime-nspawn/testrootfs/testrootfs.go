// Package testrootfs builds a minimal busybox root filesystem for tests that
// run real containers: /bin/busybox (from the host's busybox-static) with
// symlinks for its applets, plus /usr, /etc (passwd, group), /tmp, /root.
package testrootfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BusyboxPath is the host's static busybox.
const BusyboxPath = "/bin/busybox"

// Applets are the busybox applets linked into /bin when the host busybox
// cannot list its own (busybox --list).
var Applets = []string{"sh", "ash", "cat", "echo", "sleep", "ls", "env", "pwd", "id", "true", "false",
	"printf", "touch", "mkdir", "rm", "cp", "mv", "grep", "head", "tail", "wc", "test", "[", "kill", "ps",
	"hostname", "ip", "ifconfig", "wget", "seq", "date", "sync", "tr", "sed", "awk", "yes", "stat", "dd", "ln"}

// Build creates the rootfs in dir (created if missing). It returns an error
// when busybox is not installed (see Available).
func Build(dir string) error {
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return fmt.Errorf("build busybox rootfs: %w", err)
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root", "proc", "sys", "dev", "run", "var"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("build busybox rootfs: %w", err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return fmt.Errorf("build busybox rootfs: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), bb, 0o755); err != nil {
		return fmt.Errorf("build busybox rootfs: %w", err)
	}
	applets := Applets
	if out, err := exec.Command(BusyboxPath, "--list").Output(); err == nil {
		applets = strings.Fields(string(out))
	}
	for _, a := range applets {
		if a == "busybox" || strings.ContainsRune(a, '/') {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("build busybox rootfs: link %s: %w", a, err)
		}
	}
	files := map[string]string{
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":    "root:x:0:\nnogroup:x:65534:\n",
		"etc/hostname": "busybox\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("build busybox rootfs: %w", err)
		}
	}
	return nil
}

// Available reports why a busybox rootfs cannot be built here ("" when it can).
func Available() string {
	if _, err := os.Stat(BusyboxPath); err != nil {
		return "busybox-static not installed (" + BusyboxPath + ")"
	}
	return ""
}

// New builds a rootfs in a fresh t.TempDir()/rootfs and returns its path. It
// skips the test when busybox is missing and fails it on other errors.
func New(t testing.TB) string {
	t.Helper()
	if why := Available(); why != "" {
		t.Skip(why)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := Build(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}
