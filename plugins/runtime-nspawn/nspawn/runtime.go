// Package nspawn implements sdk.Runtime over systemd-nspawn: containers
// started detached from the plugin (so they outlive it and the CLI),
// recovered in later processes from their Handle, stopped gracefully through
// an init shim (tini) as PID 1, with logs, exec (nsenter) and build steps.
//
// Two supervisors sit behind the runtime. With systemd as PID 1 a workload is
// a transient unit volt-container@NAME.service (logs in the journal).
// Without it (containers, CI) a small /bin/sh shim runs in its own session
// (so it outlives the plugin and the CLI), starts systemd-nspawn and, when it
// exits, writes its exit status into WorkloadSpec.StateDir; the container's
// output goes to StateDir/console.log.
package nspawn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// Version is the plugin's own version.
const Version = "0.1.0"

// ErrNotRunning is returned by Exec when the workload is not running.
var ErrNotRunning = errors.New("workload not running")

// Options configure a Runtime. The zero value finds everything on PATH.
type Options struct {
	// Nspawn is the systemd-nspawn binary; "" looks it up on PATH.
	Nspawn string
	// Nsenter is the nsenter binary used by Exec; "" looks it up on PATH.
	Nsenter string
	// Tini is a statically linked tini on the host, copied into each rootfs
	// as /.volt/tini and run as the container's PID 1. "" looks for
	// tini-static on PATH and in /usr/bin; "none" runs the command as PID 1
	// (then a payload without a SIGTERM handler is only stopped by SIGKILL).
	Tini string
	// Init is Volt's static init (cmd/volt-init) on the host, bind-mounted
	// into each container as its PID 1; it applies seccomp and Landlock.
	// "" looks for volt-init next to the plugin's binary, then on PATH;
	// "none" falls back to Tini.
	Init string
	// Supervisor forces SupervisorDetached or SupervisorSystemd; "" picks
	// systemd when it is PID 1 and systemd-run exists, detached otherwise.
	Supervisor string
	// CgroupRoot is where cgroup v1 controllers are mounted; "" is /sys/fs/cgroup.
	CgroupRoot string
	// StopTimeout bounds the graceful part of Destroy; 0 is 10 s.
	StopTimeout time.Duration
}

// Runtime is the systemd-nspawn sdk.Runtime. It keeps no state in memory
// between calls: every call works from the Handle, so a Runtime made in a
// later process serves handles made by an earlier one.
type Runtime struct {
	opts Options
	cg   cgroupV1
}

var _ sdk.Runtime = (*Runtime)(nil)

// New returns a Runtime with opts.
func New(opts Options) *Runtime {
	if opts.CgroupRoot == "" {
		opts.CgroupRoot = "/sys/fs/cgroup"
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 10 * time.Second
	}
	return &Runtime{opts: opts, cg: cgroupV1{root: opts.CgroupRoot}}
}

func (r *Runtime) nspawnPath() (string, error) {
	name := r.opts.Nspawn
	if name == "" {
		name = "systemd-nspawn"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("systemd-nspawn not found (install systemd-container): %w", sdk.ErrUnsupported)
	}
	return p, nil
}

// tiniPath returns the host's static tini, or "" when there is none.
func (r *Runtime) tiniPath() string {
	switch r.opts.Tini {
	case "none":
		return ""
	case "":
		if p, err := exec.LookPath("tini-static"); err == nil {
			return p
		}
		if _, err := os.Stat("/usr/bin/tini-static"); err == nil {
			return "/usr/bin/tini-static"
		}
		return ""
	default:
		return r.opts.Tini
	}
}

func (r *Runtime) supervisorKind() string {
	if r.opts.Supervisor != "" {
		return r.opts.Supervisor
	}
	if systemdPID1() {
		if _, err := exec.LookPath("systemd-run"); err == nil {
			return SupervisorSystemd
		}
	}
	return SupervisorDetached
}

func supervisorFor(kind string) (supervisor, error) {
	switch kind {
	case SupervisorDetached:
		return detached{}, nil
	case SupervisorSystemd:
		return systemdSup{}, nil
	}
	return nil, fmt.Errorf("supervisor %q: %w", kind, sdk.ErrInvalid)
}

