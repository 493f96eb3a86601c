package main

// End-to-end fault tests for `volt bundle import` and the commands around a
// deployed stack, through the CLI binary with real systemd-nspawn
// containers: the "Bad input and faults" list of the deploy issue.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/volt-cli/volt/sdk/proc"
)

// stackSrc describes a stack source tree to build into a bundle.
type stackSrc struct {
	name, version string
	// platforms defaults to this host's.
	platforms []string
	// compose is the volt-compose.yaml body after the version and name lines.
	compose string
	// files are extra files of the source tree (config overlays…).
	files map[string]string
	// hooks maps a hook kind to its script.
	hooks map[string]string
	// image replaces the busybox rootfs tarball at images/busybox.tar.gz.
	image []byte
}

var (
	cachedRootfsOnce sync.Once
	cachedRootfs     []byte
)

// sharedBusybox is busyboxRootfs, built once per test binary.
func sharedBusybox(t *testing.T) []byte {
	t.Helper()
	cachedRootfsOnce.Do(func() { cachedRootfs = busyboxRootfs(t) })
	if cachedRootfs == nil {
		t.Fatal("no busybox rootfs")
	}
	return cachedRootfs
}

// build writes s under the env's directory and builds it into a bundle.
func (e *env) build(s stackSrc) string {
	e.t.Helper()
	if s.version == "" {
		s.version = "1.0.0"
	}
	if len(s.platforms) == 0 {
		s.platforms = []string{"linux/" + runtime.GOARCH}
	}
	dir := filepath.Join(e.dir, "src-"+s.name+"-"+s.version)
	files := map[string]string{"volt-compose.yaml": "version: \"1\"\nname: " + s.name + "\n" + s.compose}
	for k, v := range s.files {
		files[k] = v
	}
	var recipe strings.Builder
	fmt.Fprintf(&recipe, "bundle(name = %q, version = %q, platforms = [%s])\n", s.name, s.version, quoteList(s.platforms))
	recipe.WriteString("constellation(\"volt-compose.yaml\")\n")
	kinds := make([]string, 0, len(s.hooks))
	for k := range s.hooks {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		files["hooks/"+kind+".sh"] = s.hooks[kind]
		fmt.Fprintf(&recipe, "hook(%q, %q)\n", kind, "hooks/"+kind+".sh")
	}
	files["volt.star"] = recipe.String()
	writeFiles(e.t, dir, files)
	img := s.image
	if img == nil {
		img = sharedBusybox(e.t)
	}
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "images", "busybox.tar.gz"), img, 0o644); err != nil {
		e.t.Fatal(err)
	}
	out := filepath.Join(e.dir, s.name+"-"+s.version+".vbundle")
	e.must("bundle", "create", dir, "-o", out)
	return out
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}

// psRow is one row of `volt ps -o json`.
type psRow struct {
	Stack, Service, Status, Reason string
	PID                            int
	ExitCode                       int
}

// ps returns `volt ps [-a] -o json`.
func (e *env) ps(all bool) []psRow {
	e.t.Helper()
	args := []string{"ps", "-o", "json"}
	if all {
		args = append(args, "-a")
	}
	r := e.must(args...)
	var rows []psRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		e.t.Fatalf("ps output: %v\n%s", err, r.stdout)
	}
	return rows
}

// psByService indexes rows by service.
func psByService(rows []psRow) map[string]psRow {
	m := map[string]psRow{}
	for _, r := range rows {
		m[r.Service] = r
	}
	return m
}

// stackRow is one entry of `volt stack list -o json`.
type stackRow struct {
	Name   string
	Phase  string
	Bundle struct{ Name, Version string }
}

func (e *env) stacks() []stackRow {
	e.t.Helper()
	r := e.must("stack", "list", "-o", "json")
	var rows []stackRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		e.t.Fatalf("stack list output: %v\n%s", err, r.stdout)
	}
	return rows
}

// stateFile is the part of stack.json the tests look at while an import runs.
type stateFile struct {
	Phase     string
	Workloads []struct {
		Service string
		Handle  json.RawMessage
	}
}

// state reads $VOLT_ROOT/stacks/NAME/stack.json directly (nil when absent or
// being replaced).
func (e *env) state(name string) *stateFile {
	b, err := os.ReadFile(filepath.Join(e.dir, "root", "stacks", name, "stack.json"))
	if err != nil {
		return nil
	}
	var s stateFile
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	return &s
}

// started reports whether the import recorded a handle for service.
func (s *stateFile) started(service string) bool {
	if s == nil {
		return false
	}
	for _, w := range s.Workloads {
		if w.Service == service && len(w.Handle) > 0 && string(w.Handle) != "null" {
			return true
		}
	}
	return false
}

// rootfs is the host path of a workload's root.
func (e *env) rootfs(stack, service string) string {
	return filepath.Join(e.dir, "root", "containers", stack+"-"+service, "rootfs")
}

