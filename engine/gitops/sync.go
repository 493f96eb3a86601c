package gitops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/volt-cli/volt/engine/deploy"
	"github.com/volt-cli/volt/engine/flock"
	"github.com/volt-cli/volt/engine/sign"
)

// Deployer is what the engine does for GitOps (engine implements it).
type Deployer interface {
	// Build makes the bundle out from the recipe (volt.star) or
	// Constellation in dir and returns its manifest digest.
	Build(ctx context.Context, dir, out string) (digest string, err error)
	// Deploy verifies bundle and deploys it as stack, replacing the running
	// deployment; if the new one fails, the previous one comes back.
	Deploy(ctx context.Context, bundle, stack string) error
	// TrustStore returns the keys Volt trusts.
	TrustStore() (*sign.TrustStore, error)
	// StackDigest returns the manifest digest of the bundle stack runs
	// ("" if no such stack is deployed).
	StackDigest(stack string) (string, error)
}

// DefaultKeep is how many bundles a source keeps for rollback by default.
const DefaultKeep = 5

// Manager runs syncs and rollbacks of the sources in Store.
type Manager struct {
	Store
	Deployer Deployer
	// Keep is how many deployed bundles each source keeps (0 = DefaultKeep).
	Keep   int
	Logger *slog.Logger
}

// SyncOptions control Sync.
type SyncOptions struct {
	// Manual is an explicit request (volt gitops sync): it deploys the head
	// even if it failed before, the source is suspended or a rollback holds.
	Manual bool
	// OnWait is called once if another build of the source is running.
	OnWait func()
}

// SyncResult is what a sync did.
type SyncResult struct {
	Source string `json:"source"`
	Head   string `json:"head"`
	// Deployed is true when a new revision was deployed.
	Deployed bool `json:"deployed"`
	// Message says what happened, for people.
	Message string `json:"message"`
	// Entry is the history entry recorded (nil when nothing was built).
	Entry *Entry `json:"entry,omitempty"`
}

func (m *Manager) log() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

func (m *Manager) keep() int {
	if m.Keep > 0 {
		return m.Keep
	}
	return DefaultKeep
}

func (m *Manager) lock(ctx context.Context, name string, onWait func()) (*flock.Lock, error) {
	return flock.Acquire(ctx, filepath.Join(m.SourceDir(name), "lock"), true, onWait)
}

// begin takes the source's lock and loads its settings and state (after
// taking the lock: they may have changed while it waited).
func (m *Manager) begin(ctx context.Context, name string, onWait func()) (*flock.Lock, *Source, *State, error) {
	if _, err := m.Get(name); err != nil {
		return nil, nil, nil, err
	}
	lock, err := m.lock(ctx, name, onWait)
	if err != nil {
		return nil, nil, nil, err
	}
	src, err := m.Get(name)
	if err == nil {
		var state *State
		if state, err = m.LoadState(name); err == nil {
			return lock, src, state, nil
		}
	}
	lock.Release()
	return nil, nil, nil, err
}

