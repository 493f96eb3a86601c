// Package conformance holds the suites every Volt plugin runs in its own
// tests, in the manner of restic's backend tests: Runtime for runtime
// plugins, Format for format plugins, and Binary for the built executable
// (handshake and "nothing on stdout before it").
package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/volt-cli/volt/sdk"
)

// Marker is the line the fixture's workloads and build steps print; the suite
// looks for it in logs and build output.
const Marker = "volt-conformance"

// Fixture is what a runtime plugin's test gives the suite.
type Fixture struct {
	// Runtime is the runtime under test, normally a client from sdktest.Runtime.
	Runtime sdk.Runtime
	// Reopen returns a runtime backed by a fresh instance of the plugin
	// (a new implementation value, as a new plugin process would be), used to
	// Recover workloads started through Runtime.
	Reopen func(t *testing.T) sdk.Runtime
	// LongRunning returns the spec of a workload named name that prints
	// Marker on a line of its own, then runs until stopped (and stops on SIGTERM
	// or the runtime's equivalent). StateDir and the like are the fixture's.
	LongRunning func(t *testing.T, name string) sdk.WorkloadSpec
	// ShortLived returns the spec of a workload named name that prints Marker
	// and exits by itself soon with exit status code.
	ShortLived func(t *testing.T, name string, code int) sdk.WorkloadSpec
	// BuildStep returns a build step that prints Marker and exits with code.
	BuildStep func(t *testing.T, code int) sdk.RunRequest
	// Timeout bounds each blocking step of the suite; 0 means 30 s (VMs need more).
	Timeout time.Duration
}

// Runtime runs the runtime conformance suite. factory is called once per
// subtest; it may register cleanups on t.
func Runtime(t *testing.T, factory func(t *testing.T) Fixture) {
	tests := []struct {
		name string
		run  func(t *testing.T, f Fixture, ctx context.Context)
	}{
		{"InfoFingerprint", testInfoFingerprint},
		{"StartInspectStop", testStartInspectStop},
		{"StopIdempotent", testStopIdempotent},
		{"DestroyIdempotent", testDestroyIdempotent},
		{"WaitAfterExit", testWaitAfterExit},
		{"WaitCancelled", testWaitCancelled},
		{"RecoverFromNewInstance", testRecover},
		{"RecoverAfterDestroy", testRecoverAfterDestroy},
		{"Logs", testLogs},
		{"RunBuildStep", testRun},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := factory(t)
			d := f.Timeout
			if d == 0 {
				d = 30 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			tc.run(t, f, ctx)
		})
	}
}

var seq struct {
	sync.Mutex
	n int
}

// workloadName returns a name unique within the test binary.
func workloadName(t *testing.T) string {
	seq.Lock()
	defer seq.Unlock()
	seq.n++
	return fmt.Sprintf("conf-%d-%d", time.Now().UnixNano()%1_000_000, seq.n)
}

// start starts spec and registers a Destroy cleanup.
func start(t *testing.T, ctx context.Context, rt sdk.Runtime, spec sdk.WorkloadSpec) sdk.Handle {
	t.Helper()
	h, err := rt.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start(%q): %v", spec.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rt.Destroy(ctx, h); err != nil {
			t.Errorf("cleanup Destroy(%q): %v", h.Name, err)
		}
	})
	return h
}

