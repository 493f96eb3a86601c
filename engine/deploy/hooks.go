package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/sandbox"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// HookTimeout bounds one hook run.
var HookTimeout = 5 * time.Minute

// stageHooks extracts the bundle's hooks into stage and returns kind → path.
func (d *Deployer) stageHooks(r *bundle.Reader, m *bundle.Manifest, stage string) (map[string]string, error) {
	out := map[string]string{}
	for kind, entry := range m.Hooks {
		data, err := readEntry(r, entry, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("hook %s: %w", kind, err)
		}
		p := filepath.Join(stage, "hook-"+kind+".sh")
		if err := os.WriteFile(p, data, 0o755); err != nil {
			return nil, err
		}
		out[kind] = p
	}
	return out, nil
}

// keepHooks maps staged hooks to where saveHooks keeps them in the stack dir.
func keepHooks(staged map[string]string, dir string) map[string]string {
	if len(staged) == 0 {
		return nil
	}
	out := map[string]string{}
	for kind := range staged {
		out[kind] = filepath.Join(dir, "hooks", kind+".sh")
	}
	return out
}

// saveHooks copies staged hooks into the stack dir (destroy hooks run from there).
func (d *Deployer) saveHooks(staged map[string]string, stack string) error {
	dir := filepath.Join(stackDir(d.Root, stack), "hooks")
	os.RemoveAll(dir)
	if len(staged) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for kind, p := range staged {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, kind+".sh"), data, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// hookEnvironment is the environment hooks see.
func hookEnvironment(st *Stack, dir string) []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"VOLT_STACK_NAME=" + st.Name,
		"VOLT_STACK_DIR=" + dir,
		"VOLT_BUNDLE_NAME=" + st.Bundle.Name,
		"VOLT_BUNDLE_VERSION=" + st.Bundle.Version,
		"VOLT_BUNDLE_DIGEST=" + st.Bundle.Digest,
	}
}

// runHook runs one hook script with /bin/sh in stackDir (the directory
// hookEnvironment named in env) under a Landlock sandbox that lets it read
// the filesystem and write only the stack dir and /tmp. A missing hook
// ("" path) is a no-op.
func runHook(ctx context.Context, script, kind, stackDir string, env []string, log *slog.Logger) error {
	if script == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, HookTimeout)
	defer cancel()
	os.MkdirAll(stackDir, 0o755)
	policy := sandbox.Policy{
		ReadOnly:  []string{"/"},
		ReadWrite: []string{stackDir, os.TempDir(), "/dev/null"},
	}
	cmd, err := sandbox.Command(ctx, policy, []string{"/bin/sh", script}, append(env, "VOLT_HOOK="+kind))
	if err != nil {
		return err
	}
	// A hook, and what it starts, must not outlive the CLI (kill -9 during
	// an import): it would go on changing the stack dir while a re-run of
	// the import works there. The sandbox launcher sees to that.
	cmd.Dir = stackDir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if log != nil {
		log.Info("hook ran", "hook", kind, "output", out.String())
	}
	if err != nil {
		tail := strings.TrimSpace(out.String())
		if i := strings.LastIndexByte(tail, '\n'); i >= 0 {
			tail = tail[i+1:]
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("did not finish within %s and was killed: %s", HookTimeout, tail)
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return fmt.Errorf("exit code %d: %s", ee.ExitCode(), tail)
		}
		return fmt.Errorf("%w: %s", err, tail)
	}
	return nil
}
