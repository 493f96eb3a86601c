package nspawn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/volt-cli/volt/plugins/runtime-nspawn/testrootfs"
	"github.com/volt-cli/volt/sdk"
)

// needNspawn skips unless real containers can run here.
func needNspawn(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Skip("systemd-nspawn not installed")
	}
}

// uniqueName is a machine name no other test run uses.
func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// fixture is a runtime plus a rootfs and a state dir for one workload.
type fixture struct {
	rt    *Runtime
	spec  sdk.WorkloadSpec
	ctx   context.Context
	state string
}

func newFixture(t *testing.T, prefix string, cmd ...string) *fixture {
	t.Helper()
	needNspawn(t)
	root := testrootfs.New(t)
	state := filepath.Join(t.TempDir(), "state")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return &fixture{
		rt:    New(Options{}),
		ctx:   ctx,
		state: state,
		spec:  sdk.WorkloadSpec{Name: uniqueName(prefix), Root: root, StateDir: state, Command: cmd},
	}
}

// start starts f.spec and destroys it when the test ends.
func (f *fixture) start(t *testing.T) sdk.Handle {
	t.Helper()
	h, err := f.rt.Start(f.ctx, f.spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := New(Options{}).Destroy(context.Background(), h); err != nil {
			t.Errorf("cleanup Destroy: %v", err)
		}
	})
	return h
}

