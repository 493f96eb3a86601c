// Package deploy turns a verified bundle into a running stack and manages it
// afterwards: import (unpack, overlay, hooks, start in dependency order),
// status, logs, exec, stop/start, destroy and export. Workloads are run by
// runtime plugins and outlive the CLI; their handles live in stack.json, from
// which any later invocation recovers them. There is no daemon.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/constellation"
	"github.com/volt-cli/volt/engine/digest"
	"github.com/volt-cli/volt/engine/security"
	"github.com/volt-cli/volt/sdk"
)

// Plugins gives the deployer the plugins it needs (engine/pluginhost
// implements it). Runtime plugins run unconfined (they make namespaces and
// mounts); a format plugin is started confined by Landlock to policy, the
// files of one unpack.
type Plugins interface {
	Runtime(ctx context.Context, name string) (sdk.Runtime, error)
	FormatFor(ctx context.Context, format string, policy sdk.SandboxPolicy) (sdk.Format, string, error)
}

// Runtime plugins per workload type.
const (
	RuntimeContainer = "runtime-nspawn"
	RuntimeVM        = "runtime-qemu"
)

// Errors callers branch on.
var (
	// ErrUnchanged means the same bundle is already deployed: nothing to do.
	ErrUnchanged = errors.New("already deployed")
	// ErrStackExists means another version of the stack is deployed and --force was not given.
	ErrStackExists = errors.New("stack already deployed")
	// ErrNoPlatform means the bundle has no image for this host's platform.
	ErrNoPlatform = errors.New("no image for this platform")
	// ErrHookFailed means a validate or pre-deploy hook failed and the import was rolled back.
	ErrHookFailed = errors.New("hook failed")
)

// CAS makes a CAS-referenced image available as a file (engine wires Stellarium).
type CAS interface {
	// Materialize writes object ref to dst and checks it against want ("blake3:…").
	Materialize(ctx context.Context, ref, want, dst string) error
}

// Deployer deploys and manages stacks under one state root.
type Deployer struct {
	Root    string
	Plugins Plugins
	// CAS resolves images a bundle references instead of embedding (nil: refused).
	CAS    CAS
	Logger *slog.Logger
	// Notify receives one-line messages for the user (progress, warnings).
	Notify func(msg string)
	// StopTimeout bounds a graceful stop before it is forced (default 10 s).
	StopTimeout time.Duration
}

func (d *Deployer) notify(format string, a ...any) {
	if d.Notify != nil {
		d.Notify(fmt.Sprintf(format, a...))
	}
}

func (d *Deployer) stopTimeout() time.Duration {
	if d.StopTimeout > 0 {
		return d.StopTimeout
	}
	return 10 * time.Second
}

// ImportOptions control Import.
type ImportOptions struct {
	// Bundle is the .vbundle to deploy. The caller has verified its
	// signature as policy requires; Import always checks structure and integrity.
	Bundle string
	// Signer is the verified signer principal, recorded in the state ("" if unsigned).
	Signer string
	// Name overrides the stack name (default: the bundle's name).
	Name string
	// Vars are --set KEY=VALUE values for ${VAR} expansion.
	Vars map[string]string
	// RunHooks runs the bundle's lifecycle hooks; without it they are reported, not run.
	RunHooks bool
	// NoStart prepares everything but starts nothing.
	NoStart bool
	// Force replaces a deployed stack of the same name.
	Force bool
	// Platform is "os/arch" (default: this host's).
	Platform string
	// Progress, when set, reports the bytes of images unpacked so far of
	// the total, after each workload's image.
	Progress func(done, total int64) `json:"-"`
	// Security controls how the services' security settings are checked
	// (--allow-privileged, --security=best-effort).
	Security security.Options
}

// HostPlatform returns "linux/<GOARCH>" for this host.
func HostPlatform() string { return runtime.GOOS + "/" + runtime.GOARCH }

