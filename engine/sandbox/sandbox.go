// Package sandbox runs host-side helpers (lifecycle hooks) under Landlock.
// Landlock restricts a whole process irreversibly, so the CLI never
// restricts itself: a Cmd re-executes the current binary in a small launcher
// mode that applies the policy and then runs the target as its child. Every
// binary that uses Cmd must call Main first thing in main (and in TestMain
// for tests).
//
// The launcher stays as the target's supervisor so that nothing the target
// starts outlives it or the CLI:
//   - the target runs in a process group of its own; when the target exits,
//     the launcher kills what is left of that group (a hook's background
//     children), so Run never hangs on an inherited output pipe;
//   - the launcher holds the read end of a pipe (the lifeline) whose write
//     end only the CLI holds; when the CLI dies in any way, kill -9
//     included, the pipe reads EOF and the launcher kills the group. This
//     does not depend on the parent-death signal, which Linux ties to the
//     thread that forked the child rather than to the process;
//   - cancelling the context (a timeout) sends the launcher SIGTERM, which
//     kills the group the same way.
//
// A target that leaves its process group (setsid) escapes the clean-up.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/volt-cli/volt/sdk"
)

// launcherArg is argv[1] of the launcher mode.
const launcherArg = "__volt-sandbox-exec"

// policyEnv carries the policy (JSON) to the launcher.
const policyEnv = "VOLT_SANDBOX_POLICY"

// lifelineFD is the launcher's descriptor for the read end of the lifeline.
const lifelineFD = 3

// waitDelay bounds how long Run waits for the launcher after asking it to
// stop (context cancelled) before killing it outright.
const waitDelay = 5 * time.Second

// Policy is the file-system access a sandboxed process keeps. System
// directories (/usr, /lib, /etc, /bin…) stay readable; everything not listed
// is denied.
type Policy struct {
	ReadOnly  []string `json:"ro,omitempty"`
	ReadWrite []string `json:"rw,omitempty"`
}

// Cmd is a command run under a Policy. Set Dir, Stdout and Stderr before
// Run; standard input is /dev/null.
type Cmd struct {
	Dir            string
	Stdout, Stderr io.Writer

	ctx    context.Context
	policy []byte
	argv   []string
	env    []string
}

// Command returns a command that runs argv under p with exactly the
// environment env (the launcher's own variables are removed before the
// target starts). Cancelling ctx stops the target and everything it started.
func Command(ctx context.Context, p Policy, argv, env []string) (*Cmd, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("sandbox: empty command")
	}
	js, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return &Cmd{ctx: ctx, policy: js, argv: argv, env: env}, nil
}

// Run starts the command and waits for it. A non-zero exit is an
// *exec.ExitError whose ExitCode is the target's, or 128+N when signal N
// ended it.
func (c *Cmd) Run() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("sandbox: find own executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("sandbox: lifeline: %w", err)
	}
	defer w.Close()
	cmd := exec.CommandContext(c.ctx, self, append([]string{launcherArg}, c.argv...)...)
	cmd.Env = append(append([]string(nil), c.env...), policyEnv+"="+string(c.policy))
	cmd.Dir, cmd.Stdout, cmd.Stderr = c.Dir, c.Stdout, c.Stderr
	cmd.ExtraFiles = []*os.File{r} // fd 3 = lifelineFD
	// Belt and braces: the launcher is also told (SIGTERM, which it
	// handles like the lifeline's EOF) when the CLI's thread dies. Not
	// SIGKILL: that would end the launcher before it ends the group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = waitDelay
	err = cmd.Start()
	r.Close()
	if err != nil {
		return fmt.Errorf("sandbox: start %s: %w", c.argv[0], err)
	}
	return cmd.Wait()
}

// Main handles the launcher mode: when argv[1] is the launcher argument it
// applies the policy from the environment, runs argv[2:] as its child and
// exits with the child's status, never returning. Otherwise it returns at
// once.
func Main() {
	if len(os.Args) < 3 || os.Args[1] != launcherArg {
		return
	}
	var p Policy
	if err := json.Unmarshal([]byte(os.Getenv(policyEnv)), &p); err != nil {
		fail(126, "bad policy: %v", err)
	}
	os.Unsetenv(policyEnv)
	// Signals that stop the target; registered before anything starts so
	// that none is lost.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	lifeline := os.NewFile(lifelineFD, "lifeline")
	if lifeline == nil {
		fail(126, "no lifeline on fd %d", lifelineFD)
	}
	syscall.CloseOnExec(lifelineFD)
	if err := sdk.ApplySandbox(sdk.SandboxPolicy{Read: p.ReadOnly, Write: p.ReadWrite}); err != nil {
		fail(126, "%v", err)
	}
	path, err := exec.LookPath(os.Args[2])
	if err != nil {
		fail(127, "%v", err)
	}
	target := &exec.Cmd{
		Path:   path,
		Args:   os.Args[2:],
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if err := target.Start(); err != nil {
		fail(126, "start %s: %v", path, err)
	}
	group := target.Process.Pid
	killGroup := func() { syscall.Kill(-group, syscall.SIGKILL) }
	go func() {
		// Returns only when every write end is closed: the CLI is gone.
		io.Copy(io.Discard, lifeline)
		killGroup()
		os.Exit(128 + int(syscall.SIGKILL))
	}()
	go func() {
		<-stop
		killGroup()
	}()
	err = target.Wait()
	killGroup() // what the target left running ends with it
	var ee *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			os.Exit(128 + int(ws.Signal()))
		}
		os.Exit(ee.ExitCode())
	default:
		fail(126, "wait %s: %v", path, err)
	}
}

// fail reports a launcher error on stderr and exits with code.
func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "volt sandbox: "+format+"\n", args...)
	os.Exit(code)
}