// Info implements sdk.Runtime.
func (r *Runtime) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:         "runtime-nspawn",
		Kind:         sdk.KindRuntime,
		Version:      Version,
		APIVersions:  []int{1},
		Capabilities: []string{"exec", "logs-follow", "recover", "run", "mounts", "network:host", "network:none", "limits:memory", "limits:cpu"},
	}, nil
}

// limitsSupport describes the limits this host enforces for the given supervisor.
func (r *Runtime) limitsSupport(kind string) (memory, cpu bool, desc string) {
	if kind == SupervisorSystemd {
		return true, true, "memory,cpu (systemd unit properties)"
	}
	memory, cpu = r.cg.support()
	var have []string
	if memory {
		have = append(have, "memory")
	}
	if cpu {
		have = append(have, "cpu")
	}
	if len(have) == 0 {
		return false, false, "unsupported on this host"
	}
	return memory, cpu, strings.Join(have, ",") + " (cgroup v1)"
}

// Fingerprint implements sdk.Runtime: healthy when systemd-nspawn is present
// and we are root. Attributes: nspawn.path, nspawn.version, supervisor,
// limits, init, exec.
func (r *Runtime) Fingerprint(ctx context.Context) (sdk.Health, error) {
	attrs := map[string]string{}
	path, err := r.nspawnPath()
	if err != nil {
		return sdk.Health{Healthy: false, Detail: "systemd-nspawn not found", Attributes: attrs}, nil
	}
	attrs["nspawn.path"] = path
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return sdk.Health{Healthy: false, Detail: fmt.Sprintf("systemd-nspawn --version failed: %v", err), Attributes: attrs}, nil
	}
	ver := parseNspawnVersion(out)
	attrs["nspawn.version"] = ver
	kind := r.supervisorKind()
	attrs["supervisor"] = kind
	_, _, limits := r.limitsSupport(kind)
	attrs["limits"] = limits
	if p := r.voltInitHost(); p != "" {
		attrs["init"] = "volt-init " + p
	} else if t := r.tiniPath(); t != "" {
		attrs["init"] = "tini " + t
	} else {
		attrs["init"] = "none (command is PID 1)"
	}
	if p, err := exec.LookPath(r.nsenterName()); err == nil {
		attrs["exec"] = "nsenter " + p
	} else {
		attrs["exec"] = "unavailable (nsenter not found)"
	}
	if os.Geteuid() != 0 {
		return sdk.Health{Healthy: false, Detail: "systemd-nspawn needs root", Attributes: attrs}, nil
	}
	return sdk.Health{
		Healthy:    true,
		Detail:     fmt.Sprintf("systemd-nspawn %s, %s supervisor, limits: %s", ver, kind, limits),
		Attributes: attrs,
	}, nil
}

// parseNspawnVersion turns "systemd 252 (252.39-1~deb12u2)\n+PAM ..." into "252".
func parseNspawnVersion(out []byte) string {
	line, _, _ := bytes.Cut(out, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) >= 2 && f[0] == "systemd" {
		return f[1]
	}
	return "unknown"
}

func (r *Runtime) nsenterName() string {
	if r.opts.Nsenter != "" {
		return r.opts.Nsenter
	}
	return "nsenter"
}

// prepareRoot makes the rootfs usable by nspawn: it must be a directory with
// /usr, and (when tini is available) /.volt/tini. It reports whether tini is installed.
func prepareRoot(root, tini string) (bool, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return false, fmt.Errorf("rootfs %q: %w", root, err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("rootfs %q: %w: not a directory", root, sdk.ErrInvalid)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr"), 0o755); err != nil {
		return false, fmt.Errorf("rootfs %q: create /usr: %w", root, err)
	}
	if tini == "" {
		return false, nil
	}
	if err := installFile(tini, filepath.Join(root, initPath)); err != nil {
		return false, fmt.Errorf("rootfs %q: install init shim: %w", root, err)
	}
	return true, nil
}

// installFile copies src to dst (mode 0755, src's mtime) unless dst already
// has src's size and mtime; dst is published atomically.
func installFile(src, dst string) error {
	si, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("stat %q: %w", src, err)
	}
	if di, err := os.Lstat(dst); err == nil && di.Mode().IsRegular() && di.Size() == si.Size() && di.ModTime().Equal(si.ModTime()) {
		return nil
	}
	if fi, err := os.Lstat(filepath.Dir(dst)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%q is a symlink: %w", filepath.Dir(dst), sdk.ErrInvalid)
	}
	sb, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read %q: %w", src, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("create %q: %w", filepath.Dir(dst), err)
	}
	if err := atomicfile.WriteFile(dst, sb, 0o755); err != nil {
		return err
	}
	if err := os.Chtimes(dst, si.ModTime(), si.ModTime()); err != nil {
		return fmt.Errorf("set mtime of %q: %w", dst, err)
	}
	return nil
}