// waitRunning polls Inspect until the workload is running.
func waitRunning(t *testing.T, ctx context.Context, rt sdk.Runtime, h sdk.Handle) sdk.WorkloadStatus {
	t.Helper()
	for {
		st, err := rt.Inspect(ctx, h)
		if err != nil {
			t.Fatalf("Inspect(%q): %v", h.Name, err)
		}
		if st.State == sdk.StatusRunning {
			return st
		}
		if st.State == sdk.StatusStopped || st.State == sdk.StatusFailed {
			t.Fatalf("Inspect(%q): long-running workload is %s (exit %d, %s)", h.Name, st.State, st.ExitCode, st.Reason)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Inspect(%q): not running before timeout: last state %q", h.Name, st.State)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func testInfoFingerprint(t *testing.T, f Fixture, ctx context.Context) {
	info, err := f.Runtime.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name == "" || info.Version == "" {
		t.Errorf("Info: name %q and version %q must be set", info.Name, info.Version)
	}
	if info.Kind != sdk.KindRuntime {
		t.Errorf("Info: kind %q, want %q", info.Kind, sdk.KindRuntime)
	}
	ok := false
	for _, v := range info.APIVersions {
		ok = ok || v == sdk.APIVersion
	}
	if !ok {
		t.Errorf("Info: API versions %v do not include %d", info.APIVersions, sdk.APIVersion)
	}
	h, err := f.Runtime.Fingerprint(ctx)
	if err != nil {
		t.Fatalf("Fingerprint: %v", err)
	}
	if h.Detail == "" {
		t.Errorf("Fingerprint: empty detail (healthy=%v)", h.Healthy)
	}
	if !h.Healthy {
		t.Skipf("runtime reports unhealthy here: %s", h.Detail)
	}
}

func testStartInspectStop(t *testing.T, f Fixture, ctx context.Context) {
	h := start(t, ctx, f.Runtime, f.LongRunning(t, workloadName(t)))
	waitRunning(t, ctx, f.Runtime, h)
	if err := f.Runtime.Stop(ctx, h, 5*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st, err := f.Runtime.Inspect(ctx, h)
	if err != nil {
		t.Fatalf("Inspect after Stop: %v", err)
	}
	if st.State == sdk.StatusRunning {
		t.Errorf("Inspect after Stop: still running")
	}
}

func testStopIdempotent(t *testing.T, f Fixture, ctx context.Context) {
	h := start(t, ctx, f.Runtime, f.LongRunning(t, workloadName(t)))
	waitRunning(t, ctx, f.Runtime, h)
	for i := range 2 {
		if err := f.Runtime.Stop(ctx, h, 5*time.Second); err != nil {
			t.Fatalf("Stop #%d: %v", i+1, err)
		}
	}
}

func testDestroyIdempotent(t *testing.T, f Fixture, ctx context.Context) {
	h := start(t, ctx, f.Runtime, f.LongRunning(t, workloadName(t)))
	waitRunning(t, ctx, f.Runtime, h)
	for i := range 2 {
		if err := f.Runtime.Destroy(ctx, h); err != nil {
			t.Fatalf("Destroy #%d: %v", i+1, err)
		}
	}
	if _, err := f.Runtime.Inspect(ctx, h); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Inspect after Destroy: err = %v, want ErrNotFound", err)
	}
}

func testWaitAfterExit(t *testing.T, f Fixture, ctx context.Context) {
	for _, code := range []int{0, 3} {
		h := start(t, ctx, f.Runtime, f.ShortLived(t, workloadName(t), code))
		st, err := f.Runtime.Wait(ctx, h)
		if err != nil {
			t.Fatalf("Wait (exit %d): %v", code, err)
		}
		if st.ExitCode != code {
			t.Errorf("Wait: exit code %d, want %d", st.ExitCode, code)
		}
		if st.State == sdk.StatusRunning {
			t.Errorf("Wait: state %q after exit", st.State)
		}
		// A second Wait after the exit returns the same status at once.
		st2, err := f.Runtime.Wait(ctx, h)
		if err != nil || st2.ExitCode != code {
			t.Errorf("second Wait: exit %d, err %v; want exit %d", st2.ExitCode, err, code)
		}
	}
}

func testWaitCancelled(t *testing.T, f Fixture, ctx context.Context) {
	h := start(t, ctx, f.Runtime, f.LongRunning(t, workloadName(t)))
	waitRunning(t, ctx, f.Runtime, h)
	wctx, cancel := context.WithCancel(ctx)
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	_, err := f.Runtime.Wait(wctx, h)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled ctx: err = %v, want context.Canceled", err)
	}
	if st, err := f.Runtime.Inspect(ctx, h); err != nil || st.State != sdk.StatusRunning {
		t.Errorf("cancelling Wait changed the workload: state %q, err %v", st.State, err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer dcancel()
	if _, err := f.Runtime.Wait(dctx, h); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait past its deadline: err = %v, want context.DeadlineExceeded", err)
	}
}

func testRecover(t *testing.T, f Fixture, ctx context.Context) {
	h := start(t, ctx, f.Runtime, f.LongRunning(t, workloadName(t)))
	waitRunning(t, ctx, f.Runtime, h)
	fresh := f.Reopen(t)
	if err := fresh.Recover(ctx, h); err != nil {
		t.Fatalf("Recover from a new instance: %v", err)
	}
	waitRunning(t, ctx, fresh, h)
	if err := fresh.Stop(ctx, h, 5*time.Second); err != nil {
		t.Fatalf("Stop from the new instance: %v", err)
	}
	if _, err := fresh.Wait(ctx, h); err != nil {
		t.Fatalf("Wait from the new instance: %v", err)
	}
}

func testRecoverAfterDestroy(t *testing.T, f Fixture, ctx context.Context) {
	h, err := f.Runtime.Start(ctx, f.ShortLived(t, workloadName(t), 0))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := f.Runtime.Wait(ctx, h); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if err := f.Runtime.Destroy(ctx, h); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if err := f.Reopen(t).Recover(ctx, h); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Recover of a destroyed workload: err = %v, want ErrNotFound", err)
	}
}

func testLogs(t *testing.T, f Fixture, ctx context.Context) {
	h := start(t, ctx, f.Runtime, f.ShortLived(t, workloadName(t), 0))
	if _, err := f.Runtime.Wait(ctx, h); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	var buf bytes.Buffer
	if err := f.Runtime.Logs(ctx, h, false, 0, &buf); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if !strings.Contains(buf.String(), Marker) {
		t.Errorf("Logs: %q does not contain %q", buf.String(), Marker)
	}
	// Following a running workload streams until ctx ends.
	h2 := start(t, ctx, f.Runtime, f.LongRunning(t, workloadName(t)))
	waitRunning(t, ctx, f.Runtime, h2)
	w := &markerWriter{found: make(chan struct{})}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Runtime.Logs(fctx, h2, true, 0, w) }()
	select {
	case <-w.found:
	case err := <-done:
		t.Fatalf("Logs(follow) ended before the marker: %v (got %q)", err, w.String())
	case <-ctx.Done():
		t.Fatalf("Logs(follow): no marker before timeout (got %q)", w.String())
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Logs(follow) after cancel: %v", err)
	}
}

// markerWriter closes found once Marker has been written to it.
type markerWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	found chan struct{}
	once  sync.Once
}

func (w *markerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), Marker) {
		w.once.Do(func() { close(w.found) })
	}
	return len(p), nil
}

func (w *markerWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func testRun(t *testing.T, f Fixture, ctx context.Context) {
	for _, code := range []int{0, 7} {
		req := f.BuildStep(t, code)
		var out bytes.Buffer
		req.Output = &out
		got, err := f.Runtime.Run(ctx, req)
		if err != nil {
			t.Fatalf("Run (exit %d): %v", code, err)
		}
		if got != code {
			t.Errorf("Run: exit code %d, want %d", got, code)
		}
		if !strings.Contains(out.String(), Marker) {
			t.Errorf("Run: output %q does not contain %q", out.String(), Marker)
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Runtime.Run(rctx, f.BuildStep(t, 0)); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a cancelled ctx: err = %v, want context.Canceled", err)
	}
}
