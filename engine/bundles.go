package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/volt-cli/volt/engine/build"
	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/deploy"
	"github.com/volt-cli/volt/engine/plan"
	"github.com/volt-cli/volt/engine/pluginhost"
	"github.com/volt-cli/volt/engine/security"
	"github.com/volt-cli/volt/engine/sign"
	"github.com/volt-cli/volt/sdk/atomicfile"
	"github.com/volt-cli/volt/starlark"
)

// CreateOptions are the inputs of CreateBundle.
type CreateOptions struct {
	// Dir is the recipe root (default ".").
	Dir string
	// Recipe is the recipe file relative to Dir ("" = volt.star, else the
	// embedded default recipe over the Constellation file).
	Recipe string
	// Params are --set KEY=VALUE recipe parameters.
	Params map[string]string
	// Output is the .vbundle path ("" = $VOLT_ROOT/bundles/NAME-VERSION.vbundle).
	Output string
	// Platforms limits the bundle to these platforms.
	Platforms []string
	// DryRun evaluates and lays out the bundle without writing anything.
	DryRun bool
	// SignKey is an OpenSSH ed25519 private key to sign with ("" = unsigned).
	SignKey string
	// Passphrase supplies a passphrase for an encrypted key.
	Passphrase func() ([]byte, error)
	// MaxSteps bounds recipe evaluation (0 = config recipe.max_steps or default).
	MaxSteps uint64
	// Print receives the recipe's print() output.
	Print func(string)
	// Warn receives one line per Constellation key Volt ignores, each once.
	Warn func(string)
	// Progress reports bytes written.
	Progress func(done, total int64)
	// Format is "vbundle" (default) or "ace" (an ACE zip, containers only).
	Format string
	// CAS puts images into the local Stellarium store and makes the bundle
	// reference them instead of embedding them.
	CAS bool
}

// CreateResult is what CreateBundle made (or, with DryRun, would make).
type CreateResult struct {
	Plan     *plan.Plan       `json:"plan"`
	Manifest *bundle.Manifest `json:"manifest,omitempty"`
	Entries  []string         `json:"entries,omitempty"`
	Output   string           `json:"output,omitempty"`
	Size     int64            `json:"size,omitempty"`
	Signed   bool             `json:"signed"`
}

// EvalRecipe evaluates the recipe of opts into a Plan.
func (e *Engine) EvalRecipe(ctx context.Context, opts CreateOptions) (*plan.Plan, error) {
	return e.evalRecipe(ctx, opts, false)
}

// evalRecipe is EvalRecipe; deferDigests leaves image files unhashed
// (starlark.Options.DeferImageDigests) for a build that hashes them anyway.
func (e *Engine) evalRecipe(ctx context.Context, opts CreateOptions, deferDigests bool) (*plan.Plan, error) {
	dir := opts.Dir
	if dir == "" {
		dir = "."
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	file, err := recipeFile(root, opts.Dir != "", opts.Recipe)
	if err != nil {
		return nil, err
	}
	if file.root != "" {
		root = file.root
	}
	steps := opts.MaxSteps
	if steps == 0 {
		steps = uint64(max(0, e.Config.Int("recipe.max_steps")))
	}
	so := starlark.Options{
		Root:              root,
		DeferImageDigests: deferDigests,
		File:              file.name,
		Params:            opts.Params,
		MaxSteps:          steps,
		Print:             opts.Print,
		Warn:              opts.Warn,
	}
	if isConstellationFile(file.name) {
		// -f docker-compose.yml (or a Constellation): the embedded recipe
		// builds that file.
		so.File, so.Constellation = "", file.name
	}
	return starlark.Eval(ctx, so)
}

// isConstellationFile reports whether a -f name is a Constellation or
// compose file (YAML, or a Voltfile) rather than a recipe.
func isConstellationFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml":
		return true
	}
	return filepath.Base(name) == "Voltfile"
}

// recipeLoc is where a recipe file is: its name relative to the recipe
// root, and the root when the file decided it ("" = keep the one given).
type recipeLoc struct{ root, name string }