// Start implements sdk.Runtime. The rootfs gets /usr (if missing) and
// /.volt/tini; the state dir gets the supervisor's files. Asking for limits
// the host cannot enforce is not an error: Inspect's Detail["limits"] says
// they were ignored.
func (r *Runtime) Start(ctx context.Context, spec sdk.WorkloadSpec) (sdk.Handle, error) {
	nspawn, err := r.nspawnPath()
	if err != nil {
		return sdk.Handle{}, fmt.Errorf("start %q: %w", spec.Name, err)
	}
	if !filepath.IsAbs(spec.StateDir) {
		return sdk.Handle{}, fmt.Errorf("start %q: state dir %q: %w: not absolute", spec.Name, spec.StateDir, sdk.ErrInvalid)
	}
	sh, err := r.pickShim(spec)
	if err != nil {
		return sdk.Handle{}, fmt.Errorf("start: %w", err)
	}
	if _, err := workloadArgs(spec, sh); err != nil { // validate before touching anything
		return sdk.Handle{}, fmt.Errorf("start: %w", err)
	}
	tini := ""
	if sh.kind == shimTini {
		tini = sh.path
	}
	if _, err := prepareRoot(spec.Root, tini); err != nil {
		return sdk.Handle{}, fmt.Errorf("start %q: %w", spec.Name, err)
	}
	if err := mountPoints(spec); err != nil {
		return sdk.Handle{}, fmt.Errorf("start %q: %w", spec.Name, err)
	}
	if sh.kind == shimVoltInit {
		if err := prepareVoltInit(spec); err != nil {
			return sdk.Handle{}, fmt.Errorf("start %q: %w", spec.Name, err)
		}
	}
	withInit := sh.kind != shimNone
	args, err := workloadArgs(spec, sh)
	if err != nil {
		return sdk.Handle{}, fmt.Errorf("start: %w", err)
	}
	kind := r.supervisorKind()
	sup, err := supervisorFor(kind)
	if err != nil {
		return sdk.Handle{}, fmt.Errorf("start %q: %w", spec.Name, err)
	}
	lim := limitReq{memoryBytes: spec.MemoryBytes, cpus: spec.CPUs}
	var cgroups []string
	var limitNote []string
	if lim.memoryBytes > 0 || lim.cpus > 0 {
		mem, cpu, desc := r.limitsSupport(kind)
		if lim.memoryBytes > 0 {
			if mem {
				limitNote = append(limitNote, fmt.Sprintf("memory=%d", lim.memoryBytes))
			} else {
				limitNote = append(limitNote, "memory ignored (unsupported on this host)")
				lim.memoryBytes = 0
			}
		}
		if lim.cpus > 0 {
			if cpu {
				limitNote = append(limitNote, fmt.Sprintf("cpus=%g", lim.cpus))
			} else {
				limitNote = append(limitNote, "cpus ignored (unsupported on this host)")
				lim.cpus = 0
			}
		}
		if lim.memoryBytes > 0 || lim.cpus > 0 {
			limitNote = append(limitNote, "via "+desc)
		}
	}
	if kind == SupervisorDetached && (lim.memoryBytes > 0 || lim.cpus > 0) {
		cgroups, err = r.cg.prepare(spec.Name, lim.memoryBytes, lim.cpus)
		if err != nil {
			return sdk.Handle{}, fmt.Errorf("start %q: %w", spec.Name, err)
		}
	}
	hd, err := sup.launch(ctx, spec, nspawn, args, cgroups, lim, withInit)
	if err != nil {
		r.cg.remove(cgroups)
		return sdk.Handle{}, err
	}
	hd.Limits = strings.Join(limitNote, ", ")
	if sh.kind == shimVoltInit {
		hd.Init = voltInitPath
	}
	hd.Security = securitySummary(spec, sh)
	return encodeHandle(hd)
}

