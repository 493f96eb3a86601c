package nspawn

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// Where Volt's init and its files appear inside a container (bind mounts
// over empty files the runtime creates in the rootfs).
const (
	voltInitPath = "/.volt/init"
	filePolicy   = "policy.json"   // sdk.InitPolicy, in the state dir; read-only inside
	fileReport   = "enforced.json" // sdk.InitReport written by the init; read by Inspect
)

// Init shim kinds.
const (
	shimNone     = ""
	shimTini     = "tini"
	shimVoltInit = "volt-init"
)

// shim is the init run as the container's PID 1: Volt's own (path on the
// host, bind-mounted), tini (copied into the rootfs) or none.
type shim struct {
	kind string
	path string
}

// nspawnDefaultCaps is the capability set systemd-nspawn 252 grants a
// container (systemd-nspawn(1), --capability=).
var nspawnDefaultCaps = []string{
	"CAP_AUDIT_CONTROL", "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
	"CAP_FOWNER", "CAP_FSETID", "CAP_IPC_OWNER", "CAP_KILL", "CAP_LEASE", "CAP_LINUX_IMMUTABLE",
	"CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_RAW", "CAP_SETFCAP",
	"CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_CHROOT",
	"CAP_SYS_NICE", "CAP_SYS_PTRACE", "CAP_SYS_RESOURCE", "CAP_SYS_TTY_CONFIG",
}

// voltInitHost finds Volt's init on the host: Options.Init, else volt-init
// next to this plugin's binary (bin/ of a build), else on PATH; "" when
// there is none or Options.Init is "none".
func (r *Runtime) voltInitHost() string {
	switch r.opts.Init {
	case "none":
		return ""
	case "":
		if self, err := os.Executable(); err == nil {
			p := filepath.Join(filepath.Dir(self), "volt-init")
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p
			}
		}
		if p, err := exec.LookPath("volt-init"); err == nil {
			return p
		}
		return ""
	default:
		return r.opts.Init
	}
}

// pickShim chooses the container's init: Volt's when available, tini
// otherwise. A seccomp or Landlock policy needs Volt's init.
func (r *Runtime) pickShim(spec sdk.WorkloadSpec) (shim, error) {
	if p := r.voltInitHost(); p != "" {
		return shim{kind: shimVoltInit, path: p}, nil
	}
	if s := spec.Security; s != nil && (s.Seccomp != nil || s.Landlock != nil) {
		return shim{}, fmt.Errorf("workload %q: seccomp and Landlock are applied by volt-init, which was not found next to the plugin or on PATH (build it with make build): %w", spec.Name, sdk.ErrUnsupported)
	}
	if t := r.tiniPath(); t != "" {
		return shim{kind: shimTini, path: t}, nil
	}
	return shim{}, nil
}

// checkSecurity refuses a spec whose policy names say a policy was wanted
// but whose policy did not arrive (a damaged message): fail closed.
func checkSecurity(spec sdk.WorkloadSpec) error {
	s := spec.Security
	if s == nil {
		return nil
	}
	if s.Seccomp == nil && s.SeccompName != "" && s.SeccompName != "unconfined" {
		return fmt.Errorf("workload %q: seccomp %q: %w: the profile is missing", spec.Name, s.SeccompName, sdk.ErrInvalid)
	}
	if s.Landlock == nil && s.LandlockName != "" && s.LandlockName != "none" {
		return fmt.Errorf("workload %q: landlock %q: %w: the policy is missing", spec.Name, s.LandlockName, sdk.ErrInvalid)
	}
	for _, t := range s.Tmpfs {
		if !strings.HasPrefix(t, "/") || strings.ContainsAny(t, "\x00\n") {
			return fmt.Errorf("workload %q: tmpfs %q: %w: not an absolute path", spec.Name, t, sdk.ErrInvalid)
		}
	}
	for _, c := range s.Capabilities {
		if !slices.Contains(sdk.CapabilityNames(), c) {
			return fmt.Errorf("workload %q: capability %q: %w", spec.Name, c, sdk.ErrInvalid)
		}
	}
	return nil
}