// Import deploys a bundle as a stack. bundle.Open checks its structure, and
// every entry Import uses is checked against its BLAKE3 as it streams out
// (before anything it staged is swapped in), so the bundle is not hashed a
// second time here; callers that want a whole-bundle verdict first (signature,
// entries of other platforms) run engine's VerifyBundle. On any failure the
// previous deployment (if any) is left running and its state unchanged.
func (d *Deployer) Import(ctx context.Context, opts ImportOptions) (*Stack, error) {
	r, err := bundle.Open(opts.Bundle)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	m := r.Manifest()
	name := opts.Name
	if name == "" {
		name = m.Name
	}
	if err := validStackName(name); err != nil {
		return nil, err
	}
	platform := opts.Platform
	if platform == "" {
		platform = HostPlatform()
	}
	compose, err := readCompose(r)
	if err != nil {
		return nil, err
	}
	ref := BundleRef{Name: m.Name, Version: m.BundleVersion, Digest: bundle.ManifestDigest(r.ManifestBytes()), Platform: platform, Signer: opts.Signer}
	for _, svc := range m.Services {
		if img := svc.Images[platform]; img != nil && img.CASRef != "" {
			ref.CASRefs = append(ref.CASRefs, img.CASRef)
		}
	}
	sort.Strings(ref.CASRefs)

	old, err := LoadStack(d.Root, name)
	switch {
	case errors.Is(err, ErrNoStack):
		old = nil
	case err != nil:
		return nil, err
	case old.Phase == PhaseDeploying:
		// An import was interrupted (we hold the state lock, so none is running):
		// tear down what it recorded, then deploy afresh. Every root is
		// rebuilt from this bundle, so whatever the interrupted import had
		// swapped in, the result is what stack.json will say.
		if old.Replacing != nil {
			d.notify("stack %s: cleaning up an interrupted import (it was replacing %s v%s with %s v%s)", name, old.Bundle.Name, old.Bundle.Version, old.Replacing.Name, old.Replacing.Version)
		} else {
			d.notify("stack %s: cleaning up an interrupted import", name)
		}
		d.teardown(ctx, old)
		old = nil
	case old.Bundle.Digest == ref.Digest && !opts.Force:
		return old, fmt.Errorf("stack %q: %s v%s: %w", name, m.Name, m.BundleVersion, ErrUnchanged)
	case !opts.Force:
		return nil, fmt.Errorf("stack %q: %w from %s v%s (use --force to replace it)", name, ErrStackExists, old.Bundle.Name, old.Bundle.Version)
	}

	st := &Stack{Name: name, Phase: PhaseDeploying, Bundle: ref, Vars: opts.Vars}
	order, err := constellation.Order(compose)
	if err != nil {
		return nil, err
	}
	work, err := d.plan(st, m, compose, order, platform, opts.Vars)
	if err != nil {
		return nil, err
	}
	if err := d.secure(work, compose, opts.Security); err != nil {
		return nil, err
	}

	// Stage everything before touching the running deployment. Staging
	// dirs of imports killed midway are removed first: callers hold the
	// state root's lock (engine.Import does), so none is in use.
	RemoveStale(d.Root, ".import-*")
	stage, err := os.MkdirTemp(filepath.Join(d.Root), ".import-*")
	if err != nil {
		if err := os.MkdirAll(d.Root, stateDirMode); err != nil {
			return nil, err
		}
		if stage, err = os.MkdirTemp(d.Root, ".import-*"); err != nil {
			return nil, err
		}
	}
	defer os.RemoveAll(stage)
	hooks, err := d.stageHooks(r, m, stage)
	if err != nil {
		return nil, err
	}
	if len(hooks) > 0 && !opts.RunHooks {
		kinds := make([]string, 0, len(hooks))
		for k := range hooks {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		d.notify("bundle has hooks (%s): not run (use --run-hooks to run them)", strings.Join(kinds, ", "))
	}
	var unpacked, total int64
	for _, w := range work {
		if img := m.Services[w.Service].Images[platform]; img != nil {
			total += img.Size
		}
	}
	if opts.Progress != nil && total > 0 {
		opts.Progress(0, total)
	}
	for i := range work {
		if err := d.prepare(ctx, r, m, &work[i], platform, stage, opts.Vars); err != nil {
			discardStaged(work)
			return nil, err
		}
		if img := m.Services[work[i].Service].Images[platform]; img != nil && opts.Progress != nil {
			unpacked += img.Size
			opts.Progress(unpacked, total)
		}
	}
	d.warnMissingPolicyPaths(work)
	hookDir := stackDir(d.Root, name)
	hookEnv := hookEnvironment(st, hookDir)
	if opts.RunHooks {
		for _, kind := range []string{"validate", "pre-deploy"} {
			if err := runHook(ctx, hooks[kind], kind, hookDir, hookEnv, d.Logger); err != nil {
				discardStaged(work)
				return nil, fmt.Errorf("%w: %s: %v (nothing was changed)", ErrHookFailed, kind, err)
			}
		}
	}

	// Replace the old deployment: record the intent (the old stack, as
	// "deploying" to the new bundle) so that a kill from here on leaves
	// state that says the stack is half-replaced; then stop it and keep
	// its roots aside for rollback.
	if old != nil {
		d.notify("stack %s: replacing %s v%s", name, old.Bundle.Name, old.Bundle.Version)
		intent := *old
		intent.Phase, intent.Replacing = PhaseDeploying, &ref
		if err := intent.Save(d.Root); err != nil {
			discardStaged(work)
			return nil, err
		}
		d.stopAll(ctx, old)
	}
	swapped, err := swapRoots(work)
	testPause("swapped", d.notify)
	if err != nil {
		d.rollback(ctx, old, swapped, nil)
		return nil, err
	}
	st.Workloads = work
	st.Hooks = keepHooks(hooks, stackDir(d.Root, name))
	if err := d.saveHooks(hooks, name); err != nil {
		d.rollback(ctx, old, swapped, nil)
		return nil, err
	}
	if err := saveCompose(d.Root, name, compose); err != nil {
		d.rollback(ctx, old, swapped, nil)
		return nil, err
	}
	if err := d.restoreVolumes(ctx, r, name); err != nil {
		d.rollback(ctx, old, swapped, nil)
		return nil, err
	}
	if err := st.Save(d.Root); err != nil {
		d.rollback(ctx, old, swapped, nil)
		return nil, err
	}
	if !opts.NoStart {
		if err := d.startAll(ctx, st); err != nil {
			d.rollback(ctx, old, swapped, st)
			return nil, err
		}
	} else {
		for i := range st.Workloads {
			st.Workloads[i].Status = sdk.StatusStopped
		}
	}
	st.Phase = PhaseDeployed
	st.DeployedAt = time.Now().UTC().Truncate(time.Second)
	if err := st.Save(d.Root); err != nil {
		return nil, err
	}
	discardOld(swapped)
	if old != nil {
		d.removeUnused(old, st)
	}
	if opts.RunHooks && hooks["post-deploy"] != "" {
		if err := runHook(ctx, filepath.Join(hookDir, "hooks", "post-deploy.sh"), "post-deploy", hookDir, hookEnv, d.Logger); err != nil {
			return st, fmt.Errorf("stack deployed, but the post-deploy hook failed: %w", err)
		}
	}
	return st, nil
}

func validStackName(name string) error {
	if name == "" || len(name) > 48 || strings.ContainsAny(name, "/\\ \t\n") || name[0] == '.' {
		return fmt.Errorf("stack name %q: want 1-48 characters without '/', spaces or a leading '.'", name)
	}
	return nil
}

// readCompose reads and parses the bundle's Constellation.
func readCompose(r *bundle.Reader) (*constellation.File, error) {
	name := r.Manifest().Compose
	if name == "" {
		name = "compose.yaml"
	}
	data, err := readEntry(r, name, 16<<20)
	if err != nil {
		return nil, err
	}
	f, err := constellation.Parse(name, data)
	if err != nil {
		return nil, fmt.Errorf("bundle's %s: %w", name, err)
	}
	return f, nil
}

// readEntry reads a small entry whole, verifying its digest.
func readEntry(r *bundle.Reader, name string, limit int64) ([]byte, error) {
	rc, err := r.OpenEntry(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("entry %s is larger than %d bytes", name, limit)
	}
	return data, nil
}

// plan builds the workload list (in start order) from the Constellation and manifest.
func (d *Deployer) plan(st *Stack, m *bundle.Manifest, f *constellation.File, order []string, platform string, vars map[string]string) ([]Workload, error) {
	var out []Workload
	for _, svc := range order {
		ms := m.Services[svc]
		w := Workload{Service: svc, Name: st.Name + "-" + svc, DependsOn: map[string]string{}}
		switch {
		case f.Containers[svc] != nil:
			c := f.Containers[svc]
			w.Type, w.Runtime = bundle.TypeContainer, RuntimeContainer
			env, err := expandEnv(svc, c.Environment, vars)
			if err != nil {
				return nil, err
			}
			argv, err := ExpandCommand("service "+svc+" command", append(append([]string(nil), c.Entrypoint...), c.Command...), vars)
			if err != nil {
				return nil, err
			}
			w.Spec = sdk.WorkloadSpec{
				Name:        w.Name,
				Root:        filepath.Join(d.Root, "containers", w.Name, "rootfs"),
				StateDir:    filepath.Join(d.Root, "containers", w.Name, "run"),
				Command:     argv,
				Env:         env,
				WorkingDir:  c.WorkingDir,
				User:        c.User,
				NetworkMode: networkMode(c.NetworkMode),
				Ports:       c.Ports,
				Labels:      map[string]string{"volt.stack": st.Name, "volt.service": svc},
			}
			if c.Resources != nil {
				w.Spec.CPUs = c.Resources.CPUs
				if c.Resources.Memory != "" {
					n, err := constellation.ParseMemory(c.Resources.Memory)
					if err != nil {
						return nil, fmt.Errorf("service %s: memory: %w", svc, err)
					}
					w.Spec.MemoryBytes = n
				}
			}
			mounts, err := d.volumeMounts(st.Name, c.Volumes)
			if err != nil {
				return nil, fmt.Errorf("service %s: %w", svc, err)
			}
			w.Spec.Mounts = mounts
			for dep, cond := range c.DependsOn {
				w.DependsOn[dep] = condition(cond.Condition)
			}
			if hc := c.Healthcheck; hc != nil && len(hc.Test) > 0 {
				h, err := healthcheck(hc)
				if err != nil {
					return nil, fmt.Errorf("service %s: %w", svc, err)
				}
				w.Healthcheck = h
			}
		case f.VMs[svc] != nil:
			v := f.VMs[svc]
			w.Type, w.Runtime = bundle.TypeVM, RuntimeVM
			env, err := expandEnv(svc, v.Environment, vars)
			if err != nil {
				return nil, err
			}
			dir := filepath.Join(d.Root, "vms", w.Name)
			_, arch, _ := strings.Cut(platform, "/")
			w.Spec = sdk.WorkloadSpec{
				Name: w.Name, Root: filepath.Join(dir, "disk"), StateDir: filepath.Join(dir, "run"),
				Env: env, Ports: v.Ports, CPUs: float64(v.CPU), Cmdline: v.Cmdline,
				Labels: map[string]string{"volt.stack": st.Name, "volt.service": svc, "volt.arch": arch},
			}
			if v.Memory != "" {
				n, err := constellation.ParseMemory(v.Memory)
				if err != nil {
					return nil, fmt.Errorf("vm %s: memory: %w", svc, err)
				}
				w.Spec.MemoryBytes = n
			}
			for dep, cond := range v.DependsOn {
				w.DependsOn[dep] = condition(cond.Condition)
			}
		default:
			// Host services and tasks are carried in bundles; running them comes later.
			d.notify("service %s: host services and tasks are not deployed yet (skipped)", svc)
			continue
		}
		if ms == nil {
			return nil, fmt.Errorf("service %s is in the Constellation but not in bundle.json", svc)
		}
		if _, ok := ms.Images[platform]; !ok && (w.Type == bundle.TypeContainer || ms.Boot[platform] == nil) {
			have := make([]string, 0, len(ms.Images))
			for k := range ms.Images {
				have = append(have, k)
			}
			sort.Strings(have)
			return nil, fmt.Errorf("service %s: %w %s (the bundle has: %s)", svc, ErrNoPlatform, platform, strings.Join(have, ", "))
		}
		out = append(out, w)
	}
	return out, nil
}

func networkMode(s string) string {
	switch s {
	case "", "host":
		return "host"
	case "none":
		return "none"
	default:
		return s
	}
}

func condition(c string) string {
	if c == "" {
		return constellation.ServiceStarted
	}
	return c
}

func healthcheck(hc *constellation.Healthcheck) (*Healthcheck, error) {
	h := &Healthcheck{Interval: 2 * time.Second, Timeout: 10 * time.Second, Retries: 15}
	switch hc.Test[0] {
	case "CMD":
		h.Command = hc.Test[1:]
	case "CMD-SHELL":
		h.Command = []string{"/bin/sh", "-c", strings.Join(hc.Test[1:], " ")}
	case "NONE":
		return nil, nil
	default:
		h.Command = hc.Test
	}
	var err error
	if hc.Interval != "" {
		if h.Interval, err = time.ParseDuration(hc.Interval); err != nil {
			return nil, fmt.Errorf("healthcheck interval: %w", err)
		}
	}
	if hc.Timeout != "" {
		if h.Timeout, err = time.ParseDuration(hc.Timeout); err != nil {
			return nil, fmt.Errorf("healthcheck timeout: %w", err)
		}
	}
	if hc.Retries > 0 {
		h.Retries = hc.Retries
	}
	return h, nil
}

// expandEnv expands ${VAR} references in a service's environment with vars;
// --set values also override entries of the same name.
func expandEnv(svc string, env map[string]string, vars map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(env))
	for k, v := range env {
		if s, ok := vars[k]; ok {
			out[k] = s
			continue
		}
		x, err := Expand(fmt.Sprintf("service %s environment %s", svc, k), v, vars)
		if err != nil {
			return nil, err
		}
		out[k] = x
	}
	return out, nil
}