// Sync reaches the repository and, if the branch head is not what runs,
// builds, verifies and deploys it. One sync runs at a time per source; a
// sync that waited for another asks the repository afresh, so the latest
// head wins. A failure to deploy is recorded in history and state and
// returned; the previous deployment keeps running.
func (m *Manager) Sync(ctx context.Context, name string, opts SyncOptions) (*SyncResult, error) {
	lock, src, state, err := m.begin(ctx, name, opts.OnWait)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	now := time.Now().UTC()
	state.LastAttempt = now
	res := &SyncResult{Source: name}
	auth, err := src.auth()
	if err == nil {
		var head plumbing.Hash
		head, err = m.remoteHead(ctx, src, auth)
		res.Head = head.String()
	}
	if err != nil {
		state.FetchFailures++
		state.LastError = err.Error()
		if serr := m.SaveState(name, state); serr != nil {
			return nil, serr
		}
		return res, err
	}
	state.FetchFailures = 0
	state.LastSync = now
	state.Head = res.Head
	switch {
	case res.Head == state.Deployed && !m.drifted(src, state):
		state.LastError, state.Hold = "", ""
		res.Message = "up to date at " + short(res.Head)
		return res, m.SaveState(name, state)
	case opts.Manual:
	case src.Suspended:
		res.Message = "suspended: " + short(res.Head) + " not deployed (resume with: volt gitops set " + name + " --suspend=false)"
		return res, m.SaveState(name, state)
	case res.Head == state.Hold:
		res.Message = "rolled back to " + short(state.Deployed) + "; " + short(res.Head) + " waits for a new commit or volt gitops sync"
		return res, m.SaveState(name, state)
	case res.Head == state.Failed:
		res.Message = short(res.Head) + " failed before; not retried until a new commit or volt gitops sync"
		return res, m.SaveState(name, state)
	}
	entry, err := m.deployHead(ctx, src, auth, plumbing.NewHash(res.Head))
	res.Entry = &entry
	res.Head = entry.Commit
	state.Head = entry.Commit
	if err != nil {
		state.Failed, state.LastError = entry.Commit, entry.Error
		m.log().Warn("gitops: deploy failed", "source", name, "commit", short(entry.Commit), "err", entry.Error)
	} else {
		state.Deployed, state.DeployedDigest = entry.Commit, entry.Digest
		state.Failed, state.LastError, state.Hold = "", "", ""
		res.Deployed = true
		res.Message = "deployed " + short(entry.Commit)
		m.log().Info("gitops: deployed", "source", name, "commit", short(entry.Commit), "ms", entry.DurationMS)
	}
	if herr := m.appendHistory(name, entry); herr != nil && err == nil {
		err = herr
	}
	if serr := m.SaveState(name, state); serr != nil && err == nil {
		err = serr
	}
	m.prune(name, state.Deployed)
	return res, err
}

// drifted reports whether the stack no longer runs the bundle the source
// deployed (destroyed, or replaced by hand): the head is then deployed
// again, unless the source is suspended.
func (m *Manager) drifted(src *Source, state *State) bool {
	if src.Suspended {
		return false
	}
	d, err := m.Deployer.StackDigest(src.Stack)
	if err != nil || d == state.DeployedDigest {
		return false
	}
	m.log().Warn("gitops: stack drifted from its revision; deploying it again", "source", src.Name, "stack", src.Stack, "runs", d, "want", state.DeployedDigest)
	return true
}

// deployHead fetches, checks, builds and deploys one commit and returns
// its history entry; the error is the entry's, for callers that branch.
func (m *Manager) deployHead(ctx context.Context, src *Source, auth transport.AuthMethod, head plumbing.Hash) (Entry, error) {
	start := time.Now()
	e := Entry{Commit: head.String(), Time: start.UTC().Truncate(time.Millisecond), Action: ActionSync}
	fail := func(result string, err error) (Entry, error) {
		e.Result, e.Error = result, err.Error()
		e.DurationMS = time.Since(start).Milliseconds()
		return e, err
	}
	_, c, err := m.fetch(ctx, src, auth, head)
	if err != nil {
		return fail(ResultFailed, err)
	}
	e.Commit = c.Hash.String()
	e.Subject = strings.TrimSpace(strings.SplitN(c.Message, "\n", 2)[0])
	if src.RequireSignedCommits {
		ts, err := m.Deployer.TrustStore()
		if err != nil {
			return fail(ResultRefused, err)
		}
		who, err := VerifyCommit(c, ts)
		if err != nil {
			return fail(ResultRefused, err)
		}
		e.Signer = who.Principal
	}
	deploy.RemoveStale(m.SourceDir(src.Name), ".work-*") // of a killed build; we hold the source's lock
	work, err := os.MkdirTemp(m.SourceDir(src.Name), ".work-*")
	if err != nil {
		return fail(ResultFailed, err)
	}
	defer os.RemoveAll(work)
	if err := extract(c, work); err != nil {
		return fail(ResultFailed, err)
	}
	dir := filepath.Join(work, filepath.FromSlash(src.Path))
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fail(ResultFailed, fmt.Errorf("commit %s has no directory %q (--path)", short(e.Commit), src.Path))
	}
	if err := os.MkdirAll(m.BundlesDir(src.Name), 0o700); err != nil {
		return fail(ResultFailed, err)
	}
	out := m.BundlePath(src.Name, e.Commit)
	digest, err := m.Deployer.Build(ctx, dir, out)
	if err != nil {
		os.Remove(out)
		return fail(ResultFailed, fmt.Errorf("build %s: %w", short(e.Commit), err))
	}
	e.Digest = digest
	if err := m.Deployer.Deploy(ctx, out, src.Stack); err != nil {
		os.Remove(out)
		return fail(ResultFailed, fmt.Errorf("deploy %s: %w", short(e.Commit), err))
	}
	e.Result = ResultDeployed
	e.DurationMS = time.Since(start).Milliseconds()
	return e, nil
}

