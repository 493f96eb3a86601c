// Package security turns a container's security settings (cap_add,
// cap_drop, privileged, read_only, tmpfs, security.landlock/seccomp/
// no_new_privileges) into the sdk.WorkloadSecurity a runtime enforces:
// capability sets, docker's seccomp profile resolved for them, and Landlock
// profiles (default, strict, none, or custom files). It checks everything
// at import, before anything starts (docs/workload-security.md).
package security

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/volt-cli/volt/engine/constellation"
	"github.com/volt-cli/volt/engine/suggest"
	"github.com/volt-cli/volt/sdk"
)

// ErrPolicy is wrapped by every error about a service's security settings.
var ErrPolicy = errors.New("security policy")

// Capabilities lists every Linux capability name Volt accepts.
var Capabilities = sdk.CapabilityNames()

// CapName normalises a capability as users write it ("net_raw",
// "CAP_NET_RAW", "ALL") to "CAP_NET_RAW" or "ALL". Unknown names are an
// error that suggests the closest known one.
func CapName(s string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if u == "ALL" {
		return u, nil
	}
	if !strings.HasPrefix(u, "CAP_") {
		u = "CAP_" + u
	}
	if slices.Contains(Capabilities, u) {
		return u, nil
	}
	hint := ""
	if c := suggest.Closest(u, Capabilities); c != "" {
		hint = fmt.Sprintf(" (did you mean %s?)", strings.TrimPrefix(c, "CAP_"))
	}
	return "", fmt.Errorf("unknown capability %q%s: see capabilities(7)", s, hint)
}