// volume is the host path of a named volume.
func (e *env) volume(stack, name string) string {
	return filepath.Join(e.dir, "root", "volumes", stack, name)
}

// syncBuf is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bgVolt is a volt process running in the background.
type bgVolt struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuf
	done           chan struct{}
	err            error
}

// start runs volt in the background; wait or kill it before the test ends.
func (e *env) start(args ...string) *bgVolt {
	e.t.Helper()
	b := &bgVolt{stdout: &syncBuf{}, stderr: &syncBuf{}, done: make(chan struct{})}
	b.cmd = exec.Command(voltBin, args...)
	b.cmd.Env = append(os.Environ(), e.vars...)
	b.cmd.Stdout, b.cmd.Stderr = b.stdout, b.stderr
	if err := b.cmd.Start(); err != nil {
		e.t.Fatalf("start volt %v: %v", args, err)
	}
	go func() { b.err = b.cmd.Wait(); close(b.done) }()
	e.t.Cleanup(func() { b.cmd.Process.Kill(); <-b.done })
	return b
}

// wait waits (bounded) for the process and returns its result.
func (b *bgVolt) wait(t *testing.T) result {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(90 * time.Second):
		b.cmd.Process.Kill()
		<-b.done
		t.Fatalf("volt %v did not finish\nstderr: %s", b.cmd.Args[1:], b.stderr.String())
	}
	code := 0
	if b.err != nil {
		ee, ok := b.err.(*exec.ExitError)
		if !ok {
			t.Fatalf("volt %v: %v", b.cmd.Args[1:], b.err)
		}
		code = ee.ExitCode()
	}
	return result{b.stdout.String(), b.stderr.String(), code}
}

// kill9 SIGKILLs the process and reaps it.
func (b *bgVolt) kill9(t *testing.T) {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 volt: %v", err)
	}
	<-b.done
}

// procArgs returns a process's argv (nil when it is gone).
func procArgs(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// procPPID returns a process's parent pid (0 when it is gone).
func procPPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// pids lists every process on the host.
func pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func isNspawn(args []string) bool {
	return len(args) > 0 && filepath.Base(args[0]) == "systemd-nspawn"
}

// nspawnFor returns the systemd-nspawn processes running a container on
// root (top-level ones only: nspawn's own short-lived children are not
// counted).
func nspawnFor(root string) []int {
	var out []int
	for _, pid := range pids() {
		args := procArgs(pid)
		if !isNspawn(args) {
			continue
		}
		onRoot := false
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-D" && args[i+1] == root {
				onRoot = true
			}
		}
		if onRoot && !isNspawn(procArgs(procPPID(pid))) {
			out = append(out, pid)
		}
	}
	return out
}

// waitNspawn waits until exactly want containers run on root.
func waitNspawn(t *testing.T, root string, want int) {
	t.Helper()
	var got []int
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if got = nspawnFor(root); len(got) == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%d systemd-nspawn processes on %s (pids %v), want %d", len(got), root, got, want)
}

// pluginProcs returns the running processes of the plugins built for this
// test binary (volt-plugin-* beside voltBin).
func pluginProcs() []int {
	dir := filepath.Dir(voltBin)
	var out []int
	for _, pid := range pids() {
		exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
		if err != nil {
			continue
		}
		exe = strings.TrimSuffix(exe, " (deleted)")
		if filepath.Dir(exe) == dir && strings.HasPrefix(filepath.Base(exe), "volt-plugin-") {
			out = append(out, pid)
		}
	}
	return out
}

// assertNothingDeployed checks that a refused import left no stack, no
// workload, no container and no root behind.
func (e *env) assertNothingDeployed(stack string, services ...string) {
	e.t.Helper()
	for _, s := range e.stacks() {
		if s.Name == stack {
			e.t.Errorf("a refused import left stack %s (phase %s)", s.Name, s.Phase)
		}
	}
	if rows := e.ps(true); len(rows) != 0 {
		e.t.Errorf("a refused import left workloads: %+v", rows)
	}
	for _, svc := range services {
		root := e.rootfs(stack, svc)
		if n := nspawnFor(root); len(n) != 0 {
			e.t.Errorf("a refused import left containers running on %s: %v", root, n)
		}
		for _, p := range []string{root, root + ".new", filepath.Dir(root)} {
			if _, err := os.Lstat(p); err == nil {
				e.t.Errorf("a refused import left %s", p)
			}
		}
	}
}

