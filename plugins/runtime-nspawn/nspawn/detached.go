package nspawn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// procState is what a supervisor knows about a workload's process.
type procState struct {
	running bool
	exited  bool       // an exit status was recorded
	rec     exitRecord // valid when exited
	pid     int        // systemd-nspawn's pid while running
}

// supervisor keeps systemd-nspawn running detached from the plugin.
type supervisor interface {
	// launch starts nspawn with args under the supervisor and returns the handle data.
	launch(ctx context.Context, spec sdk.WorkloadSpec, nspawn string, args, cgroups []string, limits limitReq, withInit bool) (*handleData, error)
	// state reports the workload's state; ErrNotFound when its state is gone.
	state(ctx context.Context, hd *handleData) (procState, error)
	// signal sends sig to systemd-nspawn.
	signal(ctx context.Context, hd *handleData, sig syscall.Signal) error
	// kill SIGKILLs every process of the workload.
	kill(ctx context.Context, hd *handleData)
	// waitChange blocks until the workload may have changed state, at most d.
	waitChange(ctx context.Context, hd *handleData, d time.Duration)
	// logs writes the workload's log.
	logs(ctx context.Context, hd *handleData, follow bool, tail int, w io.Writer) error
	// release removes the supervisor's state for a stopped workload.
	release(ctx context.Context, hd *handleData) error
}

// limitReq is the resource limits a workload asked for.
type limitReq struct {
	memoryBytes int64
	cpus        float64
}

// shimScript is the detached supervisor, run by /bin/sh in its own session
// with stdout/stderr on the log and the sync pipe on fd 3. Arguments: state
// dir, cgroup dirs (newline-separated), systemd-nspawn and its arguments. It
// joins the cgroups, starts nspawn (without fd 3), reports "ok PID" or
// "error MSG" on fd 3, forwards SIGTERM/SIGINT/SIGHUP to nspawn, and when
// nspawn exits publishes exit.json (temp file, fsync, rename).
const shimScript = `unset VOLT_NSPAWN_SHIM
dir=$1; cgroups=$2; shift 2
IFS='
'
for g in $cgroups; do
  if ! echo $$ > "$g/cgroup.procs"; then
    echo "volt: cannot join cgroup $g"
    echo "error cannot join cgroup $g" >&3
    printf '{"exitCode":127,"error":"cannot join cgroup"}\n' > "$dir/.exit.json.tmp" && mv -f "$dir/.exit.json.tmp" "$dir/exit.json"
    exit 1
  fi
done
unset IFS
pid=
trap '[ -n "$pid" ] && kill -TERM $pid 2>/dev/null' TERM
trap '[ -n "$pid" ] && kill -INT $pid 2>/dev/null' INT
trap '[ -n "$pid" ] && kill -HUP $pid 2>/dev/null' HUP
"$@" 3>&- </dev/null &
pid=$!
echo "ok $pid" >&3
exec 3>&-
while :; do
  wait $pid; rc=$?
  kill -0 $pid 2>/dev/null || break
done
printf '{"exitCode":%d,"finishedAt":"%s"}\n' "$rc" "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" > "$dir/.exit.json.tmp" &&
  sync "$dir/.exit.json.tmp" 2>/dev/null
mv -f "$dir/.exit.json.tmp" "$dir/exit.json" && sync "$dir" 2>/dev/null
`

// detached is the supervisor for hosts without systemd as PID 1: a shell
// shim (shimScript) in its own session that outlives the plugin, with
// pidfiles, a log file and an exit record in the state dir.
type detached struct{}