// securityArgs are the systemd-nspawn flags that confine the container:
// capability bounding set, no_new_privileges, read-only root, tmpfs mounts.
// With Volt's init and a seccomp or Landlock policy but new privileges
// allowed, CAP_SYS_ADMIN and CAP_SETPCAP stay for the init to install the
// filters and are then dropped by it.
func securityArgs(spec sdk.WorkloadSpec, sh shim) []string {
	s := spec.Security
	var args []string
	if s != nil && s.Privileged {
		args = append(args, "--capability=all")
	} else {
		want := s.Caps()
		base := slices.Clone(nspawnDefaultCaps)
		if spec.NetworkMode == "none" {
			base = append(base, "CAP_NET_ADMIN") // nspawn keeps it with --private-network
		}
		keep := slices.Clone(want)
		if sh.kind == shimVoltInit && s != nil && s.AllowNewPrivileges && (s.Seccomp != nil || s.Landlock != nil) {
			keep = append(keep, "CAP_SYS_ADMIN", "CAP_SETPCAP")
		}
		var drop, add []string
		for _, c := range base {
			if !slices.Contains(keep, c) {
				drop = append(drop, c)
			}
		}
		for _, c := range want {
			if !slices.Contains(base, c) {
				add = append(add, c)
			}
		}
		slices.Sort(add)
		slices.Sort(drop)
		if len(add) > 0 {
			args = append(args, "--capability="+strings.Join(add, ","))
		}
		if len(drop) > 0 {
			args = append(args, "--drop-capability="+strings.Join(drop, ","))
		}
	}
	if s == nil || !s.AllowNewPrivileges {
		args = append(args, "--no-new-privileges=yes")
	}
	if s != nil && s.Landlock != nil && sh.kind == shimVoltInit {
		// systemd 252's own seccomp allow-list predates Landlock.
		args = append(args, "--system-call-filter=landlock_create_ruleset landlock_add_rule landlock_restrict_self")
	}
	if s != nil && s.ReadOnlyRoot {
		args = append(args, "--read-only")
	}
	if s != nil {
		for _, t := range s.Tmpfs {
			args = append(args, "--tmpfs="+escapeBind(t))
		}
	}
	return args
}

// initArgs are the bind mounts and the command prefix that run the
// container's command under sh.
func initArgs(spec sdk.WorkloadSpec, sh shim) (binds, prefix []string) {
	switch sh.kind {
	case shimVoltInit:
		binds = []string{
			"--bind-ro=" + escapeBind(sh.path) + ":" + voltInitPath,
			"--bind-ro=" + escapeBind(filepath.Join(spec.StateDir, filePolicy)) + ":" + sdk.InitPolicyPath,
			"--bind=" + escapeBind(filepath.Join(spec.StateDir, fileReport)) + ":" + sdk.InitReportPath,
		}
		return binds, []string{voltInitPath, "--policy", sdk.InitPolicyPath, "--report", sdk.InitReportPath, "--"}
	case shimTini:
		// -g: forward signals to the payload's whole process group.
		return nil, []string{initPath, "-g", "--"}
	}
	return nil, nil
}

// prepareVoltInit writes the init's policy into the state dir and makes
// the mount points for the init's files in the rootfs (which is the
// host's to change even when the container sees it read-only).
func prepareVoltInit(spec sdk.WorkloadSpec) error {
	if err := os.MkdirAll(spec.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	pol := sdk.InitPolicyFor(spec.Security)
	// The host has Landlock, so the container has it: the init must not
	// settle for less.
	pol.LandlockRequired = pol.Landlock != nil && sdk.LandlockABI() > 0
	b, err := json.Marshal(pol)
	if err != nil {
		return fmt.Errorf("encode policy: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(spec.StateDir, filePolicy), b, 0o644); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(spec.StateDir, fileReport), nil, 0o644); err != nil {
		return err
	}
	dir := filepath.Join(spec.Root, filepath.Dir(voltInitPath))
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("rootfs %q: /.volt is a symlink: %w", spec.Root, sdk.ErrInvalid)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("rootfs %q: create /.volt: %w", spec.Root, err)
	}
	for _, p := range []string{voltInitPath, sdk.InitPolicyPath, sdk.InitReportPath} {
		target := filepath.Join(spec.Root, p)
		if fi, err := os.Lstat(target); err == nil && fi.Mode().IsRegular() {
			continue
		}
		_ = os.Remove(target)
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o644)
		if err != nil {
			return fmt.Errorf("rootfs %q: mount point %s: %w", spec.Root, p, err)
		}
		f.Close()
	}
	return nil
}

// removeVoltInit removes the runtime's files of a destroyed workload.
func removeVoltInit(root, stateDir string) {
	for _, f := range []string{filePolicy, fileReport} {
		_ = os.Remove(filepath.Join(stateDir, f))
	}
	if root == "" || !filepath.IsAbs(root) {
		return
	}
	for _, p := range []string{voltInitPath, sdk.InitPolicyPath, sdk.InitReportPath} {
		_ = os.Remove(filepath.Join(root, p))
	}
}

