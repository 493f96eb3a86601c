package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lukechampine.com/blake3"

	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/conformance"
	"github.com/volt-cli/volt/sdk/sdktest"
)

func readStopRecord(t *testing.T, sd string) stopRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sd, FileStop))
	if err != nil {
		t.Fatalf("stop record: %v", err)
	}
	var r stopRecord
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("stop record: %v", err)
	}
	return r
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return blake3.Sum256(b)
}

// TestFingerprint checks the healthy fingerprint (accelerator detected by
// trying, not by /dev/kvm) and the one without QEMU.
func TestFingerprint(t *testing.T) {
	needVM(t)
	ctx := context.Background()
	cache := t.TempDir()
	h, err := New(Options{CacheDir: cache}).Fingerprint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Healthy || (h.Detail != AccelKVM && h.Detail != AccelTCG) {
		t.Fatalf("Fingerprint = %+v, want healthy with detail kvm or tcg", h)
	}
	if h.Attributes["accel"] != h.Detail || h.Attributes["machine"] != "pc" || h.Attributes["qemu.version"] == "unknown" {
		t.Errorf("attributes %v", h.Attributes)
	}
	if h.Detail == AccelTCG && h.Attributes["accel.reason"] == "" {
		t.Errorf("tcg without a reason: %v", h.Attributes)
	}
	// The probe result is cached: a second fingerprint agrees.
	if _, err := os.Stat(filepath.Join(cache, "qemu-accel.json")); err != nil {
		t.Errorf("probe result not cached: %v", err)
	}
	h2, _ := New(Options{CacheDir: cache}).Fingerprint(ctx)
	if h2.Detail != h.Detail {
		t.Errorf("second fingerprint %q, first %q", h2.Detail, h.Detail)
	}
	missing := New(Options{QEMU: filepath.Join(t.TempDir(), "qemu-system-x86_64")})
	h, err = missing.Fingerprint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Healthy || !strings.Contains(h.Detail, "not found") {
		t.Errorf("Fingerprint without qemu = %+v, want unhealthy, not found", h)
	}
	if _, err := missing.Start(ctx, kernelSpec(t, vmName("missing"), "")); !errors.Is(err, ErrNoEmulator) {
		t.Errorf("Start without qemu: err = %v, want ErrNoEmulator", err)
	}
}

// TestLifecycle boots the test image by direct kernel boot with the raw test
// disk attached, sees the marker in Logs, inspects it, recovers it from a new
// runtime over gRPC with only the Handle, and stops it gracefully (the guest
// powers off on the ACPI power button).
func TestLifecycle(t *testing.T) {
	t.Parallel()
	needBoot(t)
	dir := needVM(t)
	rt := sdktest.Runtime(t, New(testOpts()))
	spec := kernelSpec(t, vmName("life"), "")
	spec.Image = "disk.raw"
	base := filepath.Join(dir, "disk.raw")
	before := fileSum(t, base)
	h := startVM(t, rt, spec)
	waitMarker(t, rt, h, "VOLT-VM-READY")

	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	st, err := rt.Inspect(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != sdk.StatusRunning || st.Detail["qmpStatus"] != "running" || st.PID <= 0 {
		t.Fatalf("Inspect = %+v, want running with qmpStatus running", st)
	}
	// The overlay sits on the bundle's disk.
	out, err := exec.Command("qemu-img", "info", "--output=json", "-U", filepath.Join(spec.StateDir, FileOverlay)).Output()
	if err != nil {
		t.Fatal(err)
	}
	ii, err := parseImageInfo(out)
	if err != nil || ii.BackingFilename != base || ii.BackingFormat != "raw" {
		t.Errorf("overlay info %+v (%v), want backing %q raw", ii, err, base)
	}
	// A new plugin instance recovers the VM from the handle alone.
	fresh := sdktest.Runtime(t, New(testOpts()))
	if err := fresh.Recover(ctx, sdk.Handle{Name: h.Name, Data: h.Data}); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if err := fresh.Stop(ctx, h, 2*time.Minute); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	rec := readStopRecord(t, spec.StateDir)
	if rec.Method != "acpi" || !rec.GuestShutdown || rec.Reason != "guest-shutdown" {
		t.Errorf("stop record %+v, want acpi with a guest shutdown", rec)
	}
	st, err = fresh.Wait(ctx, h)
	if err != nil || st.State != sdk.StatusStopped || st.ExitCode != 0 {
		t.Errorf("Wait after Stop = %+v, %v; want stopped, 0", st, err)
	}
	var logs bytes.Buffer
	if err := fresh.Logs(ctx, h, false, 0, &logs); err != nil || !strings.Contains(logs.String(), "VOLT-VM-POWEROFF") {
		t.Errorf("Logs = %q, %v; want the guest's power-off line", logs.String(), err)
	}
	if after := fileSum(t, base); after != before {
		t.Errorf("the bundle's disk was written")
	}
	if err := fresh.Recover(ctx, h); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Recover of a stopped VM: %v, want ErrNotFound", err)
	}
}

