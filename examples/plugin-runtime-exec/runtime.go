package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/volt-cli/volt/sdk"
)

// version is this plugin's own version.
const version = "0.1.0"

// pollInterval is how often Start, Wait, Stop and Logs look at the state dir.
const pollInterval = 5 * time.Millisecond

// Runtime is the exec runtime. The zero value is ready to use; it keeps no
// state in memory, everything lives in each workload's state dir, so a new
// process (or a new Runtime) can take over any workload from its handle.
type Runtime struct{}

// handleData is what Start puts into sdk.Handle.Data.
type handleData struct {
	StateDir string `json:"state_dir"`
}

// Info describes the plugin.
func (r *Runtime) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "runtime-exec", Kind: sdk.KindRuntime, Version: version,
		APIVersions: []int{sdk.APIVersion}, Capabilities: []string{"exec", "logs-follow", "run"}}, nil
}

// Fingerprint reports whether chroot is available (it needs root).
func (r *Runtime) Fingerprint(context.Context) (sdk.Health, error) {
	if os.Geteuid() != 0 {
		return sdk.Health{Healthy: true, Detail: "plain exec (no chroot: not root)"}, nil
	}
	return sdk.Health{Healthy: true, Detail: "exec with chroot", Attributes: map[string]string{"chroot": "true"}}, nil
}

