package qemu

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

//go:generate sh -c "as --32 -o kvmprobe.o kvmprobe.S && ld -m elf_i386 -Ttext=0x100000 --oformat binary -o kvmprobe.bin kvmprobe.o && rm kvmprobe.o"

// kvmProbe is kvmprobe.S assembled: a multiboot guest that enters long mode
// and exits QEMU with status probeStatus through isa-debug-exit.
//
//go:embed kvmprobe.bin
var kvmProbe []byte

// probeStatus is QEMU's exit status when the probe guest ran to its end:
// (0x2a << 1) | 1.
const probeStatus = 85

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// accelResult is the cached outcome of a KVM probe.
type accelResult struct {
	Accel  string `json:"accel"`
	Reason string `json:"reason"` // why KVM is not used, when Accel is tcg
	Key    string `json:"key"`
}

// cacheKey identifies the host state a probe result holds for: the kernel
// release and the QEMU binary (path, size, mtime).
func cacheKey(qemuPath string) string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	rel := unix.ByteSliceToString(u.Release[:])
	k := "kernel=" + rel + ";qemu=" + qemuPath
	if fi, err := os.Stat(qemuPath); err == nil {
		k += ";size=" + strconv.FormatInt(fi.Size(), 10) + ";mtime=" + strconv.FormatInt(fi.ModTime().UnixNano(), 10)
	}
	return k
}

// defaultCacheDir is $XDG_CACHE_HOME/volt, else /tmp/volt-cache.
func defaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "volt")
	}
	return filepath.Join(os.TempDir(), "volt-cache")
}

// detectAccel decides between KVM and TCG: KVM only when /dev/kvm opens and
// the probe guest actually runs to its end under it. Results are cached in
// cacheDir per kernel release and QEMU binary.
func detectAccel(ctx context.Context, qemuPath, cacheDir string) accelResult {
	key := cacheKey(qemuPath)
	cacheFile := filepath.Join(cacheDir, "qemu-accel.json")
	if b, err := os.ReadFile(cacheFile); err == nil {
		var r accelResult
		if json.Unmarshal(b, &r) == nil && r.Key == key && (r.Accel == AccelKVM || r.Accel == AccelTCG) {
			return r
		}
	}
	r := probeAccel(ctx, qemuPath)
	if ctx.Err() != nil {
		return r // a cancelled probe proves nothing: do not cache it
	}
	r.Key = key
	if err := os.MkdirAll(cacheDir, 0o755); err == nil {
		_ = writeJSONAtomic(cacheFile, r)
	}
	return r
}

// probeTimeout bounds the KVM probe guest; under KVM it runs in well under
// a second, a broken KVM hangs.
const probeTimeout = 3 * time.Second

func probeAccel(ctx context.Context, qemuPath string) accelResult {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return accelResult{Accel: AccelTCG, Reason: "no usable /dev/kvm: " + err.Error()}
	}
	f.Close()
	dir, err := os.MkdirTemp("", "volt-kvm-probe-")
	if err != nil {
		return accelResult{Accel: AccelTCG, Reason: "kvm probe: " + err.Error()}
	}
	defer os.RemoveAll(dir)
	img := filepath.Join(dir, "probe.bin")
	if err := os.WriteFile(img, kvmProbe, 0o644); err != nil {
		return accelResult{Accel: AccelTCG, Reason: "kvm probe: " + err.Error()}
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(pctx, qemuPath, "-accel", "kvm", "-M", "pc", "-nodefaults", "-no-user-config",
		"-display", "none", "-no-reboot", "-m", "16", "-kernel", img,
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-nic", "none")
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case pctx.Err() != nil:
		return accelResult{Accel: AccelTCG, Reason: fmt.Sprintf("kvm probe guest did not finish within %s (KVM cannot run ordinary guests here)", probeTimeout)}
	case errors.As(err, &ee) && ee.ExitCode() == probeStatus:
		return accelResult{Accel: AccelKVM}
	default:
		return accelResult{Accel: AccelTCG, Reason: "kvm probe failed: " + lastLine(out, err)}
	}
}

// lastLine is the last non-empty line of out, or err's text.
func lastLine(out []byte, err error) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	if err != nil {
		return err.Error()
	}
	return "no output"
}