// recipeFile places an absolute -f FILE. Without DIR, the file's directory
// becomes the recipe root (so `-f /src/app/volt.star` works from anywhere);
// with DIR, the file must lie under it. Relative names and @volt// labels
// pass through: they are relative to the root already.
func recipeFile(root string, dirGiven bool, file string) (recipeLoc, error) {
	if file == "" || !filepath.IsAbs(file) {
		return recipeLoc{name: file}, nil
	}
	file = filepath.Clean(file)
	if !dirGiven {
		return recipeLoc{root: filepath.Dir(file), name: filepath.Base(file)}, nil
	}
	rel, err := filepath.Rel(root, file)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return recipeLoc{}, &starlark.Diagnostic{File: file, Msg: "recipe file is outside the recipe root " + root,
			Hint: "give -f relative to DIR, or leave DIR out to use the file's directory as the root"}
	}
	return recipeLoc{name: rel}, nil
}

// CreateBundle evaluates a recipe and builds (or dry-runs) its bundle.
func (e *Engine) CreateBundle(ctx context.Context, opts CreateOptions) (*CreateResult, error) {
	p, err := e.evalRecipe(ctx, opts, !opts.DryRun)
	if err != nil {
		return nil, err
	}
	bopts := build.Options{
		Platforms: opts.Platforms,
		Tool:      "volt " + Version,
		Progress:  opts.Progress,
	}
	// A dry run packs nothing: its format plugins may only read the recipe.
	e.attachPlugins(&bopts, opts.Print, formatPolicy([]string{p.Root}, nil))
	res := &CreateResult{Plan: p}
	if opts.DryRun {
		l, err := build.DryRun(ctx, p, bopts)
		if err != nil {
			return nil, err
		}
		res.Manifest = l.Manifest
		for _, en := range l.Entries {
			res.Entries = append(res.Entries, en.Name)
		}
		return res, nil
	}
	if opts.SignKey != "" {
		signer, err := sign.LoadSigner(opts.SignKey, opts.Passphrase)
		if err != nil {
			return nil, err
		}
		bopts.Sign = signer.Sign
		res.Signed = true
	}
	if opts.CAS {
		s, err := e.CAS()
		if err != nil {
			return nil, err
		}
		bopts.CAS = casStore{s}
	}
	out := opts.Output
	if out == "" {
		if err := e.ensureRoot(); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(e.BundlesDir(), 0o755); err != nil {
			return nil, err
		}
		out = filepath.Join(e.BundlesDir(), fmt.Sprintf("%s-%s.vbundle", p.Name, p.Version))
	}
	switch opts.Format {
	case "", "vbundle":
	case aceFormat:
		// The vbundle is made first (one way to make every bundle), then mapped to ACE.
		// Like the bundle's own temps: locked while used, and those of
		// killed creates removed here (sdk/atomicfile.RemoveStale).
		dir := filepath.Dir(absPath(out))
		_, _ = atomicfile.RemoveStale(dir, ".volt-create-")
		tmp, hold, err := atomicfile.MkdirTemp(dir, ".volt-create-*")
		if err != nil {
			return nil, err
		}
		defer hold.Release()
		defer os.RemoveAll(tmp)
		bopts.Output = filepath.Join(tmp, "bundle.vbundle")
		e.attachPlugins(&bopts, opts.Print, formatPolicy([]string{p.Root}, []string{filepath.Dir(absPath(out))}))
		m, err := build.Build(ctx, p, bopts)
		if err != nil {
			return nil, err
		}
		if err := e.WriteACE(ctx, bopts.Output, out); err != nil {
			return nil, err
		}
		res.Manifest, res.Output = m, out
		if fi, err := os.Stat(out); err == nil {
			res.Size = fi.Size()
		}
		return res, nil
	default:
		return nil, fmt.Errorf("unknown bundle format %q (want vbundle or ace)", opts.Format)
	}
	bopts.Output = out
	e.attachPlugins(&bopts, opts.Print, formatPolicy([]string{p.Root}, []string{filepath.Dir(absPath(out))}))
	m, err := build.Build(ctx, p, bopts)
	if err != nil {
		return nil, err
	}
	fillImageDigests(p, m)
	res.Manifest, res.Output = m, out
	if fi, err := os.Stat(out); err == nil {
		res.Size = fi.Size()
	}
	return res, nil
}