// CapSet is docker's default set changed by add and drop (drop applied
// first, as docker does; "ALL" in drop empties the set, "ALL" in add adds
// every capability).
func CapSet(add, drop []string) ([]string, error) {
	set := map[string]bool{}
	for _, c := range sdk.DefaultCapabilities {
		set[c] = true
	}
	for _, d := range drop {
		n, err := CapName(d)
		if err != nil {
			return nil, fmt.Errorf("cap_drop: %w", err)
		}
		if n == "ALL" {
			clear(set)
			continue
		}
		delete(set, n)
	}
	for _, a := range add {
		n, err := CapName(a)
		if err != nil {
			return nil, fmt.Errorf("cap_add: %w", err)
		}
		if n == "ALL" {
			for _, c := range Capabilities {
				set[c] = true
			}
			continue
		}
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out, nil
}

// Options change how Resolve treats a service.
type Options struct {
	// AllowPrivileged lets privileged: true through (import --allow-privileged).
	AllowPrivileged bool
	// BestEffort turns "cannot be enforced on this host" errors into
	// warnings (import --security=best-effort).
	BestEffort bool
	// ProfileDirs are searched for custom Landlock profiles NAME.yaml,
	// NAME.yml or NAME.json, in order; nil means DefaultProfileDirs.
	ProfileDirs []string
	// BaseDir resolves a relative seccomp profile path (the bundle's or
	// recipe's directory); "" is the working directory.
	BaseDir string
	// Warn receives warnings (nil: dropped).
	Warn func(string)
	// LandlockABI overrides the host's Landlock ABI (tests); 0 asks the kernel.
	LandlockABI int
}

// DefaultProfileDirs is where custom Landlock profiles are looked up.
var DefaultProfileDirs = []string{"/etc/volt/profiles"}

func (o Options) warn(format string, args ...any) {
	if o.Warn != nil {
		o.Warn(fmt.Sprintf(format, args...))
	}
}

func (o Options) abi() int {
	if o.LandlockABI != 0 {
		return max(o.LandlockABI, 0)
	}
	return sdk.LandlockABI()
}

// Resolve turns service svc's settings into what its runtime enforces.
// mounts are the container's volumes (their targets become writable under
// the Landlock profiles). Errors name the service and setting.
func Resolve(svc string, c *constellation.Container, mounts []sdk.Mount, opts Options) (*sdk.WorkloadSecurity, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("service %s: %w: %s", svc, ErrPolicy, fmt.Sprintf(format, args...))
	}
	sec := c.Security
	if sec == nil {
		sec = &constellation.Security{}
	}
	ws := &sdk.WorkloadSecurity{ReadOnlyRoot: c.ReadOnly}
	for _, t := range c.Tmpfs {
		p, _, _ := strings.Cut(t, ":") // docker allows "/run:size=64m"; options are not passed on
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\n") {
			return nil, fail("tmpfs %q: want an absolute container path like /tmp", t)
		}
		ws.Tmpfs = append(ws.Tmpfs, filepath.Clean(p))
	}
	caps, err := CapSet(c.CapAdd, c.CapDrop)
	if err != nil {
		return nil, fail("%v", err)
	}
	ws.Capabilities = caps
	if c.Privileged {
		if !opts.AllowPrivileged {
			return nil, fail("privileged: true gives the container every capability and no seccomp filter; import with --allow-privileged to accept that")
		}
		ws.Privileged = true
		ws.Capabilities = slices.Clone(Capabilities)
	}
	ws.AllowNewPrivileges = sec.NoNewPrivileges != nil && !*sec.NoNewPrivileges
	if c.Privileged && sec.NoNewPrivileges == nil {
		ws.AllowNewPrivileges = true
	}
	// seccomp
	switch name := sec.Seccomp; {
	case name == "unconfined" || (c.Privileged && name == ""):
		ws.SeccompName = "unconfined"
	case name == "" || name == "default":
		p, err := DefaultSeccomp(ws.Capabilities)
		if err != nil {
			return nil, fail("seccomp: %v", err)
		}
		ws.Seccomp, ws.SeccompName = p, "default"
	default:
		path := name
		if !filepath.IsAbs(path) && opts.BaseDir != "" {
			path = filepath.Join(opts.BaseDir, path)
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return nil, fail("seccomp: %v (want default, unconfined or the path of a docker-format JSON profile)", err)
		}
		p, err := LoadSeccomp(body, ws.Capabilities)
		if err != nil {
			return nil, fail("seccomp profile %s: %v", name, err)
		}
		ws.Seccomp, ws.SeccompName = p, name
	}
	// Landlock
	lp, name, err := Landlock(sec.Landlock, c, mounts, ws.Tmpfs, opts)
	if err != nil {
		return nil, fail("%v", err)
	}
	ws.Landlock, ws.LandlockName = lp, name
	if lp != nil {
		abi := opts.abi()
		switch {
		case abi == 0 && opts.BestEffort:
			opts.warn("service %s: landlock %s will not be enforced: this kernel has no Landlock", svc, name)
		case abi == 0:
			return nil, fail("landlock %s: this kernel has no Landlock (import with --security=best-effort to run without it)", name)
		case lp.RestrictNet && abi < sdk.LandlockMinNetABI && opts.BestEffort:
			opts.warn("service %s: landlock %s: TCP rules will not be enforced: the kernel's Landlock ABI is %d, TCP needs %d", svc, name, abi, sdk.LandlockMinNetABI)
		case lp.RestrictNet && abi < sdk.LandlockMinNetABI:
			return nil, fail("landlock %s restricts TCP, which needs Landlock ABI %d; this kernel has %d (import with --security=best-effort to run without it)", name, sdk.LandlockMinNetABI, abi)
		}
	}
	return ws, nil
}

// DefaultSeccomp is docker's default seccomp profile resolved for caps on
// this machine's architecture and kernel.
func DefaultSeccomp(caps []string) (*sdk.SeccompProfile, error) {
	return resolveSeccomp(seccomp.DefaultProfile(), caps)
}

// LoadSeccomp parses a docker-format JSON seccomp profile and resolves it
// for caps. Everything Volt cannot compile is an error here, so a bad
// profile fails the import rather than the container's start.
func LoadSeccomp(body []byte, caps []string) (*sdk.SeccompProfile, error) {
	var cfg seccomp.Seccomp
	if err := jsonStrict(body, &cfg); err != nil {
		return nil, err
	}
	if cfg.DefaultAction == "" {
		return nil, errors.New("no defaultAction: want e.g. \"SCMP_ACT_ERRNO\"")
	}
	return resolveSeccomp(&cfg, caps)
}