// load decodes a handle and picks its supervisor. Cgroup dirs are never
// taken from the handle as is: only this runtime's own groups for the
// machine are kept.
func (r *Runtime) load(h sdk.Handle) (*handleData, supervisor, error) {
	hd, err := decodeHandle(h)
	if err != nil {
		return nil, nil, err
	}
	sup, err := supervisorFor(hd.Supervisor)
	if err != nil {
		return nil, nil, err
	}
	var cg []string
	for _, d := range hd.Cgroups {
		for _, ctl := range []string{"memory", "cpu"} {
			if d == filepath.Join(r.cg.root, ctl, "volt", hd.Machine) {
				cg = append(cg, d)
			}
		}
	}
	hd.Cgroups = cg
	return hd, sup, nil
}

// Recover implements sdk.Runtime: nil when the workload's process is still the
// one Start made (pid and start time match); ErrNotFound when it has exited
// or its state is gone (Inspect still reports how an exited one ended).
func (r *Runtime) Recover(ctx context.Context, h sdk.Handle) error {
	hd, sup, err := r.load(h)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	st, err := sup.state(ctx, hd)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if !st.running {
		return fmt.Errorf("recover %q: %w: not running", hd.Machine, sdk.ErrNotFound)
	}
	return nil
}

// Inspect implements sdk.Runtime. An exit status of 0, or any exit after
// Stop, is "stopped"; any other exit is "failed" with the last line of the
// log as Reason. A workload whose supervisor vanished without recording an
// exit (host reboot, kill -9 of the shim) is "failed" with ExitCode -1.
func (r *Runtime) Inspect(ctx context.Context, h sdk.Handle) (sdk.WorkloadStatus, error) {
	hd, sup, err := r.load(h)
	if err != nil {
		return sdk.WorkloadStatus{}, fmt.Errorf("inspect: %w", err)
	}
	st, err := sup.state(ctx, hd)
	if err != nil {
		return sdk.WorkloadStatus{}, fmt.Errorf("inspect: %w", err)
	}
	return r.status(ctx, hd, sup, st), nil
}

func (r *Runtime) status(ctx context.Context, hd *handleData, sup supervisor, st procState) sdk.WorkloadStatus {
	ws := sdk.WorkloadStatus{
		StartedAt: hd.StartedAt,
		Detail: map[string]string{
			"supervisor": hd.Supervisor,
			"machine":    hd.Machine,
			"stateDir":   hd.StateDir,
		},
	}
	if hd.Supervisor == SupervisorDetached {
		ws.Detail["log"] = hd.LogFile
	} else {
		ws.Detail["unit"] = hd.Unit
	}
	if len(hd.Cgroups) > 0 {
		ws.Detail["cgroups"] = strings.Join(hd.Cgroups, ",")
	}
	if hd.Limits != "" {
		ws.Detail["limits"] = hd.Limits
	}
	securityDetail(hd, ws.Detail)
	_, stopAsked := os.Stat(filepath.Join(hd.StateDir, fileStopMarker))
	switch {
	case st.running:
		ws.State = sdk.StatusRunning
		ws.PID = st.pid
	case st.exited:
		ws.ExitCode = st.rec.ExitCode
		if t := st.rec.finished(); !t.IsZero() {
			ws.Detail["finishedAt"] = t.Format(time.RFC3339Nano)
		}
		if st.rec.Signal != "" {
			ws.Detail["signal"] = st.rec.Signal
		}
		if st.rec.ExitCode == 0 || stopAsked == nil {
			ws.State = sdk.StatusStopped
			break
		}
		ws.State = sdk.StatusFailed
		ws.Reason = st.rec.Error
		if ws.Reason == "" {
			ws.Reason = r.logReason(ctx, hd, sup)
		}
		if ws.Reason == "" {
			ws.Reason = fmt.Sprintf("exited with code %d", st.rec.ExitCode)
		}
	default:
		ws.State = sdk.StatusFailed
		ws.ExitCode = -1
		ws.Reason = "supervisor gone without recording an exit status (host rebooted or supervisor killed)"
		if l := r.logReason(ctx, hd, sup); l != "" {
			ws.Reason += "; log: " + l
		}
	}
	return ws
}

func (r *Runtime) logReason(ctx context.Context, hd *handleData, sup supervisor) string {
	var b bytes.Buffer
	if err := sup.logs(ctx, hd, false, 5, &b); err != nil {
		return ""
	}
	return lastLine(b.Bytes())
}

