package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/volt-cli/volt/engine/digest"
	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/conformance"
)

// binDir holds the plugin binaries built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if dir := os.Getenv("PLUGINHOST_TEST_SIGNAL_CHILD"); dir != "" {
		return signalChild(dir)
	}
	dir, err := os.MkdirTemp("", "pluginhost-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	// One go build for all test plugins; the example is built under its plugin name.
	build := exec.Command("go", "build", "-o", dir+"/", "./testdata/volt-plugin-test", "../../examples/plugin-runtime-exec")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build test plugins:", err)
		return 1
	}
	if err := os.Rename(filepath.Join(dir, "plugin-runtime-exec"), filepath.Join(dir, BinaryPrefix+"runtime-exec")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, role := range testRoles {
		if err := os.Link(filepath.Join(dir, "volt-plugin-test"), filepath.Join(dir, BinaryPrefix+role)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// testRoles are the names testdata/volt-plugin-test acts under.
var testRoles = []string{"bad-stdout", "bad-exit", "bad-hang", "bad-api99", "bad-crash", "format-test"}

// pluginDir returns a fresh directory holding hard links to the named plugins.
func pluginDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		src := filepath.Join(binDir, BinaryPrefix+n)
		if err := os.Link(src, filepath.Join(dir, BinaryPrefix+n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func newHost(t *testing.T, opts Options) *Host {
	t.Helper()
	opts.IgnoreEnv = true
	if opts.ExecutableDir == "" {
		opts.ExecutableDir = "-"
	}
	h := New(opts)
	t.Cleanup(h.Close)
	return h
}

// procsRunning returns the pids of live processes whose executable is path.
func procsRunning(path string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && exe == path {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cmdlineRunning reports whether a live process has arg in its command line.
func cmdlineRunning(arg string) bool {
	ms, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, m := range ms {
		b, err := os.ReadFile(m)
		if err == nil && bytes.Contains(b, []byte(arg)) {
			return true
		}
	}
	return false
}

// assertNoProcess fails t if a process of binary path is still alive once
// the kill has had a chance to land.
func assertNoProcess(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := procsRunning(path)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan plugin processes of %s: %v", path, pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHandshakeAndInfoThroughBinary(t *testing.T) {
	dir := pluginDir(t, "runtime-exec")
	conformance.Binary(t, filepath.Join(dir, BinaryPrefix+"runtime-exec"), sdk.KindRuntime)
	var logs bytes.Buffer
	h := newHost(t, Options{Dirs: []string{dir}, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := context.Background()
	rt, err := h.Runtime(ctx, "runtime-exec", RuntimePolicy)
	if err != nil {
		t.Fatal(err)
	}
	info, err := rt.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "runtime-exec" || info.Kind != sdk.KindRuntime {
		t.Errorf("Info = %+v", info)
	}
	// One client per plugin: a second lookup reuses the process.
	pid := h.PID("runtime-exec")
	if _, err := h.Runtime(ctx, "runtime-exec", RuntimePolicy); err != nil || h.PID("runtime-exec") != pid || pid == 0 {
		t.Errorf("second Runtime: err %v, pid %d then %d", err, pid, h.PID("runtime-exec"))
	}
	if _, err := h.Format(ctx, "runtime-exec", InspectPolicy); !errors.Is(err, ErrWrongKind) {
		t.Errorf("Format(runtime plugin): err = %v, want ErrWrongKind", err)
	}
	list, err := h.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("List = %+v, want one plugin", list)
	}
	want := digestOf(t, filepath.Join(dir, BinaryPrefix+"runtime-exec"))
	if p := list[0]; p.Kind != sdk.KindRuntime || p.API != 1 || !p.Healthy || p.BLAKE3 != want || p.Error != "" {
		t.Errorf("List[0] = %+v", p)
	}
	h.Close()
	assertNoProcess(t, filepath.Join(dir, BinaryPrefix+"runtime-exec"))
	if _, err := h.Runtime(ctx, "runtime-exec", RuntimePolicy); !errors.Is(err, ErrClosed) {
		t.Errorf("Runtime after Close: err = %v, want ErrClosed", err)
	}
	if !strings.Contains(logs.String(), "plugin=runtime-exec") {
		t.Errorf("plugin log lines not under its name:\n%s", logs.String())
	}
}

func digestOf(t *testing.T, path string) string {
	t.Helper()
	d, _, err := digest.File(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBadPlugins(t *testing.T) {
	tests := []struct {
		plugin string
		kind   error
		want   []string // substrings of the one-line error
	}{
		{"bad-stdout", ErrHandshake, []string{"stdout before the handshake", "hello from main"}},
		{"bad-exit", ErrPluginExited, []string{"exited before the handshake", "cannot open /etc/bad-exit.conf"}},
		{"bad-hang", ErrStartTimeout, []string{"no handshake within"}},
		{"bad-api99", ErrAPIVersion, []string{"[99]", "upgrade volt"}},
	}
	for _, tc := range tests {
		t.Run(tc.plugin, func(t *testing.T) {
			t.Parallel()
			dir := pluginDir(t, tc.plugin)
			h := newHost(t, Options{Dirs: []string{dir}, StartTimeout: time.Second})
			_, err := h.Runtime(context.Background(), tc.plugin, RuntimePolicy)
			checkPluginErr(t, err, tc.plugin, tc.kind, tc.want)
			assertNoProcess(t, filepath.Join(dir, BinaryPrefix+tc.plugin))
			// List reports the broken plugin instead of failing.
			list, lerr := h.List(context.Background())
			if lerr != nil || len(list) != 1 || list[0].Error == "" || list[0].Healthy {
				t.Errorf("List = %+v, %v: want one unhealthy row with an error", list, lerr)
			}
			assertNoProcess(t, filepath.Join(dir, BinaryPrefix+tc.plugin))
		})
	}
}

func checkPluginErr(t *testing.T, err error, plugin string, kind error, want []string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want %v", err, kind)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("error is not one line: %q", msg)
	}
	if !strings.Contains(msg, fmt.Sprintf("%q", plugin)) {
		t.Errorf("error %q does not name plugin %q", msg, plugin)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
}

func TestInstallAndChecksum(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(pluginDir(t, "runtime-exec"), BinaryPrefix+"runtime-exec")
	h := newHost(t, Options{Root: root})
	inst, err := h.Install(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(root, "plugins", BinaryPrefix+"runtime-exec")
	if inst.Name != "runtime-exec" || inst.Path != dst || inst.BLAKE3 != digestOf(t, src) || inst.Size == 0 {
		t.Errorf("Install = %+v", inst)
	}
	l, err := ReadLock(filepath.Join(root, "plugins", LockFileName))
	if err != nil || l.Plugins["runtime-exec"].BLAKE3 != inst.BLAKE3 {
		t.Fatalf("lock = %+v, %v", l, err)
	}
	ctx := context.Background()
	if _, err := h.Runtime(ctx, "runtime-exec", RuntimePolicy); err != nil {
		t.Fatalf("installed plugin: %v", err)
	}
	h.Close()

	// Tamper with the installed binary: launches must refuse it.
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tampered"))
	f.Close()
	h2 := newHost(t, Options{Root: root})
	_, err = h2.Runtime(ctx, "runtime-exec", RuntimePolicy)
	checkPluginErr(t, err, "runtime-exec", ErrChecksum, []string{inst.BLAKE3, "volt plugin install"})
	assertNoProcess(t, dst)

	// A binary dropped into the plugins dir without the lock is refused too.
	if err := os.Link(filepath.Join(binDir, BinaryPrefix+"bad-api99"), filepath.Join(root, "plugins", BinaryPrefix+"unlocked")); err != nil {
		t.Fatal(err)
	}
	_, err = h2.Runtime(ctx, "unlocked", RuntimePolicy)
	checkPluginErr(t, err, "unlocked", ErrNotLocked, nil)

	if _, err := h2.Install(filepath.Join(t.TempDir(), "not-a-plugin")); !errors.Is(err, ErrBadName) {
		t.Errorf("Install of a badly named file: err = %v, want ErrBadName", err)
	}
}

func TestCrashMidCall(t *testing.T) {
	dir := pluginDir(t, "bad-crash")
	h := newHost(t, Options{Dirs: []string{dir}})
	rt, err := h.Runtime(context.Background(), "bad-crash", RuntimePolicy)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err = rt.Run(context.Background(), sdk.RunRequest{Command: []string{"x"}, Output: &out})
	checkPluginErr(t, err, "bad-crash", ErrPluginExited, []string{"Run", "bad-crash: boom"})
	var pe *PluginError
	if !errors.As(err, &pe) || !strings.Contains(strings.Join(pe.StderrTail, "\n"), "about to fail") {
		t.Errorf("stderr tail = %q", pe.StderrTail)
	}
	assertNoProcess(t, filepath.Join(dir, BinaryPrefix+"bad-crash"))
}

func TestKillMidCall(t *testing.T) {
	dir := pluginDir(t, "runtime-exec")
	h := newHost(t, Options{Dirs: []string{dir}})
	ctx := context.Background()
	pid, done := startLongRun(t, h, "61.2345")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-done
	checkPluginErr(t, err, "runtime-exec", ErrPluginExited, []string{"Run"})
	assertNoProcess(t, filepath.Join(dir, BinaryPrefix+"runtime-exec"))
	// The build step died with the plugin.
	deadline := time.Now().Add(5 * time.Second)
	for cmdlineRunning("61.2345") {
		if time.Now().After(deadline) {
			t.Fatal("the build step outlived the killed plugin")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The next use starts a fresh process.
	if _, err := h.Runtime(ctx, "runtime-exec", RuntimePolicy); err != nil || h.PID("runtime-exec") == pid {
		t.Errorf("restart after crash: err %v, pid %d (old %d)", err, h.PID("runtime-exec"), pid)
	}
}

// signalWriter closes ch on its first write.
type signalWriter struct {
	ch   chan struct{}
	done bool
}

func (w *signalWriter) Write(p []byte) (int, error) {
	if !w.done {
		w.done = true
		close(w.ch)
	}
	return len(p), nil
}

func TestFormatForAndSandbox(t *testing.T) {
	dir := pluginDir(t, "format-test", "runtime-exec")
	in, out, secret := t.TempDir(), t.TempDir(), t.TempDir()
	for _, p := range []string{filepath.Join(in, "img"), filepath.Join(secret, "img")} {
		if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := newHost(t, Options{Dirs: []string{dir}})
	ctx := context.Background()
	pol := Confined(sdk.SandboxPolicy{Read: []string{in}, Write: []string{out}})
	f, name, err := h.FormatFor(ctx, "copy", pol)
	if err != nil || name != "format-test" {
		t.Fatalf("FormatFor(copy) = %q, %v", name, err)
	}
	if _, _, err := h.FormatFor(ctx, "nope", pol); !errors.Is(err, ErrPluginNotFound) {
		t.Errorf("FormatFor(nope): err = %v, want ErrPluginNotFound", err)
	}
	if err := f.Unpack(ctx, sdk.UnpackRequest{Image: filepath.Join(in, "img"), Format: "copy", Dest: out}); err != nil {
		t.Fatalf("Unpack inside the sandbox: %v", err)
	}
	// Reading outside the policy, or writing outside it, is denied by Landlock.
	if err := f.Unpack(ctx, sdk.UnpackRequest{Image: filepath.Join(secret, "img"), Format: "copy", Dest: out}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Unpack reading outside the sandbox: err = %v, want permission denied", err)
	}
	if err := f.Unpack(ctx, sdk.UnpackRequest{Image: filepath.Join(in, "img"), Format: "copy", Dest: secret}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Unpack writing outside the sandbox: err = %v, want permission denied", err)
	}
	if err := f.Unpack(ctx, sdk.UnpackRequest{Image: filepath.Join(in, "img"), Format: "tar", Dest: out}); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("Unpack of an unknown format: err = %v, want sdk.ErrUnsupported", err)
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		host, plugin []int
		want         int
		err          string
	}{
		{[]int{1}, []int{1}, 1, ""},
		{[]int{1, 2}, []int{1, 2, 3}, 2, ""},
		{[]int{1}, []int{99}, 0, "upgrade volt"},
		{[]int{2, 3}, []int{1}, 0, "upgrade the plugin"},
		{[]int{1}, nil, 0, "upgrade the plugin"},
	}
	for _, tc := range tests {
		got, err := Negotiate(tc.host, tc.plugin)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Negotiate(%v, %v) = %d, %v; want %d, %q", tc.host, tc.plugin, got, err, tc.want, tc.err)
		}
	}
}

func TestDiscoveryOrder(t *testing.T) {
	mk := func(dir, name string) string {
		p := filepath.Join(dir, BinaryPrefix+name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagDir, envDir, root, exeDir := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(root, "plugins"), 0o755)
	a := mk(flagDir, "a")
	mk(envDir, "a")
	b := mk(envDir, "b")
	mk(filepath.Join(root, "plugins"), "b")
	c := mk(filepath.Join(root, "plugins"), "c")
	mk(exeDir, "c")
	d := mk(exeDir, "d")
	os.WriteFile(filepath.Join(exeDir, BinaryPrefix+"noexec"), nil, 0o644)
	os.WriteFile(filepath.Join(exeDir, BinaryPrefix+"Bad_Name"), nil, 0o755)
	os.WriteFile(filepath.Join(exeDir, "other"), nil, 0o755)
	t.Setenv(PathEnv, envDir+":")
	h := New(Options{Dirs: []string{flagDir}, Root: root, ExecutableDir: exeDir})
	got := h.discover()
	want := []found{{"a", a, false}, {"b", b, false}, {"c", c, true}, {"d", d, false}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("discover = %v\nwant %v", got, want)
	}
	if _, err := h.lookup("zzz"); !errors.Is(err, ErrPluginNotFound) {
		t.Errorf("lookup(zzz): %v", err)
	}
	if _, err := h.lookup("../x"); !errors.Is(err, ErrBadName) {
		t.Errorf("lookup(../x): %v", err)
	}
}

func TestStderrSink(t *testing.T) {
	var logs bytes.Buffer
	r := &tailRing{}
	s := r.newSink("p", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	s.Write([]byte(`{"@level":"warn","@message":"disk low","free":"1G"}`))
	s.Write([]byte("\n"))
	for i := range stderrLines + 5 {
		fmt.Fprintf(s, "line %d\n", i)
	}
	s.Write([]byte("partial"))
	tail := r.Tail(3)
	want := []string{fmt.Sprintf("line %d", stderrLines+2), fmt.Sprintf("line %d", stderrLines+3), fmt.Sprintf("line %d", stderrLines+4), "partial"}
	if fmt.Sprint(tail) != fmt.Sprint(want) {
		t.Errorf("Tail = %q, want %q", tail, want)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="disk low" plugin=p free=1G`) {
		t.Errorf("hclog line not logged with its level and fields:\n%s", logs.String())
	}
}

// signalChild is the child process of TestCloseOnSignal: it starts a plugin,
// prints its pid, and sends itself SIGTERM.
func signalChild(dir string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := New(Options{Dirs: []string{dir}, IgnoreEnv: true, ExecutableDir: "-", Logger: log})
	h.CloseOnSignal()
	if _, err := h.Runtime(context.Background(), "runtime-exec", RuntimePolicy); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(h.PID("runtime-exec"))
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	time.Sleep(30 * time.Second)
	return 0 // not reached: the re-raised SIGTERM ends the process
}

func TestCloseOnSignal(t *testing.T) {
	dir := pluginDir(t, "runtime-exec")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PLUGINHOST_TEST_SIGNAL_CHILD="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("child: err %v, want death by SIGTERM (stdout %q)", err, out)
	}
	var pid int
	if _, err := fmt.Sscan(string(out), &pid); err != nil || pid <= 0 {
		t.Fatalf("child printed %q", out)
	}
	assertNoProcess(t, filepath.Join(dir, BinaryPrefix+"runtime-exec"))
	if !strings.Contains(stderr.String(), "plugin processes killed") {
		t.Errorf("the signal did not close the host; child stderr:\n%s", stderr.String())
	}
}

// TestCloseMidCall: a call broken because the host closed its plugin (as
// CloseOnSignal does on Ctrl-C, racing with the caller's own cancellation)
// reports a cancellation, not a crashed plugin.
func TestCloseMidCall(t *testing.T) {
	dir := pluginDir(t, "runtime-exec")
	h := newHost(t, Options{Dirs: []string{dir}})
	_, done := startLongRun(t, h, "61.2346")
	h.Close()
	err := <-done
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrClosed) || errors.Is(err, ErrPluginExited) {
		t.Errorf("Run broken by Close: err = %v, want a cancellation wrapping ErrClosed", err)
	}
	assertNoProcess(t, filepath.Join(dir, BinaryPrefix+"runtime-exec"))
}

// startLongRun starts runtime-exec's Run of a long sleep (tagged so that
// tests can find it) and returns once it runs, with the plugin's pid and
// the channel Run's error arrives on.
func startLongRun(t *testing.T, h *Host, tag string) (int, chan error) {
	t.Helper()
	rt, err := h.Runtime(context.Background(), "runtime-exec", RuntimePolicy)
	if err != nil {
		t.Fatal(err)
	}
	out := &signalWriter{ch: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := rt.Run(context.Background(), sdk.RunRequest{Command: []string{"/bin/sh", "-c", "echo started; exec sleep " + tag}, Output: out})
		done <- err
	}()
	<-out.ch // the step is running
	return h.PID("runtime-exec"), done
}

// TestStartNeedsPolicy: no plugin process starts without a policy, a format
// plugin never starts unconfined, and each policy gets a process of its own
// whose Landlock ruleset is the one asked for.
func TestStartNeedsPolicy(t *testing.T) {
	dir := pluginDir(t, "format-test", "runtime-exec")
	h := newHost(t, Options{Dirs: []string{dir}})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		pol  Policy
	}{
		{"runtime-exec", Policy{}},
		{"format-test", Policy{}},
		{"format-test", Policy{Sandbox: &sdk.SandboxPolicy{}, Unconfined: "both"}},
		{"format-test", RuntimePolicy},
	} {
		var err error
		if tc.name == "runtime-exec" {
			_, err = h.Runtime(ctx, tc.name, tc.pol)
		} else {
			_, err = h.Format(ctx, tc.name, tc.pol)
		}
		if !errors.Is(err, ErrNoPolicy) {
			t.Errorf("start %s under %+v: err = %v, want ErrNoPolicy", tc.name, tc.pol, err)
		}
		if pid := h.PID(tc.name); pid != 0 {
			t.Errorf("start %s under %+v left process %d", tc.name, tc.pol, pid)
		}
	}
	if _, _, err := h.FormatFor(ctx, "copy", RuntimePolicy); !errors.Is(err, ErrNoPolicy) {
		t.Errorf("FormatFor unconfined: err = %v, want ErrNoPolicy", err)
	}
	assertNoProcess(t, filepath.Join(dir, BinaryPrefix+"format-test"))

	// Two policies, two processes, each restricted to its own files.
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if err := os.WriteFile(filepath.Join(d, "img"), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fa, err := h.Format(ctx, "format-test", Confined(sdk.SandboxPolicy{Read: []string{a}, Write: []string{a}}))
	if err != nil {
		t.Fatal(err)
	}
	pidA := h.PID("format-test")
	fb, err := h.Format(ctx, "format-test", Confined(sdk.SandboxPolicy{Read: []string{b}, Write: []string{b}}))
	if err != nil {
		t.Fatal(err)
	}
	if pidB := h.PID("format-test"); pidB == pidA || pidB == 0 {
		t.Errorf("a second policy reused process %d (now %d)", pidA, pidB)
	}
	copyTo := func(f sdk.Format, src, dst string) error {
		return f.Unpack(ctx, sdk.UnpackRequest{Image: filepath.Join(src, "img"), Format: "copy", Dest: dst})
	}
	if err := copyTo(fa, a, a); err != nil {
		t.Errorf("plugin under policy a, inside a: %v", err)
	}
	if err := copyTo(fa, b, a); err == nil {
		t.Errorf("plugin under policy a read b's file")
	}
	if err := copyTo(fb, a, b); err == nil {
		t.Errorf("plugin under policy b read a's file")
	}
}
