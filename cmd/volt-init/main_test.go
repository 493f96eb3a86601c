package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// initBin is volt-init built for these tests.
var initBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "volt-init-")
	if err != nil {
		panic(err)
	}
	_ = os.Chmod(dir, 0o755) // TestPolicyAsNonRoot runs it as nobody
	initBin = filepath.Join(dir, "volt-init")
	cmd := exec.Command("go", "build", "-o", initBin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		in      []string
		want    options
		wantErr bool
	}{
		{[]string{"--", "a", "-b"}, options{argv: []string{"a", "-b"}}, false},
		{[]string{"a", "--", "b"}, options{argv: []string{"a", "--", "b"}}, false},
		{[]string{"--exec", "--policy", "p", "--", "a"}, options{exec: true, policyPath: "p", argv: []string{"a"}}, false},
		{[]string{"--report", "r", "a"}, options{reportPath: "r", argv: []string{"a"}}, false},
		{[]string{"--policy"}, options{}, true},
		{[]string{"--bogus", "a"}, options{}, true},
		{[]string{"--"}, options{}, true},
		{nil, options{}, true},
	}
	for _, tc := range tests {
		got, err := parseArgs(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("parseArgs(%q) = %+v, %v; want %+v, err %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// exitOf runs volt-init with args and returns its exit code.
func exitOf(t *testing.T, args ...string) int {
	t.Helper()
	err := exec.Command(initBin, args...).Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--", "/bin/sh", "-c", "exit 3"}, 3},
		{[]string{"--", "/bin/sh", "-c", "kill -KILL $$"}, 128 + 9},
		{[]string{"--", "/no/such/command"}, 127},
		{[]string{"--policy", "/no/such/policy", "--", "/bin/true"}, 126},
		{[]string{"--bogus"}, 2},
		{[]string{"--exec", "--", "/bin/sh", "-c", "exit 5"}, 5},
	} {
		if got := exitOf(t, tc.args...); got != tc.want {
			t.Errorf("volt-init %q: exit %d, want %d", tc.args, got, tc.want)
		}
	}
}

// zombiesOf lists the zombie children of pid.
func zombiesOf(t *testing.T, pid int) []string {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(pid) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestReapsOrphans(t *testing.T) {
	// The inner sh exits at once and leaves "sleep 0.1" to be re-parented
	// to the init, which must reap it when it exits.
	cmd := exec.Command(initBin, "--", "/bin/sh", "-c", `sh -c "sleep 0.1 &"; sleep 3`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	time.Sleep(600 * time.Millisecond)
	for {
		z := zombiesOf(t, cmd.Process.Pid)
		if len(z) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("zombie children of the init not reaped: %v", z)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The orphan really went through the init: its sleep has ended and
	// nothing but the main command is left.
	var kids []byte
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/task/*/children")
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		kids = append(kids, b...)
	}
	if n := len(strings.Fields(string(kids))); n != 1 {
		t.Errorf("init has %d children (%q), want only the command", n, kids)
	}
}

func TestForwardsSignals(t *testing.T) {
	cmd := exec.Command(initBin, "--", "/bin/sh", "-c", `trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := r.ReadString('\n')
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 || rest != "got-term\n" {
		t.Fatalf("after SIGTERM: %v, output %q; want exit 7 and got-term", err, rest)
	}
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.json")
	rep := filepath.Join(dir, "r.json")
	if err := os.WriteFile(pol, []byte(`{"capabilities":["CAP_KILL"],"no_new_privileges":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(initBin, "--policy", pol, "--report", rep, "--", "/bin/sh", "-c", "grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "CapBnd:\t0000000000000020") || !strings.Contains(string(out), "NoNewPrivs:\t1") {
		t.Errorf("the command's bounding set / NoNewPrivs:\n%s", out)
	}
	b, err := os.ReadFile(rep)
	if err != nil || !strings.Contains(string(b), `"capabilities":["CAP_KILL"]`) || !strings.Contains(string(b), `"no_new_privileges":true`) {
		t.Errorf("report = %s, %v", b, err)
	}
}

func TestPolicyAsNonRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to another user")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir makes its parent 0700
	scratch := filepath.Join(dir, "scratch")
	os.Mkdir(scratch, 0o777)
	os.Chmod(scratch, 0o777)
	pol := filepath.Join(dir, "p.json")
	os.WriteFile(pol, []byte(`{"capabilities":["CAP_KILL"],"no_new_privileges":true,
"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]},
"landlock":{"fs_execute":["/"],"fs_write":["`+scratch+`","/dev/null"]}}`), 0o644)
	cmd := exec.Command(initBin, "--policy", pol, "--", "/bin/sh", "-c",
		"id -u; mkdir "+scratch+"/d && echo mkdir-ok; touch "+scratch+"/f && echo touch-ok; touch "+dir+"/g && echo outside-ok; true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	s := string(out)
	if !strings.HasPrefix(s, "65534\n") || strings.Contains(s, "mkdir-ok") || !strings.Contains(s, "touch-ok") || strings.Contains(s, "outside-ok") {
		t.Errorf("non-root under seccomp (no mkdir) and Landlock (write only scratch):\n%s", s)
	}
}