// Wait implements sdk.Runtime: it blocks until the workload is no longer
// running (or ctx ends) and returns Inspect's status.
func (r *Runtime) Wait(ctx context.Context, h sdk.Handle) (sdk.WorkloadStatus, error) {
	hd, sup, err := r.load(h)
	if err != nil {
		return sdk.WorkloadStatus{}, fmt.Errorf("wait: %w", err)
	}
	for {
		st, err := sup.state(ctx, hd)
		if err != nil {
			return sdk.WorkloadStatus{}, fmt.Errorf("wait: %w", err)
		}
		if !st.running {
			return r.status(ctx, hd, sup, st), nil
		}
		if err := ctx.Err(); err != nil {
			return sdk.WorkloadStatus{}, fmt.Errorf("wait %q: %w", hd.Machine, err)
		}
		sup.waitChange(ctx, hd, 100*time.Millisecond)
	}
}

// Stop implements sdk.Runtime: SIGTERM to systemd-nspawn (which, with
// --kill-signal=SIGTERM, passes it to tini, which passes it to the payload's
// process group), up to timeout, then SIGKILL of the container's init and of
// nspawn. Stopping a workload that is not running is not an error.
func (r *Runtime) Stop(ctx context.Context, h sdk.Handle, timeout time.Duration) error {
	hd, sup, err := r.load(h)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return r.stop(ctx, hd, sup, timeout)
}

func (r *Runtime) stop(ctx context.Context, hd *handleData, sup supervisor, timeout time.Duration) error {
	st, err := sup.state(ctx, hd)
	if errors.Is(err, sdk.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if !st.running {
		return nil
	}
	if err := atomicfile.WriteFile(filepath.Join(hd.StateDir, fileStopMarker), nil, 0o644); err != nil {
		return fmt.Errorf("stop %q: %w", hd.Machine, err)
	}
	// Right after Start the container's init may not be able to take
	// SIGTERM yet (a pid namespace's init drops signals it does not handle).
	waitReady(ctx, st.pid, r.nspawnStart(hd, st), hd.Init != "", min(timeout, 2*time.Second))
	if err := sup.signal(ctx, hd, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop %q: %w", hd.Machine, err)
	}
	if r.waitStopped(ctx, hd, sup, timeout) {
		return nil
	}
	// Forceful: the graceful period is over (or ctx ended); kill regardless.
	sup.kill(context.WithoutCancel(ctx), hd)
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if !r.waitStopped(kctx, hd, sup, 5*time.Second) {
		return fmt.Errorf("stop %q: still running after SIGKILL", hd.Machine)
	}
	return nil
}

// nspawnStart is the start time that identifies st.pid (0: not known).
func (r *Runtime) nspawnStart(hd *handleData, st procState) uint64 {
	if st.pid == hd.PID {
		return hd.StartTime
	}
	return 0
}

// waitStopped waits up to d for the workload to stop running.
func (r *Runtime) waitStopped(ctx context.Context, hd *handleData, sup supervisor, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		st, err := sup.state(ctx, hd)
		if err != nil || !st.running {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return false
		}
		sup.waitChange(ctx, hd, min(left, 100*time.Millisecond))
	}
}

// Destroy implements sdk.Runtime: Stop (graceful for Options.StopTimeout),
// then removal of the runtime's files in the state dir (the dir itself when
// empty), its cgroups and /.volt/tini in the rootfs. The rootfs itself is the
// host's and is left alone. Destroying twice is not an error.
func (r *Runtime) Destroy(ctx context.Context, h sdk.Handle) error {
	hd, sup, err := r.load(h)
	if err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	if err := r.stop(ctx, hd, sup, r.opts.StopTimeout); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	removeVoltInit(hd.Root, hd.StateDir)
	if err := sup.release(ctx, hd); err != nil {
		return err
	}
	r.cg.remove(hd.Cgroups)
	if hd.Root != "" && filepath.IsAbs(hd.Root) {
		_ = os.Remove(filepath.Join(hd.Root, initPath))
		_ = os.Remove(filepath.Join(hd.Root, filepath.Dir(initPath)))
	}
	return nil
}