// fillImageDigests gives the Plan's image files (left unhashed by
// evaluation for a build) the digests the bundle writer computed, so the
// Plan says what EvalRecipe's would. Directories and build steps keep "".
func fillImageDigests(p *plan.Plan, m *bundle.Manifest) {
	for _, s := range p.Services {
		svc := m.Services[s.Name]
		if svc == nil {
			continue
		}
		for pl, src := range s.Images {
			img := svc.Images[pl]
			if src.Digest != "" || src.Build != nil || img == nil {
				continue
			}
			if fi, err := os.Stat(filepath.Join(p.Root, filepath.FromSlash(src.Path))); err == nil && fi.Mode().IsRegular() {
				src.Digest = img.Digest
			}
		}
	}
}

// attachPlugins wires format and runtime plugins into a build: format
// plugins start under policy, runtime plugins (build steps) under
// pluginhost.RuntimePolicy. When a needed plugin is missing, engine/build
// reports it with the recipe line.
func (e *Engine) attachPlugins(opts *build.Options, log func(string), policy pluginhost.Policy) {
	h := e.Plugins()
	packer := pluginPacker{host: h, policy: policy}
	opts.Packer = packer
	opts.Builder = &pluginBuilder{host: h, packer: packer, log: log, ran: map[*plan.BuildStep]string{}}
}

// BundleSummary is one row of InspectBundle and ListBundles.
type BundleSummary struct {
	Path      string            `json:"path"`
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Created   string            `json:"created"`
	Platforms []string          `json:"platforms"`
	Size      int64             `json:"size"`
	Signed    bool              `json:"signed"`
	Signer    *sign.Signature   `json:"signer,omitempty"`
	Partial   bool              `json:"partial,omitempty"`
	Services  []ServiceSummary  `json:"services"`
	Hooks     map[string]string `json:"hooks,omitempty"`
	Digest    string            `json:"digest"`
	Manifest  *bundle.Manifest  `json:"manifest,omitempty"`
	// Security is what each container service asks for (engine/security).
	Security []security.Request `json:"security,omitempty"`
}

// ServiceSummary is one service of a bundle.
type ServiceSummary struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Platforms   []string `json:"platforms"`
	ConfigFiles int      `json:"configFiles"`
	Size        int64    `json:"size"`
	CASRefs     int      `json:"casRefs,omitempty"`
	// KernelBoot is set for a VM that boots a kernel directly (no disk image).
	KernelBoot bool `json:"kernelBoot,omitempty"`
}

// InspectBundle reads a bundle's manifest (and only that: it is fast for any size).
func (e *Engine) InspectBundle(path string) (*BundleSummary, error) {
	r, err := bundle.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return summarize(path, r)
}

func summarize(path string, r *bundle.Reader) (*BundleSummary, error) {
	m := r.Manifest()
	s := &BundleSummary{
		Path: path, Name: m.Name, Version: m.BundleVersion, Created: m.Created,
		Partial: m.Partial, Hooks: m.Hooks, Manifest: m,
		Digest: bundle.ManifestDigest(r.ManifestBytes()),
	}
	for _, p := range m.Platforms {
		s.Platforms = append(s.Platforms, p.String())
	}
	if fi, err := os.Stat(path); err == nil {
		s.Size = fi.Size()
	}
	sig, err := r.Signature()
	if err != nil {
		return nil, err
	}
	if sig != nil {
		s.Signed = true
		if info, err := sign.Inspect(sig); err == nil {
			s.Signer = info
		}
	}
	names := make([]string, 0, len(m.Services))
	for n := range m.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		svc := m.Services[n]
		ss := ServiceSummary{Name: n, Type: svc.Type, ConfigFiles: len(svc.Config)}
		for k, img := range svc.Images {
			ss.Platforms = append(ss.Platforms, k)
			ss.Size += img.Size
			if img.CASRef != "" {
				ss.CASRefs++
			}
		}
		for k := range svc.Boot {
			if svc.Images[k] == nil {
				ss.Platforms = append(ss.Platforms, k)
				ss.KernelBoot = true
			}
		}
		sort.Strings(ss.Platforms)
		s.Services = append(s.Services, ss)
	}
	if f, err := deploy.ReadConstellation(r); err == nil {
		s.Security = security.Describe(f, security.Options{})
	}
	return s, nil
}