// waitLog polls the log until it contains want (or the test context ends).
func (f *fixture) waitLog(t *testing.T, h sdk.Handle, want string) string {
	t.Helper()
	for {
		var b bytes.Buffer
		if err := f.rt.Logs(f.ctx, h, false, 0, &b); err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if strings.Contains(b.String(), want) {
			return b.String()
		}
		if f.ctx.Err() != nil {
			t.Fatalf("log never contained %q; log:\n%s", want, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "vt-life", "/bin/sh", "-c",
		`echo "started $FOO $(cat /data/greeting)"; i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.1; done`)
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "greeting"), []byte("from-the-host"), 0o644); err != nil {
		t.Fatal(err)
	}
	rw := t.TempDir()
	f.spec.Env = map[string]string{"FOO": "bar baz"}
	f.spec.Mounts = []sdk.Mount{{Source: data, Target: "/data", ReadOnly: true}, {Source: rw, Target: "/rw"}}
	f.spec.WorkingDir = "/tmp"
	h := f.start(t)

	st, err := f.rt.Inspect(f.ctx, h)
	if err != nil || st.State != sdk.StatusRunning || st.PID <= 0 {
		t.Fatalf("Inspect after Start = %+v, %v; want running with a pid", st, err)
	}
	log := f.waitLog(t, h, "tick 1")
	if !strings.Contains(log, "started bar baz from-the-host") {
		t.Errorf("environment or bind mount did not reach the container; log:\n%s", log)
	}
	if strings.Contains(log, "Attempted to remove") {
		t.Errorf("nspawn noise in log:\n%s", log)
	}

	// Exec: output, exit code, environment, working dir, writable bind mount.
	tests := []struct {
		name string
		cmd  []string
		env  map[string]string
		out  string
		code int
	}{
		{"echo", []string{"echo", "hi"}, nil, "hi\n", 0},
		{"exit code", []string{"sh", "-c", "exit 3"}, nil, "", 3},
		{"container env", []string{"sh", "-c", `echo "$FOO"`}, nil, "bar baz\n", 0},
		{"extra env", []string{"sh", "-c", `echo "$X"`}, map[string]string{"X": "y"}, "y\n", 0},
		{"working dir", []string{"pwd"}, nil, "/tmp\n", 0},
		{"hostname", []string{"hostname"}, nil, f.spec.Name + "\n", 0},
		{"rw mount", []string{"sh", "-c", "echo w > /rw/f && cat /rw/f"}, nil, "w\n", 0},
		{"stdin", []string{"cat"}, nil, "piped\n", 0},
	}
	for _, tc := range tests {
		t.Run("exec/"+tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			req := sdk.ExecRequest{Command: tc.cmd, Env: tc.env, Stdout: &out, Stderr: &errb}
			if tc.name == "stdin" {
				req.Stdin = strings.NewReader("piped\n")
			}
			code, err := f.rt.Exec(f.ctx, h, req)
			if err != nil || code != tc.code || out.String() != tc.out {
				t.Errorf("Exec %q = %d, %v, stdout %q (stderr %q); want %d, %q", tc.cmd, code, err, out.String(), errb.String(), tc.code, tc.out)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(rw, "f")); err != nil || string(b) != "w\n" {
		t.Errorf("write through bind mount: %q, %v", b, err)
	}

	// A later process: a new Runtime with only the handle.
	if err := New(Options{}).Recover(f.ctx, h); err != nil {
		t.Fatalf("Recover from a new Runtime: %v", err)
	}

	if err := f.rt.Stop(f.ctx, h, 30*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st, err = f.rt.Inspect(f.ctx, h)
	if err != nil || st.State != sdk.StatusStopped {
		t.Fatalf("Inspect after Stop = %+v, %v; want stopped", st, err)
	}
	// 143 = the payload died of the SIGTERM tini forwarded: the graceful
	// path worked (a SIGKILL escalation would record 137 and signal "killed").
	if st.ExitCode != 143 || st.Detail["signal"] != "" {
		t.Errorf("exit after graceful stop = %d (signal %q), want 143 from tini", st.ExitCode, st.Detail["signal"])
	}
	if err := New(Options{}).Recover(f.ctx, h); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Recover of a stopped workload = %v, want ErrNotFound", err)
	}
	if _, err := f.rt.Exec(f.ctx, h, sdk.ExecRequest{Command: []string{"true"}}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Exec in a stopped workload = %v, want ErrNotRunning", err)
	}
	if err := f.rt.Stop(f.ctx, h, time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := f.rt.Destroy(f.ctx, h); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if err := f.rt.Destroy(f.ctx, h); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	if err := f.rt.Stop(f.ctx, h, time.Second); err != nil {
		t.Errorf("Stop after Destroy: %v", err)
	}
	if _, err := f.rt.Inspect(f.ctx, h); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Inspect after Destroy = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(f.state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir left after Destroy: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.spec.Root, "bin", "busybox")); err != nil {
		t.Errorf("Destroy touched the rootfs: %v", err)
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		name   string
		cmd    []string
		state  string
		code   int
		reason string
	}{
		{"exits at once ok", []string{"true"}, sdk.StatusStopped, 0, ""},
		{"exits at once failing", []string{"sh", "-c", "echo cannot connect to db >&2; exit 7"}, sdk.StatusFailed, 7, "cannot connect to db"},
		{"command not found", []string{"/no/such/binary"}, sdk.StatusFailed, 127, "/no/such/binary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, "vt-exit", tc.cmd...)
			h := f.start(t)
			st, err := f.rt.Wait(f.ctx, h)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if st.State != tc.state || st.ExitCode != tc.code || !strings.Contains(st.Reason, tc.reason) {
				t.Errorf("Wait = %+v; want state %s, code %d, reason containing %q", st, tc.state, tc.code, tc.reason)
			}
			// A later process sees the same.
			st2, err := New(Options{}).Inspect(f.ctx, h)
			if err != nil || st2.State != st.State || st2.ExitCode != st.ExitCode || st2.Reason != st.Reason {
				t.Errorf("Inspect from a new Runtime = %+v, %v; want %+v", st2, err, st)
			}
			if err := f.rt.Stop(f.ctx, h, time.Second); err != nil {
				t.Errorf("Stop of an exited workload: %v", err)
			}
		})
	}
}

// TestRecoverAfterStarterExits starts a container from another process that
// then exits (as the plugin and the CLI do), and takes it over from its handle.
func TestRecoverAfterStarterExits(t *testing.T) {
	if os.Getenv("VOLT_NSPAWN_TEST_STARTER") != "" {
		return // the starter's own run of this test
	}
	t.Parallel()
	f := newFixture(t, "vt-recover", "/bin/sh", "-c", "echo up; exec sleep 1000")
	spec, _ := json.Marshal(f.spec)
	cmd := exec.CommandContext(f.ctx, os.Args[0], "-test.run=^TestStarterProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "VOLT_NSPAWN_TEST_STARTER="+string(spec))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("starter process: %v\n%s", err, out)
	}
	_, after, ok := bytes.Cut(out, []byte("HANDLE "))
	if !ok {
		t.Fatalf("starter printed no handle:\n%s", out)
	}
	var h sdk.Handle
	if err := json.Unmarshal(bytes.SplitN(after, []byte("\n"), 2)[0], &h); err != nil {
		t.Fatalf("handle from starter: %v", err)
	}
	t.Cleanup(func() { _ = New(Options{}).Destroy(context.Background(), h) })

	rt := New(Options{})
	if err := rt.Recover(f.ctx, h); err != nil {
		t.Fatalf("Recover after the starter exited: %v", err)
	}
	f.waitLog(t, h, "up")
	var hd handleData
	if err := json.Unmarshal(h.Data, &hd); err != nil {
		t.Fatal(err)
	}
	if pi, err := readProc(hd.SupervisorPID); err != nil || pi.PPID == cmd.Process.Pid {
		t.Errorf("supervisor %d: %+v, %v; want it alive and reparented", hd.SupervisorPID, pi, err)
	}
	// A handle whose pid was reused by another process is not recovered.
	bad := hd
	bad.StartTime++
	bad.SupervisorStartTime++
	bh, _ := encodeHandle(&bad)
	if err := rt.Recover(f.ctx, bh); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Recover with a reused pid = %v, want ErrNotFound", err)
	}
	if err := rt.Stop(f.ctx, h, 30*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st, err := rt.Inspect(f.ctx, h); err != nil || st.State != sdk.StatusStopped {
		t.Errorf("Inspect after Stop = %+v, %v", st, err)
	}
}

// TestStarterProcess is the starter of TestRecoverAfterStarterExits: it
// starts the workload described in its environment, prints the handle, exits.
func TestStarterProcess(t *testing.T) {
	raw := os.Getenv("VOLT_NSPAWN_TEST_STARTER")
	if raw == "" {
		t.Skip("helper process for TestRecoverAfterStarterExits")
	}
	var spec sdk.WorkloadSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{}).Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(h)
	os.Stdout.WriteString("HANDLE " + string(b) + "\n")
}