// Logs implements sdk.Runtime: the container's stdout and stderr (nspawn's
// own noise lines removed); tail <= 0 means the whole log; follow keeps
// copying new output until ctx ends.
func (r *Runtime) Logs(ctx context.Context, h sdk.Handle, follow bool, tail int, w io.Writer) error {
	hd, sup, err := r.load(h)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	return sup.logs(ctx, hd, follow, tail, w)
}

// Exec implements sdk.Runtime with nsenter into all namespaces of the
// container's PID 1, in its working directory, with its environment plus
// req.Env. It returns the command's exit code.
func (r *Runtime) Exec(ctx context.Context, h sdk.Handle, req sdk.ExecRequest) (int, error) {
	hd, sup, err := r.load(h)
	if err != nil {
		return -1, fmt.Errorf("exec: %w", err)
	}
	if len(req.Command) == 0 || req.Command[0] == "" {
		return -1, fmt.Errorf("exec in %q: %w: no command", hd.Machine, sdk.ErrInvalid)
	}
	nsenter, err := exec.LookPath(r.nsenterName())
	if err != nil {
		return -1, fmt.Errorf("exec in %q: nsenter not found: %w", hd.Machine, sdk.ErrUnsupported)
	}
	st, err := sup.state(ctx, hd)
	if err != nil {
		return -1, fmt.Errorf("exec: %w", err)
	}
	if !st.running {
		return -1, fmt.Errorf("exec in %q: %w", hd.Machine, ErrNotRunning)
	}
	waitReady(ctx, st.pid, r.nspawnStart(hd, st), false, 2*time.Second)
	init, err := containerInit(st.pid)
	if err != nil {
		return -1, fmt.Errorf("exec in %q: %w", hd.Machine, err)
	}
	env, err := containerEnv(init, req.Env)
	if err != nil {
		return -1, fmt.Errorf("exec in %q: %w", hd.Machine, err)
	}
	args := append([]string{"--target=" + strconv.Itoa(init), "--all", "--wd", "--"}, execPrefix(hd)...)
	args = append(args, req.Command...)
	cmd := exec.CommandContext(ctx, nsenter, args...)
	cmd.Env = env
	if req.TTY {
		err = runOnTTY(cmd, req, init)
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = req.Stdin, req.Stdout, req.Stderr
		err = cmd.Run()
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		if ctx.Err() != nil {
			return -1, fmt.Errorf("exec in %q: %w", hd.Machine, ctx.Err())
		}
		return exitCode(ee), nil
	default:
		return -1, fmt.Errorf("exec in %q: %w", hd.Machine, err)
	}
}

// containerEnv is the environment of pid (the container's init, which
// nspawn gave the workload's variables) with extra laid over it.
func containerEnv(pid int, extra map[string]string) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return nil, fmt.Errorf("read container environment: %w", err)
	}
	m := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok && k != "" {
			m[k] = v
		}
	}
	for k, v := range extra {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("environment variable %q: %w", k, sdk.ErrInvalid)
		}
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}

// Run implements sdk.Runtime: one build step, `systemd-nspawn
// --private-network -D ROOT … CMD` run to completion with its combined output
// streamed to req.Output (nspawn noise removed). Cancelling ctx sends SIGTERM
// to nspawn (which kills the step), then SIGKILL after 10 s.
func (r *Runtime) Run(ctx context.Context, req sdk.RunRequest) (int, error) {
	nspawn, err := r.nspawnPath()
	if err != nil {
		return -1, fmt.Errorf("build step: %w", err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	args, err := runArgs(req, "volt-build-"+hex.EncodeToString(rnd[:]))
	if err != nil {
		return -1, err
	}
	if _, err := prepareRoot(req.Root, ""); err != nil {
		return -1, fmt.Errorf("build step: %w", err)
	}
	out := req.Output
	if out == nil {
		out = io.Discard
	}
	nf := newNoiseFilter(out)
	cmd := exec.CommandContext(ctx, nspawn, args...)
	cmd.Stdout, cmd.Stderr = nf, nf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	_ = nf.Flush()
	if ctx.Err() != nil {
		return -1, fmt.Errorf("build step %q: %w", strings.Join(req.Command, " "), ctx.Err())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		return exitCode(ee), nil
	default:
		return -1, fmt.Errorf("build step %q: %w", strings.Join(req.Command, " "), err)
	}
}

// exitCode is a process's exit status, 128+N when killed by signal N (as a shell reports it).
func exitCode(ee *exec.ExitError) int {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}
