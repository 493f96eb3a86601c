package nspawn

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/volt-cli/volt/sdk"
)

// errLimitsUnsupported: the host has no writable cgroup v1 controller for a
// limit (Start checks support first and drops such limits instead).
var errLimitsUnsupported = fmt.Errorf("resource limits unsupported on this host: %w", sdk.ErrUnsupported)

// cgroupV1 manages hand-made cgroup v1 groups under ROOT/{memory,cpu}/volt/NAME.
// The shim (shimScript) moves itself into them before it starts
// systemd-nspawn, so the container inherits them.
type cgroupV1 struct{ root string }

// controller reports whether the v1 controller dir ROOT/ctl is mounted and
// writable by us (a volt/ group can be created in it).
func (c cgroupV1) controller(ctl string) bool {
	dir := filepath.Join(c.root, ctl)
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
		return false
	}
	if _, err := os.Stat(filepath.Join(c.root, "cgroup.controllers")); err == nil {
		return false // cgroup v2 mounted at the root: not v1
	}
	if err := os.Mkdir(filepath.Join(dir, "volt"), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return false
	}
	return true
}

// support describes what limits this host enforces, e.g. "memory,cpu (cgroup v1)".
func (c cgroupV1) support() (memory, cpu bool) {
	return c.controller("memory"), c.controller("cpu")
}

// prepare creates the groups for name and writes the limits. It returns the
// group directories the shim must join. No limits → no groups.
func (c cgroupV1) prepare(name string, memoryBytes int64, cpus float64) ([]string, error) {
	if memoryBytes < 0 || cpus < 0 {
		return nil, fmt.Errorf("limits for %q: %w: negative", name, sdk.ErrInvalid)
	}
	var dirs []string
	set := func(ctl string, files [][2]string) error {
		if !c.controller(ctl) {
			return fmt.Errorf("%s limit for %q: %w", ctl, name, errLimitsUnsupported)
		}
		dir := filepath.Join(c.root, ctl, "volt", name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %q: %w", dir, err)
		}
		dirs = append(dirs, dir)
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f[0]), []byte(f[1]), 0o644); err != nil {
				return fmt.Errorf("set %s for %q: %w", f[0], name, err)
			}
		}
		return nil
	}
	if memoryBytes > 0 {
		if err := set("memory", [][2]string{{"memory.limit_in_bytes", strconv.FormatInt(memoryBytes, 10)}}); err != nil {
			c.remove(dirs)
			return nil, err
		}
	}
	if cpus > 0 {
		const period = 100000
		quota := max(int64(cpus*period), 1000)
		if err := set("cpu", [][2]string{{"cpu.cfs_period_us", strconv.Itoa(period)}, {"cpu.cfs_quota_us", strconv.FormatInt(quota, 10)}}); err != nil {
			c.remove(dirs)
			return nil, err
		}
	}
	return dirs, nil
}

// killCgroups sends SIGKILL to every process left in the groups.
func killCgroups(dirs []string) {
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// remove deletes the groups (best effort; a group still holding processes stays).
func (c cgroupV1) remove(dirs []string) {
	for _, d := range dirs {
		// Only ever remove groups under our own volt/ directories.
		if rel, err := filepath.Rel(c.root, d); err != nil || strings.HasPrefix(rel, "..") || !strings.Contains(rel, string(filepath.Separator)+"volt"+string(filepath.Separator)) {
			continue
		}
		// A group empties a moment after its last process exits.
		for i := 0; i < 50; i++ {
			if err := os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