// volumeMounts maps compose volume strings to bind mounts. A named volume
// lives in $root/volumes/<stack>/<name>.
func (d *Deployer) volumeMounts(stack string, vols []string) ([]sdk.Mount, error) {
	var out []sdk.Mount
	for _, v := range vols {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("volume %q: want SOURCE:TARGET[:ro]", v)
		}
		m := sdk.Mount{Source: parts[0], Target: parts[1], ReadOnly: len(parts) == 3 && parts[2] == "ro"}
		if !filepath.IsAbs(m.Source) {
			m.Source = filepath.Join(d.Root, "volumes", stack, m.Source)
			if err := os.MkdirAll(m.Source, 0o755); err != nil {
				return nil, err
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// prepare unpacks a workload's image into a staging root and applies its overlays.
func (d *Deployer) prepare(ctx context.Context, r *bundle.Reader, m *bundle.Manifest, w *Workload, platform, stage string, vars map[string]string) error {
	ms := m.Services[w.Service]
	img := ms.Images[platform]
	newRoot := w.Spec.Root + ".new"
	os.RemoveAll(newRoot)
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if img != nil {
		file, err := d.extractEntry(ctx, r, img, stage, w.Service)
		if err != nil {
			return fmt.Errorf("service %s: %w", w.Service, err)
		}
		if w.Type == bundle.TypeContainer {
			// The plugin reads this image and writes this root, nothing else.
			f, plugin, err := d.Plugins.FormatFor(ctx, img.Format, sdk.SandboxPolicy{Read: []string{file}, Write: []string{newRoot}})
			if err != nil {
				return fmt.Errorf("service %s: unpack %s image: %w", w.Service, img.Format, err)
			}
			d.notify("%s: unpacking %s image (%s)", w.Service, img.Format, plugin)
			format := img.Format
			if format == bundle.FormatOCI {
				format += ";platform=" + platform // the image may be an index of several
			}
			if err := f.Unpack(ctx, sdk.UnpackRequest{Image: file, Format: format, Dest: newRoot}); err != nil {
				return fmt.Errorf("service %s: unpack image with %s: %w", w.Service, plugin, err)
			}
			os.Remove(file)
		} else {
			dst := filepath.Join(newRoot, "disk."+img.Format)
			if err := os.Rename(file, dst); err != nil {
				return err
			}
			w.Spec.Image = filepath.Join(w.Spec.Root, "disk."+img.Format)
		}
	}
	if w.Type == bundle.TypeVM {
		if boot := ms.Boot[platform]; boot != nil {
			for _, f := range []struct{ entry, name string }{{boot.Kernel, "vmlinuz"}, {boot.Initrd, "initrd"}} {
				if f.entry == "" {
					continue
				}
				if err := r.ExtractEntry(ctx, f.entry, filepath.Join(newRoot, f.name)); err != nil {
					return fmt.Errorf("vm %s: %w", w.Service, err)
				}
			}
			w.Spec.Kernel = filepath.Join(w.Spec.Root, "vmlinuz")
			if boot.Initrd != "" {
				w.Spec.Initrd = filepath.Join(w.Spec.Root, "initrd")
			}
			if w.Spec.Cmdline == "" {
				w.Spec.Cmdline = boot.Cmdline
			}
		}
		return nil
	}
	scope := make(map[string]string, len(vars)+len(w.Spec.Env))
	for k, v := range w.Spec.Env {
		scope[k] = v
	}
	for k, v := range vars {
		scope[k] = v
	}
	for _, c := range ms.Config {
		data, err := readEntry(r, c.Path, 64<<20)
		if err != nil {
			return fmt.Errorf("service %s: %w", w.Service, err)
		}
		if c.Template {
			s, err := Expand(c.Path, string(data), scope)
			if err != nil {
				return fmt.Errorf("service %s: overlay %s: %w", w.Service, c.Target, err)
			}
			data = []byte(s)
		}
		if err := writeInRoot(newRoot, c.Target, data, 0o644); err != nil {
			return fmt.Errorf("service %s: overlay %s: %w", w.Service, c.Path, err)
		}
		w.Config = append(w.Config, AppliedConfig{Source: c.Path, Target: c.Target, Digest: digest.Bytes(data)})
	}
	return nil
}

// extractEntry makes one image available as a file in dir: an embedded
// entry is streamed out of the bundle (only that entry, verified as it
// streams); a CAS reference is reassembled from Stellarium and checked
// against the manifest's digest.
func (d *Deployer) extractEntry(ctx context.Context, r *bundle.Reader, img *bundle.Image, dir, svc string) (string, error) {
	if img.Path == nil {
		if d.CAS == nil {
			return "", fmt.Errorf("image is a CAS reference (%s) and no store is available", img.CASRef)
		}
		dst := filepath.Join(dir, svc+"-cas."+img.Format)
		if err := d.CAS.Materialize(ctx, img.CASRef, img.Digest, dst); err != nil {
			return "", err
		}
		return dst, nil
	}
	dst := filepath.Join(dir, svc+"-"+filepath.Base(*img.Path))
	if err := r.ExtractEntry(ctx, *img.Path, dst); err != nil {
		return "", err
	}
	return dst, nil
}

// swapped records a root that was replaced, for rollback.
type swapped struct {
	root, old string // old == "" when there was nothing before
	state     string // the workload's state dir
}

// swapRoots moves each staged root (<root>.new) into place, keeping the
// previous one as <root>.old.
func swapRoots(work []Workload) ([]swapped, error) {
	var done []swapped
	for _, w := range work {
		root := w.Spec.Root
		s := swapped{root: root, state: w.Spec.StateDir}
		if _, err := os.Lstat(root); err == nil {
			s.old = root + ".old"
			os.RemoveAll(s.old)
			if err := os.Rename(root, s.old); err != nil {
				return done, err
			}
		}
		if err := os.Rename(root+".new", root); err != nil {
			if s.old != "" {
				os.Rename(s.old, root)
			}
			return done, err
		}
		done = append(done, s)
	}
	return done, nil
}

// RemoveStale removes the entries of dir matching pattern (temporary dirs
// of killed volt processes). Call it only under the state root's lock.
func RemoveStale(dir, pattern string) {
	stale, _ := filepath.Glob(filepath.Join(dir, pattern))
	for _, p := range stale {
		os.RemoveAll(p)
	}
}

// discardStaged removes staged roots (<root>.new) of an import that did not go ahead.
func discardStaged(work []Workload) {
	for _, w := range work {
		os.RemoveAll(w.Spec.Root + ".new")
		// The workload's dir, if this import created it: Remove only
		// succeeds when it is empty, so a deployed workload's is kept.
		os.Remove(filepath.Dir(w.Spec.Root))
	}
}

func discardOld(sw []swapped) {
	for _, s := range sw {
		if s.old != "" {
			os.RemoveAll(s.old)
		}
	}
}

// rollback undoes a failed import: stops what the new stack started, puts
// the old roots back and restarts the old stack with its old state.
func (d *Deployer) rollback(ctx context.Context, old *Stack, sw []swapped, started *Stack) {
	ctx = context.WithoutCancel(ctx)
	if started != nil {
		d.teardown(ctx, started)
	}
	for i := len(sw) - 1; i >= 0; i-- {
		s := sw[i]
		os.RemoveAll(s.root)
		if s.old != "" {
			os.Rename(s.old, s.root)
		} else {
			// A workload new in this import: its (torn down, so empty)
			// state dir, its record and its dir go too. Remove keeps
			// anything not empty.
			os.Remove(s.state)
			os.Remove(filepath.Join(filepath.Dir(s.root), recordName))
			os.Remove(filepath.Dir(s.root))
		}
	}
	if old == nil {
		if started != nil {
			os.RemoveAll(stackDir(d.Root, started.Name))
		}
		return
	}
	if err := old.Save(d.Root); err != nil {
		d.Logger.Error("rollback: restore stack state", "stack", old.Name, "err", err)
	}
	if err := d.startAll(ctx, old); err != nil {
		d.Logger.Error("rollback: restart previous deployment", "stack", old.Name, "err", err)
	}
	old.Save(d.Root)
}

// removeUnused deletes roots of workloads the new stack no longer has.
func (d *Deployer) removeUnused(old, cur *Stack) {
	for _, w := range old.Workloads {
		if _, ok := cur.Workload(w.Service); ok {
			continue
		}
		if err := removeUnder(d.Root, filepath.Dir(w.Spec.Root)); err != nil {
			d.Logger.Warn("remove unused workload", "workload", w.Name, "err", err)
		}
	}
}

// testPauseEnv names the point at which Import pauses (for up to a minute)
// so that fault tests can kill it there; unset in normal use.
const testPauseEnv = "VOLT_TEST_PAUSE"

// testPause blocks for up to a minute when $VOLT_TEST_PAUSE names point,
// after saying so through notify.
func testPause(point string, notify func(string, ...any)) {
	if os.Getenv(testPauseEnv) != point {
		return
	}
	notify("test: paused at %s", point)
	time.Sleep(time.Minute)
}