// TestFaultForeignPlatform: a bundle with images for another architecture
// only is refused with an error listing what it has; nothing is deployed.
func TestFaultForeignPlatform(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	foreign := "linux/arm64"
	if runtime.GOARCH == "arm64" {
		foreign = "linux/amd64"
	}
	b := e.build(stackSrc{name: "foreign", platforms: []string{foreign, "linux/armv7"}, compose: `containers:
  app:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "exec sleep 1000"]
`})
	defer e.run("stack", "destroy", "foreign")
	r := e.run("bundle", "import", b)
	if r.code == 0 {
		t.Fatalf("import of a %s-only bundle succeeded:\n%s", foreign, r.stderr)
	}
	for _, want := range []string{"no image for this platform", "linux/" + runtime.GOARCH, "the bundle has: " + strings.Join(sortedCopy(foreign, "linux/armv7"), ", ")} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, r.stderr)
		}
	}
	e.assertNothingDeployed("foreign", "app")
}

func sortedCopy(xs ...string) []string {
	out := append([]string(nil), xs...)
	sort.Strings(out)
	return out
}

// imageWith returns the busybox rootfs tarball with extra entries appended.
func imageWith(t *testing.T, extra ...tar.Header) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(sharedBusybox(t)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	for i := range extra {
		if err := tw.WriteHeader(&extra[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// assertEmptyDir fails unless dir exists and is empty.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("outside dir: %v", err)
	}
	if len(ents) != 0 {
		names := make([]string, len(ents))
		for i, e := range ents {
			names[i] = e.Name()
		}
		t.Errorf("an overlay wrote outside the rootfs, into %s: %v", dir, names)
	}
}

// TestFaultOverlayEscape: an overlay target with ".." is refused, and one
// that goes through a symlink in the image pointing out of the rootfs
// (absolute or relative) lands inside the rootfs, never outside.
func TestFaultOverlayEscape(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	// Not under /tmp: systemd-nspawn mounts a tmpfs there, which would hide
	// what the overlays wrote from the container.
	outside, err := os.MkdirTemp("/var/tmp", "volt-outside-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(outside)

	t.Run("dotdot", func(t *testing.T) {
		e := &env{t: t, dir: e.dir, vars: e.vars}
		b := e.build(stackSrc{name: "dotdot", compose: `containers:
  app:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "exec sleep 1000"]
    configs:
      - {source: c, target: "/../../../../../../..` + outside + `/x"}
configs:
  c: {file: c.conf}
`, files: map[string]string{"c.conf": "escaped\n"}})
		defer e.run("stack", "destroy", "dotdot")
		r := e.run("bundle", "import", b)
		if r.code == 0 || !strings.Contains(r.stderr, "escapes the root") {
			t.Errorf("import with a ../ overlay target: exit %d:\n%s", r.code, r.stderr)
		}
		assertEmptyDir(t, outside)
		e.assertNothingDeployed("dotdot", "app")
	})

	t.Run("symlinks", func(t *testing.T) {
		e := &env{t: t, dir: e.dir, vars: e.vars}
		img := imageWith(t,
			tar.Header{Name: "etc/abs", Typeflag: tar.TypeSymlink, Linkname: outside},
			tar.Header{Name: "etc/rel", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../../.." + outside},
			tar.Header{Name: "etc/file", Typeflag: tar.TypeSymlink, Linkname: outside + "/direct"},
		)
		b := e.build(stackSrc{name: "links", image: img, compose: `containers:
  app:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "exec sleep 1000"]
    configs:
      - {source: abs, target: /etc/abs/conf}
      - {source: rel, target: /etc/rel/sub/conf}
      - {source: direct, target: /etc/file}
configs:
  abs: {file: abs.conf}
  rel: {file: rel.conf}
  direct: {file: direct.conf}
`, files: map[string]string{"abs.conf": "through-absolute\n", "rel.conf": "through-relative\n", "direct.conf": "replaces-link\n"}})
		defer e.run("stack", "destroy", "links")
		e.must("bundle", "import", b)
		assertEmptyDir(t, outside)

		// The writes resolved inside the rootfs, as the container sees them.
		root := e.rootfs("links", "app")
		for p, want := range map[string]string{
			filepath.Join(root, outside, "conf"):     "through-absolute\n",
			filepath.Join(root, outside, "sub/conf"): "through-relative\n",
			filepath.Join(root, "etc/file"):          "replaces-link\n",
		} {
			got, err := os.ReadFile(p)
			if err != nil || string(got) != want {
				t.Errorf("%s = %q, %v; want %q", p, got, err, want)
			}
		}
		if fi, err := os.Lstat(filepath.Join(root, "etc/file")); err != nil || fi.Mode()&os.ModeSymlink != 0 {
			t.Errorf("overlay onto a symlink did not replace it: %v %v", fi, err)
		}
		waitFor(t, func() bool {
			rows := e.ps(false)
			return len(rows) == 1 && rows[0].Status == "running"
		}, "app running")
		for target, want := range map[string]string{"/etc/abs/conf": "through-absolute", "/etc/rel/sub/conf": "through-relative"} {
			r := e.must("container", "exec", "links/app", "--", "cat", target)
			if strings.TrimSpace(r.stdout) != want {
				t.Errorf("in the container, %s = %q, want %q", target, r.stdout, want)
			}
		}
		assertEmptyDir(t, outside)
	})
}

// TestFaultExitAtOnce: containers whose command ends at once are reported
// stopped (exit 0) or failed with a reason (exit != 0), never running.
func TestFaultExitAtOnce(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	b := e.build(stackSrc{name: "quick", compose: `containers:
  ok:
    image: images/busybox.tar.gz
    command: ["true"]
  bad:
    image: images/busybox.tar.gz
    command: ["false"]
  loud:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "echo starting; echo config /etc/app.conf missing >&2; exit 3"]
`})
	defer e.run("stack", "destroy", "quick")
	e.must("bundle", "import", b)

	var rows map[string]psRow
	waitFor(t, func() bool {
		rows = psByService(e.ps(true))
		for _, r := range rows {
			if r.Status == "running" {
				return false
			}
		}
		return len(rows) == 3
	}, "all three to have exited")
	tests := []struct {
		service, status string
		code            int
		reason          string // substring; "" means none expected
	}{
		{"ok", "stopped", 0, ""},
		{"bad", "failed", 1, "code 1"},
		{"loud", "failed", 3, "config /etc/app.conf missing"},
	}
	for _, tc := range tests {
		r := rows[tc.service]
		if r.Status != tc.status || r.ExitCode != tc.code {
			t.Errorf("%s: status %s exit %d, want %s exit %d (%+v)", tc.service, r.Status, r.ExitCode, tc.status, tc.code, r)
		}
		if tc.reason == "" && r.Reason != "" {
			t.Errorf("%s: unexpected reason %q", tc.service, r.Reason)
		}
		if tc.reason != "" && !strings.Contains(r.Reason, tc.reason) {
			t.Errorf("%s: reason %q, want it to mention %q", tc.service, r.Reason, tc.reason)
		}
	}
	if running := e.ps(false); len(running) != 0 {
		t.Errorf("volt ps lists exited workloads as running: %+v", running)
	}
	if r := e.must("ps", "-a"); !strings.Contains(r.stdout, "failed (config /etc/app.conf missing)") {
		t.Errorf("ps table does not show the reason:\n%s", r.stdout)
	}
}

// crashStack is a stack whose import can be held at two points: the
// pre-deploy hook sleeps until $VOLT_STACK_DIR/hook-go exists, and web
// waits for db to be healthy, which it is once the test creates the file
// "open" in db's gate volume.
func crashStack(e *env) string {
	return e.build(stackSrc{name: "crash", compose: `containers:
  db:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "echo db-up; exec sleep 1000"]
    volumes: ["gate:/gate"]
    healthcheck: {test: ["CMD", "test", "-f", "/gate/open"], interval: 100ms, retries: 100000}
  web:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "echo web-up; exec sleep 1000"]
    depends_on: {db: {condition: service_healthy}}
volumes:
  gate: {}
`, hooks: map[string]string{"pre-deploy": `#!/bin/sh
[ -f "$VOLT_STACK_DIR/hook-go" ] && exit 0
sleep 1000 &
echo $! > "$VOLT_STACK_DIR/hook-bg.pid"
echo $$ > "$VOLT_STACK_DIR/hook.pid"
exec sleep 1000
`}})
}

// TestFaultKillDuringImport: kill -9 of the volt process during an import
// (in a slow pre-deploy hook, then while waiting for a dependency) leaves
// nothing reported as running and no process of its own behind, and
// re-running the import converges to one deployed, running copy of each
// service.
func TestFaultKillDuringImport(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	b := crashStack(e)
	defer e.run("stack", "destroy", "crash")
	stackDir := filepath.Join(e.dir, "root", "stacks", "crash")
	dbRoot, webRoot := e.rootfs("crash", "db"), e.rootfs("crash", "web")

	// 1. Killed in the pre-deploy hook: nothing has started yet.
	// The hook also leaves a child in the background, which must end too.
	p := e.start("bundle", "import", "--run-hooks", b)
	var hookPID, bgPID int
	waitFor(t, func() bool {
		data, err := os.ReadFile(filepath.Join(stackDir, "hook.pid"))
		hookPID, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		data, _ = os.ReadFile(filepath.Join(stackDir, "hook-bg.pid"))
		bgPID, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil && hookPID > 0 && bgPID > 0 && strings.Contains(strings.Join(procArgs(hookPID), " "), "sleep")
	}, "the pre-deploy hook to run")
	p.kill9(t)
	// Identify the processes by pid and start time: a reused pid is not the hook.
	hookStat, _ := proc.Read(hookPID)
	bgStat, _ := proc.Read(bgPID)
	waitFor(t, func() bool { return !proc.Alive(hookPID, hookStat.StartTime) }, "the hook of the killed import to end")
	waitFor(t, func() bool { return !proc.Alive(bgPID, bgStat.StartTime) }, "the background child of the killed import's hook to end")
	waitFor(t, func() bool { return len(pluginProcs()) == 0 }, "the killed import's plugins to end")
	if rows := e.ps(true); len(rows) != 0 {
		t.Errorf("after a kill in the pre-deploy hook, ps -a = %+v", rows)
	}
	if n := nspawnFor(dbRoot); len(n) != 0 {
		t.Errorf("containers started before the pre-deploy hook finished: %v", n)
	}

	// 2. Killed while web waits for db to be healthy: db runs, the state
	// says "deploying", and nothing is reported as running.
	writeFiles(t, stackDir, map[string]string{"hook-go": ""})
	p = e.start("bundle", "import", "--run-hooks", b)
	waitFor(t, func() bool {
		return e.state("crash").started("db") && strings.Contains(p.stderr.String(), "waiting for db to be healthy")
	}, "the import to wait for db")
	p.kill9(t)
	waitFor(t, func() bool { return len(pluginProcs()) == 0 }, "the killed import's plugins to end")
	if st := e.state("crash"); st == nil || st.Phase != "deploying" {
		t.Fatalf("state after the kill: %+v", st)
	}
	rows := e.ps(true)
	if len(rows) != 2 {
		t.Fatalf("ps -a after the kill: %+v", rows)
	}
	for _, r := range rows {
		if r.Status != "interrupted" || r.Reason == "" {
			t.Errorf("half-deployed %s reported %q (%s), want interrupted with a reason", r.Service, r.Status, r.Reason)
		}
	}
	if running := e.ps(false); len(running) != 0 {
		t.Errorf("volt ps reports half-deployed workloads as running: %+v", running)
	}
	if ss := e.stacks(); len(ss) != 1 || ss[0].Phase != "deploying" {
		t.Errorf("stack list after the kill: %+v", ss)
	}
	waitNspawn(t, dbRoot, 1) // the orphan of the killed import
	waitFor(t, func() bool { return strings.Contains(e.run("logs", "crash/db").stdout, "db-up") }, "the interrupted db's log")

	// 3. Re-running converges: the orphan is replaced, both run once.
	if err := os.WriteFile(filepath.Join(e.volume("crash", "gate"), "open"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.must("bundle", "import", "--run-hooks", b)
	if !strings.Contains(r.stderr, "interrupted import") {
		t.Errorf("re-run does not say it cleaned up the interrupted import:\n%s", r.stderr)
	}
	if st := e.state("crash"); st == nil || st.Phase != "deployed" {
		t.Errorf("state after the re-run: %+v", st)
	}
	waitFor(t, func() bool {
		m := psByService(e.ps(false))
		return len(m) == 2 && m["db"].Status == "running" && m["web"].Status == "running"
	}, "db and web running after the re-run")
	waitNspawn(t, dbRoot, 1)
	waitNspawn(t, webRoot, 1)
	if r := e.must("bundle", "import", "--run-hooks", b); !strings.Contains(r.stderr, "nothing to do") {
		t.Errorf("third import:\n%s", r.stderr)
	}
	if left := pluginProcs(); len(left) != 0 {
		t.Errorf("plugin processes outlive the CLI: %v", left)
	}
	ents, _ := os.ReadDir(filepath.Join(e.dir, "root"))
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), ".import-") {
			t.Errorf("staging dir of a killed import left behind: %s", ent.Name())
		}
	}
}

// TestFaultConcurrentImports: a second import of the same stack while the
// first runs waits for it (flock), then finds nothing to do; one copy of
// each service runs.
func TestFaultConcurrentImports(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	b := crashStack(e)
	defer e.run("stack", "destroy", "crash")
	writeFiles(t, filepath.Join(e.dir, "root", "stacks", "crash"), map[string]string{"hook-go": ""})

	first := e.start("bundle", "import", b)
	waitFor(t, func() bool { return e.state("crash").started("db") }, "the first import to start db")
	second := e.start("bundle", "import", b)
	waitFor(t, func() bool { return strings.Contains(second.stderr.String(), "waiting for another volt process") }, "the second import to wait for the lock")
	waitNspawn(t, e.rootfs("crash", "db"), 1)
	if e.state("crash").started("web") {
		t.Errorf("web started while the first import still waits for db")
	}
	if err := os.WriteFile(filepath.Join(e.volume("crash", "gate"), "open"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r1, r2 := first.wait(t), second.wait(t)
	if r1.code != 0 || !strings.Contains(r1.stderr, "Deployed stack crash") {
		t.Errorf("first import: exit %d\n%s", r1.code, r1.stderr)
	}
	if r2.code != 0 || !strings.Contains(r2.stderr, "nothing to do") || strings.Contains(r2.stderr, "Deployed") {
		t.Errorf("second import: exit %d\n%s", r2.code, r2.stderr)
	}
	waitNspawn(t, e.rootfs("crash", "db"), 1)
	waitNspawn(t, e.rootfs("crash", "web"), 1)
	if m := psByService(e.ps(false)); len(m) != 2 {
		t.Errorf("running after both imports: %+v", m)
	}
}

// keepStack is version v of a one-service stack whose overlay says v.
func keepStack(e *env, version, compose string, hooks map[string]string) string {
	return e.build(stackSrc{name: "keep", version: version, compose: compose, hooks: hooks,
		files: map[string]string{"version.conf": "v" + version + "\n"}})
}

const keepApp = `  app:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "cat /etc/version; exec sleep 1000"]
    configs:
      - {source: version, target: /etc/version}
`

const keepConfigs = `configs:
  version: {file: version.conf}
`

// TestFaultForceKeepsOld: --force with a new version that fails (a
// pre-deploy hook, or a dependency that never gets healthy) leaves the
// previous version deployed and running.
func TestFaultForceKeepsOld(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	v1 := keepStack(e, "1.0.0", "containers:\n"+keepApp+keepConfigs, nil)
	defer e.run("stack", "destroy", "keep")
	e.must("bundle", "import", v1)
	var pid int
	waitFor(t, func() bool {
		rows := e.ps(false)
		if len(rows) == 1 && rows[0].PID > 0 {
			pid = rows[0].PID
		}
		return pid > 0
	}, "v1 running")

	assertV1 := func(t *testing.T) {
		t.Helper()
		if ss := e.stacks(); len(ss) != 1 || ss[0].Bundle.Version != "1.0.0" || ss[0].Phase != "deployed" {
			t.Errorf("stack list = %+v, want keep v1.0.0 deployed", ss)
		}
		waitFor(t, func() bool {
			rows := e.ps(true)
			return len(rows) == 1 && rows[0].Service == "app" && rows[0].Status == "running"
		}, "only v1's app, running")
		if r := e.must("container", "exec", "keep/app", "--", "cat", "/etc/version"); strings.TrimSpace(r.stdout) != "v1.0.0" {
			t.Errorf("app's overlay = %q, want v1.0.0", r.stdout)
		}
	}

	t.Run("pre-deploy hook fails", func(t *testing.T) {
		e := &env{t: t, dir: e.dir, vars: e.vars}
		v2 := keepStack(e, "2.0.0", "containers:\n"+keepApp+keepConfigs, map[string]string{"pre-deploy": "#!/bin/sh\necho refusing: migration pending >&2\nexit 1\n"})
		r := e.run("bundle", "import", "--force", "--run-hooks", v2)
		if r.code == 0 || !strings.Contains(r.stderr, "pre-deploy") || !strings.Contains(r.stderr, "migration pending") {
			t.Errorf("--force with a failing pre-deploy hook: exit %d\n%s", r.code, r.stderr)
		}
		assertV1(t)
		if rows := e.ps(false); len(rows) != 1 || rows[0].PID != pid {
			t.Errorf("v1 was restarted by a refused replacement (pid %d, now %+v)", pid, rows)
		}
	})

	t.Run("dependency never healthy", func(t *testing.T) {
		e := &env{t: t, dir: e.dir, vars: e.vars}
		v3 := keepStack(e, "3.0.0", `containers:
  db:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "exec sleep 1000"]
    healthcheck: {test: ["CMD", "test", "-f", "/never"], interval: 100ms, retries: 3}
`+keepApp+`    depends_on: {db: {condition: service_healthy}}
`+keepConfigs, nil)
		r := e.run("bundle", "import", "--force", v3)
		if r.code == 0 || !strings.Contains(r.stderr, "db being healthy") {
			t.Errorf("--force with a dependency that never gets healthy: exit %d\n%s", r.code, r.stderr)
		}
		assertV1(t)
		if n := nspawnFor(e.rootfs("keep", "db")); len(n) != 0 {
			t.Errorf("the failed version's db still runs: %v", n)
		}
		waitNspawn(t, e.rootfs("keep", "app"), 1)
		if _, err := os.Stat(filepath.Dir(e.rootfs("keep", "db"))); err == nil {
			t.Errorf("the failed version's db root was left behind")
		}
	})
}

// TestFaultValidateHook: a failing validate hook aborts the import before
// anything starts or changes.
func TestFaultValidateHook(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	b := e.build(stackSrc{name: "val", compose: `containers:
  app:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "touch /data/started; exec sleep 1000"]
    volumes: ["data:/data"]
volumes:
  data: {}
`, hooks: map[string]string{
		"validate":   "#!/bin/sh\necho checking\necho DB_URL is not set >&2\nexit 3\n",
		"pre-deploy": "#!/bin/sh\ntouch \"$VOLT_STACK_DIR/pre-deploy-ran\"\n",
	}})
	defer e.run("stack", "destroy", "val")
	r := e.run("bundle", "import", "--run-hooks", b)
	if r.code == 0 {
		t.Fatalf("import with a failing validate hook succeeded:\n%s", r.stderr)
	}
	for _, want := range []string{"validate", "exit code 3", "DB_URL is not set", "nothing was changed"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, r.stderr)
		}
	}
	e.assertNothingDeployed("val", "app")
	for _, p := range []string{
		filepath.Join(e.dir, "root", "stacks", "val", "pre-deploy-ran"),
		filepath.Join(e.volume("val", "data"), "started"),
	} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s exists: something ran after validate failed", p)
		}
	}
}

// lineReader delivers a process's output lines on a channel.
func lineReader(r io.Reader) <-chan string {
	ch := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
	}()
	return ch
}

