// Package pluginhost finds, verifies, starts and supervises Volt plugins
// (hashicorp/go-plugin over gRPC, see docs/plugins.md): discovery along the
// plugin search path, the plugin lock for installed binaries (BLAKE3 checked
// by go-plugin's SecureConfig before every launch), API-version negotiation,
// lazy start with one process per plugin per Host, a start timeout, and
// errors that name the plugin and show the tail of its stderr.
//
// A Host must be closed: Close kills every plugin process it started.
// Workloads those plugins started are not touched.
package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/volt-cli/volt/engine/digest"
	"github.com/volt-cli/volt/sdk"
)

// SupportedAPIVersions are the plugin API versions this host speaks.
var SupportedAPIVersions = []int{sdk.APIVersion}

// DefaultStartTimeout bounds a plugin's start and handshake when
// Options.StartTimeout is 0.
const DefaultStartTimeout = 10 * time.Second

// exitGrace is how long a failed call waits for the plugin process to be
// seen as exited before reporting the gRPC error as is.
const exitGrace = 2 * time.Second

// Options configure a Host.
type Options struct {
	// Dirs are searched first (the CLI's --plugin-dir), then $VOLT_PLUGIN_PATH,
	// then Root/plugins, then ExecutableDir.
	Dirs []string
	// Root is $VOLT_ROOT; installed plugins and the lock live in Root/plugins.
	Root string
	// Logger receives plugin stderr, one record per line, with plugin=<name>.
	// nil discards it.
	Logger *slog.Logger
	// StartTimeout bounds start + handshake + Info; 0 means DefaultStartTimeout.
	StartTimeout time.Duration
	// IgnoreEnv skips $VOLT_PLUGIN_PATH.
	IgnoreEnv bool
	// ExecutableDir overrides the directory of the running executable in the
	// search path; "-" leaves it out.
	ExecutableDir string
}

// Host starts and supervises plugins. Its methods are safe for concurrent use.
type Host struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	closed bool
	// plugins maps name and policy (procKey) to the running process.
	plugins map[string]*proc
	// starts counts processes started, to tell the newest apart (PID).
	starts int
	// closing is set when Close starts, before any plugin is killed, so
	// calls that break because of it report a cancellation, not a crash.
	closing atomic.Bool
}

// proc is one plugin process.
type proc struct {
	host    *Host
	name    string
	path    string
	blake3  string
	stderr  *tailRing
	client  *plugin.Client
	info    sdk.Info
	api     int
	runtime sdk.Runtime
	format  sdk.Format
	policy  Policy
	seq     int
}

// procKey is the key of a plugin process in Host.plugins.
func procKey(name, policy string) string { return name + "\x00" + policy }

// New returns a Host. It starts nothing: plugins start on first use.
func New(opts Options) *Host {
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Host{opts: opts, log: log, plugins: map[string]*proc{}}
}

// Runtime returns the runtime plugin name running under pol, starting it if
// needed (bounded by Options.StartTimeout). The value stays bound to that
// plugin process: if the process dies, its calls fail with ErrPluginExited
// and the next Runtime call starts a new process. Without a policy it fails
// with ErrNoPolicy and starts nothing.
func (h *Host) Runtime(ctx context.Context, name string, pol Policy) (sdk.Runtime, error) {
	p, err := h.get(ctx, name, pol)
	if err != nil {
		return nil, err
	}
	if p.runtime == nil {
		return nil, &PluginError{Plugin: name, Kind: ErrWrongKind, Detail: fmt.Sprintf("it is a %s plugin, not a runtime", p.info.Kind)}
	}
	return p.runtime, nil
}

// Format returns the format plugin name running under pol, starting it if
// needed; see Runtime for what happens when the process dies. A format
// plugin is only started under a Landlock policy (ErrNoPolicy otherwise).
func (h *Host) Format(ctx context.Context, name string, pol Policy) (sdk.Format, error) {
	p, err := h.get(ctx, name, pol)
	if err != nil {
		return nil, err
	}
	if p.format == nil {
		return nil, &PluginError{Plugin: name, Kind: ErrWrongKind, Detail: fmt.Sprintf("it is a %s plugin, not a format", p.info.Kind)}
	}
	return p.format, nil
}