func TestStopEscalatesToKill(t *testing.T) {
	t.Parallel()
	// Without tini the payload is PID 1 and ignores SIGTERM: Stop must kill it.
	f := newFixture(t, "vt-kill", "/bin/sh", "-c", "echo ready; exec sleep 1000")
	f.rt = New(Options{Tini: "none"})
	h := f.start(t)
	f.waitLog(t, h, "ready")
	if err := f.rt.Stop(f.ctx, h, 50*time.Millisecond); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st, err := f.rt.Inspect(f.ctx, h)
	if err != nil || st.State != sdk.StatusStopped {
		t.Errorf("Inspect = %+v, %v; want stopped", st, err)
	}
	if _, err := os.Stat(filepath.Join(f.spec.Root, initPath)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tini installed although disabled: %v", err)
	}
}

func TestLogsFollowAndTail(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "vt-logs", "/bin/sh", "-c", "for i in 1 2 3; do echo line$i; done; sleep 0.3; echo late; exec sleep 1000")
	h := f.start(t)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	w := &cancelOn{want: "late\n", cancel: cancel}
	if err := f.rt.Logs(ctx, h, true, 0, w); err != nil {
		t.Fatalf("Logs follow: %v", err)
	}
	if got := w.String(); got != "line1\nline2\nline3\nlate\n" {
		t.Errorf("followed log = %q", got)
	}
	var b bytes.Buffer
	if err := f.rt.Logs(f.ctx, h, false, 2, &b); err != nil || b.String() != "line3\nlate\n" {
		t.Errorf("Logs tail 2 = %q, %v", b.String(), err)
	}
}

// cancelOn collects writes and cancels once they contain want.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	want   string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.want) {
		c.cancel()
	}
	return len(p), nil
}