// expectLine waits (bounded) for a line equal to want.
func expectLine(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("output ended before %q", want)
			}
			if l == want {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %q", want)
		}
	}
}

// TestFaultLogsFollowTail: logs -n N prints the last N lines; logs -f
// prints new lines as they come and ends cleanly on SIGINT.
func TestFaultLogsFollowTail(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	b := e.build(stackSrc{name: "chatty", compose: `containers:
  app:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; while [ ! -f /ctl/go ]; do sleep 0.1; done; echo after-go; exec sleep 1000"]
    volumes: ["ctl:/ctl"]
volumes:
  ctl: {}
`})
	defer e.run("stack", "destroy", "chatty")
	e.must("bundle", "import", b)
	waitFor(t, func() bool { return strings.Contains(e.run("logs", "chatty/app").stdout, "line5") }, "the first lines in the log")

	for _, tc := range []struct {
		n    string
		want string
	}{
		{"1", "line5\n"},
		{"2", "line4\nline5\n"},
		{"5", "line1\nline2\nline3\nline4\nline5\n"},
		{"50", "line1\nline2\nline3\nline4\nline5\n"},
	} {
		if r := e.must("logs", "-n", tc.n, "chatty/app"); r.stdout != tc.want {
			t.Errorf("logs -n %s = %q, want %q", tc.n, r.stdout, tc.want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, voltBin, "logs", "-f", "-n", "1", "chatty/app")
	cmd.Env = append(os.Environ(), e.vars...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := lineReader(out)
	expectLine(t, lines, "line5")
	if err := os.WriteFile(filepath.Join(e.volume("chatty", "ctl"), "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	expectLine(t, lines, "after-go")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for range lines { // drain until the process closes stdout
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("logs -f after SIGINT: %v\n%s", err, stderr.String())
	}
	if r := e.must("logs", "-n", "1", "chatty/app"); r.stdout != "after-go\n" {
		t.Errorf("logs -n 1 after more output = %q", r.stdout)
	}
}

// TestFaultRecoverAfterExit: once the CLI has exited, no plugin process is
// left, and a later invocation still finds the workloads running.
func TestFaultRecoverAfterExit(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	b := e.build(stackSrc{name: "survive", compose: `containers:
  app:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "echo up; exec sleep 1000"]
`})
	defer e.run("stack", "destroy", "survive")
	e.must("bundle", "import", b)
	e.must("ps")
	if left := pluginProcs(); len(left) != 0 {
		t.Errorf("plugin processes outlive the CLI: %v", left)
		// Kill them from here (another process than the CLI): the
		// workloads must not depend on them.
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	var row psRow
	waitFor(t, func() bool {
		rows := e.ps(false)
		if len(rows) == 1 {
			row = rows[0]
		}
		return row.Status == "running" && row.PID > 0
	}, "app running in a later invocation")
	if !proc.Alive(row.PID, 0) || !isNspawn(procArgs(row.PID)) {
		t.Errorf("ps reports pid %d, which is not a live systemd-nspawn (%v)", row.PID, procArgs(row.PID))
	}
	waitNspawn(t, e.rootfs("survive", "app"), 1)
	if r := e.must("container", "exec", "survive/app", "--", "echo", "still-here"); strings.TrimSpace(r.stdout) != "still-here" {
		t.Errorf("exec after the CLI exited: %q", r.stdout)
	}
	if left := pluginProcs(); len(left) != 0 {
		t.Errorf("plugin processes outlive the CLI: %v", left)
	}
}

// TestFaultDependsOnConditions: service_completed_successfully waits for a
// one-shot init container to exit 0 (and fails the import when it does
// not); service_healthy waits for the healthcheck to pass.
func TestFaultDependsOnConditions(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	compose := func(initExit int) string {
		return fmt.Sprintf(`containers:
  init:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "sleep 0.5; echo seeded > /shared/seed; exit %d"]
    volumes: ["shared:/shared"]
  probe:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "sleep 1; touch /shared/probe-ready /tmp/ready; exec sleep 1000"]
    volumes: ["shared:/shared"]
    healthcheck: {test: ["CMD", "test", "-f", "/tmp/ready"], interval: 100ms, retries: 200}
  app:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "cat /shared/seed || echo no-seed; test -f /shared/probe-ready && echo saw-probe-ready || echo probe-not-ready; exec sleep 1000"]
    volumes: ["shared:/shared"]
    depends_on:
      init: {condition: service_completed_successfully}
      probe: {condition: service_healthy}
volumes:
  shared: {}
`, initExit)
	}

	t.Run("met", func(t *testing.T) {
		e := &env{t: t, dir: e.dir, vars: e.vars}
		b := e.build(stackSrc{name: "deps", compose: compose(0)})
		defer e.run("stack", "destroy", "deps")
		r := e.must("bundle", "import", b)
		for _, want := range []string{"waiting for init to complete", "waiting for probe to be healthy"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("import output lacks %q:\n%s", want, r.stderr)
			}
		}
		waitFor(t, func() bool { return strings.Contains(e.run("logs", "deps/app").stdout, "ready") }, "app's output")
		logs := e.must("logs", "deps/app").stdout
		if !strings.Contains(logs, "seeded") || !strings.Contains(logs, "saw-probe-ready") {
			t.Errorf("app started before its dependencies were met:\n%s", logs)
		}
		m := psByService(e.ps(true))
		if m["init"].Status != "stopped" || m["init"].ExitCode != 0 {
			t.Errorf("init: %+v, want stopped with exit 0", m["init"])
		}
		if m["probe"].Status != "running" || m["app"].Status != "running" {
			t.Errorf("probe %s, app %s; want both running", m["probe"].Status, m["app"].Status)
		}
	})

	t.Run("init fails", func(t *testing.T) {
		e := &env{t: t, dir: e.dir, vars: e.vars}
		b := e.build(stackSrc{name: "depsfail", compose: compose(4)})
		defer e.run("stack", "destroy", "depsfail")
		r := e.run("bundle", "import", b)
		if r.code == 0 || !strings.Contains(r.stderr, "depends on init completing successfully, but it exited with code 4") {
			t.Errorf("import with a failing init: exit %d\n%s", r.code, r.stderr)
		}
		e.assertNothingDeployed("depsfail", "init", "probe", "app")
	})
}

// TestEnvFileReachesContainer: env_file values travel in the bundle and
// reach the container, under the explicit environment, literally.
func TestEnvFileReachesContainer(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	b := e.build(stackSrc{name: "envf", compose: `containers:
  app:
    image: images/busybox.tar.gz
    env_file: [app.env]
    environment: {GREETING: explicit}
    command: ["/bin/sh", "-c", "echo \"got $FROM_FILE $GREETING $LITERAL\"; exec sleep 1000"]
`, files: map[string]string{"app.env": "FROM_FILE=file-value\nGREETING=overridden\nLITERAL='a$b'\n"}})
	defer e.run("stack", "destroy", "envf")
	// The source file is not needed once the bundle exists.
	os.Remove(filepath.Join(e.dir, "src-envf-1.0.0", "app.env"))
	e.must("bundle", "import", b)
	waitFor(t, func() bool { return strings.Contains(e.run("logs", "envf/app").stdout, "got ") }, "the app's output")
	if out := e.run("logs", "envf/app").stdout; !strings.Contains(out, "got file-value explicit a$b\n") {
		t.Errorf("container saw %q, want \"got file-value explicit a$b\"", out)
	}
}

// TestDestroyHooks: stack destroy --run-hooks runs pre-destroy before and
// post-destroy after the stack is removed, and leaves no stack dir behind.
func TestDestroyHooks(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	marks := filepath.Join(e.dir, "marks")
	hook := "#!/bin/sh\necho \"$VOLT_HOOK $VOLT_STACK_NAME\" >> " + marks + "\n"
	b := e.build(stackSrc{name: "bye", compose: `containers:
  app:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "exec sleep 1000"]
`, hooks: map[string]string{"pre-destroy": hook, "post-destroy": hook}})
	e.must("bundle", "import", b)
	e.must("stack", "destroy", "--run-hooks", "bye")
	if got, _ := os.ReadFile(marks); string(got) != "pre-destroy bye\npost-destroy bye\n" {
		t.Errorf("destroy hooks ran as %q, want pre-destroy then post-destroy", got)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "root", "stacks", "bye")); !os.IsNotExist(err) {
		t.Errorf("stack dir left after destroy: %v", err)
	}
	waitNspawn(t, e.rootfs("bye", "app"), 0)
}