// TestKilledAndRestarted kills QEMU from outside: the VM is failed with the
// tail of its logs, and starting it again works.
func TestKilledAndRestarted(t *testing.T) {
	t.Parallel()
	needBoot(t)
	rt := New(testOpts())
	spec := kernelSpec(t, vmName("kill"), "volt.marker=KILL-ME")
	h := startVM(t, rt, spec)
	waitMarker(t, rt, h, "KILL-ME")
	hd, err := decodeHandle(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(hd.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	st, err := rt.Wait(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != sdk.StatusFailed || !strings.Contains(st.Reason, "signal 9") || !strings.Contains(st.Reason, "KILL-ME") {
		t.Errorf("after kill -9: %+v, want failed with signal 9 and the console tail", st)
	}
	h2, err := rt.Start(ctx, spec)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	waitMarker(t, rt, h2, "KILL-ME")
	if st, err := rt.Inspect(ctx, h2); err != nil || st.State != sdk.StatusRunning {
		t.Errorf("after restart: %+v, %v", st, err)
	}
	if err := rt.Destroy(ctx, h2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(spec.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir after Destroy: %v", err)
	}
}

// TestStopForcedWhenGuestIgnoresPowerOff: a guest that ignores the power
// button is quit through QMP after the timeout.
func TestStopForcedWhenGuestIgnoresPowerOff(t *testing.T) {
	t.Parallel()
	needBoot(t)
	rt := New(testOpts())
	spec := kernelSpec(t, vmName("deaf"), "volt.ignore-poweroff=1")
	h := startVM(t, rt, spec)
	waitMarker(t, rt, h, "VOLT-VM-READY")
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := rt.Stop(ctx, h, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if rec := readStopRecord(t, spec.StateDir); rec.Method != "quit" || rec.GuestShutdown {
		t.Errorf("stop record %+v, want quit without a guest shutdown", rec)
	}
	st, err := rt.Inspect(ctx, h)
	if err != nil || st.State != sdk.StatusStopped {
		t.Errorf("Inspect = %+v, %v; want stopped", st, err)
	}
	// Stopping again is not an error.
	if err := rt.Stop(ctx, h, time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestStartRefuses covers the bad inputs Start refuses before running QEMU.
func TestStartRefuses(t *testing.T) {
	needVM(t)
	tmp := t.TempDir()
	img := func(name, size string, args ...string) string {
		p := filepath.Join(tmp, name)
		args = append(append([]string{"create", "-q"}, args...), p)
		if size != "" {
			args = append(args, size)
		}
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v: %s", err, out)
		}
		return p
	}
	good := img("good.qcow2", "1M", "-f", "qcow2")
	backed := img("backed.qcow2", "", "-f", "qcow2", "-F", "qcow2", "-b", good)
	outside := img("outside.qcow2", "1M", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd")
	vmdk := img("disk.vmdk", "1M", "-f", "vmdk")
	corrupt := img("corrupt.qcow2", "1M", "-f", "qcow2")
	corruptQcow2(t, corrupt)
	arm := filepath.Join(tmp, "Image")
	armHdr := make([]byte, 64)
	copy(armHdr[0x38:], "ARM\x64")
	if err := os.WriteFile(arm, armHdr, 0o644); err != nil {
		t.Fatal(err)
	}
	rt := New(testOpts())
	tests := []struct {
		name string
		edit func(*sdk.WorkloadSpec)
		want error
	}{
		{"backing file", func(s *sdk.WorkloadSpec) { s.Image = backed }, ErrBackingFile},
		{"backing file outside", func(s *sdk.WorkloadSpec) { s.Image = outside }, ErrBackingFile},
		{"corrupt qcow2", func(s *sdk.WorkloadSpec) { s.Image = corrupt }, ErrCorruptImage},
		{"vmdk", func(s *sdk.WorkloadSpec) { s.Image = vmdk }, ErrImageFormat},
		{"memory larger than host", func(s *sdk.WorkloadSpec) { s.MemoryBytes = 1 << 50 }, ErrMemory},
		{"arm64 kernel", func(s *sdk.WorkloadSpec) { s.Kernel = arm; s.Initrd = "" }, ErrNoEmulator},
		{"arm64 label", func(s *sdk.WorkloadSpec) { s.Labels = map[string]string{"volt.arch": "arm64"} }, ErrNoEmulator},
		{"nothing to boot", func(s *sdk.WorkloadSpec) { s.Kernel, s.Initrd, s.Cmdline = "", "", "" }, sdk.ErrInvalid},
		{"missing kernel", func(s *sdk.WorkloadSpec) { s.Kernel = "nope" }, os.ErrNotExist},
		{"bad port", func(s *sdk.WorkloadSpec) { s.NetworkMode = ""; s.Ports = []string{"80"} }, sdk.ErrInvalid},
		{"ports without network", func(s *sdk.WorkloadSpec) { s.Ports = []string{"8080:80"} }, sdk.ErrInvalid},
		{"bad network mode", func(s *sdk.WorkloadSpec) { s.NetworkMode = "bridge" }, sdk.ErrUnsupported},
		{"bad name", func(s *sdk.WorkloadSpec) { s.Name = "../x" }, sdk.ErrInvalid},
		{"relative state dir", func(s *sdk.WorkloadSpec) { s.StateDir = "state" }, sdk.ErrInvalid},
		{"long state dir", func(s *sdk.WorkloadSpec) { s.StateDir = "/" + strings.Repeat("d", 120) }, sdk.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := kernelSpec(t, vmName("bad"), "")
			tc.edit(&spec)
			_, err := rt.Start(context.Background(), spec)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start: err = %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(spec.StateDir, FileVM)); err == nil {
				t.Errorf("a refused Start left %s", FileVM)
			}
		})
	}
}

// corruptQcow2 points the image's L1 table past the end of the file, which
// qemu-img check reports as corruption.
func corruptQcow2(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Header: refcount_table_offset is at byte 48 (8 bytes, big endian).
	if _, err := f.WriteAt([]byte{0, 0, 0, 0, 0x7f, 0, 0, 0}, 48); err != nil {
		t.Fatal(err)
	}
}

// TestConformance runs the SDK's runtime suite against the runtime served
// over real gRPC, with real VMs. VMs run no build steps: RunBuildStep is
// skipped (Run returns ErrUnsupported, tested in TestUnsupported).
func TestConformance(t *testing.T) {
	t.Parallel()
	needBoot(t)
	conformance.Runtime(t, func(t *testing.T) conformance.Fixture {
		return conformance.Fixture{
			Runtime: sdktest.Runtime(t, New(testOpts())),
			Reopen:  func(t *testing.T) sdk.Runtime { return sdktest.Runtime(t, New(testOpts())) },
			LongRunning: func(t *testing.T, name string) sdk.WorkloadSpec {
				return kernelSpec(t, name, "volt.marker="+conformance.Marker)
			},
			ShortLived: func(t *testing.T, name string, code int) sdk.WorkloadSpec {
				return kernelSpec(t, name, fmt.Sprintf("volt.marker=%s volt.exit=%d", conformance.Marker, code))
			},
			BuildStep: func(t *testing.T, code int) sdk.RunRequest {
				t.Skip("VMs run no build steps (Run is ErrUnsupported)")
				return sdk.RunRequest{}
			},
			Timeout: bootTimeout,
		}
	})
}

// TestUnsupported: Exec and Run are not available for VMs.
func TestUnsupported(t *testing.T) {
	rt := New(Options{})
	if _, err := rt.Exec(context.Background(), sdk.Handle{}, sdk.ExecRequest{Command: []string{"true"}}); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("Exec: %v", err)
	}
	if _, err := rt.Run(context.Background(), sdk.RunRequest{}); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("Run: %v", err)
	}
	info, _ := rt.Info(context.Background())
	if info.Name != Name || info.Kind != sdk.KindRuntime {
		t.Errorf("Info = %+v", info)
	}
}