func (c *cancelOn) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func TestRunBuildStep(t *testing.T) {
	t.Parallel()
	needNspawn(t)
	root := testrootfs.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rt := New(Options{})
	tests := []struct {
		name string
		req  sdk.RunRequest
		code int
		out  string
	}{
		{"writes into rootfs", sdk.RunRequest{Command: []string{"sh", "-c", `echo "$GREETING" > /built.txt; echo done`}, Env: map[string]string{"GREETING": "hello"}}, 0, "done\n"},
		{"network off", sdk.RunRequest{Command: []string{"sh", "-c", "ls /sys/class/net"}}, 0, "lo\n"},
		{"workdir", sdk.RunRequest{Command: []string{"pwd"}, WorkDir: "/tmp"}, 0, "/tmp\n"},
		{"exit code", sdk.RunRequest{Command: []string{"sh", "-c", "echo oops >&2; exit 5"}}, 5, "oops\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			tc.req.Root, tc.req.Output = root, &out
			code, err := rt.Run(ctx, tc.req)
			if err != nil || code != tc.code || out.String() != tc.out {
				t.Errorf("Run = %d, %v, output %q; want %d, %q", code, err, out.String(), tc.code, tc.out)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(root, "built.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("built.txt = %q, %v", b, err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := rt.Run(cctx, sdk.RunRequest{Root: root, Command: []string{"true"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a cancelled context = %v", err)
	}
}

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "vt-mem", "/bin/sh", "-c", "echo ready; exec sleep 1000")
	mem, _, _ := f.rt.limitsSupport(SupervisorDetached)
	if !mem {
		t.Skip("no cgroup v1 memory controller here")
	}
	f.spec.MemoryBytes = 64 << 20
	f.spec.CPUs = 0.5
	h := f.start(t)
	f.waitLog(t, h, "ready")
	st, err := f.rt.Inspect(f.ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if st.Detail["limits"] != "memory=67108864, cpus=0.5, via memory,cpu (cgroup v1)" {
		t.Errorf("Detail[limits] = %q", st.Detail["limits"])
	}
	memDir := filepath.Join("/sys/fs/cgroup/memory/volt", f.spec.Name)
	if b, err := os.ReadFile(filepath.Join(memDir, "memory.limit_in_bytes")); err != nil || strings.TrimSpace(string(b)) != "67108864" {
		t.Errorf("memory.limit_in_bytes = %q, %v", b, err)
	}
	init, err := containerInit(st.PID)
	if err != nil {
		t.Fatal(err)
	}
	cg, _ := os.ReadFile("/proc/" + strconv.Itoa(init) + "/cgroup")
	if !strings.Contains(string(cg), "memory:/volt/"+f.spec.Name) || !strings.Contains(string(cg), "cpu:/volt/"+f.spec.Name) {
		t.Errorf("container not in its cgroups:\n%s", cg)
	}
	if err := f.rt.Destroy(f.ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(memDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cgroup left after Destroy: %v", err)
	}
}

func TestStartRejects(t *testing.T) {
	t.Parallel()
	needNspawn(t)
	root := testrootfs.New(t)
	state := t.TempDir()
	rt := New(Options{})
	ok := sdk.WorkloadSpec{Name: "vt-ok", Root: root, StateDir: state, Command: []string{"true"}}
	tests := []struct {
		name   string
		mutate func(*sdk.WorkloadSpec)
		want   error
	}{
		{"bad name", func(s *sdk.WorkloadSpec) { s.Name = "../x" }, sdk.ErrInvalid},
		{"no command", func(s *sdk.WorkloadSpec) { s.Command = nil }, sdk.ErrInvalid},
		{"relative state dir", func(s *sdk.WorkloadSpec) { s.StateDir = "state" }, sdk.ErrInvalid},
		{"missing root", func(s *sdk.WorkloadSpec) { s.Root = filepath.Join(root, "nope") }, os.ErrNotExist},
		{"root is a file", func(s *sdk.WorkloadSpec) { s.Root = filepath.Join(root, "bin/busybox") }, sdk.ErrInvalid},
		{"network mode", func(s *sdk.WorkloadSpec) { s.NetworkMode = "bridge" }, sdk.ErrUnsupported},
		{"relative mount", func(s *sdk.WorkloadSpec) { s.Mounts = []sdk.Mount{{Source: "x", Target: "/x"}} }, sdk.ErrInvalid},
		{"bad env", func(s *sdk.WorkloadSpec) { s.Env = map[string]string{"A=B": "c"} }, sdk.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.mutate(&s)
			if _, err := rt.Start(context.Background(), s); !errors.Is(err, tc.want) {
				t.Errorf("Start = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestStartTwiceIsExists(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "vt-twice", "/bin/sh", "-c", "exec sleep 1000")
	f.start(t)
	if _, err := f.rt.Start(f.ctx, f.spec); !errors.Is(err, sdk.ErrExists) {
		t.Errorf("second Start = %v, want ErrExists", err)
	}
}

func TestFingerprintAndInfo(t *testing.T) {
	needNspawn(t)
	rt := New(Options{})
	h, err := rt.Fingerprint(context.Background())
	if err != nil || !h.Healthy || h.Attributes["nspawn.version"] == "" || h.Attributes["supervisor"] == "" || h.Attributes["limits"] == "" {
		t.Errorf("Fingerprint = %+v, %v", h, err)
	}
	h, err = New(Options{Nspawn: "/nonexistent/systemd-nspawn"}).Fingerprint(context.Background())
	if err != nil || h.Healthy || h.Detail != "systemd-nspawn not found" {
		t.Errorf("Fingerprint without nspawn = %+v, %v", h, err)
	}
	info, err := rt.Info(context.Background())
	if err != nil || info.Name != "runtime-nspawn" || info.Kind != sdk.KindRuntime || info.Version != "0.1.0" || len(info.APIVersions) != 1 || info.APIVersions[0] != 1 {
		t.Errorf("Info = %+v, %v", info, err)
	}
}