// ErrNoRollback means no earlier deployment is kept to go back to.
var ErrNoRollback = errors.New("no earlier deployment to roll back to")

// Rollback deploys a kept bundle again: the deployment before the current
// one, or the one of commit to (a prefix of at least 4 hex digits). Polls
// and webhooks then leave it in place until the branch gets a new commit.
func (m *Manager) Rollback(ctx context.Context, name, to string, onWait func()) (*Entry, error) {
	lock, src, state, err := m.begin(ctx, name, onWait)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	hist, err := m.History(name)
	if err != nil {
		return nil, err
	}
	if to != "" && len(to) < 4 {
		return nil, fmt.Errorf("--to %q: give at least 4 hex digits of the commit", to)
	}
	var target *Entry
	for i := len(hist) - 1; i >= 0 && target == nil; i-- {
		h := hist[i]
		switch {
		case !h.Kept:
		case to != "" && strings.HasPrefix(h.Commit, strings.ToLower(to)):
			target = &hist[i]
		case to == "" && h.Commit != state.Deployed:
			target = &hist[i]
		}
	}
	if target == nil {
		if to != "" {
			return nil, fmt.Errorf("%w: no kept bundle of commit %s (see: volt gitops history %s)", ErrNoRollback, to, name)
		}
		return nil, fmt.Errorf("%w: source %s keeps no bundle of an earlier deployment", ErrNoRollback, name)
	}
	start := time.Now()
	e := Entry{Commit: target.Commit, Time: start.UTC().Truncate(time.Millisecond), Action: ActionRollback, Digest: target.Digest, Subject: target.Subject, Signer: target.Signer}
	err = m.Deployer.Deploy(ctx, m.BundlePath(name, target.Commit), src.Stack)
	e.DurationMS = time.Since(start).Milliseconds()
	if err != nil {
		e.Result, e.Error = ResultFailed, err.Error()
		state.LastError = "rollback: " + err.Error()
	} else {
		e.Result = ResultDeployed
		state.Deployed, state.DeployedDigest, state.LastError = target.Commit, target.Digest, ""
		if state.Head != target.Commit {
			state.Hold = state.Head
		}
	}
	if herr := m.appendHistory(name, e); herr != nil && err == nil {
		err = herr
	}
	if serr := m.SaveState(name, state); serr != nil && err == nil {
		err = serr
	}
	return &e, err
}

// prune keeps the bundles of the last Keep distinct deployed commits (the
// one running among them) and removes everything else in the bundles dir.
// Callers hold the source's lock.
func (m *Manager) prune(name, running string) {
	hist, err := m.History(name)
	if err != nil {
		return
	}
	keep := map[string]bool{running: true}
	for i := len(hist) - 1; i >= 0 && len(keep) < m.keep(); i-- {
		if hist[i].Result == ResultDeployed {
			keep[hist[i].Commit] = true
		}
	}
	ents, _ := os.ReadDir(m.BundlesDir(name))
	for _, e := range ents {
		// Anything else (a temporary file of a killed build) goes too.
		c, _ := strings.CutSuffix(e.Name(), ".vbundle")
		if !keep[c] {
			if err := os.Remove(filepath.Join(m.BundlesDir(name), e.Name())); err == nil {
				m.log().Debug("gitops: pruned bundle", "source", name, "commit", short(c))
			}
		}
	}
}

// KeptBundles lists every bundle kept for rollback under dir ($VOLT_ROOT/gitops):
// garbage collection treats them as roots.
func KeptBundles(dir string) []string {
	out, _ := filepath.Glob(filepath.Join(dir, "*", "bundles", "*.vbundle"))
	return out
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
