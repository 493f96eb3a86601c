package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gitDaemon serves the bare repositories under base on a loopback port
// with Debian's git daemon and returns the git:// base URL.
func gitDaemon(t *testing.T, base string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--base-path="+base,
		"--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), base)
	// A file, not a pipe: the daemon's per-connection children must not
	// keep Wait waiting; the process group takes them down with it.
	log, err := os.Create(filepath.Join(t.TempDir(), "git-daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Skipf("git daemon: %v", err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitWithin(t, 10*time.Second, 20*time.Millisecond, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "git daemon to listen")
	return "git://" + addr
}

// gitWork is a work tree that pushes to a bare repository.
type gitWork struct {
	t   *testing.T
	dir string
	env []string
}

func (g *gitWork) git(args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Volt Test", "-c", "user.email=test@volt.invalid"}, args...)...)
	cmd.Dir, cmd.Env = g.dir, g.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit sets the stack's version file (or breaks the stack) and pushes;
// with a key the commit is signed by git's SSH signing.
func (g *gitWork) commit(version, key string) string {
	g.t.Helper()
	image := "images/busybox.tar.gz"
	if version == "broken" {
		image = "images/missing.tar.gz"
	}
	writeFiles(g.t, g.dir, map[string]string{
		"deploy/version": version + "\n",
		"deploy/volt-compose.yaml": `version: "1"
name: app
containers:
  web:
    image: ` + image + `
    command: ["/bin/sh", "-c", "cat /etc/version; exec sleep 1000"]
    configs:
      - {source: version, target: /etc/version}
configs:
  version:
    file: version
`,
	})
	g.git("add", "-A")
	args := []string{"commit", "-q", "-m", "version " + version}
	if key != "" {
		args = append([]string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + key}, append(args, "-S")...)
	}
	g.git(args...)
	g.git("push", "-q", "origin", "main")
	return g.git("rev-parse", "HEAD")
}

// TestGitOps follows a repository served by git daemon through the CLI:
// poll, webhooks (good, forged, unsigned), a broken commit, rollback and
// signed commits, with real nspawn containers.
func TestGitOps(t *testing.T) {
	needDeploy(t)
	for _, tool := range []string{"git", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	e := newEnv(t)
	base := filepath.Join(e.dir, "git")
	home := filepath.Join(e.dir, "home")
	os.MkdirAll(home, 0o700)
	g := &gitWork{t: t, dir: filepath.Join(e.dir, "work"), env: append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1")}
	os.MkdirAll(base, 0o755)
	(&gitWork{t: t, dir: base, env: g.env}).git("init", "-q", "--bare", "-b", "main", "app.git")
	url := gitDaemon(t, base)
	(&gitWork{t: t, dir: e.dir, env: g.env}).git("init", "-q", "-b", "main", g.dir)
	g.git("remote", "add", "origin", filepath.Join(base, "app.git"))
	writeImage(t, filepath.Join(g.dir, "deploy"))
	c1 := g.commit("v1", "")

	secret := filepath.Join(e.dir, "hook.secret")
	os.WriteFile(secret, []byte("It's a Secret to Everybody\n"), 0o600)
	e.must("gitops", "add", "app", "--repo", url+"/app.git", "--path", "deploy", "--interval", "1h", "--webhook-secret-file", secret)
	if r := e.run("gitops", "add", "app", "--repo", url+"/app.git"); r.code != exitUsage {
		t.Errorf("adding a source twice: exit %d %s", r.code, r.stderr)
	}
	if r := e.run("gitops", "status", "nope"); r.code != exitNotFound {
		t.Errorf("status of a missing source: exit %d", r.code)
	}
	defer e.run("stack", "destroy", "app")
	defer e.run("gitops", "serve", "--stop")
	r := e.must("gitops", "serve", "--detach", "--addr", "127.0.0.1:0", "-o", "json")
	var serve struct {
		Running bool
		Addr    string
		PID     int
	}
	json.Unmarshal([]byte(r.stdout), &serve)
	if !serve.Running || serve.Addr == "" {
		t.Fatalf("serve --detach: %s", r.stdout)
	}
	var status struct {
		Serve   struct{ Running bool }
		Sources []struct {
			Phase string
			State struct{ Head, Deployed, LastError string }
		}
	}
	getStatus := func() {
		json.Unmarshal([]byte(e.must("gitops", "status", "app", "-o", "json").stdout), &status)
	}
	version := func() string {
		r := e.run("container", "exec", "app/web", "--", "cat", "/etc/version")
		return strings.TrimSpace(r.stdout)
	}

	// The first poll (at start) deploys the first commit.
	waitWithin(t, 60*time.Second, 200*time.Millisecond, func() bool { return version() == "v1" }, "the first commit running")
	getStatus()
	if !status.Serve.Running || status.Sources[0].State.Deployed != c1 || status.Sources[0].Phase != "synced" {
		t.Fatalf("status after the first poll: %+v", status)
	}

	hook := func(sig, delivery string) int {
		t.Helper()
		body := []byte(`{"ref":"refs/heads/main"}`)
		req, _ := http.NewRequest("POST", "http://"+serve.Addr+"/hooks/app", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", delivery)
		if sig != "" {
			req.Header.Set("X-Hub-Signature-256", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sign := func(key string) string {
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(`{"ref":"refs/heads/main"}`))
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	good := sign("It's a Secret to Everybody")

	// A forged webhook is refused and fetches nothing.
	c2 := g.commit("v2", "")
	if code := hook(sign("a guess"), "forged-1"); code != http.StatusForbidden {
		t.Errorf("forged webhook: %d, want 403", code)
	}
	if code := hook("", "forged-2"); code != http.StatusUnauthorized {
		t.Errorf("unsigned webhook: %d, want 401", code)
	}
	time.Sleep(time.Second)
	if getStatus(); status.Sources[0].State.Head != c1 || version() != "v1" {
		t.Fatalf("a refused webhook triggered a fetch: %+v", status)
	}
	// A signed one deploys the next commit within seconds (poll interval 1h).
	start := time.Now()
	if code := hook(good, "d-1"); code != http.StatusAccepted {
		t.Fatalf("signed webhook: %d, want 202", code)
	}
	waitWithin(t, 60*time.Second, 100*time.Millisecond, func() bool { return version() == "v2" }, "the webhook's commit running")
	t.Logf("webhook → v2 running in %s", time.Since(start).Round(time.Millisecond))
	if code := hook(good, "d-1"); code != http.StatusConflict {
		t.Errorf("replayed delivery: %d, want 409", code)
	}

	// A broken commit keeps v2 running and is in history as failed.
	c3 := g.commit("broken", "")
	hook(good, "d-2")
	var hist []struct {
		Commit, Action, Result, Digest, Error string
		DurationMs                            int64
	}
	waitWithin(t, 60*time.Second, 200*time.Millisecond, func() bool {
		json.Unmarshal([]byte(e.must("gitops", "history", "app", "-o", "json").stdout), &hist)
		return len(hist) == 3
	}, "the broken commit in history")
	if h := hist[2]; h.Commit != c3 || h.Result != "failed" || !strings.Contains(h.Error, "missing.tar.gz") {
		t.Errorf("broken commit's history entry: %+v", h)
	}
	if h := hist[1]; h.Commit != c2 || h.Result != "deployed" || !strings.HasPrefix(h.Digest, "blake3:") || h.DurationMs <= 0 {
		t.Errorf("v2's history entry: %+v", h)
	}
	if getStatus(); status.Sources[0].Phase != "failed" || status.Sources[0].State.Deployed != c2 || version() != "v2" {
		t.Errorf("after the broken commit: %+v, running %q", status, version())
	}
	if r := e.must("gitops", "list"); !strings.Contains(r.stdout, "failed") || !strings.Contains(r.stdout, c2[:12]) {
		t.Errorf("list:\n%s", r.stdout)
	}

	// Rollback returns to the previous version.
	e.must("gitops", "rollback", "app")
	if v := version(); v != "v1" {
		t.Fatalf("after rollback: running %q, want v1", v)
	}

	// Signed commits only: an unsigned commit is refused, a commit signed
	// with git's SSH signing by a trusted key is deployed.
	key := filepath.Join(e.dir, "signing-key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dev@example", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	e.must("config", "set", "bundle.trusted_keys", "+=", strings.TrimSpace(string(pub)))
	e.must("gitops", "set", "app", "--require-signed-commits")
	c4 := g.commit("v4", "")
	if r := e.run("gitops", "sync", "app"); r.code != exitVerify || !strings.Contains(r.stderr, "not signed") {
		t.Errorf("sync of an unsigned commit: exit %d %s", r.code, r.stderr)
	}
	if v := version(); v != "v1" {
		t.Errorf("an unsigned commit replaced the running version: %q", v)
	}
	c5 := g.commit("v5", key)
	hook(good, "d-3")
	waitWithin(t, 60*time.Second, 200*time.Millisecond, func() bool { return version() == "v5" }, "the signed commit running")
	json.Unmarshal([]byte(e.must("gitops", "history", "app", "-o", "json").stdout), &hist)
	var got []string
	for _, h := range hist {
		got = append(got, h.Action+":"+h.Result+":"+h.Commit[:7])
	}
	want := []string{"sync:deployed:" + c1[:7], "sync:deployed:" + c2[:7], "sync:failed:" + c3[:7],
		"rollback:deployed:" + c1[:7], "sync:refused:" + c4[:7], "sync:deployed:" + c5[:7]}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("history:\n got %v\nwant %v", got, want)
	}
	if log, _ := os.ReadFile(filepath.Join(e.dir, "root/gitops/serve.log")); !strings.Contains(string(log), "webhook refused") {
		t.Errorf("serve.log does not record the forged webhook:\n%s", log)
	}

	// A serve killed with SIGKILL is reported as died, and starts again.
	syscall.Kill(serve.PID, syscall.SIGKILL)
	waitFor(t, func() bool { return strings.Contains(e.must("gitops", "status").stdout, "died") }, "status to report the killed serve")
	e.must("gitops", "serve", "--detach", "--addr", "127.0.0.1:0")
	// Its first poll finds the head running (same bundle digest): no redeploy.
	time.Sleep(2 * time.Second)
	if json.Unmarshal([]byte(e.must("gitops", "history", "app", "-o", "json").stdout), &hist); len(hist) != 6 {
		t.Errorf("the restarted serve redeployed an unchanged head: %d history entries", len(hist))
	}

	// Stop serve; rm --destroy removes the source and its stack.
	e.must("gitops", "serve", "--stop")
	if getStatus(); status.Serve.Running {
		t.Errorf("serve still running after --stop")
	}
	e.must("gitops", "rm", "app", "--destroy")
	if r := e.must("stack", "list", "-o", "json"); strings.Contains(r.stdout, `"app"`) {
		t.Errorf("rm --destroy left the stack: %s", r.stdout)
	}
	if r := e.must("gitops", "list", "-o", "json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("list after rm: %s", r.stdout)
	}
}

// TestGitOpsBundlesAreGCRoots: a bundle a source keeps for rollback keeps
// its CAS objects through gc, with no pin; once it is gone, gc frees them.
func TestGitOpsBundlesAreGCRoots(t *testing.T) {
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeStack(t, stack)
	kept := filepath.Join(e.dir, "root/gitops/app/bundles/0123abcd.vbundle")
	os.MkdirAll(filepath.Dir(kept), 0o700)
	e.must("bundle", "create", stack, "--cas", "-o", kept)
	pins, _ := filepath.Glob(filepath.Join(e.dir, "root/cas/pins/*"))
	for _, p := range pins {
		e.must("cas", "pin", filepath.Base(p), "--remove")
	}
	var gc struct {
		ObjectsKept    int
		ObjectsRemoved []string
	}
	json.Unmarshal([]byte(e.must("cas", "gc", "-o", "json").stdout), &gc)
	if gc.ObjectsKept != 1 || len(gc.ObjectsRemoved) != 0 {
		t.Fatalf("gc with a kept gitops bundle: %+v", gc)
	}
	os.Remove(kept)
	json.Unmarshal([]byte(e.must("cas", "gc", "-o", "json").stdout), &gc)
	if len(gc.ObjectsRemoved) != 1 {
		t.Fatalf("gc after the bundle went: %+v", gc)
	}
}
