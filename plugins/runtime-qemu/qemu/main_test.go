package qemu

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"lukechampine.com/blake3"

	"github.com/volt-cli/volt/sdk"
)

// testImage is the VM test image built once per test binary by TestMain.
var testImage struct {
	dir string // holds vmlinuz, initrd.img, disk.raw
	err error  // why VM tests skip
}

// imageScript is the test-image builder shipped in examples/vm.
func imageScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "examples", "vm", "build-test-image.sh")
}

// buildTestImage builds (or reuses, keyed by the script's BLAKE3) the test
// image under /var/cache/volt-test (root) or $TMPDIR/volt-test.
func buildTestImage() (string, error) {
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("VM tests need root")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return "", fmt.Errorf("qemu-system-x86_64 not installed")
	}
	script := imageScript()
	b, err := os.ReadFile(script)
	if err != nil {
		return "", err
	}
	sum := blake3.Sum256(b)
	base := "/var/cache/volt-test"
	if err := os.MkdirAll(base, 0o755); err != nil {
		base = filepath.Join(os.TempDir(), "volt-test")
	}
	dir := filepath.Join(base, "vm-image-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dir, "initrd.img")); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "vmlinuz")); err == nil {
			return dir, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", script, dir)
	cmd.Env = append(os.Environ(), "VOLT_VM_CACHE="+filepath.Join(base, "kernel"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build test image: %v: %s", err, out.String())
	}
	return dir, nil
}

func TestMain(m *testing.M) {
	testImage.dir, testImage.err = buildTestImage()
	os.Exit(m.Run())
}

// needVM skips t when the test image or QEMU is missing.
func needVM(t testing.TB) string {
	t.Helper()
	if testImage.err != nil {
		t.Skip(testImage.err)
	}
	return testImage.dir
}

// needBoot skips t under -short: each TCG boot takes 5 s on an idle host
// and tens of seconds on a loaded one.
func needBoot(t testing.TB) {
	t.Helper()
	needVM(t)
	if testing.Short() {
		t.Skip("boots VMs (slow under TCG); run without -short")
	}
}

// testOpts are the runtime options of the VM tests.
func testOpts() Options { return Options{StopTimeout: 5 * time.Second} }

var nameSeq struct {
	sync.Mutex
	n int
}

func vmName(prefix string) string {
	nameSeq.Lock()
	defer nameSeq.Unlock()
	nameSeq.n++
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), nameSeq.n)
}

// kernelSpec is a direct-kernel-boot spec of the test image with extra
// kernel arguments; the state dir is short (unix socket paths are limited).
func kernelSpec(t testing.TB, name, extra string) sdk.WorkloadSpec {
	dir := needVM(t)
	sd, err := os.MkdirTemp("", "vq-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sd) })
	return sdk.WorkloadSpec{
		Name: name, Root: dir, StateDir: filepath.Join(sd, "s"),
		Kernel: "vmlinuz", Initrd: "initrd.img",
		Cmdline:     strings.TrimSpace("console=ttyS0 quiet panic=-1 volt.shell=0 " + extra),
		MemoryBytes: 256 << 20, CPUs: 1, NetworkMode: "none",
	}
}

// startVM starts spec and registers a Destroy cleanup.
func startVM(t *testing.T, rt sdk.Runtime, spec sdk.WorkloadSpec) sdk.Handle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := rt.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start(%q): %v", spec.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rt.Destroy(ctx, h); err != nil {
			t.Errorf("Destroy(%q): %v", h.Name, err)
		}
	})
	return h
}

// lineWriter signals when a line containing want has been written.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	found chan struct{}
	once  sync.Once
}

func newLineWriter(want string) *lineWriter {
	return &lineWriter{want: want, found: make(chan struct{})}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.found) })
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// bootTimeout bounds one TCG boot on a busy 2-core host.
const bootTimeout = 3 * time.Minute

// waitMarker follows the VM's logs until marker appears.
func waitMarker(t *testing.T, rt sdk.Runtime, h sdk.Handle, marker string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	w := newLineWriter(marker)
	done := make(chan error, 1)
	go func() { done <- rt.Logs(ctx, h, true, 0, w) }()
	select {
	case <-w.found:
		cancel()
		<-done
	case err := <-done:
		t.Fatalf("Logs(follow) of %q ended before %q: %v (got %q)", h.Name, marker, err, w.String())
	}
}
