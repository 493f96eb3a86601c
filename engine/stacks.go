package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/volt-cli/volt/engine/build"
	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/deploy"
	"github.com/volt-cli/volt/engine/flock"
	"github.com/volt-cli/volt/engine/pluginhost"
	"github.com/volt-cli/volt/engine/registry"
	"github.com/volt-cli/volt/engine/sign"
	"github.com/volt-cli/volt/sdk"
)

// Deployer returns the deployer for this state root. Its runtime plugins
// run under pluginhost.RuntimePolicy; each unpack of an image runs a format
// plugin confined to that image and its destination.
func (e *Engine) Deployer(notify func(string)) *deploy.Deployer {
	return &deploy.Deployer{Root: e.Root, Plugins: e.Plugins().ForDeploy(), Logger: e.Logger, Notify: notify, CAS: casResolver{e}}
}

// ImportOptions are the inputs of Import.
type ImportOptions struct {
	deploy.ImportOptions
	// Verify requires a trusted signature (also config bundle.require_signature).
	Verify bool
	// Notify receives progress and warnings for the user.
	Notify func(string)
	// OnWait is called if another volt process holds the state lock.
	OnWait func()
	// Checks, when set, receives after a successful import the checks that
	// ran: VerifyBundle's (zip, structure, signature, integrity, cas) and
	// "tar" (every image unpacked by its format plugin inside its rootfs,
	// device nodes skipped).
	Checks func([]Check)
	// VerifyProgress reports bytes hashed while the bundle is verified.
	VerifyProgress func(done, total int64)
}