// FormatFor returns the first format plugin (by name) whose Describe lists
// format, and its name, running under pol (a Landlock policy). Plugins that
// fail to start are skipped (and logged); when none handles format the error
// wraps ErrPluginNotFound.
func (h *Host) FormatFor(ctx context.Context, format string, pol Policy) (sdk.Format, string, error) {
	if err := pol.valid(); err != nil {
		return nil, "", fmt.Errorf("format %q: %w: %v", format, ErrNoPolicy, err)
	}
	if pol.Sandbox == nil {
		return nil, "", fmt.Errorf("format %q: %w: format plugins run only under Landlock", format, ErrNoPolicy)
	}
	for _, f := range h.discover() {
		p, err := h.get(ctx, f.name, pol)
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			h.log.Warn("plugin unusable", "plugin", f.name, "err", err)
			continue
		}
		if p.format == nil {
			continue
		}
		d, err := p.format.Describe(ctx)
		if err != nil {
			h.log.Warn("plugin describe failed", "plugin", f.name, "err", err)
			continue
		}
		if slices.Contains(d.Formats, format) {
			return p.format, f.name, nil
		}
	}
	return nil, "", fmt.Errorf("no format plugin handles %q: %w", format, ErrPluginNotFound)
}

// get returns the plugin name running under pol, starting it on first use
// (or after it died). Concurrent callers share one start.
func (h *Host) get(ctx context.Context, name string, pol Policy) (*proc, error) {
	pk, err := pol.key()
	if err != nil {
		return nil, &PluginError{Plugin: name, Op: "start", Kind: ErrNoPolicy, Detail: err.Error(), Err: err}
	}
	key := procKey(name, pk)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("plugin %q: %w", name, ErrClosed)
	}
	if p := h.plugins[key]; p != nil {
		if !p.client.Exited() {
			return p, nil
		}
		delete(h.plugins, key)
	}
	f, err := h.lookup(name)
	if err != nil {
		return nil, err
	}
	p, err := h.start(ctx, f, pol)
	if err != nil {
		return nil, err
	}
	h.starts++
	p.seq = h.starts
	h.plugins[key] = p
	return p, nil
}

