// Package qemu implements sdk.Runtime over qemu-system-x86_64: VMs booted
// from a disk (through a qcow2 overlay, so the bundle's image is never
// written) or directly from a kernel + initrd, started detached from the
// plugin (so they outlive it and the CLI), driven through QMP, and recovered
// in later processes from their Handle.
//
// Each VM runs under a small /bin/sh shim in its own process group, with
// SIGHUP ignored, that starts QEMU in the foreground and, when it exits,
// records its exit status in the state dir (exit.json); QEMU itself writes
// a pidfile. (Not a new session: with scheduler autogroups a new session
// competes for the CPU as a group of its own, which made TCG guests boot
// 2-4 times slower than the same QEMU started by hand on a busy host.) The serial console is
// a unix socket chardev (console.sock) that also logs everything the guest
// prints to serial.log. Machine type is pc (microvm hung in one boot out of
// three on the project's hosts). KVM is used only when a probe guest really
// runs under it; otherwise TCG.
//
// Guest exit codes: a guest that powers off exits 0; a guest that writes N
// (1..63) to I/O port 0xf4 (the isa-debug-exit device every VM has) makes
// QEMU exit with 2N+1, reported as exit code N.
package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/atomicfile"
	"github.com/volt-cli/volt/sdk/logfile"
)

// Version is the plugin's own version.
const Version = "0.1.0"

// Name is the plugin's name.
const Name = "runtime-qemu"

// DefaultMemoryBytes is a VM's memory when the spec does not say.
const DefaultMemoryBytes = 256 << 20

// Options configure a Runtime. The zero value finds everything on PATH.
type Options struct {
	// QEMU is the qemu-system-x86_64 binary (path or name); "" looks it up on PATH.
	QEMU string
	// QEMUImg is the qemu-img binary; "" looks it up on PATH.
	QEMUImg string
	// Accel forces AccelKVM or AccelTCG; "" (or "auto") probes KVM and falls back to TCG.
	Accel string
	// CacheDir holds the cached KVM probe result; "" is $XDG_CACHE_HOME/volt or /tmp/volt-cache.
	CacheDir string
	// StopTimeout bounds the graceful part of Destroy; 0 is 30 s.
	StopTimeout time.Duration
	// MemInfo is the meminfo file the memory check reads; "" is /proc/meminfo.
	MemInfo string
}

// Runtime is the QEMU sdk.Runtime. It keeps no state in memory between
// calls: every call works from the Handle and the state dir, so a Runtime
// made in a later process serves handles made by an earlier one.
type Runtime struct {
	opts Options
}

var _ sdk.Runtime = (*Runtime)(nil)

// New returns a Runtime with opts.
func New(opts Options) *Runtime {
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 30 * time.Second
	}
	if opts.CacheDir == "" {
		opts.CacheDir = defaultCacheDir()
	}
	if opts.MemInfo == "" {
		opts.MemInfo = "/proc/meminfo"
	}
	return &Runtime{opts: opts}
}

// Info implements sdk.Runtime.
func (r *Runtime) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:        Name,
		Kind:        sdk.KindRuntime,
		Version:     Version,
		APIVersions: []int{sdk.APIVersion},
		Capabilities: []string{"vm", "logs-follow", "recover", "console", "kernel-boot", "disk:qcow2", "disk:raw",
			"network:user", "network:none", "ports", "limits:memory", "limits:cpu"},
	}, nil
}

// qemuFor returns the qemu-system binary for a guest architecture.
func (r *Runtime) qemuFor(arch string) (string, error) {
	bin, pkg, err := qemuSystemFor(arch)
	if err != nil {
		return "", err
	}
	name := bin
	if bin == "qemu-system-x86_64" && r.opts.QEMU != "" {
		name = r.opts.QEMU
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s not found (install %s)", ErrNoEmulator, name, pkg)
	}
	return p, nil
}

func (r *Runtime) qemuImg() (string, error) {
	name := r.opts.QEMUImg
	if name == "" {
		name = "qemu-img"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found (install qemu-utils): %w", name, sdk.ErrUnsupported)
	}
	return p, nil
}

