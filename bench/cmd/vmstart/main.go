// Command vmstart times, side by side in one run on the same kernel and
// initrd, how long a VM takes from "start" to its marker line on the serial
// console: through Volt's QEMU runtime (package qemu: validation, supervisor
// shim, QMP handshake) and through plain qemu-system-x86_64 run with the very
// same arguments. It also times start → QEMU answering on QMP, which does not
// depend on the guest and so shows the runtime's own overhead without the
// noise of a TCG boot on a loaded host. It prints the medians, the median
// overheads and QEMU's RSS at the marker.
//
//	vmstart -image DIR [-n 7] [-accel tcg|kvm]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
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
	d     time.Duration // start → marker
	ready time.Duration // start → QMP answers
	up    time.Duration // start → QEMU opened the serial log (it is initialising)
	rss   int64         // KiB, at the marker
}

// watchFile reports, on the returned channel, how long after t0 path
// appeared (polled every millisecond, for at most a minute).
func watchFile(path string, t0 time.Time) <-chan time.Duration {
	ch := make(chan time.Duration, 1)
	go func() {
		for time.Since(t0) < time.Minute {
			if _, err := os.Stat(path); err == nil {
				ch <- time.Since(t0)
				return
			}
			time.Sleep(time.Millisecond)
		}
		ch <- -1
	}()
	return ch
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
			fmt.Fprintf(os.Stderr, "run %d %-7s up %v, ready %v, marker %v (rss %d KiB)\n", i, kind, s.up.Round(100*time.Microsecond), s.ready.Round(time.Millisecond), s.d.Round(time.Millisecond), s.rss)
		}
	}
	byMarker := func(s sample) time.Duration { return s.d }
	byReady := func(s sample) time.Duration { return s.ready }
	mr, mp := median(viaRT, byMarker), median(plain, byMarker)
	rr, rp := median(viaRT, byReady), median(plain, byReady)
	byUp := func(s sample) time.Duration { return s.up }
	ur, up := median(viaRT, byUp), median(plain, byUp)
	res := map[string]any{
		"accel": h.Detail, "runs": n,
		"runtimeMarkerMs": ms(mr.d), "plainMarkerMs": ms(mp.d), "markerOverheadMs": ms(mr.d - mp.d),
		"runtimeReadyMs": ms(rr.ready), "plainReadyMs": ms(rp.ready), "readyOverheadMs": ms(rr.ready - rp.ready),
		"runtimeUpMs": ms(ur.up), "plainUpMs": ms(up.up), "upOverheadMs": ms(ur.up - up.up),
		"qemuRSSKiB": mr.rss, "plainRSSKiB": mp.rss,
	}
	fmt.Printf("accel %s, %d runs each (medians)\n", h.Detail, n)
	fmt.Printf("                      start → %s   start → QEMU up   start → QMP answers\n", marker)
	fmt.Printf("  volt runtime-qemu   %10.1f ms   %12.1f ms   %12.1f ms\n", ms(mr.d), ms(ur.up), ms(rr.ready))
	fmt.Printf("  plain qemu          %10.1f ms   %12.1f ms   %12.1f ms\n", ms(mp.d), ms(up.up), ms(rp.ready))
	fmt.Printf("  overhead            %10.1f ms   %12.1f ms   %12.1f ms   (target < 50 ms)\n", ms(mr.d-mp.d), ms(ur.up-up.up), ms(rr.ready-rp.ready))
	// Runs were made in pairs, back to back: the median of the per-pair
	// differences is less sensitive to the host's load changing over the run.
	diffs := make([]time.Duration, n)
	for i := range n {
		diffs[i] = viaRT[i].d - plain[i].d
	}
	slices.Sort(diffs)
	res["pairedMarkerOverheadMs"] = ms(diffs[n/2])
	fmt.Printf("  paired overhead to the marker (median of per-pair differences) %.1f ms\n", ms(diffs[n/2]))
	fmt.Printf("  QEMU RSS at marker  %d KiB (plain: %d KiB)\n", mr.rss, mp.rss)
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// median returns the sample with the median of key.
func median(s []sample, key func(sample) time.Duration) sample {
	c := slices.Clone(s)
	slices.SortFunc(c, func(a, b sample) int { return int(key(a) - key(b)) })
	return c[len(c)/2]
}

// waitMarker polls the serial log until the marker appears.
func waitMarker(ctx context.Context, log string, deadline time.Time) error {
	for time.Now().Before(deadline) && ctx.Err() == nil {
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
	upc := watchFile(filepath.Join(spec.StateDir, qemu.FileSerialLog), t0)
	h, err := rt.Start(ctx, spec)
	if err != nil {
		return sample{}, err
	}
	ready := time.Since(t0) // Start returns once QEMU answers on QMP
	defer rt.Destroy(context.WithoutCancel(ctx), h)
	if err := waitMarker(ctx, filepath.Join(spec.StateDir, qemu.FileSerialLog), t0.Add(5*time.Minute)); err != nil {
		return sample{}, err
	}
	d := time.Since(t0)
	st, _ := rt.Inspect(ctx, h)
	return sample{d: d, ready: ready, up: <-upc, rss: rssKiB(st.PID)}, nil
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
	upc := watchFile(filepath.Join(spec.StateDir, qemu.FileSerialLog), t0)
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() }()
	ready, err := waitQMP(ctx, filepath.Join(spec.StateDir, qemu.FileQMPQuery), t0)
	if err != nil {
		return sample{}, err
	}
	if err := waitMarker(ctx, filepath.Join(spec.StateDir, qemu.FileSerialLog), t0.Add(5*time.Minute)); err != nil {
		return sample{}, err
	}
	return sample{d: time.Since(t0), ready: ready, up: <-upc, rss: rssKiB(cmd.Process.Pid)}, nil
}

// waitQMP polls a QMP socket the way the runtime's Start does (every 5 ms)
// until QEMU's greeting arrives, and returns the time since t0.
func waitQMP(ctx context.Context, sock string, t0 time.Time) (time.Duration, error) {
	for ctx.Err() == nil && time.Since(t0) < time.Minute {
		if c, err := net.Dial("unix", sock); err == nil {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil && strings.Contains(line, `"QMP"`) {
				return time.Since(t0), nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no QMP greeting on %s", sock)
}
