// Command volt-init is the PID 1 of Volt's containers: it applies the
// container's policy (capabilities, no_new_privileges, Landlock, seccomp;
// confine.InitPolicy), writes what it enforced (confine.InitReport), starts the
// command, forwards signals to the command's process group, reaps every
// zombie and exits with the command's status. In exec mode it applies the
// same policy and then becomes the command, so `volt container exec` runs
// under the same confinement as the workload.
//
// It is built static (CGO_ENABLED=0) and bind-mounted read-only into each
// container by the runtime-nspawn plugin.
//
// Usage:
//
//	volt-init [--policy FILE] [--report FILE] -- CMD [ARG...]
//	volt-init --exec [--policy FILE] -- CMD [ARG...]
//
// Exit status: the command's (128+N when signal N ended it); 126 when the
// policy cannot be applied or the command cannot start; 127 when the
// command is not found; 2 for bad usage.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/volt-cli/volt/sdk/confine"
)

type options struct {
	exec       bool
	policyPath string
	reportPath string
	argv       []string
}

func parseArgs(args []string) (options, error) {
	o := options{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch a {
		case "--exec":
			o.exec = true
		case "--policy", "--report":
			if i+1 >= len(args) {
				return o, fmt.Errorf("%s needs a file", a)
			}
			i++
			if a == "--policy" {
				o.policyPath = args[i]
			} else {
				o.reportPath = args[i]
			}
		case "--":
			o.argv = args[i+1:]
			i = len(args)
		default:
			if len(a) > 0 && a[0] == '-' {
				return o, fmt.Errorf("unknown flag %q", a)
			}
			o.argv = args[i:]
			i = len(args)
		}
	}
	if len(o.argv) == 0 {
		return o, errors.New("no command")
	}
	return o, nil
}

func main() {
	o, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "volt-init: %v\nusage: volt-init [--exec] [--policy FILE] [--report FILE] -- CMD [ARG...]\n", err)
		os.Exit(2)
	}
	os.Exit(run(o))
}

// fail reports err and returns code.
func fail(code int, format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "volt-init: "+format+"\n", args...)
	return code
}

func run(o options) int {
	// Signals are taken before anything else, so none is lost while the
	// policy is applied; they are forwarded once the command runs.
	sigs := make(chan os.Signal, 64)
	if !o.exec {
		signal.Notify(sigs)
		// Orphans re-parent to us even when we are not PID 1 (tests).
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	// Capabilities are per thread until exec: keep this goroutine on one.
	runtime.LockOSThread()
	var report *os.File
	if o.reportPath != "" {
		// Opened before Landlock applies: the report needs no write rule.
		f, err := os.OpenFile(o.reportPath, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o644)
		if err != nil {
			return fail(126, "report: %v", err)
		}
		report = f
	}
	rep, err := apply(o.policyPath)
	if err != nil {
		return fail(126, "%v", err)
	}
	if report != nil {
		b, _ := json.Marshal(rep)
		_, werr := report.Write(append(b, '\n'))
		if cerr := report.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fail(126, "report: %v", werr)
		}
	}
	path, err := exec.LookPath(o.argv[0])
	if err != nil {
		return fail(127, "%v", err)
	}
	if o.exec {
		err := syscall.Exec(path, o.argv, os.Environ())
		return fail(126, "exec %s: %v", path, err)
	}
	return supervise(path, o.argv, sigs)
}

// apply applies the policy in path ("" or an empty file: nothing) and
// reports what holds afterwards. Order: Landlock and seccomp while the
// capabilities that installing them may need are still there, then the
// capabilities are cut.
func apply(path string) (confine.InitReport, error) {
	var p confine.InitPolicy
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return confine.InitReport{}, fmt.Errorf("policy: %w", err)
		}
		if len(b) > 0 {
			if err := json.Unmarshal(b, &p); err != nil {
				return confine.InitReport{}, fmt.Errorf("policy %s: %w", path, err)
			}
		}
	}
	var rep confine.InitReport
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return rep, fmt.Errorf("no_new_privileges: %w", err)
		}
	}
	if p.Landlock != nil {
		lr, err := confine.ApplyLandlock(*p.Landlock)
		if err != nil {
			return rep, err
		}
		if !lr.Enforced && p.LandlockRequired {
			return rep, errors.New("landlock: the kernel refuses Landlock here although the host has it (a seccomp filter may block its system calls)")
		}
		rep.Landlock = &lr
	}
	if p.Seccomp != nil {
		if err := confine.ApplySeccomp(*p.Seccomp, false); err != nil {
			return rep, err
		}
		rep.Seccomp = true
		rep.SeccompRules = len(p.Seccomp.Syscalls)
	}
	if p.Capabilities != nil {
		if err := confine.LimitCapabilities(p.Capabilities); err != nil {
			return rep, fmt.Errorf("capabilities: %w", err)
		}
	}
	nnp, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	rep.NoNewPrivileges = nnp == 1
	rep.Capabilities = confine.BoundingCapabilities()
	return rep, nil
}

// supervise starts the command in its own process group, forwards every
// signal but SIGCHLD to that group, reaps all children and returns the
// command's exit status once it has exited.
func supervise(path string, argv []string, sigs chan os.Signal) int {
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return fail(126, "start %s: %v", path, err)
	}
	for {
		if code, done := reap(pid); done {
			return code
		}
		sig := <-sigs
		if sig == syscall.SIGCHLD || sig == syscall.SIGURG {
			continue // SIGURG: the Go runtime's own preemption signal
		}
		s := sig.(syscall.Signal)
		if err := syscall.Kill(-pid, s); err != nil {
			_ = syscall.Kill(pid, s) // the command left its group
		}
	}
}

// reap collects every exited child without blocking; done is true (with
// the exit code) once the command itself has exited.
func reap(cmd int) (code int, done bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return code, done
		}
		if pid == cmd {
			done = true
			code = ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
	}
}
