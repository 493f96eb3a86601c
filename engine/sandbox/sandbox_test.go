package sandbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/volt-cli/volt/sdk/proc"
)

// parentEnv makes the test binary a CLI stand-in: it runs the script in the
// variable under a Cmd and waits (until the test kills it).
const parentEnv = "SANDBOX_TEST_PARENT_SCRIPT"

func TestMain(m *testing.M) {
	Main()
	if script := os.Getenv(parentEnv); script != "" {
		cmd, _ := Command(context.Background(), Policy{ReadOnly: []string{"/"}, ReadWrite: []string{os.TempDir(), "/dev/null"}},
			[]string{"/bin/sh", "-c", script}, []string{"PATH=/usr/bin:/bin"})
		cmd.Run()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var testPolicy = Policy{ReadOnly: []string{"/"}, ReadWrite: []string{os.TempDir(), "/dev/null"}}

func run(t *testing.T, ctx context.Context, script string) (string, error) {
	t.Helper()
	cmd, err := Command(ctx, testPolicy, []string{"/bin/sh", "-c", script}, []string{"PATH=/usr/bin:/bin"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

func TestCommandConfinesWrites(t *testing.T) {
	allowed, denied := t.TempDir(), t.TempDir()
	script := "echo ok > " + filepath.Join(allowed, "a") + "; echo $MARK; env; echo no > " + filepath.Join(denied, "b")
	cmd, err := Command(context.Background(), Policy{ReadOnly: []string{"/"}, ReadWrite: []string{allowed, "/dev/null"}},
		[]string{"/bin/sh", "-c", script}, []string{"MARK=env-passed", "PATH=/usr/bin:/bin"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Run()
	if _, err := os.Stat(filepath.Join(allowed, "a")); err != nil {
		t.Errorf("write to the allowed dir failed: %s", out.String())
	}
	if _, err := os.Stat(filepath.Join(denied, "b")); err == nil {
		t.Errorf("write outside the policy succeeded (is Landlock available?): %s", out.String())
	}
	if !strings.Contains(out.String(), "env-passed") {
		t.Errorf("environment not passed: %s", out.String())
	}
	if strings.Contains(out.String(), policyEnv) {
		t.Errorf("policy variable leaked: %s", out.String())
	}
}

func TestRunExitStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		code   int // 0: Run returns nil
	}{
		{"true", 0},
		{"exit 3", 3},
		{"kill -TERM $$", 128 + 15},
		{"/nonexistent/binary", 127},
	} {
		t.Run(tc.script, func(t *testing.T) {
			out, err := run(t, context.Background(), tc.script)
			var ee *exec.ExitError
			switch {
			case tc.code == 0 && err != nil:
				t.Errorf("err = %v (%s)", err, out)
			case tc.code != 0 && !errors.As(err, &ee):
				t.Errorf("err = %v, want exit code %d", err, tc.code)
			case tc.code != 0 && ee.ExitCode() != tc.code:
				t.Errorf("exit code %d, want %d (%s)", ee.ExitCode(), tc.code, out)
			}
		})
	}
}

func TestCommandRefusesEmptyArgv(t *testing.T) {
	if _, err := Command(context.Background(), testPolicy, nil, nil); err == nil {
		t.Error("empty argv accepted")
	}
}

// TestBackgroundChildEndsWithTarget: a child the target leaves running (and
// which holds its output open) is killed when the target exits, so Run
// returns at once.
func TestBackgroundChildEndsWithTarget(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "bg.pid")
	start := time.Now()
	out, err := run(t, context.Background(), "sleep 1000 & echo $! > "+pidFile+"; echo done")
	if err != nil || !strings.Contains(out, "done") {
		t.Fatalf("err = %v, out = %q", err, out)
	}
	if d := time.Since(start); d > waitDelay {
		t.Errorf("Run took %v: it waited for the background child", d)
	}
	waitDead(t, readPID(t, pidFile))
}

// TestCancelStopsGroup: cancelling the context ends the target and its
// children.
func TestCancelStopsGroup(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := run(t, ctx, "sleep 1000 & echo $! > "+dir+"/bg.pid; echo $$ > "+dir+"/fg.pid; exec sleep 1000")
		done <- err
	}()
	bg, fg := waitPID(t, filepath.Join(dir, "bg.pid")), waitPID(t, filepath.Join(dir, "fg.pid"))
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("cancelled Run returned nil")
		}
	case <-time.After(2 * waitDelay):
		t.Fatal("cancelled Run did not return")
	}
	waitDead(t, bg)
	waitDead(t, fg)
}

// TestTargetDiesWithKilledParent: kill -9 of the process that called Run
// (the CLI) ends the target and its children, through the lifeline.
func TestTargetDiesWithKilledParent(t *testing.T) {
	dir := t.TempDir()
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), parentEnv+"=sleep 1000 & echo $! > "+dir+"/bg.pid; echo $$ > "+dir+"/fg.pid; exec sleep 1000")
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	bg, fg := waitPID(t, filepath.Join(dir, "bg.pid")), waitPID(t, filepath.Join(dir, "fg.pid"))
	parent.Process.Kill()
	parent.Wait()
	waitDead(t, bg)
	waitDead(t, fg)
}

func readPID(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return pid
}

// waitPID waits for a script to write its pid file and returns the pid.
func waitPID(t *testing.T, file string) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(file); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return readPID(t, file)
		}
	}
	t.Fatalf("no pid in %s", file)
	return 0
}

// waitDead waits for pid to end (a zombie counts as ended); it also kills
// the process when the wait fails, so that a failing test leaves nothing.
func waitDead(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !proc.Alive(pid, 0) {
			return
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("process %d outlived its supervisor", pid)
}
