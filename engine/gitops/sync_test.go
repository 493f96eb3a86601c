package gitops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/volt-cli/volt/engine/sign"
)

// fakeDeployer stands in for the engine: Build copies volt.star into the
// bundle (failing on a recipe that says "broken"), Deploy records it.
type fakeDeployer struct {
	mu        sync.Mutex
	deployed  []string // volt.star contents, in deploy order
	destroyed bool     // the stack was removed behind gitops' back
	trust     *sign.TrustStore
}

func (f *fakeDeployer) Build(ctx context.Context, dir, out string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "volt.star"))
	if err != nil {
		return "", err
	}
	if strings.Contains(string(b), "broken") {
		return "", errors.New("volt.star:1: broken recipe")
	}
	if err := os.WriteFile(out, b, 0o600); err != nil {
		return "", err
	}
	return "blake3:" + strings.TrimSpace(string(b)), nil
}

func (f *fakeDeployer) Deploy(ctx context.Context, bundle, stack string) error {
	b, err := os.ReadFile(bundle)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deployed = append(f.deployed, strings.TrimSpace(string(b)))
	f.destroyed = false
	return nil
}

func (f *fakeDeployer) TrustStore() (*sign.TrustStore, error) { return f.trust, nil }

func (f *fakeDeployer) StackDigest(stack string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.destroyed || len(f.deployed) == 0 {
		return "", nil
	}
	return "blake3:" + f.deployed[len(f.deployed)-1], nil
}

func (f *fakeDeployer) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.deployed) == 0 {
		return ""
	}
	return f.deployed[len(f.deployed)-1]
}

// gitRepo is a work tree pushing to a bare repository.
type gitRepo struct {
	t          *testing.T
	work, bare string
}

func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Volt Test", "-c", "user.email=test@volt.invalid", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func newRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	dir := t.TempDir()
	r := &gitRepo{t: t, work: filepath.Join(dir, "work"), bare: filepath.Join(dir, "repo.git")}
	gitCmd(t, dir, "init", "-q", "--bare", "-b", "main", r.bare)
	gitCmd(t, dir, "init", "-q", "-b", "main", r.work)
	gitCmd(t, r.work, "remote", "add", "origin", r.bare)
	return r
}

// commit writes volt.star and pushes; with a signing key the commit is
// SSH-signed by git (gpg.format ssh).
func (r *gitRepo) commit(recipe string, signingKey ...string) string {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Join(r.work, "deploy"), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.work, "deploy", "volt.star"), []byte(recipe+"\n"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	gitCmd(r.t, r.work, "add", "-A")
	args := []string{"commit", "-q", "-m", "recipe " + recipe}
	if len(signingKey) > 0 {
		args = append([]string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + signingKey[0]}, append(args, "-S")...)
	}
	gitCmd(r.t, r.work, args...)
	gitCmd(r.t, r.work, "push", "-q", "-f", "origin", "main")
	return gitCmd(r.t, r.work, "rev-parse", "HEAD")
}

func newManager(t *testing.T, r *gitRepo, mod func(*Source)) (*Manager, *fakeDeployer) {
	t.Helper()
	fd := &fakeDeployer{}
	m := &Manager{Store: Store{Dir: filepath.Join(t.TempDir(), "gitops")}, Deployer: fd, Keep: 2}
	src := &Source{Name: "shop", Repo: "file://" + r.bare, Path: "deploy", Interval: Duration(time.Hour)}
	if mod != nil {
		mod(src)
	}
	if err := m.Add(src); err != nil {
		t.Fatal(err)
	}
	return m, fd
}

