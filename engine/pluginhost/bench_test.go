package pluginhost

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// reportMedian adds the median of ds as a metric, in ms.
func reportMedian(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2])/1e6, "ms-median")
}

// rssKiB returns VmRSS of pid in KiB.
func rssKiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb
		}
	}
	return 0
}

// BenchmarkStartHandshakeInfo measures a cold plugin start: exec, go-plugin
// handshake with AutoMTLS, Plugin.Info and version negotiation (target: < 50 ms median).
func BenchmarkStartHandshakeInfo(b *testing.B) {
	dir := b.TempDir()
	if err := os.Link(binDir+"/"+BinaryPrefix+"runtime-exec", dir+"/"+BinaryPrefix+"runtime-exec"); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var ds []time.Duration
	var rss float64
	for b.Loop() {
		h := New(Options{Dirs: []string{dir}, IgnoreEnv: true, ExecutableDir: "-"})
		t0 := time.Now()
		rt, err := h.Runtime(ctx, "runtime-exec", RuntimePolicy)
		if err == nil {
			_, err = rt.Info(ctx)
		}
		ds = append(ds, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		rss = rssKiB(h.PID("runtime-exec"))
		h.Close()
	}
	reportMedian(b, ds)
	b.ReportMetric(rss, "plugin-RSS-KiB")
}

// BenchmarkNoopCall measures one unary round trip (Info) to a running plugin
// over the mTLS gRPC connection (target: < 1 ms median).
func BenchmarkNoopCall(b *testing.B) {
	dir := b.TempDir()
	if err := os.Link(binDir+"/"+BinaryPrefix+"runtime-exec", dir+"/"+BinaryPrefix+"runtime-exec"); err != nil {
		b.Fatal(err)
	}
	h := New(Options{Dirs: []string{dir}, IgnoreEnv: true, ExecutableDir: "-"})
	defer h.Close()
	ctx := context.Background()
	rt, err := h.Runtime(ctx, "runtime-exec", RuntimePolicy)
	if err != nil {
		b.Fatal(err)
	}
	var ds []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := rt.Info(ctx); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	reportMedian(b, ds)
	b.ReportMetric(rssKiB(h.PID("runtime-exec")), "plugin-RSS-KiB")
}