// VerifyOptions control VerifyBundle.
type VerifyOptions struct {
	// RequireSignature fails an unsigned bundle (also config bundle.require_signature).
	RequireSignature bool
	// TrustedKeys adds authorized_keys-form keys to the trust store for this call.
	TrustedKeys []string
	// AllowedSigners adds an OpenSSH allowed_signers file for this call.
	AllowedSigners string
	Progress       func(done, total int64)
	// Deep also checks that every CAS object the bundle references is in the
	// local store and whole (BLAKE3 of the reassembled object).
	Deep bool
	// SkipSignature leaves a signature unchecked unless a signature is
	// required (import without --verify checks structure and integrity only).
	SkipSignature bool
}

// Check is one line of a verification report.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Skip   bool   `json:"skipped,omitempty"`
	Detail string `json:"detail"`
	Hint   string `json:"hint,omitempty"`
}

// VerifyReport is the outcome of VerifyBundle.
type VerifyReport struct {
	Path   string  `json:"path"`
	Passed bool    `json:"passed"`
	Checks []Check `json:"checks"`
}

// ErrVerifyFailed is returned (wrapped) when a bundle fails verification.
var ErrVerifyFailed = errors.New("bundle verification failed")

// TrustStore builds the trust store: the allowed_signers file beside the
// config file and in /etc/volt, config bundle.allowed_signers and
// bundle.trusted_keys, plus extra keys and an extra allowed_signers file
// (which, being asked for explicitly, must exist).
func (e *Engine) TrustStore(extraKeys []string, extraFile string) (*sign.TrustStore, error) {
	paths := sign.DefaultAllowedSignersPaths(filepath.Dir(e.Config.Path))
	for _, f := range []string{e.Config.String("bundle.allowed_signers"), extraFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("allowed signers: %w", err)
		}
		paths = append(paths, f)
	}
	return sign.LoadTrustStore(paths, append(e.Config.List("bundle.trusted_keys"), extraKeys...))
}

// VerifyBundle checks a bundle's structure, every entry's BLAKE3, and its
// signature. The report says what passed; the error wraps ErrVerifyFailed
// when anything failed.
func (e *Engine) VerifyBundle(ctx context.Context, path string, opts VerifyOptions) (*VerifyReport, error) {
	rep := &VerifyReport{Path: path}
	fail := func(c Check) (*VerifyReport, error) {
		rep.Checks = append(rep.Checks, c)
		return rep, fmt.Errorf("%w: %s: %s", ErrVerifyFailed, c.Name, c.Detail)
	}
	r, err := bundle.Open(path)
	if errors.Is(err, bundle.ErrNonCanonical) {
		return fail(Check{Name: "zip", Detail: err.Error()})
	}
	if err != nil {
		return fail(Check{Name: "structure", Detail: err.Error()})
	}
	defer r.Close()
	rep.Checks = append(rep.Checks,
		Check{Name: "zip", OK: true, Detail: fmt.Sprintf("canonical: %d local headers agree with the central directory; no gap, overlap or byte outside the entries", len(r.Entries()))},
		Check{Name: "structure", OK: true, Detail: fmt.Sprintf("%d entries, manifest version %d", len(r.Entries()), r.Manifest().Version)})

	sig, err := r.Signature()
	if err != nil {
		return fail(Check{Name: "signature", Detail: err.Error()})
	}
	require := opts.RequireSignature || e.Config.Bool("bundle.require_signature")
	switch {
	case sig == nil && require:
		return fail(Check{Name: "signature", Detail: "bundle is not signed and a signature is required",
			Hint: "sign it with: volt bundle sign BUNDLE --sign-key KEY"})
	case sig == nil:
		rep.Checks = append(rep.Checks, Check{Name: "signature", OK: true, Skip: true, Detail: "not signed"})
	case opts.SkipSignature && !require:
		rep.Checks = append(rep.Checks, Check{Name: "signature", OK: true, Skip: true, Detail: "signed, not checked (no signature required)"})
	default:
		ts, err := e.TrustStore(opts.TrustedKeys, opts.AllowedSigners)
		if err != nil {
			return fail(Check{Name: "signature", Detail: err.Error()})
		}
		who, err := ts.Verify(r.ManifestBytes(), sig)
		if err != nil {
			c := Check{Name: "signature", Detail: err.Error()}
			if errors.Is(err, sign.ErrUntrusted) {
				if info, ierr := sign.Inspect(sig); ierr == nil {
					c.Hint = fmt.Sprintf("if you trust this signer: volt config set bundle.trusted_keys += %q", info.PublicKey)
				}
			}
			return fail(c)
		}
		rep.Checks = append(rep.Checks, Check{Name: "signature", OK: true, Detail: fmt.Sprintf("valid, signed by %s (%s)", who.Principal, who.Fingerprint)})
	}

	vr, err := r.Verify(ctx, bundle.VerifyOptions{Progress: opts.Progress})
	if err != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		detail := err.Error()
		if vr != nil {
			if bad := vr.Failures(); len(bad) > 0 {
				detail = fmt.Sprintf("%d of %d files failed: %v", len(bad), len(vr.Entries), bad[0].Err)
			}
		}
		return fail(Check{Name: "integrity", Detail: detail})
	}
	rep.Checks = append(rep.Checks, Check{Name: "integrity", OK: true, Detail: fmt.Sprintf("%d files verified (blake3, %s)", len(vr.Entries), FormatSize(vr.Bytes))})
	if refs := casRefs(r.Manifest()); len(refs) > 0 {
		if !opts.Deep {
			rep.Checks = append(rep.Checks, Check{Name: "cas", OK: true, Skip: true, Detail: fmt.Sprintf("%d CAS references not checked (use --deep)", len(refs))})
		} else if c := e.verifyCAS(ctx, refs); !c.OK {
			return fail(c)
		} else {
			rep.Checks = append(rep.Checks, c)
		}
	}
	rep.Passed = true
	return rep, nil
}

