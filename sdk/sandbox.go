package sdk

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
)

// SandboxEnv names the environment variable through which the host asks a
// format plugin to restrict itself with Landlock before serving. Its value
// is a SandboxPolicy in JSON.
const SandboxEnv = "VOLT_PLUGIN_LANDLOCK"

// SandboxPolicy is the file-system access a sandboxed format plugin keeps:
// Read paths (files or directories, recursively) read-only, Write paths
// read-write. System directories needed to run helper tools (/usr, /lib,
// /etc, ...) stay readable, /dev/null writable, and a private directory for
// go-plugin's socket writable. Everything else is denied. Landlock is
// irreversible and per process, so the policy holds for the plugin's life.
type SandboxPolicy struct {
	Read  []string `json:"read,omitempty"`
	Write []string `json:"write,omitempty"`
}

// Encode renders p as the value of SandboxEnv.
func (p SandboxPolicy) Encode() (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode sandbox policy: %w", err)
	}
	return string(b), nil
}

// systemReadDirs stay readable under any policy so that a plugin can exec
// tools such as qemu-img.
var systemReadDirs = []string{"/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys/devices/system/cpu"}

// deviceFiles stay writable under any policy: the character devices every
// program expects to open read-write (os/exec needs /dev/null).
var deviceFiles = []string{"/dev/null", "/dev/zero", "/dev/urandom"}

// applySandboxFromEnv applies the SandboxEnv policy, if any, to this process.
// It first moves go-plugin's socket into a private directory it may write.
func applySandboxFromEnv() error {
	v := os.Getenv(SandboxEnv)
	if v == "" {
		return nil
	}
	var p SandboxPolicy
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return fmt.Errorf("%s: %w", SandboxEnv, err)
	}
	sock, err := os.MkdirTemp("", "volt-plugin-sock-")
	if err != nil {
		return fmt.Errorf("sandbox: socket dir: %w", err)
	}
	if err := os.Setenv("PLUGIN_UNIX_SOCKET_DIR", sock); err != nil {
		return err
	}
	rep, err := applySandbox(p, sock)
	if err != nil {
		return err
	}
	// One debug record (hclog JSON, which the host logs as such) says what
	// is in force, so that `volt --debug` and tests can see it arrived.
	rec, _ := json.Marshal(map[string]any{"@level": "debug", "@message": "sandbox applied", "landlock_abi": rep.ABI, "read": p.Read, "write": p.Write})
	fmt.Fprintf(os.Stderr, "%s\n", rec)
	return nil
}

// ApplySandbox restricts the calling process (all its threads, and every
// process it starts) to p, plus extraWrite directories. It uses the best
// Landlock ABI the kernel offers and is a no-op on kernels without Landlock.
// Paths that do not exist are skipped. It is LandlockPolicy with the system
// directories readable and executable and the device files writable.
func ApplySandbox(p SandboxPolicy, extraWrite ...string) error {
	_, err := applySandbox(p, extraWrite...)
	return err
}

// applySandbox is ApplySandbox, also returning what Landlock enforced.
func applySandbox(p SandboxPolicy, extraWrite ...string) (LandlockReport, error) {
	lp := LandlockPolicy{
		Execute: append(slices.Clone(systemReadDirs), p.Read...),
		Write:   append(append(slices.Clone(deviceFiles), p.Write...), extraWrite...),
	}
	rep, err := ApplyLandlock(lp)
	if err != nil {
		return rep, fmt.Errorf("sandbox: %w", err)
	}
	return rep, nil
}

// DefaultCapabilities is the capability set a container keeps unless its
// service says otherwise: docker's (and podman's) default set.
var DefaultCapabilities = []string{
	"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
	"CAP_SETUID", "CAP_SYS_CHROOT",
}

// WorkloadSecurity is how a container is confined, resolved by the host
// from the service's security settings (engine/security): runtimes apply
// it as given.
type WorkloadSecurity struct {
	// Privileged keeps every capability and turns seccomp off.
	Privileged bool `json:"privileged,omitempty"`
	// Capabilities is the whole bounding set ("CAP_NET_RAW" ...); nil
	// means DefaultCapabilities, an empty non-nil list none at all.
	Capabilities []string `json:"capabilities"`
	// AllowNewPrivileges leaves no_new_privileges off (setuid binaries work).
	AllowNewPrivileges bool `json:"allow_new_privileges,omitempty"`
	// ReadOnlyRoot mounts the container's root read-only; Tmpfs lists
	// container paths that get a fresh tmpfs.
	ReadOnlyRoot bool     `json:"read_only_root,omitempty"`
	Tmpfs        []string `json:"tmpfs,omitempty"`
	// Seccomp is the resolved filter; nil means unconfined. SeccompName
	// says where it came from ("default", "unconfined", a file name).
	Seccomp     *SeccompProfile `json:"seccomp,omitempty"`
	SeccompName string          `json:"seccomp_name,omitempty"`
	// Landlock is the policy in container paths; nil means none.
	// LandlockName is the profile's name ("default", "strict", a file).
	Landlock     *LandlockPolicy `json:"landlock,omitempty"`
	LandlockName string          `json:"landlock_name,omitempty"`
}

// Caps returns the capability bounding set s asks for.
func (s *WorkloadSecurity) Caps() []string {
	if s == nil || s.Capabilities == nil {
		return slices.Clone(DefaultCapabilities)
	}
	return slices.Clone(s.Capabilities)
}

// InitPolicyFor is the InitPolicy for s (nil: the runtime's defaults).
func InitPolicyFor(s *WorkloadSecurity) InitPolicy {
	p := InitPolicy{Capabilities: s.Caps(), NoNewPrivileges: s == nil || !s.AllowNewPrivileges}
	if s != nil {
		p.Seccomp, p.Landlock = s.Seccomp, s.Landlock
		if s.Privileged {
			p.Capabilities = nil
		}
	}
	return p
}
