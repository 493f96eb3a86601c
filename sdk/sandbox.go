package sdk

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
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
	if err := ApplySandbox(p, sock); err != nil {
		return err
	}
	// One debug record (hclog JSON, which the host logs as such) says what
	// is in force, so that `volt --debug` and tests can see it arrived.
	abi, _ := llsyscall.LandlockGetABIVersion()
	rec, _ := json.Marshal(map[string]any{"@level": "debug", "@message": "sandbox applied", "landlock_abi": abi, "read": p.Read, "write": p.Write})
	fmt.Fprintf(os.Stderr, "%s\n", rec)
	return nil
}

// ApplySandbox restricts the calling process (all its threads, and every
// process it starts) to p, plus extraWrite directories. It uses the best
// Landlock ABI the kernel offers and is a no-op on kernels without Landlock.
// Paths that do not exist are skipped.
func ApplySandbox(p SandboxPolicy, extraWrite ...string) error {
	var rules []landlock.Rule
	rules = append(rules, landlock.RODirs(systemReadDirs...).IgnoreIfMissing())
	rules = append(rules, landlock.RWFiles("/dev/null", "/dev/zero", "/dev/urandom").IgnoreIfMissing())
	for _, path := range p.Read {
		rules = append(rules, pathRule(path, false))
	}
	for _, path := range append(append([]string{}, p.Write...), extraWrite...) {
		rules = append(rules, pathRule(path, true))
	}
	if err := landlock.V5.BestEffort().RestrictPaths(rules...); err != nil {
		return fmt.Errorf("sandbox: landlock: %w", err)
	}
	return nil
}

// pathRule is the rule for one path: a directory rule for directories, a file
// rule for anything else.
func pathRule(path string, write bool) landlock.Rule {
	fi, err := os.Stat(path)
	dir := err == nil && fi.IsDir()
	switch {
	case dir && write:
		return landlock.RWDirs(path).WithRefer().IgnoreIfMissing()
	case dir:
		return landlock.RODirs(path).IgnoreIfMissing()
	case write:
		return landlock.RWFiles(path).IgnoreIfMissing()
	}
	return landlock.ROFiles(path).IgnoreIfMissing()
}
