package nspawn

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/volt-cli/volt/plugins/runtime-nspawn/testrootfs"
	"github.com/volt-cli/volt/sdk"
)

// BenchmarkStartToFirstOutput measures, side by side on the same busybox
// rootfs, the time from start to the payload's first output line for
// Runtime.Start (detached supervisor, tini, log file) and for plain
// `systemd-nspawn --register=no --keep-unit -D ROOT CMD` reading its stdout.
// It reports the medians, the median of per-pair overheads, and the median
// time until Start returns (it also waits until the container's init is
// ready for SIGTERM, and writes pidfiles).
func BenchmarkStartToFirstOutput(b *testing.B) {
	needNspawn(b)
	root := filepath.Join(b.TempDir(), "rootfs")
	if err := testrootfs.Build(root); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rt := New(Options{})
	payload := []string{"/bin/sh", "-c", "echo ready; exec sleep 1000"}
	var plain, volt, over, ret []float64
	for i := 0; b.Loop(); i++ {
		p := plainStart(b, root, payload)
		v, r := voltStart(b, ctx, rt, root, filepath.Join(b.TempDir(), "state"), uniqueName("vb"), payload)
		plain, volt, over, ret = append(plain, ms(p)), append(volt, ms(v)), append(over, ms(v-p)), append(ret, ms(r))
	}
	b.ReportMetric(median(plain), "plain-median-ms")
	b.ReportMetric(median(volt), "volt-median-ms")
	b.ReportMetric(median(over), "overhead-median-ms")
	b.ReportMetric(median(ret), "start-return-median-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// plainStart runs bare systemd-nspawn and times its first stdout line.
func plainStart(b *testing.B, root string, payload []string) time.Duration {
	b.Helper()
	cmd := exec.Command("systemd-nspawn", append([]string{"--register=no", "--keep-unit", "-D", root}, payload...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		b.Fatalf("plain nspawn: no output: %v", err)
	}
	d := time.Since(t0)
	b.StopTimer()
	_ = cmd.Process.Signal(syscall.SIGTERM) // without --kill-signal: the container is killed
	_ = cmd.Wait()
	b.StartTimer()
	return d
}

// voltStart starts through the Runtime and times the first output in its
// log (watched from t0 on, concurrently with Start) and the return of Start.
func voltStart(b *testing.B, ctx context.Context, rt *Runtime, root, state, name string, payload []string) (first, ret time.Duration) {
	b.Helper()
	return voltStartSpec(b, ctx, rt, sdk.WorkloadSpec{Name: name, Root: root, StateDir: state, Command: payload})
}

// voltStartSpec is voltStart for a whole spec.
func voltStartSpec(b *testing.B, ctx context.Context, rt *Runtime, spec sdk.WorkloadSpec) (first, ret time.Duration) {
	b.Helper()
	state := spec.StateDir
	log := filepath.Join(state, fileLog)
	if err := os.MkdirAll(state, 0o700); err != nil {
		b.Fatal(err)
	}
	// Watch with inotify (a blocking read): polling would steal CPU from
	// the container being measured.
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, state, unix.IN_MODIFY|unix.IN_CREATE); err != nil {
		b.Fatal(err)
	}
	seen := make(chan time.Time, 1)
	t0 := time.Now()
	go func() {
		buf := make([]byte, 4096)
		for {
			if fi, err := os.Stat(log); err == nil && fi.Size() > 0 {
				seen <- time.Now()
				return
			}
			if _, err := unix.Read(fd, buf); err != nil {
				close(seen)
				return
			}
		}
	}()
	h, err := rt.Start(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	ret = time.Since(t0)
	t1, ok := <-seen
	if !ok {
		b.Fatal("no output from the workload")
	}
	b.StopTimer()
	if err := rt.Destroy(ctx, h); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	return t1.Sub(t0), ret
}