// start launches one plugin, checks it against the lock when installed,
// completes the handshake and negotiates the API version. On any error the
// process is gone when start returns.
func (h *Host) start(ctx context.Context, f found, pol Policy) (*proc, error) {
	p := &proc{host: h, name: f.name, path: f.path, stderr: &tailRing{}, policy: pol}
	fail := func(kind error, detail string, err error) (*proc, error) {
		if p.client != nil {
			p.client.Kill()
		}
		return nil, &PluginError{Plugin: f.name, Op: "start", Kind: kind, Detail: detail,
			StderrTail: p.stderr.Tail(stderrLines), Err: err}
	}
	var secure *plugin.SecureConfig
	if f.installed {
		l, err := ReadLock(h.installDir() + "/" + LockFileName)
		if err != nil {
			return fail(ErrChecksum, err.Error(), err)
		}
		e, ok := l.Plugins[f.name]
		if !ok {
			return fail(ErrNotLocked, fmt.Sprintf("%s is not recorded in %s; install it with: volt plugin install PATH", f.path, LockFileName), nil)
		}
		sum, err := hexDecode(digest.Hex(e.BLAKE3))
		if err != nil {
			return fail(ErrChecksum, err.Error(), err)
		}
		secure = &plugin.SecureConfig{Checksum: sum, Hash: digest.New()}
		p.blake3 = e.BLAKE3
	}
	cmd := exec.Command(f.path)
	cmd.Env = os.Environ()
	if pol.Sandbox != nil {
		v, err := pol.Sandbox.Encode()
		if err != nil {
			return fail(ErrHandshake, err.Error(), err)
		}
		cmd.Env = append(cmd.Env, sdk.SandboxEnv+"="+v)
	}
	// Mutual TLS with a fresh Ed25519 pair made here (sdk.TLSEnv): as safe
	// as go-plugin's AutoMTLS and ~45 ms faster per plugin start.
	hostTLS, tlsEnv, err := sdk.NewHostTLS()
	if err != nil {
		return fail(ErrHandshake, err.Error(), err)
	}
	cmd.Env = append(cmd.Env, sdk.TLSEnv+"="+tlsEnv)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.HostPluginSets(),
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		TLSConfig:        hostTLS,
		Managed:          true,
		StartTimeout:     h.opts.StartTimeout,
		Stderr:           p.stderr.newSink(f.name, h.log),
		SyncStdout:       p.stderr.newSink(f.name, h.log),
		SyncStderr:       p.stderr.newSink(f.name, h.log),
		Logger:           hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: io.Discard}),
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithChainUnaryInterceptor(p.unaryInterceptor),
			grpc.WithChainStreamInterceptor(p.streamInterceptor),
		},
	})
	cp, err := p.client.Client()
	if err != nil {
		detail, kind := classifyStart(err, h.opts.StartTimeout, p)
		if errors.Is(kind, ErrChecksum) && p.blake3 != "" {
			if have, _, herr := digest.File(f.path); herr == nil {
				detail = fmt.Sprintf("%s has %s, the plugin lock records %s; reinstall it with: volt plugin install PATH", f.path, have, p.blake3)
			}
		}
		return fail(kind, detail, err)
	}
	raw, err := cp.Dispense(sdk.PluginInfo)
	if err != nil {
		return fail(ErrHandshake, err.Error(), err)
	}
	ictx, cancel := context.WithTimeout(ctx, h.opts.StartTimeout)
	defer cancel()
	info, err := raw.(sdk.Infoer).Info(ictx)
	if err != nil {
		var pe *PluginError
		if errors.As(err, &pe) {
			pe.Op = "start"
			p.client.Kill()
			return nil, pe
		}
		if ctx.Err() != nil {
			return fail(ctx.Err(), "Info", err)
		}
		return fail(ErrHandshake, "Info: "+err.Error(), err)
	}
	p.info = info
	api, err := Negotiate(SupportedAPIVersions, info.APIVersions)
	if err != nil {
		return fail(ErrAPIVersion, err.Error(), nil)
	}
	p.api = api
	switch info.Kind {
	case sdk.KindRuntime:
		raw, err = cp.Dispense(sdk.KindRuntime)
		if err == nil {
			p.runtime = raw.(sdk.Runtime)
		}
	case sdk.KindFormat:
		if pol.Sandbox == nil {
			return fail(ErrNoPolicy, "format plugins read untrusted images and run only under Landlock; refusing to run it "+pol.String(), nil)
		}
		raw, err = cp.Dispense(sdk.KindFormat)
		if err == nil {
			p.format = raw.(sdk.Format)
		}
	default:
		return fail(ErrWrongKind, fmt.Sprintf("Info reports unknown kind %q", info.Kind), nil)
	}
	if err != nil {
		return fail(ErrHandshake, err.Error(), err)
	}
	h.log.Debug("plugin started", "plugin", f.name, "path", f.path, "version", info.Version, "api", api, "policy", pol.String())
	return p, nil
}

// classifyStart turns a go-plugin start error into a sentinel and a one-line cause.
func classifyStart(err error, timeout time.Duration, p *proc) (detail string, kind error) {
	msg := err.Error()
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return "binary does not match the plugin lock", ErrChecksum
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Sprintf("no handshake within %s", timeout), ErrStartTimeout
	case strings.Contains(msg, "plugin exited before we could connect"),
		strings.Contains(msg, "Failed to read any lines from plugin's stdout"):
		waitExited(p.client)
		return "exited before the handshake", ErrPluginExited
	case strings.Contains(msg, "Unrecognized remote plugin message"):
		line, _, _ := strings.Cut(strings.TrimPrefix(msg, "Unrecognized remote plugin message: "), "\n")
		return fmt.Sprintf("wrote %q to stdout before the handshake (stdout is the handshake channel: log to stderr)", line), ErrHandshake
	case strings.Contains(msg, "Incompatible API version"), strings.Contains(msg, "incompatible core API version"):
		return fmt.Sprintf("speaks another wire protocol version (this volt speaks %d): %s", sdk.WireVersion, oneLine(msg)), ErrHandshake
	}
	return oneLine(msg), ErrHandshake
}