func (detached) launch(ctx context.Context, spec sdk.WorkloadSpec, nspawn string, args, cgroups []string, _ limitReq, withInit bool) (*handleData, error) {
	dir := spec.StateDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("start %q: create state dir: %w", spec.Name, err)
	}
	if pid, st, err := readPIDFile(filepath.Join(dir, fileSupPID)); err == nil && alive(pid, st) {
		if _, exited, _ := readExit(filepath.Join(dir, fileExit)); !exited {
			return nil, fmt.Errorf("start %q: %w: already running (supervisor pid %d)", spec.Name, sdk.ErrExists, pid)
		}
	}
	for _, f := range []string{fileExit, fileStopMarker, fileNspawnPID, fileSupPID} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("start %q: clear old state: %w", spec.Name, err)
		}
	}
	logPath := filepath.Join(dir, fileLog)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("start %q: open log: %w", spec.Name, err)
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %q: sync pipe: %w", spec.Name, err)
	}
	defer pr.Close()
	cmd := &exec.Cmd{
		Path: "/bin/sh",
		// The script travels in the environment so that ps shows the command.
		Args:        append([]string{"/bin/sh", "-c", `eval "$VOLT_NSPAWN_SHIM"`, "volt-nspawn-shim", dir, strings.Join(cgroups, "\n"), nspawn}, args...),
		Env:         []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "VOLT_NSPAWN_SHIM=" + shimScript},
		Dir:         "/",
		Stdout:      logf,
		Stderr:      logf,
		ExtraFiles:  []*os.File{pw},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	startedAt := time.Now().UTC()
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return nil, fmt.Errorf("start %q: start supervisor: %w", spec.Name, err)
	}
	supPID := cmd.Process.Pid
	supInfo, _ := readProc(supPID) // read before anything can reap it
	// Reap the shim if this process outlives it; otherwise it is reparented.
	go func() { _ = cmd.Wait() }()

	stop := context.AfterFunc(ctx, func() { _ = pr.SetReadDeadline(time.Now()) })
	defer stop()
	line, rerr := bufio.NewReader(pr).ReadString('\n')
	var nsPID int
	var nsStart uint64
	switch {
	case strings.HasPrefix(line, "ok "):
		if _, err := fmt.Sscan(line[3:], &nsPID); err != nil {
			return nil, fmt.Errorf("start %q: supervisor said %q: %w", spec.Name, line, err)
		}
		if pi, err := readProc(nsPID); err == nil {
			nsStart = pi.StartTime
		} else {
			nsStart = 1 // already gone: never matches a live process
		}
	case strings.HasPrefix(line, "error "):
		return nil, fmt.Errorf("start %q: %s", spec.Name, strings.TrimSpace(line[6:]))
	default:
		// Cancelled or the shim died: make sure nothing is left running.
		_ = syscall.Kill(-supPID, syscall.SIGTERM)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start %q: %w", spec.Name, ctx.Err())
		}
		return nil, fmt.Errorf("start %q: supervisor exited before starting systemd-nspawn (%v); log: %s", spec.Name, rerr, reasonFromLog(logPath))
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, fileNspawnPID), pidFileContent(nsPID, nsStart), 0o644); err != nil {
		return nil, fmt.Errorf("start %q: %w", spec.Name, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, fileSupPID), pidFileContent(supPID, supInfo.StartTime), 0o644); err != nil {
		return nil, fmt.Errorf("start %q: %w", spec.Name, err)
	}
	return &handleData{
		Version:             handleVersion,
		Supervisor:          SupervisorDetached,
		Machine:             spec.Name,
		Root:                spec.Root,
		StateDir:            dir,
		PID:                 nsPID,
		StartTime:           nsStart,
		SupervisorPID:       supPID,
		SupervisorStartTime: supInfo.StartTime,
		PIDFile:             filepath.Join(dir, fileNspawnPID),
		LogFile:             logPath,
		ExitFile:            filepath.Join(dir, fileExit),
		Cgroups:             cgroups,
		StartedAt:           startedAt,
		Init:                initFor(withInit),
	}, nil
}

func (detached) state(_ context.Context, hd *handleData) (procState, error) {
	if _, err := os.Stat(hd.LogFile); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return procState{}, fmt.Errorf("workload %q: %w (no state in %s)", hd.Machine, sdk.ErrNotFound, hd.StateDir)
		}
		return procState{}, fmt.Errorf("workload %q: %w", hd.Machine, err)
	}
	for attempt := 0; attempt < 2; attempt++ {
		rec, ok, err := readExit(hd.ExitFile)
		if err != nil {
			return procState{}, fmt.Errorf("workload %q: %w", hd.Machine, err)
		}
		if ok {
			return procState{exited: true, rec: rec}, nil
		}
		if attempt == 0 && (alive(hd.SupervisorPID, hd.SupervisorStartTime) || alive(hd.PID, hd.StartTime)) {
			return procState{running: true, pid: hd.PID}, nil
		}
		// Not alive: look at the exit record once more, the shim may just
		// have written it and exited.
	}
	return procState{}, nil
}

