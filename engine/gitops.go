package engine

import (
	"context"
	"errors"
	"sync"

	"github.com/volt-cli/volt/engine/config"
	"github.com/volt-cli/volt/engine/deploy"
	"github.com/volt-cli/volt/engine/gitops"
	"github.com/volt-cli/volt/engine/sign"
)

// GitOps returns the manager of the GitOps sources under the state root
// ($VOLT_ROOT/gitops). It builds with the engine's recipe path, deploys
// with --force semantics and keeps config gitops.keep bundles per source.
func (e *Engine) GitOps() *gitops.Manager {
	return &gitops.Manager{
		Store:    gitops.Store{Dir: e.Path("gitops")},
		Deployer: &gitopsDeployer{e: e},
		Keep:     e.Config.Int("gitops.keep"),
		Logger:   e.Logger,
	}
}

// GitOpsServer returns the webhook server and poll loops of the sources.
func (e *Engine) GitOpsServer(addr string) *gitops.Server {
	return &gitops.Server{Manager: e.GitOps(), Addr: addr}
}

// GitOpsDestroy removes the stack a source deployed.
func (e *Engine) GitOpsDestroy(ctx context.Context, stack string, notify func(string)) error {
	return e.DestroyStack(ctx, stack, deploy.DestroyOptions{}, notify)
}

// gitopsDeployer builds and deploys revisions through the engine. Builds
// of several sources in one serve process run one at a time: they share
// the engine's plugin host, and imports are serialised on the state root
// anyway.
type gitopsDeployer struct {
	e  *Engine
	mu sync.Mutex
}

// Build makes a bundle from the recipe or Constellation in dir; it is
// signed with config bundle.sign_key when one is set (passphrase from
// VOLT_SIGN_PASSPHRASE), so hosts that require signatures deploy it.
func (d *gitopsDeployer) Build(ctx context.Context, dir, out string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reload()
	opts := CreateOptions{Dir: dir, Output: out}
	if k := d.e.Config.String("bundle.sign_key"); k != "" {
		opts.SignKey, opts.Passphrase = k, sign.PassphraseFromEnvOrTerminal("passphrase for "+k+": ")
	}
	res, err := d.e.CreateBundle(ctx, opts)
	if err != nil {
		return "", err
	}
	s, err := d.e.InspectBundle(res.Output)
	if err != nil {
		return "", err
	}
	return s.Digest, nil
}

// Deploy verifies and imports bundle as stack with --force: the running
// deployment is replaced, and restored if the new one fails to start.
func (d *gitopsDeployer) Deploy(ctx context.Context, bundle, stack string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err := d.e.Import(ctx, ImportOptions{ImportOptions: deploy.ImportOptions{Bundle: bundle, Name: stack, Force: true}})
	return err
}

// TrustStore returns the keys Volt trusts (bundle.trusted_keys and the allowed_signers files).
func (d *gitopsDeployer) TrustStore() (*sign.TrustStore, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reload()
	return d.e.TrustStore(nil, "")
}

// StackDigest returns the manifest digest of the bundle stack runs ("" if none).
func (d *gitopsDeployer) StackDigest(stack string) (string, error) {
	st, err := deploy.LoadStack(d.e.Root, stack)
	if errors.Is(err, deploy.ErrNoStack) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return st.Bundle.Digest, nil
}

// reload re-reads the configuration, so a long-running serve follows
// changes to trusted keys and signature policy. A file that no longer
// parses keeps the configuration in use (and is logged).
func (d *gitopsDeployer) reload() {
	cfg, err := config.Load(d.e.Config.Path)
	if err != nil {
		d.e.Logger.Warn("gitops: configuration not reloaded", "err", err)
		return
	}
	d.e.Config = cfg
}

// gitopsBundles lists the bundles GitOps sources keep for rollback: gc roots.
func (e *Engine) gitopsBundles() []string { return gitops.KeptBundles(e.Path("gitops")) }
