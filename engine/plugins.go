package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/plan"
	"github.com/volt-cli/volt/engine/pluginhost"
	"github.com/volt-cli/volt/sdk"
)

// Plugins returns the plugin host, creating it on first use. Plugins start
// lazily, and Close stops every plugin process this engine started.
func (e *Engine) Plugins() *pluginhost.Host {
	if e.plugins == nil {
		e.plugins = pluginhost.New(pluginhost.Options{
			Dirs:   e.pluginDirs,
			Root:   e.Root,
			Logger: e.Logger,
		})
		stop := e.plugins.CloseOnSignal()
		h := e.plugins
		e.closers = append(e.closers, func() { stop(); h.Close() })
	}
	return e.plugins
}

// formatPolicy is the Landlock policy of the format plugins one job starts:
// read-only access to read, read-write to write (plus the system
// directories the SDK always allows). Every job that starts a format plugin
// passes its own; see pluginhost.Policy.
func formatPolicy(read, write []string) pluginhost.Policy {
	return pluginhost.Confined(sdk.SandboxPolicy{Read: read, Write: write})
}

// pluginPacker packs directory images with a format plugin started under policy.
type pluginPacker struct {
	host   *pluginhost.Host
	policy pluginhost.Policy
}

func (p pluginPacker) Pack(ctx context.Context, dir, format, platform, staging string, mtime time.Time) (string, error) {
	f, name, err := p.host.FormatFor(ctx, format, p.policy)
	if err != nil {
		return "", err
	}
	files, err := f.Pack(ctx, sdk.PackRequest{
		Source: dir, Format: format, Staging: staging,
		// ".volt" at the root of a tree holds runtime-private files (the init
		// shim): never image content.
		Options: map[string]string{"platform": platform, "mtime": strconv.FormatInt(mtime.Unix(), 10), "exclude": ".volt"},
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if len(files) != 1 {
		return "", fmt.Errorf("%s: packed %d files, want 1", name, len(files))
	}
	out := filepath.Join(staging, filepath.FromSlash(files[0].Path))
	if rel, err := filepath.Rel(staging, out); err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%s: packed file %q is outside its staging dir", name, files[0].Path)
	}
	if fi, err := os.Lstat(out); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: packed file %q is not a regular file", name, files[0].Path)
	}
	return out, nil
}

// pluginBuilder runs recipe build() steps: it makes a scratch copy of the
// base rootfs, runs each command through the step's runtime plugin (network
// off, pluginhost.RuntimePolicy), and packs the resulting tree with the
// format-oci plugin (under the packer's policy). A step declared once for
// several platforms runs once; its tree is packed per platform.
type pluginBuilder struct {
	host   *pluginhost.Host
	packer pluginPacker
	log    func(string)
	ran    map[*plan.BuildStep]string // step -> scratch rootfs
}

func (b *pluginBuilder) Build(ctx context.Context, step *plan.BuildStep, root, platform, staging string, mtime time.Time) (string, error) {
	tree, ok := b.ran[step]
	if !ok {
		var err error
		if tree, err = b.run(ctx, step, root, staging); err != nil {
			return "", err
		}
		b.ran[step] = tree
	}
	dir, err := os.MkdirTemp(staging, "built-*")
	if err != nil {
		return "", err
	}
	return b.packer.Pack(ctx, tree, "oci", platform, dir, mtime)
}

func (b *pluginBuilder) run(ctx context.Context, step *plan.BuildStep, root, staging string) (string, error) {
	if step.Base == nil {
		return "", fmt.Errorf("build step has no base image")
	}
	work, err := os.MkdirTemp(staging, "build-*")
	if err != nil {
		return "", err
	}
	tree := filepath.Join(work, "rootfs")
	base := filepath.Join(root, filepath.FromSlash(step.Base.Path))
	fi, err := os.Stat(base)
	if err != nil {
		return "", fmt.Errorf("build base: %w", err)
	}
	if fi.IsDir() {
		// A scratch copy, so the recipe's base directory is never written.
		if out, err := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", base, tree).CombinedOutput(); err != nil {
			return "", fmt.Errorf("copy build base %s: %v: %s", step.Base.Path, err, strings.TrimSpace(string(out)))
		}
	} else {
		format, _, err := bundle.DetectFormat(base)
		if err != nil {
			return "", fmt.Errorf("build base %s: %w", step.Base.Path, err)
		}
		f, name, err := b.host.FormatFor(ctx, format, b.packer.policy)
		if err != nil {
			return "", err
		}
		if err := os.MkdirAll(tree, 0o755); err != nil {
			return "", err
		}
		if err := f.Unpack(ctx, sdk.UnpackRequest{Image: base, Format: format, Dest: tree}); err != nil {
			return "", fmt.Errorf("unpack build base %s with %s: %w", step.Base.Path, name, err)
		}
	}
	rtName := step.Runtime
	if rtName == "" {
		rtName = "nspawn"
	}
	if !strings.HasPrefix(rtName, "runtime-") {
		rtName = "runtime-" + rtName
	}
	rt, err := b.host.Runtime(ctx, rtName, pluginhost.RuntimePolicy)
	if err != nil {
		return "", err
	}
	for i, argv := range step.Run {
		var out bytes.Buffer
		if b.log != nil {
			b.log(fmt.Sprintf("build step %d/%d: %s", i+1, len(step.Run), strings.Join(argv, " ")))
		}
		code, err := rt.Run(ctx, sdk.RunRequest{Root: tree, Command: argv, Env: step.Env, WorkDir: step.Workdir, Output: &out})
		if err != nil {
			return "", fmt.Errorf("build step %d (%s): %w", i+1, strings.Join(argv, " "), err)
		}
		if code != 0 {
			return "", fmt.Errorf("build step %d (%s) exited with code %d: %s", i+1, strings.Join(argv, " "), code, lastLines(out.String(), 5))
		}
	}
	return tree, nil
}

// lastLines returns the last n lines of s, joined with " | ".
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