func (detached) signal(_ context.Context, hd *handleData, sig syscall.Signal) error {
	if !signalIfAlive(hd.PID, hd.StartTime, sig) {
		return nil // already gone
	}
	return nil
}

// initFor is Handle.Init for a container started with or without tini.
func initFor(withInit bool) string {
	if withInit {
		return initPath
	}
	return ""
}

// waitReady waits (at most bound) until the container's PID 1 has been
// exec'd and, when it is tini, is waiting for SIGTERM, so that a Stop right
// after Start is not lost: a pid namespace's init drops signals it has
// neither blocked nor caught. It returns early when nspawn exits.
func waitReady(ctx context.Context, nspawnPID int, nspawnStart uint64, withInit bool, bound time.Duration) {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) && ctx.Err() == nil && alive(nspawnPID, nspawnStart) {
		if init, err := containerInit(nspawnPID); err == nil {
			if s, err := readSigState(init); err == nil && s.ExecComplete && (!withInit || s.TermHandled || s.TiniReady) {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// containerInit finds the container's PID 1 (as seen on the host): the child
// of systemd-nspawn that lives in another pid namespace.
func containerInit(nspawnPID int) (int, error) {
	kids, err := childrenOf(nspawnPID)
	if err != nil {
		return 0, err
	}
	self, _ := os.Readlink("/proc/self/ns/pid")
	for _, k := range kids {
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", k)); err == nil && ns != self {
			return k, nil
		}
	}
	return 0, fmt.Errorf("no container process under systemd-nspawn pid %d", nspawnPID)
}

func (detached) kill(_ context.Context, hd *handleData) {
	if alive(hd.PID, hd.StartTime) {
		if init, err := containerInit(hd.PID); err == nil {
			// Killing a pid namespace's init kills the whole namespace.
			_ = syscall.Kill(init, syscall.SIGKILL)
		}
		_ = syscall.Kill(hd.PID, syscall.SIGKILL)
	}
	killCgroups(hd.Cgroups)
}

func (detached) waitChange(ctx context.Context, hd *handleData, d time.Duration) {
	fd, err := unix.PidfdOpen(hd.SupervisorPID, 0)
	if err != nil || !alive(hd.SupervisorPID, hd.SupervisorStartTime) {
		if err == nil {
			unix.Close(fd)
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(d, 20*time.Millisecond)):
		}
		return
	}
	defer unix.Close(fd)
	_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(d.Milliseconds()))
}

func (detached) logs(ctx context.Context, hd *handleData, follow bool, tail int, w io.Writer) error {
	b, off, err := readTail(hd.LogFile, tail)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("logs of %q: %w", hd.Machine, sdk.ErrNotFound)
		}
		return fmt.Errorf("logs of %q: %w", hd.Machine, err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("logs of %q: %w", hd.Machine, err)
	}
	if !follow {
		return nil
	}
	if err := followFile(ctx, hd.LogFile, off, w); err != nil {
		return fmt.Errorf("logs of %q: %w", hd.Machine, err)
	}
	return nil
}

func (d detached) release(ctx context.Context, hd *handleData) error {
	// The shim outlives nspawn by the time it takes to publish exit.json;
	// it sits in the workload's cgroups, which can only be removed after it.
	deadline := time.Now().Add(2 * time.Second)
	for alive(hd.SupervisorPID, hd.SupervisorStartTime) && time.Now().Before(deadline) && ctx.Err() == nil {
		d.waitChange(ctx, hd, 100*time.Millisecond)
	}
	for _, f := range []string{fileExit, fileStopMarker, fileNspawnPID, fileSupPID, fileLog} {
		if err := os.Remove(filepath.Join(hd.StateDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("destroy %q: %w", hd.Machine, err)
		}
	}
	_ = os.Remove(hd.StateDir) // only when empty: the dir may be shared with the host
	return nil
}