func TestSyncHistoryRollback(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	m, fd := newManager(t, r, nil)
	ctx := context.Background()
	c1 := r.commit("v1")

	res, err := m.Sync(ctx, "shop", SyncOptions{})
	if err != nil || !res.Deployed || res.Head != c1 || fd.last() != "v1" {
		t.Fatalf("first sync: %+v %v (deployed %q)", res, err, fd.last())
	}
	// An unchanged branch is a no-op.
	if res, err := m.Sync(ctx, "shop", SyncOptions{}); err != nil || res.Deployed || len(fd.deployed) != 1 {
		t.Fatalf("second sync: %+v %v", res, err)
	}
	c2 := r.commit("v2")
	if res, err := m.Sync(ctx, "shop", SyncOptions{}); err != nil || res.Head != c2 || fd.last() != "v2" {
		t.Fatalf("sync v2: %+v %v", res, err)
	}
	// A stack destroyed behind gitops' back is deployed again.
	fd.mu.Lock()
	fd.destroyed = true
	fd.mu.Unlock()
	if res, err := m.Sync(ctx, "shop", SyncOptions{}); err != nil || !res.Deployed || len(fd.deployed) != 3 || fd.destroyed {
		t.Fatalf("drift not repaired: %+v %v %v", res, err, fd.deployed)
	}

	// A broken commit fails, is recorded, and the running version stays.
	c3 := r.commit("broken")
	if _, err := m.Sync(ctx, "shop", SyncOptions{}); err == nil || !strings.Contains(err.Error(), "broken recipe") {
		t.Fatalf("broken commit: %v", err)
	}
	st, _ := m.Status("shop")
	if st.Phase != PhaseFailed || st.State.Deployed != c2 || st.State.Head != c3 || fd.last() != "v2" {
		t.Fatalf("after a broken commit: %+v phase %s, running %q", st.State, st.Phase, fd.last())
	}
	// Polls do not retry a failed commit.
	if res, err := m.Sync(ctx, "shop", SyncOptions{}); err != nil || res.Entry != nil {
		t.Fatalf("poll retried a failed commit: %+v %v", res, err)
	}

	// Rollback goes to the deployment before the current one and holds.
	e, err := m.Rollback(ctx, "shop", "", nil)
	if err != nil || e.Commit != c1 || fd.last() != "v1" {
		t.Fatalf("rollback: %+v %v", e, err)
	}
	if res, _ := m.Sync(ctx, "shop", SyncOptions{}); res.Entry != nil || fd.last() != "v1" {
		t.Fatalf("a poll undid the rollback: %+v", res)
	}
	if st, _ := m.Status("shop"); st.Phase != PhaseRolledBack && st.Phase != PhaseFailed {
		t.Errorf("phase after rollback = %s", st.Phase)
	}
	if _, err := m.Rollback(ctx, "shop", c2[:8], nil); err != nil || fd.last() != "v2" {
		t.Fatalf("rollback --to: %v", err)
	}
	if _, err := m.Rollback(ctx, "shop", "deadbeef", nil); !errors.Is(err, ErrNoRollback) {
		t.Errorf("rollback to an unknown commit: %v", err)
	}

	// A force-push rewinding the branch deploys the new head.
	gitCmd(t, r.work, "reset", "-q", "--hard", c1)
	c4 := r.commit("v4")
	if res, err := m.Sync(ctx, "shop", SyncOptions{}); err != nil || res.Head != c4 || fd.last() != "v4" {
		t.Fatalf("after a force-push: %+v %v", res, err)
	}

	h, err := m.History("shop")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h {
		got = append(got, fmt.Sprintf("%s:%s:%s", e.Action, e.Result, e.Commit[:7]))
	}
	want := []string{"sync:deployed:" + c1[:7], "sync:deployed:" + c2[:7], "sync:deployed:" + c2[:7], "sync:failed:" + c3[:7],
		"rollback:deployed:" + c1[:7], "rollback:deployed:" + c2[:7], "sync:deployed:" + c4[:7]}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("history:\n got %v\nwant %v", got, want)
	}
	if h[3].Error == "" || h[0].Digest != "blake3:v1" || h[0].Subject != "recipe v1" {
		t.Errorf("history entries lack detail: %+v", h[:4])
	}
	// Keep = 2: the bundles of c4 (running) and c2 stay, c1 is pruned.
	kept := KeptBundles(m.Dir)
	if len(kept) != 2 || !fileExists(m.BundlePath("shop", c4)) || !fileExists(m.BundlePath("shop", c2)) {
		t.Errorf("kept bundles = %v", kept)
	}
}

func TestSyncUnreachable(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	m, fd := newManager(t, r, func(s *Source) { s.Repo = "file://" + filepath.Join(t.TempDir(), "missing.git") })
	_, err := m.Sync(context.Background(), "shop", SyncOptions{})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	st, _ := m.Status("shop")
	if st.Phase != PhaseUnreachable || st.State.FetchFailures != 1 || len(fd.deployed) != 0 {
		t.Errorf("status after an unreachable repo: %+v", st)
	}
}

// TestSignedCommits signs with git's own SSH signing (ssh-keygen -Y sign).
func TestSignedCommits(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("needs ssh-keygen")
	}
	r := newRepo(t)
	m, fd := newManager(t, r, func(s *Source) { s.RequireSignedCommits = true })
	key := filepath.Join(t.TempDir(), "key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dev@example", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	ts, err := sign.LoadTrustStore(nil, []string{strings.TrimSpace(string(pub))})
	if err != nil {
		t.Fatal(err)
	}
	fd.trust = ts
	ctx := context.Background()

	r.commit("unsigned")
	if _, err := m.Sync(ctx, "shop", SyncOptions{}); !errors.Is(err, ErrUnsigned) || len(fd.deployed) != 0 {
		t.Fatalf("unsigned commit: %v (deployed %v)", err, fd.deployed)
	}
	h, _ := m.History("shop")
	if len(h) != 1 || h[0].Result != ResultRefused {
		t.Fatalf("history: %+v", h)
	}
	// Signed by a key Volt does not trust: refused.
	other := filepath.Join(t.TempDir(), "other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	r.commit("untrusted", other)
	if _, err := m.Sync(ctx, "shop", SyncOptions{}); !errors.Is(err, ErrUnsigned) || !strings.Contains(err.Error(), "untrusted") || len(fd.deployed) != 0 {
		t.Fatalf("commit by an untrusted key: %v (deployed %v)", err, fd.deployed)
	}
	c := r.commit("signed", key)
	res, err := m.Sync(ctx, "shop", SyncOptions{})
	if err != nil || res.Head != c || fd.last() != "signed" || res.Entry.Signer != "dev@example" {
		t.Fatalf("signed commit: %+v %v", res, err)
	}
}

// TestConcurrentSyncs: syncs of one source run one at a time, and one that
// waited sees the head already deployed, so a head is built once.
func TestConcurrentSyncs(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	m, fd := newManager(t, r, nil)
	c := r.commit("v1")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.Sync(context.Background(), "shop", SyncOptions{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	h, _ := m.History("shop")
	if len(fd.deployed) != 1 || len(h) != 1 || h[0].Commit != c {
		t.Fatalf("4 concurrent syncs deployed %v, history %+v", fd.deployed, h)
	}
}
