package main

import (
	"archive/tar"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeBigStack makes a Constellation whose one image is a rootfs tar made
// sparse up to 1 GiB: a create of it writes for long enough to be caught
// mid-write, while the test stops or kills it within milliseconds.
func writeBigStack(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "volt-compose.yaml"), []byte("version: \"1\"\nname: demo\ncontainers:\n  web: {image: images/big.tar}\n"), 0o644)
	f, err := os.Create(filepath.Join(dir, "images", "big.tar"))
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: "etc/motd", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi\n"))
	tw.Close()
	if err := f.Truncate(1 << 30); err != nil { // the rest reads as zero blocks: the end of the archive
		t.Fatal(err)
	}
	f.Close()
}

// startCreate starts `volt bundle create stack -o out` and returns it once
// it is writing: a temp file of out it did not see before has appeared and
// its writer holds the lock on it (the temp exists a moment before it is
// locked, and an unlocked temp is fair game for the next create).
func startCreate(t *testing.T, e *env, stack, out string) (*exec.Cmd, string) {
	t.Helper()
	before, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".demo.vbundle.tmp-*"))
	cmd := exec.Command(voltBin, "bundle", "create", stack, "-o", out)
	cmd.Env = append(os.Environ(), e.vars...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var tmp string
	waitWithin(t, 20*time.Second, time.Millisecond, func() bool {
		now, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".demo.vbundle.tmp-*"))
		for _, n := range now {
			if !slices.Contains(before, n) && flocked(n) {
				tmp = n
				return true
			}
		}
		return false
	}, "bundle create to start writing "+out)
	return cmd, tmp
}

func staging(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, ".volt-build-*"))
	return m
}

// TestCreateRemovesLeftoversOfKilledCreate: a create killed with -9 leaves
// its temp bundle and staging directory; the next create removes them, and
// leaves alone those of a create that is still running (stopped here, so
// it holds its files without writing).
func TestCreateRemovesLeftoversOfKilledCreate(t *testing.T) {
	e := newEnv(t)
	big, small := filepath.Join(e.dir, "big"), filepath.Join(e.dir, "small")
	writeBigStack(t, big)
	writeStack(t, small)
	outDir := filepath.Join(e.dir, "out")
	os.Mkdir(outDir, 0o755)
	out := filepath.Join(outDir, "demo.vbundle")

	killed, deadTmp := startCreate(t, e, big, out)
	killed.Process.Signal(syscall.SIGKILL)
	killed.Wait()
	deadStaging := staging(t, outDir)
	if _, err := os.Stat(deadTmp); err != nil || len(deadStaging) != 1 {
		t.Fatalf("a killed create should leave its temp and staging dir (the case cleaned up): %v, %v", err, deadStaging)
	}

	live, liveTmp := startCreate(t, e, big, out)
	live.Process.Signal(syscall.SIGSTOP)
	defer live.Process.Signal(syscall.SIGCONT)
	var liveStaging string
	for _, s := range staging(t, outDir) {
		if s != deadStaging[0] {
			liveStaging = s
		}
	}

	e.must("bundle", "create", small, "-o", out)
	e.must("bundle", "verify", out)
	for _, p := range []string{deadTmp, deadStaging[0]} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s of the killed create is still there after the next create (%v)", filepath.Base(p), err)
		}
	}
	for _, p := range []string{liveTmp, liveStaging} {
		if _, err := os.Lstat(p); err != nil || p == "" {
			t.Errorf("the running create's %q was touched: %v", filepath.Base(p), err)
		}
	}
}

// flocked reports whether some process holds a flock on path, as
// /proc/locks lists it ("1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF").
// It only reads, so it never takes the lock from the writer.
func flocked(path string) bool {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return false
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return false
	}
	suffix := ":" + strconv.FormatUint(st.Ino, 10)
	for _, line := range strings.Split(string(locks), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && strings.HasSuffix(f[5], suffix) {
			return true
		}
	}
	return false
}