// waitExited waits briefly for go-plugin to notice the process ended, so
// its last stderr lines are in the ring.
func waitExited(c *plugin.Client) bool {
	deadline := time.Now().Add(exitGrace)
	for !c.Exited() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// callErr turns a gRPC failure caused by the plugin process dying into a
// *PluginError wrapping ErrPluginExited; other errors pass through.
func (p *proc) callErr(ctx context.Context, method string, err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	// A dying plugin shows as a broken transport (Unavailable) or, when the
	// connection drops mid-stream, Internal or a Canceled the caller did not
	// ask for. Application errors (Unknown and the mapped codes) are the
	// plugin's answer and pass through at once.
	op := method[strings.LastIndexByte(method, '/')+1:]
	switch status.Code(err) {
	case codes.Unavailable, codes.Internal, codes.Canceled:
		// Once the caller has cancelled, or the host is closing (Close, or
		// SIGINT through CloseOnSignal, which races with the caller's own
		// cancellation), a broken call is that cancellation's doing.
		if ctx.Err() != nil {
			return fmt.Errorf("plugin %q: %s: %w (%s)", p.name, op, ctx.Err(), status.Convert(err).Message())
		}
		if p.host != nil && p.host.closing.Load() {
			return fmt.Errorf("plugin %q: %s: %w: %w", p.name, op, ErrClosed, context.Canceled)
		}
	default:
		return err
	}
	if !waitExited(p.client) {
		return err
	}
	return &PluginError{Plugin: p.name, Op: op, Kind: ErrPluginExited, Detail: "process died during the call",
		StderrTail: p.stderr.Tail(stderrLines), Err: err}
}

func (p *proc) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return p.callErr(ctx, method, invoker(ctx, method, req, reply, cc, opts...))
}

func (p *proc) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, p.callErr(ctx, method, err)
	}
	return &watchedStream{ClientStream: s, p: p, ctx: ctx, method: method}, nil
}

// watchedStream applies callErr to a stream's receive errors.
type watchedStream struct {
	grpc.ClientStream
	p      *proc
	ctx    context.Context
	method string
}

func (s *watchedStream) RecvMsg(m any) error {
	return s.p.callErr(s.ctx, s.method, s.ClientStream.RecvMsg(m))
}

// Negotiate returns the highest API version both sides speak. When there is
// none, the error says which side to upgrade.
func Negotiate(host, plugin []int) (int, error) {
	best := -1
	for _, v := range plugin {
		if slices.Contains(host, v) && v > best {
			best = v
		}
	}
	if best >= 0 {
		return best, nil
	}
	if len(plugin) == 0 {
		return 0, fmt.Errorf("plugin reports no API versions (this volt speaks %v): upgrade the plugin", host)
	}
	if slices.Min(plugin) > slices.Max(host) {
		return 0, fmt.Errorf("plugin speaks API %v, this volt speaks %v: upgrade volt", plugin, host)
	}
	return 0, fmt.Errorf("plugin speaks API %v, this volt speaks %v: upgrade the plugin", plugin, host)
}

// Close kills every plugin process this Host started and waits for them.
// The Host refuses further use. It is safe to call more than once.
func (h *Host) Close() {
	h.closing.Store(true)
	h.mu.Lock()
	h.closed = true
	ps := h.plugins
	h.plugins = map[string]*proc{}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.client.Kill()
		}()
	}
	wg.Wait()
	if len(ps) > 0 {
		h.log.Debug("plugin processes killed", "count", len(ps))
	}
}

// CloseOnSignal makes SIGINT and SIGTERM close the Host (killing its plugin
// processes) and then re-raise the signal with its default action, so the
// process ends as it would have. Signal handlers registered elsewhere (e.g.
// signal.NotifyContext) still see the signal. The returned stop undoes it.
func (h *Host) CloseOnSignal() (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			h.Close()
			signal.Stop(ch)
			plugin.CleanupClients()
			if s, ok := sig.(syscall.Signal); ok {
				_ = syscall.Kill(os.Getpid(), s)
			}
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
		})
	}
}

// PID returns the process id of the running plugin name (the newest when
// it runs under several policies), or 0 when it is not running under this
// Host. It is meant for supervision and tests.
func (h *Host) PID(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var p *proc
	for _, q := range h.plugins {
		if q.name == name && (p == nil || q.seq > p.seq) {
			p = q
		}
	}
	if p == nil {
		return 0
	}
	rc := p.client.ReattachConfig()
	if rc == nil {
		return 0
	}
	return rc.Pid
}
