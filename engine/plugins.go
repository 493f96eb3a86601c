package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/volt-cli/volt/engine/build"
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

// pluginPacker packs directory images with a format plugin.
type pluginPacker struct{ host *pluginhost.Host }

// packer returns a build.Packer backed by format plugins.
func (e *Engine) packer(ctx context.Context) build.Packer { return pluginPacker{e.Plugins()} }

func (p pluginPacker) Pack(ctx context.Context, dir, format, platform, staging string, mtime time.Time) (string, error) {
	f, name, err := p.host.FormatFor(ctx, format)
	if err != nil {
		return "", err
	}
	files, err := f.Pack(ctx, sdk.PackRequest{
		Source: dir, Format: format, Staging: staging,
		Options: map[string]string{"platform": platform, "mtime": strconv.FormatInt(mtime.Unix(), 10)},
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