// Start writes the spec into spec.StateDir and launches a detached
// supervisor (this binary re-executed) that runs the command. It returns once
// the workload process exists.
func (r *Runtime) Start(ctx context.Context, spec sdk.WorkloadSpec) (sdk.Handle, error) {
	if spec.Name == "" || len(spec.Command) == 0 || spec.StateDir == "" {
		return sdk.Handle{}, fmt.Errorf("start: name, command and state dir are required: %w", sdk.ErrInvalid)
	}
	if spec.Root != "" && spec.Root != "/" && os.Geteuid() != 0 {
		return sdk.Handle{}, fmt.Errorf("start %q: chroot into %s needs root: %w", spec.Name, spec.Root, sdk.ErrUnsupported)
	}
	dir := spec.StateDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return sdk.Handle{}, fmt.Errorf("start %q: %w", spec.Name, err)
	}
	if _, err := os.Stat(filepath.Join(dir, specFile)); err == nil {
		return sdk.Handle{}, fmt.Errorf("start %q: state dir %s already holds a workload: %w", spec.Name, dir, sdk.ErrExists)
	}
	if err := writeJSON(filepath.Join(dir, specFile), spec); err != nil {
		return sdk.Handle{}, fmt.Errorf("start %q: write spec: %w", spec.Name, err)
	}
	self, err := os.Executable()
	if err != nil {
		return sdk.Handle{}, fmt.Errorf("start %q: %w", spec.Name, err)
	}
	sup := exec.Command(self)
	sup.Env = append(os.Environ(), superviseEnv+"="+dir)
	sup.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := sup.Start(); err != nil {
		return sdk.Handle{}, fmt.Errorf("start %q: supervisor: %w", spec.Name, err)
	}
	// Reap the supervisor if it ends while this process lives; if this process
	// ends first, init adopts it.
	go func() { _ = sup.Wait() }()
	h := sdk.Handle{Name: spec.Name}
	h.Data, _ = json.Marshal(handleData{StateDir: dir})
	for {
		var ex exitRecord
		if err := readJSON(filepath.Join(dir, exitFile), &ex); err == nil && ex.StartError != "" {
			return sdk.Handle{}, fmt.Errorf("start %q: %s: %w", spec.Name, ex.StartError, sdk.ErrInvalid)
		}
		if exists(filepath.Join(dir, pidFile)) || exists(filepath.Join(dir, exitFile)) {
			return h, nil
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return sdk.Handle{}, fmt.Errorf("start %q: %w", spec.Name, err)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// stateDir returns the workload's state dir from its handle, or ErrNotFound.
func stateDir(h sdk.Handle) (string, error) {
	var d handleData
	if err := json.Unmarshal(h.Data, &d); err != nil || d.StateDir == "" {
		return "", fmt.Errorf("workload %q: unreadable handle: %w", h.Name, sdk.ErrNotFound)
	}
	if !exists(filepath.Join(d.StateDir, specFile)) {
		return "", fmt.Errorf("workload %q: %w", h.Name, sdk.ErrNotFound)
	}
	return d.StateDir, nil
}

// Recover checks that the workload's state still exists.
func (r *Runtime) Recover(_ context.Context, h sdk.Handle) error {
	_, err := stateDir(h)
	return err
}

// Inspect reads the workload's state dir.
func (r *Runtime) Inspect(_ context.Context, h sdk.Handle) (sdk.WorkloadStatus, error) {
	dir, err := stateDir(h)
	if err != nil {
		return sdk.WorkloadStatus{}, err
	}
	return inspect(dir), nil
}

func inspect(dir string) sdk.WorkloadStatus {
	var p pidRecord
	_ = readJSON(filepath.Join(dir, pidFile), &p)
	st := sdk.WorkloadStatus{PID: p.PID, StartedAt: p.StartedAt}
	var ex exitRecord
	if err := readJSON(filepath.Join(dir, exitFile), &ex); err == nil {
		st.ExitCode = ex.Code
		st.State = sdk.StatusStopped
		if ex.Code != 0 && ex.Signal == "" {
			st.State = sdk.StatusFailed
			st.Reason = lastLine(filepath.Join(dir, logFile))
		}
		if ex.StartError != "" {
			st.State, st.Reason = sdk.StatusFailed, ex.StartError
		}
		return st
	}
	switch {
	case p.PID != 0 && startTicks(p.PID) == p.StartTicks:
		st.State = sdk.StatusRunning
	case p.SupervisorPID != 0 && startTicks(p.SupervisorPID) == p.SupervisorStartTicks:
		// The workload is gone and its supervisor is recording the exit.
		st.State = sdk.StatusRunning
	default:
		st.State = sdk.StatusUnknown
	}
	return st
}

func lastLine(path string) string {
	b, _ := os.ReadFile(path)
	b = bytes.TrimRight(b, "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}

// Wait polls until the supervisor records the exit, or ctx ends.
func (r *Runtime) Wait(ctx context.Context, h sdk.Handle) (sdk.WorkloadStatus, error) {
	dir, err := stateDir(h)
	if err != nil {
		return sdk.WorkloadStatus{}, err
	}
	for {
		st := inspect(dir)
		if st.State == sdk.StatusStopped || st.State == sdk.StatusFailed {
			return st, nil
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return sdk.WorkloadStatus{}, fmt.Errorf("wait %q: %w", h.Name, err)
		}
	}
}

// Stop sends SIGTERM, waits up to timeout for the exit, then SIGKILL.
// Stopping a stopped workload is not an error.
func (r *Runtime) Stop(ctx context.Context, h sdk.Handle, timeout time.Duration) error {
	dir, err := stateDir(h)
	if err != nil {
		return err
	}
	return stop(ctx, h.Name, dir, timeout)
}

func stop(ctx context.Context, name, dir string, timeout time.Duration) error {
	signal := func(sig syscall.Signal) {
		var p pidRecord
		if readJSON(filepath.Join(dir, pidFile), &p) == nil && p.PID > 0 && startTicks(p.PID) == p.StartTicks {
			_ = syscall.Kill(p.PID, sig)
		}
	}
	done := func() bool {
		s := inspect(dir).State
		return s != sdk.StatusRunning
	}
	if done() {
		return nil
	}
	signal(syscall.SIGTERM)
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			signal(syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return fmt.Errorf("stop %q: %w", name, err)
		}
	}
	return nil
}

// Destroy stops the workload and removes its state dir. Destroying a
// destroyed workload is not an error.
func (r *Runtime) Destroy(ctx context.Context, h sdk.Handle) error {
	dir, err := stateDir(h)
	if errors.Is(err, sdk.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := stop(ctx, h.Name, dir, 5*time.Second); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("destroy %q: %w", h.Name, err)
	}
	return nil
}

// Logs copies the log (its last tail lines when tail > 0). With follow it
// keeps copying new output until the workload has exited and its log is
// drained, or ctx ends.
func (r *Runtime) Logs(ctx context.Context, h sdk.Handle, follow bool, tail int, w io.Writer) error {
	dir, err := stateDir(h)
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(dir, logFile))
	if errors.Is(err, fs.ErrNotExist) && !follow {
		return nil
	}
	for errors.Is(err, fs.ErrNotExist) {
		if err := sleep(ctx, pollInterval); err != nil {
			return nil
		}
		f, err = os.Open(filepath.Join(dir, logFile))
	}
	if err != nil {
		return fmt.Errorf("logs %q: %w", h.Name, err)
	}
	defer f.Close()
	if tail > 0 {
		if err := seekTail(f, tail); err != nil {
			return fmt.Errorf("logs %q: %w", h.Name, err)
		}
	}
	br := bufio.NewReader(f)
	for {
		if _, err := io.Copy(w, br); err != nil {
			return fmt.Errorf("logs %q: %w", h.Name, err)
		}
		if !follow {
			return nil
		}
		if s := inspect(dir).State; s != sdk.StatusRunning {
			_, err := io.Copy(w, br)
			return err
		}
		if sleep(ctx, pollInterval) != nil {
			return nil
		}
	}
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int) error {
	b, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	off := len(b)
	for i := 0; i < n && off > 0; i++ {
		off = bytes.LastIndexByte(b[:off], '\n')
		if off < 0 {
			off = 0
			break
		}
	}
	if off > 0 {
		off++
	}
	_, err = f.Seek(int64(off), io.SeekStart)
	return err
}

// Exec runs a command in the workload's root (this runtime has no
// namespaces to enter: the command shares the workload's chroot only).
func (r *Runtime) Exec(ctx context.Context, h sdk.Handle, req sdk.ExecRequest) (int, error) {
	dir, err := stateDir(h)
	if err != nil {
		return -1, err
	}
	if len(req.Command) == 0 {
		return -1, fmt.Errorf("exec %q: empty command: %w", h.Name, sdk.ErrInvalid)
	}
	if inspect(dir).State != sdk.StatusRunning {
		return -1, fmt.Errorf("exec %q: workload is not running: %w", h.Name, sdk.ErrInvalid)
	}
	var spec sdk.WorkloadSpec
	if err := readJSON(filepath.Join(dir, specFile), &spec); err != nil {
		return -1, fmt.Errorf("exec %q: %w", h.Name, err)
	}
	env := map[string]string{}
	for k, v := range spec.Env {
		env[k] = v
	}
	for k, v := range req.Env {
		env[k] = v
	}
	cmd := command(spec.Root, spec.WorkingDir, req.Command, env)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = req.Stdin, req.Stdout, req.Stderr
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL // dies with the plugin
	return runCmd(ctx, cmd)
}

// Run runs a build step to completion in req.Root. As root it gets a fresh
// network namespace (network off).
func (r *Runtime) Run(ctx context.Context, req sdk.RunRequest) (int, error) {
	if len(req.Command) == 0 {
		return -1, fmt.Errorf("run: empty command: %w", sdk.ErrInvalid)
	}
	cmd := command(req.Root, req.WorkDir, req.Command, req.Env)
	cmd.Stdout, cmd.Stderr = req.Output, req.Output
	// A build step dies with the plugin, unlike a workload.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
	}
	return runCmd(ctx, cmd)
}

// runCmd runs cmd, killing it when ctx ends, and returns its exit code.
func runCmd(ctx context.Context, cmd *exec.Cmd) (int, error) {
	// A stdin reader that never ends must not keep Wait blocked after the exit.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("run %s: %v: %w", strings.Join(cmd.Args, " "), err, sdk.ErrInvalid)
	}
	stopKill := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	defer stopKill()
	err := cmd.Wait()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("run %s: %w", cmd.Args[0], err)
	}
	return 0, nil
}