// securityDetail describes a workload's confinement for Inspect: what was
// asked (from the handle) and what the init reports it enforced.
func securityDetail(hd *handleData, detail map[string]string) {
	for k, v := range hd.Security {
		detail["security."+k] = v
	}
	if hd.Init != voltInitPath {
		return
	}
	b, err := os.ReadFile(filepath.Join(hd.StateDir, fileReport))
	switch {
	case errors.Is(err, os.ErrNotExist) || (err == nil && len(b) == 0):
		detail["security.enforced"] = "unknown (the init has not reported)"
	case err != nil:
		detail["security.enforced"] = "unknown: " + err.Error()
	default:
		var rep sdk.InitReport
		if json.Unmarshal(b, &rep) != nil {
			detail["security.enforced"] = "unknown (unreadable report)"
			return
		}
		out, _ := json.Marshal(rep)
		detail["security.enforced"] = string(out)
	}
}

// securitySummary is what the handle records about the requested policy.
func securitySummary(spec sdk.WorkloadSpec, sh shim) map[string]string {
	s := spec.Security
	m := map[string]string{
		"capabilities":    strings.Join(s.Caps(), ","),
		"noNewPrivileges": strconv.FormatBool(s == nil || !s.AllowNewPrivileges),
		"seccomp":         "unconfined",
		"landlock":        "none",
		"init":            sh.kind,
	}
	if s == nil {
		return m
	}
	if s.Privileged {
		m["capabilities"] = "all (privileged)"
	}
	if s.Seccomp != nil {
		m["seccomp"] = s.SeccompName
		if m["seccomp"] == "" {
			m["seccomp"] = "custom"
		}
	}
	if s.Landlock != nil {
		m["landlock"] = s.LandlockName
		if m["landlock"] == "" {
			m["landlock"] = "custom"
		}
	}
	if s.ReadOnlyRoot {
		m["readOnly"] = "true"
	}
	if len(s.Tmpfs) > 0 {
		m["tmpfs"] = strings.Join(s.Tmpfs, ",")
	}
	return m
}

// execPrefix runs an exec'd command through Volt's init in exec mode, so it
// gets the workload's policy (capabilities, no_new_privileges, Landlock,
// seccomp) before it starts; nothing for containers without Volt's init.
func execPrefix(hd *handleData) []string {
	if hd.Init != voltInitPath {
		return nil
	}
	return []string{voltInitPath, "--exec", "--policy", sdk.InitPolicyPath, "--"}
}

// mountPoints creates, in a rootfs the container will see read-only, the
// mount points nspawn cannot create then: its API file systems, tmpfs
// targets and bind targets
// (a directory, or an empty file for a file source). A symlink on the way
// is refused so that nothing is created outside the rootfs.
func mountPoints(spec sdk.WorkloadSpec) error {
	if spec.Security == nil || !spec.Security.ReadOnlyRoot {
		return nil
	}
	type point struct {
		path string
		file bool
	}
	var pts []point
	// What systemd-nspawn mounts in every container.
	for _, d := range []string{"/proc", "/sys", "/dev", "/run", "/tmp"} {
		pts = append(pts, point{path: d})
	}
	for _, t := range spec.Security.Tmpfs {
		pts = append(pts, point{path: t})
	}
	for _, m := range spec.Mounts {
		fi, err := os.Stat(m.Source)
		pts = append(pts, point{path: m.Target, file: err == nil && !fi.IsDir()})
	}
	for _, p := range pts {
		if err := mkdirInRoot(spec.Root, p.path, p.file); err != nil {
			return fmt.Errorf("rootfs %q: mount point %s: %w", spec.Root, p.path, err)
		}
	}
	return nil
}

// mkdirInRoot creates the container path p under root one component at a
// time, refusing symlinks; with file the last component is an empty file.
func mkdirInRoot(root, p string, file bool) error {
	parts := strings.Split(strings.Trim(filepath.Clean("/"+p), "/"), "/")
	cur := root
	for i, part := range parts {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		last := i == len(parts)-1
		fi, err := os.Lstat(cur)
		switch {
		case err == nil && fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink: %w", cur, sdk.ErrInvalid)
		case err == nil:
			continue
		case !errors.Is(err, os.ErrNotExist):
			return err
		case last && file:
			f, err := os.OpenFile(cur, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o644)
			if err != nil {
				return err
			}
			f.Close()
		default:
			if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		}
	}
	return nil
}