// accel returns the accelerator to use and, for TCG, why not KVM.
func (r *Runtime) accel(ctx context.Context, qemu string) (string, string) {
	switch r.opts.Accel {
	case AccelKVM, AccelTCG:
		return r.opts.Accel, "forced by configuration"
	}
	res := detectAccel(ctx, qemu, r.opts.CacheDir)
	return res.Accel, res.Reason
}

// Fingerprint implements sdk.Runtime: healthy when qemu-system-x86_64 and
// qemu-img are present. Detail is the accelerator VMs get, "kvm" or "tcg".
// Attributes: qemu.path, qemu.version, qemu-img.path, accel, accel.reason,
// machine, arches.
func (r *Runtime) Fingerprint(ctx context.Context) (sdk.Health, error) {
	attrs := map[string]string{"machine": "pc"}
	qemu, err := r.qemuFor(ArchAMD64)
	if err != nil {
		name := r.opts.QEMU
		if name == "" {
			name = "qemu-system-x86_64"
		}
		return sdk.Health{Healthy: false, Detail: name + " not found (install qemu-system-x86)", Attributes: attrs}, nil
	}
	attrs["qemu.path"] = qemu
	out, err := exec.CommandContext(ctx, qemu, "--version").Output()
	if err != nil {
		return sdk.Health{Healthy: false, Detail: fmt.Sprintf("%s --version failed: %v", qemu, err), Attributes: attrs}, nil
	}
	attrs["qemu.version"] = parseQEMUVersion(out)
	img, err := r.qemuImg()
	if err != nil {
		return sdk.Health{Healthy: false, Detail: "qemu-img not found (install qemu-utils)", Attributes: attrs}, nil
	}
	attrs["qemu-img.path"] = img
	arches := []string{ArchAMD64}
	for _, a := range []string{ArchARM64, ArchARMv7, "riscv64"} {
		if _, err := r.qemuFor(a); err == nil {
			arches = append(arches, a)
		}
	}
	attrs["arches"] = strings.Join(arches, ",")
	acc, why := r.accel(ctx, qemu)
	attrs["accel"] = acc
	if why != "" {
		attrs["accel.reason"] = why
	}
	return sdk.Health{Healthy: true, Detail: acc, Attributes: attrs}, nil
}

var qemuVersionRE = regexp.MustCompile(`version ([0-9][0-9.]*)`)

