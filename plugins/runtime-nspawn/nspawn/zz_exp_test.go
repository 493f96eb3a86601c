package nspawn

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/volt-cli/volt/plugins/runtime-nspawn/testrootfs"
	"github.com/volt-cli/volt/sdk"
)

func runPipe(b *testing.B, args []string) time.Duration {
	cmd := exec.Command("systemd-nspawn", args...)
	out, _ := cmd.StdoutPipe()
	t0 := time.Now()
	cmd.Start()
	bufio.NewReader(out).ReadString('\n')
	d := time.Since(t0)
	cmd.Process.Signal(syscall.SIGTERM)
	go func() { time.Sleep(300 * time.Millisecond); cmd.Process.Signal(syscall.SIGTERM) }()
	cmd.Wait()
	return d
}

func BenchmarkZZ(b *testing.B) {
	root := filepath.Join(b.TempDir(), "rootfs")
	testrootfs.Build(root)
	New(Options{}).Start(context.Background(), nil_spec(root, b.TempDir())) // installs tini
	payload := []string{"/bin/sh", "-c", "echo ready; exec sleep 1000"}
	var a, c, d, e []float64
	rtNo := New(Options{Tini: "none"})
	for b.Loop() {
		a = append(a, ms(runPipe(b, append([]string{"--register=no", "--keep-unit", "-D", root}, payload...))))
		c = append(c, ms(runPipe(b, append([]string{"-D", root, "--register=no", "--keep-unit", "-q", "--pipe", "--machine=zz", "--kill-signal=SIGTERM", "--", "/.volt/tini", "-g", "--"}, payload...))))
		d = append(d, ms(runPipe(b, append([]string{"-D", root, "--register=no", "--keep-unit", "-q", "--pipe", "--machine=zz", "--kill-signal=SIGTERM", "--"}, payload...))))
		v, _ := voltStart(b, context.Background(), rtNo, root, filepath.Join(b.TempDir(), "s"), uniqueName("zz"), payload)
		e = append(e, ms(v))
	}
	b.ReportMetric(median(a), "plain")
	b.ReportMetric(median(c), "flags+tini")
	b.ReportMetric(median(d), "flags")
	b.ReportMetric(median(e), "volt-notini")
}

func nil_spec(root, st string) sdk.WorkloadSpec { return sdk.WorkloadSpec{Name: "zzinit", Root: root, StateDir: st, Command: []string{"true"}} }