func resolveSeccomp(cfg *seccomp.Seccomp, caps []string) (*sdk.SeccompProfile, error) {
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
	body, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	ls, err := seccomp.LoadProfile(string(body), rs)
	if err != nil {
		return nil, err
	}
	if ls == nil {
		return nil, errors.New("empty profile")
	}
	p := &sdk.SeccompProfile{DefaultAction: string(ls.DefaultAction), DefaultErrnoRet: ls.DefaultErrnoRet}
	for _, s := range ls.Syscalls {
		r := sdk.SeccompRule{Names: s.Names, Action: string(s.Action), ErrnoRet: s.ErrnoRet}
		for _, a := range s.Args {
			r.Args = append(r.Args, sdk.SeccompArg{Index: a.Index, Value: a.Value, ValueTwo: a.ValueTwo, Op: string(a.Op)})
		}
		p.Syscalls = append(p.Syscalls, r)
	}
	if runtime.GOOS == "linux" {
		if err := p.Compile(); err != nil { // compiles here, or fails the import
			return nil, err
		}
	}
	return p, nil
}

// portNumber extracts the container port of a "[ip:]host:container[/proto]"
// entry; ok is false for UDP and unparsable entries.
func portNumber(spec string) (uint16, bool) {
	s, proto, _ := strings.Cut(spec, "/")
	if proto != "" && proto != "tcp" {
		return 0, false
	}
	if i := strings.LastIndex(s, ":"); i >= 0 {
		s = s[i+1:]
	}
	s, _, _ = strings.Cut(s, "-") // a range: its first port
	n, err := strconv.ParseUint(s, 10, 16)
	return uint16(n), err == nil && n > 0
}

// TmpfsDirs are the paths the default profile lets every container write.
var TmpfsDirs = []string{"/tmp", "/run", "/var/tmp"}

// deviceFiles are the device nodes every program may open read-write.
var deviceFiles = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/ptmx", "/dev/pts", "/dev/shm"}

// Landlock resolves a landlock setting (default, strict, none, "" or a
// profile's name) into a policy in container paths; nil means none.
func Landlock(name string, c *constellation.Container, mounts []sdk.Mount, tmpfs []string, opts Options) (*sdk.LandlockPolicy, string, error) {
	writable := func() []string {
		w := slices.Clone(TmpfsDirs)
		w = append(w, deviceFiles...)
		w = append(w, tmpfs...)
		for _, m := range mounts {
			if !m.ReadOnly {
				w = append(w, m.Target)
			}
		}
		if c.Security != nil {
			w = append(w, c.Security.Writable...)
		}
		return w
	}
	switch name {
	case "", "none":
		return nil, "none", nil
	case "default":
		return &sdk.LandlockPolicy{Execute: []string{"/"}, Write: writable()}, name, nil
	case "strict":
		p := &sdk.LandlockPolicy{Execute: []string{"/"}, Write: writable(), RestrictNet: true}
		for _, ps := range c.Ports {
			if n, ok := portNumber(ps); ok {
				p.NetBind = append(p.NetBind, n)
			}
		}
		return p, name, nil
	}
	if name == constellation.LandlockInline && c.Security != nil && c.Security.LandlockRules != nil {
		prof, err := InlineProfile(c.Security.LandlockRules)
		if err != nil {
			return nil, "", err
		}
		p := prof.Policy
		p.Write = append(p.Write, deviceFiles...)
		return &p, name, nil
	}
	prof, path, err := LoadProfile(name, opts.ProfileDirs)
	if err != nil {
		return nil, "", err
	}
	p := prof.Policy
	p.Write = append(p.Write, deviceFiles...)
	return &p, "profile " + name + " (" + path + ")", nil
}

// jsonStrict decodes one JSON value, refusing unknown keys and trailing data.
func jsonStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not a docker seccomp profile: %w", err)
	}
	if dec.More() {
		return errors.New("not a docker seccomp profile: data after the JSON object")
	}
	return nil
}
