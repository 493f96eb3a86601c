package nspawn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// systemdPID1 reports whether systemd is the init system (the sd_booted test).
func systemdPID1() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// unitName is the transient unit of a workload.
func unitName(machine string) string { return "volt-container@" + machine + ".service" }

// systemdSup is the supervisor for hosts with systemd as PID 1: a transient
// unit volt-container@NAME.service made with systemd-run, logs in the journal.
// This machine has no systemd PID 1, so it is not exercised by the tests.
type systemdSup struct{}

func (systemdSup) launch(ctx context.Context, spec sdk.WorkloadSpec, nspawn string, args, _ []string, lim limitReq, withInit bool) (*handleData, error) {
	if err := os.MkdirAll(spec.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("start %q: create state dir: %w", spec.Name, err)
	}
	unit := unitName(spec.Name)
	_ = os.Remove(filepath.Join(spec.StateDir, fileStopMarker))
	// A failed unit of an earlier run would block the name.
	_ = exec.CommandContext(ctx, "systemctl", "reset-failed", unit).Run()
	run := []string{"--unit=" + unit, "--quiet", "--collect=no",
		"--property=KillSignal=SIGTERM", "--property=KillMode=mixed",
		"--property=Delegate=yes", "--description=Volt container " + spec.Name}
	if lim.memoryBytes > 0 {
		run = append(run, "--property=MemoryMax="+strconv.FormatInt(lim.memoryBytes, 10))
	}
	if lim.cpus > 0 {
		run = append(run, fmt.Sprintf("--property=CPUQuota=%d%%", int(lim.cpus*100)))
	}
	run = append(run, "--", nspawn)
	run = append(run, args...)
	startedAt := time.Now().UTC()
	if out, err := exec.CommandContext(ctx, "systemd-run", run...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("start %q: systemd-run: %w: %s", spec.Name, err, bytes.TrimSpace(out))
	}
	if err := atomicfile.WriteFile(filepath.Join(spec.StateDir, fileUnit), []byte(unit+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("start %q: %w", spec.Name, err)
	}
	hd := &handleData{Version: handleVersion, Supervisor: SupervisorSystemd, Machine: spec.Name, Root: spec.Root,
		StateDir: spec.StateDir, Unit: unit, StartedAt: startedAt, Init: initFor(withInit)}
	props, err := showUnit(ctx, unit)
	if err == nil {
		hd.PID, _ = strconv.Atoi(props["MainPID"])
		if pi, err := readProc(hd.PID); err == nil {
			hd.StartTime = pi.StartTime
		}
	}
	return hd, nil
}

// showUnit runs systemctl show for the properties Volt reads.
func showUnit(ctx context.Context, unit string) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "systemctl", "show", unit,
		"--property=LoadState,ActiveState,MainPID,ExecMainStatus,ExecMainCode,ExecMainExitTimestamp").Output()
	if err != nil {
		return nil, fmt.Errorf("systemctl show %s: %w", unit, err)
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

func (systemdSup) state(ctx context.Context, hd *handleData) (procState, error) {
	if _, err := os.Stat(filepath.Join(hd.StateDir, fileUnit)); err != nil {
		return procState{}, fmt.Errorf("workload %q: %w", hd.Machine, sdk.ErrNotFound)
	}
	p, err := showUnit(ctx, hd.Unit)
	if err != nil {
		return procState{}, fmt.Errorf("workload %q: %w", hd.Machine, err)
	}
	switch p["ActiveState"] {
	case "active", "activating", "deactivating", "reloading":
		pid, _ := strconv.Atoi(p["MainPID"])
		return procState{running: true, pid: pid}, nil
	case "failed":
		code, _ := strconv.Atoi(p["ExecMainStatus"])
		rec := exitRecord{ExitCode: code}
		if p["ExecMainCode"] == "2" { // CLD_KILLED: ExecMainStatus is the signal
			rec.Signal = syscall.Signal(code).String()
			rec.ExitCode = 128 + code
		}
		return procState{exited: true, rec: rec}, nil
	default:
		// inactive or garbage-collected after a clean exit.
		return procState{exited: true, rec: exitRecord{}}, nil
	}
}

func (systemdSup) signal(ctx context.Context, hd *handleData, sig syscall.Signal) error {
	out, err := exec.CommandContext(ctx, "systemctl", "kill", "--kill-whom=main", "--signal="+strconv.Itoa(int(sig)), hd.Unit).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("not loaded")) {
		return fmt.Errorf("signal %q: systemctl kill: %w: %s", hd.Machine, err, bytes.TrimSpace(out))
	}
	return nil
}

func (systemdSup) kill(ctx context.Context, hd *handleData) {
	_ = exec.CommandContext(ctx, "systemctl", "kill", "--kill-whom=all", "--signal=SIGKILL", hd.Unit).Run()
}

func (systemdSup) waitChange(ctx context.Context, _ *handleData, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(min(d, 200*time.Millisecond)):
	}
}

func (systemdSup) logs(ctx context.Context, hd *handleData, follow bool, tail int, w io.Writer) error {
	args := []string{"--unit=" + hd.Unit, "--output=cat", "--no-pager", "--quiet"}
	if tail > 0 {
		args = append(args, "--lines="+strconv.Itoa(tail))
	}
	if follow {
		args = append(args, "--follow")
	}
	nf := newNoiseFilter(w)
	cmd := exec.CommandContext(ctx, "journalctl", args...)
	cmd.Stdout = nf
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	_ = nf.Flush()
	if err != nil && !(follow && ctx.Err() != nil) {
		return fmt.Errorf("logs of %q: journalctl: %w: %s", hd.Machine, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

func (systemdSup) release(ctx context.Context, hd *handleData) error {
	_ = exec.CommandContext(ctx, "systemctl", "stop", hd.Unit).Run()
	_ = exec.CommandContext(ctx, "systemctl", "reset-failed", hd.Unit).Run()
	for _, f := range []string{fileStopMarker, fileUnit} {
		if err := os.Remove(filepath.Join(hd.StateDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("destroy %q: %w", hd.Machine, err)
		}
	}
	_ = os.Remove(hd.StateDir)
	return nil
}