// Import verifies and deploys a bundle. The state root is locked for the
// whole import, so concurrent imports run one after the other.
func (e *Engine) Import(ctx context.Context, opts ImportOptions) (*deploy.Stack, error) {
	lock, err := e.Lock(ctx, opts.OnWait)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if strings.HasPrefix(opts.Bundle, "oci://") {
		// Pull into a temporary file, then import it like any bundle.
		if opts.Notify != nil {
			opts.Notify("pulling " + opts.Bundle)
		}
		path, cleanup, err := registry.PullToTemp(ctx, opts.Bundle, registry.PullOptions{Options: registry.Options{Insecure: e.Config.List("registry.insecure")}})
		if err != nil {
			return nil, err
		}
		defer cleanup()
		opts.Bundle = path
	}
	if IsACE(opts.Bundle) {
		// An ACE bundle has no hashes or signature: convert it (the host
		// computes the hashes), then deploy the result like any bundle.
		if opts.Verify || e.Config.Bool("bundle.require_signature") {
			return nil, fmt.Errorf("%w: %s is an ACE bundle, which cannot be signed", ErrVerifyFailed, opts.Bundle)
		}
		deploy.RemoveStale(e.Root, ".ace-*") // left by a killed import; we hold the lock
		tmp, err := os.MkdirTemp(e.Root, ".ace-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		converted := filepath.Join(tmp, "converted.vbundle")
		if opts.Notify != nil {
			opts.Notify(fmt.Sprintf("%s is an ACE bundle: converting", opts.Bundle))
		}
		if _, err := e.ConvertACE(ctx, opts.Bundle, converted, "", nil); err != nil {
			return nil, err
		}
		opts.Bundle = converted
	}
	rep, err := e.VerifyBundle(ctx, opts.Bundle, VerifyOptions{RequireSignature: opts.Verify, SkipSignature: !opts.Verify, Progress: opts.VerifyProgress})
	if err != nil {
		return nil, err
	}
	for _, c := range rep.Checks {
		if c.Name == "signature" && c.OK && !c.Skip {
			opts.Signer = c.Detail
		}
	}
	st, err := e.Deployer(opts.Notify).Import(ctx, opts.ImportOptions)
	if err == nil && opts.Checks != nil {
		opts.Checks(append(rep.Checks, Check{Name: "tar", OK: true,
			Detail: "images unpacked by their format plugin inside each rootfs: no path outside it, no device nodes"}))
	}
	return st, err
}

// PS returns the status of every workload of every stack (all, or only
// running ones); the errors say which stacks could not be read, and which
// are corrupt (their workloads are reported from their records).
func (e *Engine) PS(ctx context.Context, all bool) ([]deploy.WorkloadStatus, []error) {
	stacks, errs := deploy.ListStacks(e.Root)
	d := e.Deployer(nil)
	var out []deploy.WorkloadStatus
	for _, st := range stacks {
		if st.Phase == deploy.PhaseCorrupt {
			// Its workloads are listed from their records; say why.
			errs = append(errs, fmt.Errorf("%s (volt stack destroy --force %s removes it)", st.Problem, st.Name))
		}
		for _, ws := range d.Status(ctx, st) {
			if all || ws.Status == sdk.StatusRunning {
				out = append(out, ws)
			}
		}
	}
	return out, errs
}

// Stacks lists deployed stacks.
func (e *Engine) Stacks() ([]*deploy.Stack, []error) { return deploy.ListStacks(e.Root) }

// Logs writes a workload's log ("stack/service" or workload name).
func (e *Engine) Logs(ctx context.Context, ref string, follow bool, tail int, w io.Writer) error {
	return e.Deployer(nil).Logs(ctx, ref, follow, tail, w)
}

// Exec runs a command in a workload and returns its exit code.
func (e *Engine) Exec(ctx context.Context, ref string, req sdk.ExecRequest) (int, error) {
	return e.Deployer(nil).Exec(ctx, ref, req)
}

// WorkloadAction applies start, stop or restart to one workload under the state lock.
func (e *Engine) WorkloadAction(ctx context.Context, action, ref string) error {
	return e.locked(ctx, func(d *deploy.Deployer) error {
		switch action {
		case "start":
			return d.Start(ctx, ref)
		case "stop":
			return d.Stop(ctx, ref)
		case "restart":
			return d.Restart(ctx, ref)
		case "rm":
			return d.Remove(ctx, ref)
		}
		return fmt.Errorf("unknown action %q", action)
	})
}

// Inspect returns a workload's stack entry and live status.
func (e *Engine) Inspect(ctx context.Context, ref string) (*deploy.Workload, *deploy.WorkloadStatus, error) {
	d := e.Deployer(nil)
	st, w, err := d.Find(ref)
	if err != nil {
		return nil, nil, err
	}
	s := d.StatusOf(ctx, st, w)
	return w, &s, nil
}

// DestroyStack stops and removes a stack.
func (e *Engine) DestroyStack(ctx context.Context, name string, opts deploy.DestroyOptions, notify func(string)) error {
	lock, err := e.Lock(ctx, nil)
	if err != nil {
		return err
	}
	defer lock.Release()
	return e.Deployer(notify).Destroy(ctx, name, opts)
}

func (e *Engine) locked(ctx context.Context, fn func(*deploy.Deployer) error) error {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	lock, err := e.Lock(lctx, nil)
	if err != nil {
		if errors.Is(err, flock.ErrTimeout) {
			return fmt.Errorf("%w (is an import running?)", err)
		}
		return err
	}
	defer lock.Release()
	return fn(e.Deployer(nil))
}

// ExportOptions control Export.
type ExportOptions struct {
	Stack          string
	Output         string
	IncludeVolumes bool
	SignKey        string
	Passphrase     func() ([]byte, error)
	Progress       func(done, total int64)
}

// Export turns a deployed stack back into a bundle: each container's current
// root tree becomes its image (overlays included), VMs carry their disk and
// boot files, and with IncludeVolumes its named volumes travel too.
func (e *Engine) Export(ctx context.Context, opts ExportOptions) (*bundle.Manifest, error) {
	lock, err := e.Lock(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	st, err := deploy.LoadStack(e.Root, opts.Stack)
	if err != nil {
		return nil, err
	}
	p, err := e.Deployer(nil).ExportPlan(st, opts.IncludeVolumes)
	if err != nil {
		return nil, err
	}
	bopts := build.Options{Output: opts.Output, Tool: "volt " + Version, Progress: opts.Progress, Created: time.Now()}
	e.attachPlugins(&bopts, nil, formatPolicy([]string{e.Root}, []string{filepath.Dir(absPath(opts.Output))}))
	if opts.SignKey != "" {
		signer, err := sign.LoadSigner(opts.SignKey, opts.Passphrase)
		if err != nil {
			return nil, err
		}
		bopts.Sign = signer.Sign
	}
	return build.Build(ctx, p, bopts)
}

// ConsolePath returns the unix socket of a workload's serial console, as its
// runtime reports it (Inspect Detail["console"]); VMs have one.
func (e *Engine) ConsolePath(ctx context.Context, ref string) (string, error) {
	d := e.Deployer(nil)
	_, w, err := d.Find(ref)
	if err != nil {
		return "", err
	}
	if w.Handle == nil {
		return "", fmt.Errorf("%s has never been started", ref)
	}
	rt, err := e.Plugins().Runtime(ctx, w.Runtime, pluginhost.RuntimePolicy)
	if err != nil {
		return "", err
	}
	ws, err := rt.Inspect(ctx, *w.Handle)
	if err != nil {
		return "", err
	}
	if ws.State != sdk.StatusRunning {
		return "", fmt.Errorf("%s is %s", ref, ws.State)
	}
	p := ws.Detail["console"]
	if p == "" {
		return "", fmt.Errorf("%s (%s) has no serial console", ref, w.Runtime)
	}
	return p, nil
}
