package nspawn

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/volt-cli/volt/sdk"
)

// initPath is where the init shim (tini) lives inside a container's rootfs.
const initPath = "/.volt/tini"

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// validName checks a workload name: it becomes the nspawn machine name (the
// container's hostname), a cgroup directory and part of a unit name.
func validName(name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("workload name %q: %w: want 1-64 of [A-Za-z0-9_.-], starting with a letter or digit", name, sdk.ErrInvalid)
	}
	return nil
}

// escapeBind escapes ':' and '\' in a --bind path, as systemd-nspawn expects.
func escapeBind(p string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(p)
}

// commonArgs are the flags every nspawn invocation here needs: no D-Bus, no
// machined registration, quiet, stdio as pipes.
func commonArgs(root, machine string) []string {
	return []string{"-D", root, "--register=no", "--keep-unit", "-q", "--pipe", "--machine=" + machine}
}

// envArgs turns env into sorted --setenv flags.
func envArgs(env map[string]string) ([]string, error) {
	keys := make([]string, 0, len(env))
	for k := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(env[k], 0) {
			return nil, fmt.Errorf("environment variable %q: %w", k, sdk.ErrInvalid)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, "--setenv="+k+"="+env[k])
	}
	return out, nil
}

// workloadArgs builds the systemd-nspawn arguments (without argv[0]) for a
// long-running workload: its confinement (securityArgs) and sh, the init
// shim, in front of the command.
func workloadArgs(spec sdk.WorkloadSpec, sh shim) ([]string, error) {
	if err := validName(spec.Name); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(spec.Root) {
		return nil, fmt.Errorf("workload %q: root %q: %w: not an absolute path", spec.Name, spec.Root, sdk.ErrInvalid)
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return nil, fmt.Errorf("workload %q: %w: no command", spec.Name, sdk.ErrInvalid)
	}
	args := commonArgs(spec.Root, spec.Name)
	args = append(args, "--kill-signal=SIGTERM")
	switch spec.NetworkMode {
	case "", "host":
	case "none":
		args = append(args, "--private-network")
	default:
		return nil, fmt.Errorf("workload %q: network mode %q: %w (this runtime knows host and none)", spec.Name, spec.NetworkMode, sdk.ErrUnsupported)
	}
	if spec.WorkingDir != "" {
		if !strings.HasPrefix(spec.WorkingDir, "/") {
			return nil, fmt.Errorf("workload %q: working dir %q: %w: not absolute", spec.Name, spec.WorkingDir, sdk.ErrInvalid)
		}
		args = append(args, "--chdir="+spec.WorkingDir)
	}
	if spec.User != "" {
		if strings.ContainsAny(spec.User, "\x00\n") {
			return nil, fmt.Errorf("workload %q: user %q: %w", spec.Name, spec.User, sdk.ErrInvalid)
		}
		args = append(args, "--user="+spec.User)
	}
	env, err := envArgs(spec.Env)
	if err != nil {
		return nil, fmt.Errorf("workload %q: %w", spec.Name, err)
	}
	args = append(args, env...)
	for _, m := range spec.Mounts {
		if !filepath.IsAbs(m.Source) || !strings.HasPrefix(m.Target, "/") || strings.ContainsRune(m.Source+m.Target, 0) {
			return nil, fmt.Errorf("workload %q: mount %q -> %q: %w: paths must be absolute", spec.Name, m.Source, m.Target, sdk.ErrInvalid)
		}
		flag := "--bind="
		if m.ReadOnly {
			flag = "--bind-ro="
		}
		args = append(args, flag+escapeBind(m.Source)+":"+escapeBind(m.Target))
	}
	if err := checkSecurity(spec); err != nil {
		return nil, err
	}
	args = append(args, securityArgs(spec, sh)...)
	binds, prefix := initArgs(spec, sh)
	args = append(args, binds...)
	args = append(args, "--")
	args = append(args, prefix...)
	return append(args, spec.Command...), nil
}

// runArgs builds the systemd-nspawn arguments for a build step: network off,
// run to completion. On cancellation nspawn gets SIGTERM and, without
// --kill-signal, kills the step's processes at once.
func runArgs(req sdk.RunRequest, machine string) ([]string, error) {
	if !filepath.IsAbs(req.Root) {
		return nil, fmt.Errorf("build step: root %q: %w: not an absolute path", req.Root, sdk.ErrInvalid)
	}
	if len(req.Command) == 0 || req.Command[0] == "" {
		return nil, fmt.Errorf("build step: %w: no command", sdk.ErrInvalid)
	}
	args := commonArgs(req.Root, machine)
	args = append(args, "--private-network")
	if req.WorkDir != "" {
		if !strings.HasPrefix(req.WorkDir, "/") {
			return nil, fmt.Errorf("build step: work dir %q: %w: not absolute", req.WorkDir, sdk.ErrInvalid)
		}
		args = append(args, "--chdir="+req.WorkDir)
	}
	env, err := envArgs(req.Env)
	if err != nil {
		return nil, fmt.Errorf("build step: %w", err)
	}
	args = append(args, env...)
	args = append(args, "--")
	return append(args, req.Command...), nil
}