// SignBundle adds or replaces the signature of a bundle in place (atomically).
func (e *Engine) SignBundle(ctx context.Context, path, keyPath string, passphrase func() ([]byte, error)) (*sign.Signature, error) {
	signer, err := sign.LoadSigner(keyPath, passphrase)
	if err != nil {
		return nil, err
	}
	r, err := bundle.Open(path)
	if err != nil {
		return nil, err
	}
	manifest := r.ManifestBytes()
	r.Close()
	sig, err := signer.Sign(manifest)
	if err != nil {
		return nil, err
	}
	if err := bundle.SetSignature(ctx, path, sig); err != nil {
		return nil, err
	}
	return sign.Inspect(sig)
}

// ListBundles summarises the bundles in $VOLT_ROOT/bundles, newest first.
// Files that are not readable bundles are reported in the error slice.
func (e *Engine) ListBundles() ([]*BundleSummary, []error) {
	matches, _ := filepath.Glob(filepath.Join(e.BundlesDir(), "*.vbundle"))
	var out []*BundleSummary
	var errs []error
	for _, p := range matches {
		s, err := e.InspectBundle(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(p), err))
			continue
		}
		s.Manifest = nil
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created > out[j].Created
		}
		return out[i].Name < out[j].Name
	})
	return out, errs
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// ParseCreated parses a manifest's created time (zero on error).
func ParseCreated(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}

// SplitParams parses KEY=VALUE pairs.
func SplitParams(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--set %q: want KEY=VALUE", p)
		}
		out[k] = v
	}
	return out, nil
}

// FormatSize renders a byte count in decimal units as people read sizes:
// "512 B", "1.5 MB", "95 MB". The CLI uses it for tables and messages alike.
func FormatSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v < 10 {
		return fmt.Sprintf("%.1f %cB", v, "kMGTPE"[exp])
	}
	return fmt.Sprintf("%.0f %cB", v, "kMGTPE"[exp])
}

// ErrNoBundle is returned when the local bundle cache holds no bundle of a name.
var ErrNoBundle = errors.New("no such bundle in the local cache")

// CachedBundle returns the path of the newest cached bundle (what ListBundles
// shows) named ref, "NAME" or "NAME:VERSION"; ErrNoBundle when none matches.
func (e *Engine) CachedBundle(ref string) (string, error) {
	name, version, _ := strings.Cut(ref, ":")
	list, _ := e.ListBundles()
	for _, b := range list {
		if b.Name == name && (version == "" || b.Version == version) {
			return b.Path, nil
		}
	}
	return "", fmt.Errorf("%q: %w (see: volt bundle list)", ref, ErrNoBundle)
}
