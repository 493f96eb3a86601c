// Package engine is the host side of Volt: the facade the CLI talks to. It
// owns the state root, the configuration, the plugin host, and the flow
// recipe → Plan → bundle → verify → deploy. It never prints: it reports
// through the logger and progress callbacks it is given.
package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/volt-cli/volt/engine/cas"
	"github.com/volt-cli/volt/engine/config"
	"github.com/volt-cli/volt/engine/flock"
	"github.com/volt-cli/volt/engine/pluginhost"
)

// Version is Volt's version, set at build time with -ldflags "-X github.com/volt-cli/volt/engine.Version=…".
var Version = "0.1.0-dev"

// Options configure an Engine.
type Options struct {
	// Root is the state root; "" means $VOLT_ROOT or the default (DefaultRoot).
	Root string
	// ConfigPath is the configuration file; "" means config.DefaultPath().
	ConfigPath string
	// PluginDirs are searched first for plugins (before VOLT_PLUGIN_PATH).
	PluginDirs []string
	// Logger receives engine and plugin logs; nil discards them.
	Logger *slog.Logger
}

// Engine is one CLI invocation's view of the host.
type Engine struct {
	Root   string
	Config *config.Config
	Logger *slog.Logger

	pluginDirs []string
	plugins    *pluginhost.Host
	cas        *cas.Store
	closers    []func()

	rootOnce sync.Once
	rootErr  error
}

// DefaultRoot returns $VOLT_ROOT, else /var/lib/volt as root, else $XDG_DATA_HOME/volt.
func DefaultRoot() string {
	if r := os.Getenv("VOLT_ROOT"); r != "" {
		return r
	}
	if os.Geteuid() == 0 {
		return "/var/lib/volt"
	}
	dir := os.Getenv("XDG_DATA_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(dir, "volt")
}

// New opens the engine. It creates nothing on disk until a command writes;
// an existing state root open to other users is made private at once (see
// RootMode), with one warning.
func New(opts Options) (*Engine, error) {
	root := opts.Root
	if root == "" {
		root = DefaultRoot()
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("state root: %w", err)
	}
	cfgPath := opts.ConfigPath
	if cfgPath == "" {
		cfgPath = config.DefaultPath()
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dirs := append([]string(nil), opts.PluginDirs...)
	dirs = append(dirs, cfg.List("plugins.dirs")...)
	e := &Engine{Root: root, Config: cfg, Logger: logger, pluginDirs: dirs}
	if _, err := os.Stat(root); err == nil {
		// A failure is reported again by the first command that writes.
		_ = e.ensureRoot()
	}
	return e, nil
}

// Close releases plugins and other resources. It is safe to call twice.
func (e *Engine) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

// Path returns a path under the state root.
func (e *Engine) Path(elem ...string) string {
	return filepath.Join(append([]string{e.Root}, elem...)...)
}

// BundlesDir is the local bundle cache.
func (e *Engine) BundlesDir() string { return e.Path("bundles") }

// Lock serialises state-changing commands on the state root, which it
// creates (or makes) private to its owner first. onWait is called once if
// another process holds the lock.
func (e *Engine) Lock(ctx context.Context, onWait func()) (*flock.Lock, error) {
	if err := e.ensureRoot(); err != nil {
		return nil, err
	}
	return flock.Acquire(ctx, e.Path("lock"), true, onWait)
}
