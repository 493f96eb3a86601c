package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/volt-cli/volt/sdk"
)

// superviseEnv names the state dir of the workload a re-executed plugin
// binary supervises.
const superviseEnv = "VOLT_EXEC_SUPERVISE"

// Files in a workload's state dir.
const (
	specFile = "spec.json" // the WorkloadSpec, written by Start
	pidFile  = "pid.json"  // the workload's pid and start tick, written by the supervisor
	exitFile = "exit.json" // the exit status, written by the supervisor when the workload ends
	logFile  = "log"       // combined stdout and stderr
)

// pidRecord identifies the running workload process; StartTicks guards
// against pid reuse.
type pidRecord struct {
	PID        int    `json:"pid"`
	StartTicks string `json:"start_ticks"`
	StartedAt  time.Time
	// The supervisor's own pid and start tick: while it lives, an exit is
	// about to be recorded.
	SupervisorPID        int    `json:"supervisor_pid"`
	SupervisorStartTicks string `json:"supervisor_start_ticks"`
}

// exitRecord is the final status of a workload.
type exitRecord struct {
	Code       int       `json:"code"`
	Signal     string    `json:"signal,omitempty"`
	StartError string    `json:"start_error,omitempty"`
	ExitedAt   time.Time `json:"exited_at"`
}

// supervise runs the workload described in dir/spec.json, waits for it and
// records its exit in dir/exit.json. It returns the process exit status.
func supervise(dir string) int {
	// Catch (not ignore) these: ignored signals would stay ignored in the
	// workload across exec, caught ones are reset to their defaults.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	var spec sdk.WorkloadSpec
	if err := readJSON(filepath.Join(dir, specFile), &spec); err != nil {
		return recordExit(dir, exitRecord{Code: 127, StartError: err.Error()})
	}
	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return recordExit(dir, exitRecord{Code: 127, StartError: err.Error()})
	}
	defer logf.Close()
	cmd := command(spec.Root, spec.WorkingDir, spec.Command, spec.Env)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(logf, "start: %v\n", err)
		return recordExit(dir, exitRecord{Code: 127, StartError: err.Error()})
	}
	rec := pidRecord{PID: cmd.Process.Pid, StartTicks: startTicks(cmd.Process.Pid), StartedAt: time.Now(),
		SupervisorPID: os.Getpid(), SupervisorStartTicks: startTicks(os.Getpid())}
	if err := writeJSON(filepath.Join(dir, pidFile), rec); err != nil {
		_ = cmd.Process.Kill()
	}
	err = cmd.Wait()
	ex := exitRecord{}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			ex.Code, ex.Signal = 128+int(ws.Signal()), ws.Signal().String()
		} else {
			ex.Code = ws.ExitStatus()
		}
	default:
		ex.Code = 127
	}
	return recordExit(dir, ex)
}

func recordExit(dir string, ex exitRecord) int {
	ex.ExitedAt = time.Now()
	if err := writeJSON(filepath.Join(dir, exitFile), ex); err != nil {
		return 1
	}
	return 0
}

// command builds the exec.Cmd for a workload or build step: chrooted into
// root unless root is "" or "/".
func command(root, wd string, argv []string, env map[string]string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = wd
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if root != "" && root != "/" {
		cmd.SysProcAttr.Chroot = root
		if wd == "" {
			cmd.Dir = "/"
		}
	}
	return cmd
}

// startTicks returns field 22 of /proc/PID/stat (start time in clock ticks),
// or "" when the process does not exist.
func startTicks(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) may contain spaces; fields resume after the last ')'.
	s := string(b)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ')' {
			s = s[i+1:]
			break
		}
	}
	var f []string
	start := -1
	for i, c := range s {
		if c == ' ' || c == '\n' {
			if start >= 0 {
				f = append(f, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	// After ')' the first field is field 3 (state); start time is field 22.
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// writeJSON publishes v at path atomically: temp file in the same dir,
// fsync, rename, fsync dir.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
