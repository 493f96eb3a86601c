// Command vmstart times, side by side in one run on the same kernel and
// initrd, how long a VM takes from "start" to its marker line on the serial
// console: through Volt's QEMU runtime (package qemu: validation, overlay,
// supervisor shim, QMP handshake) and through plain qemu-system-x86_64 run
// with the very same arguments. It prints the medians, the runtime's median
// overhead and QEMU's RSS at the marker.
//
//	vmstart -image DIR [-n 7] [-accel tcg|kvm]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/volt-cli/volt/plugins/runtime-qemu/qemu"
	"github.com/volt-cli/volt/sdk"
)

const marker = "VOLT-VM-READY"

func main() {
	image := flag.String("image", "", "directory made by examples/vm/build-test-image.sh")
	n := flag.Int("n", 7, "runs of each")
	accel := flag.String("accel", "", "force kvm or tcg (default: detect)")
	flag.Parse()
	if *image == "" {
		fmt.Fprintln(os.Stderr, "vmstart: -image DIR is required")
		os.Exit(2)
	}
	if err := run(*image, *n, *accel); err != nil {
		fmt.Fprintln(os.Stderr, "vmstart:", err)
		os.Exit(1)
	}
}

type sample struct {
	d   time.Duration
	rss int64 // KiB
}

func run(image string, n int, accel string) error {
	work, err := os.MkdirTemp("", "vmstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	rt := qemu.New(qemu.Options{Accel: accel, StopTimeout: time.Millisecond})
	spec := func(i int, kind string) sdk.WorkloadSpec {
		return sdk.WorkloadSpec{
			Name: fmt.Sprintf("bench-%s-%d", kind, i), Root: image, StateDir: filepath.Join(work, fmt.Sprintf("%s%d", kind[:1], i)),
			Kernel: "vmlinuz", Initrd: "initrd.img", Cmdline: "console=ttyS0 quiet panic=-1 volt.shell=0",
			MemoryBytes: 256 << 20, CPUs: 1, NetworkMode: "none",
		}
	}
	ctx := context.Background()
	h, err := rt.Fingerprint(ctx)
	if err != nil {
		return err
	}
	if n <= 0 {
		fmt.Printf("accel %s (no runs)\n", h.Detail)
		return nil
	}
	var viaRT, plain []sample
	for i := range n {
		// Alternate the order so neither side always runs on a warmer cache.
		order := []string{"runtime", "plain"}
		if i%2 == 1 {
			order = []string{"plain", "runtime"}
		}
		for _, kind := range order {
			var s sample
			var err error
			if kind == "runtime" {
				s, err = timeRuntime(ctx, rt, spec(i, kind))
				viaRT = append(viaRT, s)
			} else {
				s, err = timePlain(ctx, rt, spec(i, kind))
				plain = append(plain, s)
			}
			if err != nil {
				return fmt.Errorf("%s run %d: %w", kind, i, err)
			}
			fmt.Fprintf(os.Stderr, "run %d %-7s %v (rss %d KiB)\n", i, kind, s.d.Round(time.Millisecond), s.rss)
		}
	}
	mr, mp := median(viaRT), median(plain)
	res := map[string]any{
		"accel": h.Detail, "runs": n,
		"runtimeMedianMs": ms(mr.d), "plainMedianMs": ms(mp.d), "overheadMs": ms(mr.d - mp.d),
		"qemuRSSKiB": mr.rss, "plainRSSKiB": mp.rss,
	}
	fmt.Printf("accel %s, %d runs each, start → %q on the serial console:\n", h.Detail, n, marker)
	fmt.Printf("  volt runtime-qemu   median %8.1f ms\n", ms(mr.d))
	fmt.Printf("  plain qemu          median %8.1f ms\n", ms(mp.d))
	fmt.Printf("  overhead            median %8.1f ms (target < 50 ms)\n", ms(mr.d-mp.d))
	fmt.Printf("  QEMU RSS at marker  %d KiB (plain: %d KiB)\n", mr.rss, mp.rss)
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// median returns the sample with the median duration (and its RSS).
func median(s []sample) sample {
	c := slices.Clone(s)
	slices.SortFunc(c, func(a, b sample) int { return int(a.d - b.d) })
	return c[len(c)/2]
}

// waitMarker polls the serial log until the marker appears.
func waitMarker(log string, deadline time.Time) error {
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(log); err == nil && bytes.Contains(b, []byte(marker)) {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("no %q in %s", marker, log)
}

// rssKiB reads VmRSS of pid.
func rssKiB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func timeRuntime(ctx context.Context, rt *qemu.Runtime, spec sdk.WorkloadSpec) (sample, error) {
	t0 := time.Now()
	h, err := rt.Start(ctx, spec)
	if err != nil {
		return sample{}, err
	}
	defer rt.Destroy(ctx, h)
	if err := waitMarker(filepath.Join(spec.StateDir, qemu.FileSerialLog), t0.Add(5*time.Minute)); err != nil {
		return sample{}, err
	}
	d := time.Since(t0)
	st, _ := rt.Inspect(ctx, h)
	return sample{d: d, rss: rssKiB(st.PID)}, nil
}

func timePlain(ctx context.Context, rt *qemu.Runtime, spec sdk.WorkloadSpec) (sample, error) {
	argv, err := rt.CommandLine(ctx, spec)
	if err != nil {
		return sample{}, err
	}
	if err := os.MkdirAll(spec.StateDir, 0o700); err != nil {
		return sample{}, err
	}
	t0 := time.Now()
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() }()
	if err := waitMarker(filepath.Join(spec.StateDir, qemu.FileSerialLog), t0.Add(5*time.Minute)); err != nil {
		return sample{}, err
	}
	return sample{d: time.Since(t0), rss: rssKiB(cmd.Process.Pid)}, nil
}