// parseQEMUVersion turns "QEMU emulator version 7.2.22 (Debian ...)" into "7.2.22".
func parseQEMUVersion(out []byte) string {
	if m := qemuVersionRE.FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return "unknown"
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// validName checks a VM name: letters, digits, '_', '.', '-'; at most 128.
func validName(n string) error {
	if !nameRE.MatchString(n) {
		return fmt.Errorf("vm name %q: %w: want [A-Za-z0-9][A-Za-z0-9_.-]*, at most 128 characters", n, sdk.ErrInvalid)
	}
	return nil
}

// maxSocketPath is the longest unix socket path Linux accepts.
const maxSocketPath = 107

// prepared is a validated spec: the QEMU binary, its config, and the disk
// to put an overlay on.
type prepared struct {
	qemu       string
	qemuImg    string
	cfg        vmConfig
	base       string // bundle disk, absolute; "" for none
	baseFormat string
	accelWhy   string
}

// resolve makes p absolute against root.
func resolve(root, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

// prepare validates spec and works out the VM's configuration without
// changing anything on disk.
func (r *Runtime) prepare(ctx context.Context, spec sdk.WorkloadSpec) (*prepared, error) {
	if err := validName(spec.Name); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(spec.StateDir) {
		return nil, fmt.Errorf("vm %q: state dir %q: %w: not absolute", spec.Name, spec.StateDir, sdk.ErrInvalid)
	}
	sd := filepath.Clean(spec.StateDir)
	if l := len(filepath.Join(sd, FileQMPQuery)); l > maxSocketPath {
		return nil, fmt.Errorf("vm %q: state dir %q: %w: too long for a unix socket (%d > %d bytes)", spec.Name, sd, sdk.ErrInvalid, l, maxSocketPath)
	}
	p := &prepared{cfg: vmConfig{Name: spec.Name, StateDir: sd}}
	c := &p.cfg
	c.Kernel = resolve(spec.Root, spec.Kernel)
	c.Initrd = resolve(spec.Root, spec.Initrd)
	c.Cmdline = spec.Cmdline
	p.base = resolve(spec.Root, spec.Image)
	if c.Kernel == "" && p.base == "" {
		return nil, fmt.Errorf("vm %q: %w: neither a disk image nor a kernel", spec.Name, sdk.ErrInvalid)
	}
	if c.Kernel == "" && (c.Initrd != "" || c.Cmdline != "") {
		return nil, fmt.Errorf("vm %q: %w: initrd or cmdline without a kernel", spec.Name, sdk.ErrInvalid)
	}
	for _, f := range []string{c.Kernel, c.Initrd, p.base} {
		if f == "" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("vm %q: %w", spec.Name, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("vm %q: %q: %w: not a regular file", spec.Name, f, sdk.ErrInvalid)
		}
	}
	// Architecture: the label the deploy engine sets, else the kernel's header.
	c.Arch = spec.Labels["volt.arch"]
	if c.Arch == "" && c.Kernel != "" {
		if f, err := os.Open(c.Kernel); err == nil {
			c.Arch = kernelArch(f)
			f.Close()
		}
	}
	if c.Arch == "" {
		c.Arch = ArchAMD64
	}
	qemu, err := r.qemuFor(c.Arch)
	if err != nil {
		return nil, fmt.Errorf("vm %q: guest is %s: %w", spec.Name, c.Arch, err)
	}
	if bin, _, _ := qemuSystemFor(c.Arch); bin != "qemu-system-x86_64" {
		return nil, fmt.Errorf("vm %q: guest is %s: %w: this runtime runs x86_64 guests only", spec.Name, c.Arch, sdk.ErrUnsupported)
	}
	p.qemu = qemu
	// Memory and CPUs.
	mem := spec.MemoryBytes
	if mem < 0 {
		return nil, fmt.Errorf("vm %q: %w: memory %d", spec.Name, sdk.ErrInvalid, mem)
	}
	if mem == 0 {
		mem = DefaultMemoryBytes
	}
	if host, err := r.hostMemory(); err == nil && mem > host {
		return nil, fmt.Errorf("vm %q: %w: it asks for %s, the host has %s", spec.Name, ErrMemory, humanBytes(mem), humanBytes(host))
	}
	c.MemoryMiB = (mem + (1<<20 - 1)) >> 20
	switch {
	case spec.CPUs < 0 || math.IsNaN(spec.CPUs) || spec.CPUs > 255:
		return nil, fmt.Errorf("vm %q: %w: cpus %v", spec.Name, sdk.ErrInvalid, spec.CPUs)
	case spec.CPUs == 0:
		c.CPUs = 1
	default:
		c.CPUs = int(math.Ceil(spec.CPUs))
	}
	// Network.
	switch spec.NetworkMode {
	case "", "host", "private", "user":
	case "none":
		c.NetNone = true
	default:
		return nil, fmt.Errorf("vm %q: network mode %q: %w (this runtime knows user-mode networking and none)", spec.Name, spec.NetworkMode, sdk.ErrUnsupported)
	}
	for _, ps := range spec.Ports {
		pf, err := parsePort(ps)
		if err != nil {
			return nil, fmt.Errorf("vm %q: %w", spec.Name, err)
		}
		c.Forwards = append(c.Forwards, pf)
	}
	if c.NetNone && len(c.Forwards) > 0 {
		return nil, fmt.Errorf("vm %q: %w: ports need a network (network mode is none)", spec.Name, sdk.ErrInvalid)
	}
	// Disk.
	if p.base != "" {
		img, err := r.qemuImg()
		if err != nil {
			return nil, fmt.Errorf("vm %q: %w", spec.Name, err)
		}
		p.qemuImg = img
		ii, err := inspectImage(ctx, img, p.base)
		if err != nil {
			return nil, fmt.Errorf("vm %q: %w", spec.Name, err)
		}
		p.baseFormat = ii.Format
		c.Disk = filepath.Join(sd, FileOverlay)
	}
	c.Accel, p.accelWhy = r.accel(ctx, qemu)
	return p, nil
}

func (r *Runtime) hostMemory() (int64, error) {
	f, err := os.Open(r.opts.MemInfo)
	if err != nil {
		return 0, fmt.Errorf("host memory: %w", err)
	}
	defer f.Close()
	return hostMemory(f)
}

// humanBytes renders n as "512 MiB" or "7.8 GiB".
func humanBytes(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// CommandLine returns the command (binary first) Start would run for spec,
// after the same validation, without creating anything. It is what `volt vm
// start --dry-run` shows and what the start-time benchmark runs by hand.
func (r *Runtime) CommandLine(ctx context.Context, spec sdk.WorkloadSpec) ([]string, error) {
	p, err := r.prepare(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("command line: %w", err)
	}
	return append([]string{p.qemu}, qemuArgs(p.cfg)...), nil
}

// vmRecord is vm.json: what the last Start ran, and the processes it made
// (pid and /proc start time of QEMU and of its supervisor shim).
type vmRecord struct {
	Config              vmConfig `json:"config"`
	Command             []string `json:"command"`
	Base                string   `json:"base,omitempty"`
	PID                 int      `json:"pid"`
	StartTime           uint64   `json:"startTime"`
	SupervisorPID       int      `json:"supervisorPid"`
	SupervisorStartTime uint64   `json:"supervisorStartTime"`
}

// Start implements sdk.Runtime. It validates the spec (disk format, backing
// files, corruption, architecture, memory), makes the overlay (kept across
// restarts while its base is the same), starts QEMU under its shim and
// returns once QEMU answers on QMP. Starting a VM that is running is ErrExists.
func (r *Runtime) Start(ctx context.Context, spec sdk.WorkloadSpec) (sdk.Handle, error) {
	p, err := r.prepare(ctx, spec)
	if err != nil {
		return sdk.Handle{}, fmt.Errorf("start: %w", err)
	}
	sd := p.cfg.StateDir
	if err := os.MkdirAll(sd, 0o700); err != nil {
		return sdk.Handle{}, fmt.Errorf("start %q: create state dir: %w", spec.Name, err)
	}
	if b, err := os.ReadFile(filepath.Join(sd, FileVM)); err == nil {
		var old vmRecord
		if json.Unmarshal(b, &old) == nil && alive(old.SupervisorPID, old.SupervisorStartTime) {
			if _, exited, _ := readExit(filepath.Join(sd, FileExit)); !exited {
				return sdk.Handle{}, fmt.Errorf("start %q: %w: already running (supervisor pid %d)", spec.Name, sdk.ErrExists, old.SupervisorPID)
			}
		}
	}
	for _, f := range []string{FileExit, FileStop, fileStopMarker, FilePID, FileQMP, FileQMPQuery, FileConsole} {
		if err := os.Remove(filepath.Join(sd, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return sdk.Handle{}, fmt.Errorf("start %q: clear old state: %w", spec.Name, err)
		}
	}
	if p.base != "" {
		if err := ensureOverlay(ctx, p.qemuImg, p.base, p.baseFormat, p.cfg.Disk); err != nil {
			return sdk.Handle{}, fmt.Errorf("start %q: %w", spec.Name, err)
		}
	}
	argv := append([]string{p.qemu}, qemuArgs(p.cfg)...)
	// vm.json is written (and synced) while QEMU starts, not before: the
	// guest's boot does not wait for the disk.
	hd, err := launch(ctx, spec.Name, sd, argv, vmRecord{Config: p.cfg, Command: argv, Base: p.base})
	if err != nil {
		return sdk.Handle{}, err
	}
	hd.Accel = p.cfg.Accel
	return encodeHandle(hd)
}

// shimScript runs QEMU in the foreground of a /bin/sh in its own process
// group, with stdout/stderr on qemu.log and a sync pipe on fd 3. Arguments:
// the state dir, then QEMU's argv. It ignores SIGHUP (and so does QEMU,
// which inherits it), reports "ok PID" on fd 3 and, when QEMU exits,
// publishes exit.json (temp file, fsync, rename).
const shimScript = `dir=$1; shift
trap '' HUP
"$@" 3>&- </dev/null &
pid=$!
echo "ok $pid" >&3
exec 3>&-
while :; do
  wait $pid; rc=$?
  kill -0 $pid 2>/dev/null || break
done
printf '{"status":%d,"finishedAt":"%s"}\n' "$rc" "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" > "$dir/.exit.json.tmp" &&
  sync "$dir/.exit.json.tmp" 2>/dev/null
mv -f "$dir/.exit.json.tmp" "$dir/exit.json" && sync "$dir" 2>/dev/null
`

// qmpReadyTimeout bounds how long Start waits for QEMU's monitor when ctx
// has no deadline.
const qmpReadyTimeout = 60 * time.Second

// launch starts argv under the shim, records rec in vm.json, and waits
// until QEMU answers on QMP.
func launch(ctx context.Context, name, sd string, argv []string, rec vmRecord) (*handleData, error) {
	logf, err := os.OpenFile(filepath.Join(sd, FileQEMULog), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("start %q: open qemu log: %w", name, err)
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %q: sync pipe: %w", name, err)
	}
	defer pr.Close()
	cmd := &exec.Cmd{
		Path:        "/bin/sh",
		Args:        append([]string{"/bin/sh", "-c", shimScript, "volt-qemu-shim", sd}, argv...),
		Env:         []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"},
		Dir:         "/",
		Stdout:      logf,
		Stderr:      logf,
		ExtraFiles:  []*os.File{pw},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	startedAt := time.Now().UTC()
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return nil, fmt.Errorf("start %q: start supervisor: %w", name, err)
	}
	supPID := cmd.Process.Pid
	supInfo, _ := readProc(supPID)
	go func() { _ = cmd.Wait() }() // reap the shim if this process outlives it

	stop := context.AfterFunc(ctx, func() { _ = pr.SetReadDeadline(time.Now()) })
	defer stop()
	line, rerr := bufio.NewReader(pr).ReadString('\n')
	var pid int
	if _, err := fmt.Sscanf(line, "ok %d", &pid); err != nil || pid <= 0 {
		_ = syscall.Kill(-supPID, syscall.SIGKILL)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start %q: %w", name, ctx.Err())
		}
		return nil, fmt.Errorf("start %q: supervisor failed before starting QEMU (%v): %s", name, rerr, fileTail(filepath.Join(sd, FileQEMULog), 3))
	}
	qi, err := readProc(pid)
	if err != nil {
		qi.StartTime = 1 // already gone: never matches a live process
	}
	hd := &handleData{
		Version: handleVersion, Name: name, StateDir: sd,
		PID: pid, StartTime: qi.StartTime,
		SupervisorPID: supPID, SupervisorStartTime: supInfo.StartTime,
		QMP: filepath.Join(sd, FileQMP), Console: filepath.Join(sd, FileConsole),
		SerialLog: filepath.Join(sd, FileSerialLog), StartedAt: startedAt,
	}
	// Publish vm.json (synced) while QEMU initialises.
	rec.PID, rec.StartTime = pid, qi.StartTime
	rec.SupervisorPID, rec.SupervisorStartTime = supPID, supInfo.StartTime
	written := make(chan error, 1)
	go func() { written <- writeJSONAtomic(filepath.Join(sd, FileVM), rec) }()
	err = waitQMP(ctx, hd)
	if werr := <-written; err == nil {
		err = werr
	}
	if err != nil {
		if alive(pid, qi.StartTime) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return nil, fmt.Errorf("start %q: %w", name, err)
	}
	return hd, nil
}

// waitQMP waits until QEMU answers on its query monitor, or fails with the
// tail of QEMU's log when it exits first.
func waitQMP(ctx context.Context, hd *handleData) error {
	ctx, cancel := context.WithTimeout(ctx, qmpReadyTimeout)
	defer cancel()
	sock := hd.path(FileQMPQuery)
	for {
		if _, err := os.Stat(sock); err == nil {
			actx, acancel := context.WithTimeout(ctx, 5*time.Second)
			q, err := dialQMP(actx, sock)
			acancel()
			if err == nil {
				q.Close()
				return nil
			}
		}
		if !alive(hd.PID, hd.StartTime) {
			return fmt.Errorf("qemu exited during startup: %s", fileTail(hd.path(FileQEMULog), 3))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for QEMU's monitor: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// vmState is what the state dir and /proc say about a VM.
type vmState struct {
	running bool
	exited  bool
	rec     exitRecord
}

// state reports the VM's state; ErrNotFound when its state dir has no VM.
func state(hd *handleData) (vmState, error) {
	if _, err := os.Stat(hd.path(FileVM)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return vmState{}, fmt.Errorf("vm %q: %w (no state in %s)", hd.Name, sdk.ErrNotFound, hd.StateDir)
		}
		return vmState{}, fmt.Errorf("vm %q: %w", hd.Name, err)
	}
	for attempt := 0; attempt < 2; attempt++ {
		rec, ok, err := readExit(hd.path(FileExit))
		if err != nil {
			return vmState{}, fmt.Errorf("vm %q: %w", hd.Name, err)
		}
		if ok {
			return vmState{exited: true, rec: rec}, nil
		}
		if attempt == 0 && (alive(hd.PID, hd.StartTime) || alive(hd.SupervisorPID, hd.SupervisorStartTime)) {
			return vmState{running: true}, nil
		}
	}
	return vmState{}, nil
}

// load decodes a handle.
func load(h sdk.Handle) (*handleData, error) { return decodeHandle(h) }

// Recover implements sdk.Runtime: nil when the VM's QEMU is still the one
// Start made (pid and start time match); ErrNotFound when it has exited or
// its state is gone (Inspect still reports how an exited one ended).
func (r *Runtime) Recover(ctx context.Context, h sdk.Handle) error {
	hd, err := load(h)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	st, err := state(hd)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if !st.running {
		return fmt.Errorf("recover %q: %w: not running", hd.Name, sdk.ErrNotFound)
	}
	return nil
}

// Inspect implements sdk.Runtime. A running VM's Detail["qmpStatus"] is
// QEMU's run state (query-status). An exit after Stop, or a power-off
// (status 0), is "stopped"; anything else is "failed" with a Reason made of
// how QEMU ended and the tail of the serial console and QEMU's log.
func (r *Runtime) Inspect(ctx context.Context, h sdk.Handle) (sdk.WorkloadStatus, error) {
	hd, err := load(h)
	if err != nil {
		return sdk.WorkloadStatus{}, fmt.Errorf("inspect: %w", err)
	}
	st, err := state(hd)
	if err != nil {
		return sdk.WorkloadStatus{}, fmt.Errorf("inspect: %w", err)
	}
	ws := status(hd, st)
	if st.running {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if s, err := queryStatus(qctx, hd.path(FileQMPQuery)); err == nil {
			ws.Detail["qmpStatus"] = s
		} else {
			ws.Detail["qmpStatus"] = "unavailable: " + err.Error()
		}
	}
	return ws, nil
}

// exitMeaning decodes QEMU's exit status: the guest's exit code through
// isa-debug-exit (2N+1 for N in 1..63), a signal (128+N), or QEMU's own.
func exitMeaning(status int) (code int, signal syscall.Signal, guest bool) {
	switch {
	case status == 0:
		return 0, 0, true
	case status >= 128:
		return status, syscall.Signal(status - 128), false
	case status%2 == 1 && status >= 3:
		return (status - 1) / 2, 0, true
	}
	return status, 0, false
}

func status(hd *handleData, st vmState) sdk.WorkloadStatus {
	ws := sdk.WorkloadStatus{
		StartedAt: hd.StartedAt,
		Detail: map[string]string{
			"stateDir":  hd.StateDir,
			"console":   hd.path(FileConsole),
			"serialLog": hd.path(FileSerialLog),
			"qmp":       hd.path(FileQMP),
			"accel":     hd.Accel,
		},
	}
	var sr stopRecord
	if b, err := os.ReadFile(hd.path(FileStop)); err == nil && json.Unmarshal(b, &sr) == nil {
		ws.Detail["stopMethod"] = sr.Method
		if sr.Reason != "" {
			ws.Detail["shutdownReason"] = sr.Reason
		}
	}
	_, stopAsked := os.Stat(hd.path(fileStopMarker))
	switch {
	case st.running:
		ws.State = sdk.StatusRunning
		ws.PID = hd.PID
	case st.exited:
		code, sig, guest := exitMeaning(st.rec.Status)
		ws.ExitCode = code
		ws.Detail["qemuStatus"] = fmt.Sprint(st.rec.Status)
		if st.rec.FinishedAt != "" {
			ws.Detail["finishedAt"] = st.rec.FinishedAt
		}
		if sig != 0 {
			ws.Detail["signal"] = unix.SignalName(sig)
		}
		if stopAsked == nil || (guest && code == 0) {
			ws.State = sdk.StatusStopped
			break
		}
		ws.State = sdk.StatusFailed
		switch {
		case sig != 0:
			ws.Reason = fmt.Sprintf("qemu killed by signal %d (%s)", int(sig), unix.SignalName(sig))
		case guest:
			ws.Reason = fmt.Sprintf("guest exited with code %d", code)
		default:
			ws.Reason = fmt.Sprintf("qemu exited with status %d", st.rec.Status)
		}
		ws.Reason += logsReason(hd)
	default:
		ws.State = sdk.StatusFailed
		ws.ExitCode = -1
		ws.Reason = "qemu and its supervisor are gone without an exit status (host rebooted or supervisor killed)" + logsReason(hd)
	}
	return ws
}

// logsReason is the tail of QEMU's log and the serial console, for Reason.
func logsReason(hd *handleData) string {
	var s string
	if t := fileTail(hd.path(FileQEMULog), 2); t != "" {
		s += "; qemu: " + t
	}
	if t := fileTail(hd.path(FileSerialLog), 3); t != "" {
		s += "; console: " + t
	}
	return s
}

// fileTail is the last n non-empty lines of a file, joined with " | ",
// control characters removed, at most 400 bytes.
func fileTail(path string, n int) string {
	b, _, err := readTail(path, n)
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range bytes.Split(b, []byte{'\n'}) {
		l = bytes.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, l)
		if t := strings.TrimSpace(string(l)); t != "" {
			lines = append(lines, t)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s := strings.Join(lines, " | ")
	if len(s) > 400 {
		s = "…" + s[len(s)-400:]
	}
	return s
}

// waitChange blocks until the VM's supervisor may have exited, at most d.
func waitChange(ctx context.Context, hd *handleData, d time.Duration) {
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
	// Poll in slices so a cancelled ctx is noticed promptly.
	deadline := time.Now().Add(d)
	for ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		n, _ := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(min(left, 50*time.Millisecond).Milliseconds())+1)
		if n > 0 {
			return
		}
	}
}

// Wait implements sdk.Runtime: it blocks until QEMU has exited (or ctx
// ends) and returns Inspect's status.
func (r *Runtime) Wait(ctx context.Context, h sdk.Handle) (sdk.WorkloadStatus, error) {
	hd, err := load(h)
	if err != nil {
		return sdk.WorkloadStatus{}, fmt.Errorf("wait: %w", err)
	}
	for {
		st, err := state(hd)
		if err != nil {
			return sdk.WorkloadStatus{}, fmt.Errorf("wait: %w", err)
		}
		if !st.running {
			return status(hd, st), nil
		}
		if err := ctx.Err(); err != nil {
			return sdk.WorkloadStatus{}, fmt.Errorf("wait %q: %w", hd.Name, err)
		}
		waitChange(ctx, hd, 200*time.Millisecond)
	}
}

// Stop implements sdk.Runtime: QMP system_powerdown (the ACPI power
// button), up to timeout for the guest to power off (QEMU then exits), then
// QMP quit, then SIGKILL. stop.json records which it took. Stopping a VM
// that is not running is not an error.
func (r *Runtime) Stop(ctx context.Context, h sdk.Handle, timeout time.Duration) error {
	hd, err := load(h)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return stopVM(ctx, hd, timeout)
}

func stopVM(ctx context.Context, hd *handleData, timeout time.Duration) error {
	st, err := state(hd)
	if errors.Is(err, sdk.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if !st.running {
		return nil
	}
	if err := atomicfile.WriteFile(hd.path(fileStopMarker), nil, 0o644); err != nil {
		return fmt.Errorf("stop %q: %w", hd.Name, err)
	}
	rec := powerdown(ctx, hd, timeout)
	if rec.Method == "" {
		// The graceful period is over (or ctx ended): force, regardless of ctx.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		rec.Method = "quit"
		if q, err := dialQMP(fctx, hd.QMP); err == nil {
			_, _ = q.execute(fctx, "quit", nil)
			q.Close()
		}
		if !waitStopped(fctx, hd, 5*time.Second) {
			rec.Method = "kill"
			if alive(hd.PID, hd.StartTime) {
				_ = syscall.Kill(hd.PID, syscall.SIGKILL)
			}
			if !waitStopped(fctx, hd, 5*time.Second) {
				return fmt.Errorf("stop %q: qemu pid %d still running after SIGKILL", hd.Name, hd.PID)
			}
		}
	}
	if err := writeJSONAtomic(hd.path(FileStop), rec); err != nil {
		return fmt.Errorf("stop %q: %w", hd.Name, err)
	}
	return nil
}

// powerdown presses the ACPI power button through QMP and waits up to
// timeout for QEMU to exit. It returns a record with Method "acpi" when the
// VM stopped, or an empty Method when it must be forced.
func powerdown(ctx context.Context, hd *handleData, timeout time.Duration) stopRecord {
	var rec stopRecord
	gctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q, err := dialQMP(gctx, hd.QMP)
	if err != nil {
		return rec
	}
	defer q.Close()
	if _, err := q.execute(gctx, "system_powerdown", nil); err != nil {
		return rec
	}
	for {
		ev, err := q.nextEvent(gctx)
		if err != nil {
			// QEMU closed the monitor (it exited) or the time is up.
			if waitStopped(gctx, hd, time.Until(deadlineOf(gctx))) {
				rec.Method = "acpi"
			}
			return rec
		}
		if ev.Event == "SHUTDOWN" {
			var d struct {
				Guest  bool   `json:"guest"`
				Reason string `json:"reason"`
			}
			_ = json.Unmarshal(ev.Data, &d)
			rec.GuestShutdown, rec.Reason = d.Guest, d.Reason
		}
	}
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now()
}

// waitStopped waits up to d for the VM to stop running.
func waitStopped(ctx context.Context, hd *handleData, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		st, err := state(hd)
		if err != nil || !st.running {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return false
		}
		waitChange(ctx, hd, min(left, 100*time.Millisecond))
	}
}

// Destroy implements sdk.Runtime: Stop (graceful for Options.StopTimeout),
// then removal of the runtime's files in the state dir — overlay, sockets,
// logs, pidfiles, records — and of the dir itself when empty. The bundle's
// disk and kernel are left alone. Destroying twice is not an error.
func (r *Runtime) Destroy(ctx context.Context, h sdk.Handle) error {
	hd, err := load(h)
	if err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	if err := stopVM(ctx, hd, r.opts.StopTimeout); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	for _, f := range runtimeFiles {
		if err := os.Remove(hd.path(f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("destroy %q: %w", hd.Name, err)
		}
	}
	_ = os.Remove(hd.path(FileOverlay + ".tmp"))
	_ = os.Remove(hd.StateDir) // only when empty: the dir may hold the host's files
	return nil
}

// Logs implements sdk.Runtime: the serial console log; tail <= 0 means all
// of it; follow keeps copying new output until ctx ends.
func (r *Runtime) Logs(ctx context.Context, h sdk.Handle, follow bool, tail int, w io.Writer) error {
	hd, err := load(h)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	if _, err := state(hd); err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	b, off, err := readTail(hd.SerialLog, tail)
	if errors.Is(err, os.ErrNotExist) {
		b, off, err = nil, 0, nil // QEMU creates it when the chardev opens
	}
	if err != nil {
		return fmt.Errorf("logs of %q: %w", hd.Name, err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("logs of %q: %w", hd.Name, err)
	}
	if !follow {
		return nil
	}
	if err := logfile.Follow(ctx, hd.SerialLog, off, w, 50*time.Millisecond); err != nil {
		return fmt.Errorf("logs of %q: %w", hd.Name, err)
	}
	return nil
}

// Exec implements sdk.Runtime: VMs have no exec channel (no guest agent).
func (r *Runtime) Exec(context.Context, sdk.Handle, sdk.ExecRequest) (int, error) {
	return -1, fmt.Errorf("exec in a VM: %w (use the serial console: volt vm console)", sdk.ErrUnsupported)
}

// Run implements sdk.Runtime: build steps run in containers, not VMs.
func (r *Runtime) Run(context.Context, sdk.RunRequest) (int, error) {
	return -1, fmt.Errorf("build step: %w: %s runs no build steps (they run in containers)", sdk.ErrUnsupported, Name)
}
