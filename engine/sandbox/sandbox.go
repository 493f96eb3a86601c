// Package sandbox runs host-side helpers (lifecycle hooks) under Landlock.
// Landlock restricts a whole process irreversibly, so the CLI never
// restricts itself: Command re-executes the current binary in a small
// launcher mode that applies the policy and then execs the target. Every
// binary that uses Command must call Main first thing in main (and in
// TestMain for tests).
package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/volt-cli/volt/sdk"
)

// launcherArg is argv[1] of the launcher mode.
const launcherArg = "__volt-sandbox-exec"

// policyEnv carries the policy (JSON) to the launcher.
const policyEnv = "VOLT_SANDBOX_POLICY"

// Policy is the file-system access a sandboxed process keeps. System
// directories (/usr, /lib, /etc, /bin…) stay readable; everything not listed
// is denied.
type Policy struct {
	ReadOnly  []string `json:"ro,omitempty"`
	ReadWrite []string `json:"rw,omitempty"`
}

// Command returns a command that runs argv under p with exactly the
// environment env (the policy travels in one extra variable that the
// launcher removes before exec).
func Command(ctx context.Context, p Policy, argv, env []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("sandbox: empty command")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("sandbox: find own executable: %w", err)
	}
	js, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, append([]string{launcherArg}, argv...)...)
	cmd.Env = append(append([]string(nil), env...), policyEnv+"="+string(js))
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
	return cmd, nil
}

// Main handles the launcher mode: when argv[1] is the launcher argument it
// applies the policy from the environment and execs argv[2:], never
// returning. Otherwise it returns at once.
func Main() {
	if len(os.Args) < 3 || os.Args[1] != launcherArg {
		return
	}
	var p Policy
	if err := json.Unmarshal([]byte(os.Getenv(policyEnv)), &p); err != nil {
		fmt.Fprintf(os.Stderr, "volt sandbox: bad policy: %v\n", err)
		os.Exit(126)
	}
	os.Unsetenv(policyEnv)
	if err := sdk.ApplySandbox(sdk.SandboxPolicy{Read: p.ReadOnly, Write: p.ReadWrite}); err != nil {
		fmt.Fprintf(os.Stderr, "volt sandbox: %v\n", err)
		os.Exit(126)
	}
	path, err := exec.LookPath(os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "volt sandbox: %v\n", err)
		os.Exit(127)
	}
	err = syscall.Exec(path, os.Args[2:], os.Environ())
	fmt.Fprintf(os.Stderr, "volt sandbox: exec %s: %v\n", path, err)
	os.Exit(126)
}
