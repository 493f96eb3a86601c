package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needDeploy skips unless the host can run containers (root, systemd-nspawn, busybox).
func needDeploy(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("deploy tests need root")
	}
	for _, tool := range []string{"systemd-nspawn", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("deploy tests need %s", tool)
		}
	}
}

// busyboxRootfs returns a gzip'd rootfs tarball holding the host's busybox.
func busyboxRootfs(t *testing.T) []byte {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("no busybox")
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	dir := func(name string) { tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}) }
	for _, d := range []string{"bin/", "usr/", "etc/", "tmp/", "proc/", "sys/", "dev/", "data/"} {
		dir(d)
	}
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))})
	tw.Write(bin)
	for _, app := range []string{"sh", "echo", "cat", "sleep", "ls", "touch", "test", "true", "false"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + app, Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// writeFiles writes name → content under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// twoServiceStack writes a stack: db (writes a marker, then sleeps) and web
// (depends on db, prints its overlay), with a pre-deploy hook.
func twoServiceStack(t *testing.T, dir string) {
	t.Helper()
	writeFiles(t, dir, map[string]string{
		"volt-compose.yaml": `version: "1"
name: shop
containers:
  db:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "echo db-up; date +%s%N > /data/db-started; exec sleep 1000"]
    volumes: ["dbdata:/data"]
  web:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "echo web-up; cat /etc/web.conf; exec sleep 1000"]
    environment: {APP_ENV: "${APP_ENV:-production}"}
    depends_on: [db]
    configs:
      - {source: web, target: /etc/web.conf, template: true}
volumes:
  dbdata: {}
configs:
  web:
    file: conf/web.conf
`,
		"conf/web.conf": "env=${APP_ENV}\npassword=${DB_PASSWORD}\n",
		"hooks/pre.sh":  "#!/bin/sh\necho \"$VOLT_BUNDLE_NAME\" > \"$VOLT_STACK_DIR/pre-deploy-ran\"\n",
		"volt.star": `bundle(name = "shop", version = "1.0.0", platforms = ["linux/amd64"])
constellation("volt-compose.yaml")
hook("pre-deploy", "hooks/pre.sh")
`,
	})
	writeImage(t, dir)
}

// writeImage writes the busybox rootfs as dir/images/busybox.tar.gz.
func writeImage(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "images/busybox.tar.gz"), busyboxRootfs(t), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDeployTwoServices(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	twoServiceStack(t, stack)
	bundlePath := filepath.Join(e.dir, "shop.vbundle")
	e.must("bundle", "create", stack, "-o", bundlePath)
	defer e.run("stack", "destroy", "shop")

	// An undefined variable in a template is refused, and nothing is deployed.
	r := e.run("bundle", "import", bundlePath)
	if r.code != exitUsage || !strings.Contains(r.stderr, `undefined variable "DB_PASSWORD"`) || !strings.Contains(r.stderr, "web.conf:2") {
		t.Fatalf("undefined variable: exit %d: %s", r.code, r.stderr)
	}
	if r := e.must("stack", "list", "-o", "json"); strings.Contains(r.stdout, "shop") {
		t.Fatalf("a refused import left a stack behind: %s", r.stdout)
	}

	r = e.must("bundle", "import", "--run-hooks", "--set", "DB_PASSWORD=s3cret", "--set", "APP_ENV=staging", bundlePath)
	hookOut, err := os.ReadFile(filepath.Join(e.dir, "root/stacks/shop/pre-deploy-ran"))
	if err != nil || strings.TrimSpace(string(hookOut)) != "shop" {
		t.Errorf("pre-deploy hook did not run: %v %q", err, hookOut)
	}

	var rows []struct{ Service, Status string }
	waitFor(t, func() bool {
		r := e.must("ps", "-a", "-o", "json")
		json.Unmarshal([]byte(r.stdout), &rows)
		return len(rows) == 2 && rows[0].Status == "running" && rows[1].Status == "running"
	}, "both services running")
	if rows[0].Service != "db" || rows[1].Service != "web" {
		t.Errorf("ps order = %+v, want db then web (dependency order)", rows)
	}
	waitFor(t, func() bool { return strings.Contains(e.run("logs", "shop/web").stdout, "password=s3cret") }, "web's overlay in its log")
	r = e.must("logs", "shop/web")
	if !strings.Contains(r.stdout, "env=staging") {
		t.Errorf("web log lacks the expanded overlay:\n%s", r.stdout)
	}

	// exec, stop/start, and re-import as a no-op.
	r = e.must("container", "exec", "shop/web", "--", "cat", "/etc/web.conf")
	if !strings.Contains(r.stdout, "password=s3cret") {
		t.Errorf("exec output: %q", r.stdout)
	}
	e.must("container", "stop", "shop/web")
	if r := e.must("ps", "-a"); !strings.Contains(r.stdout, "stopped") {
		t.Errorf("after stop:\n%s", r.stdout)
	}
	e.must("container", "start", "shop/web")
	r = e.must("bundle", "import", "--set", "DB_PASSWORD=s3cret", bundlePath)
	if !strings.Contains(r.stderr, "nothing to do") {
		t.Errorf("re-import: %s", r.stderr)
	}

	// Export the running stack and import it under another state root: the
	// same services come up, with the overlays already applied and the
	// volume's data carried along.
	snap := filepath.Join(e.dir, "snapshot.vbundle")
	os.WriteFile(filepath.Join(e.dir, "root/volumes/shop/dbdata/keep"), []byte("kept"), 0o644)
	e.must("bundle", "export", "shop", "--include-volumes", "-o", snap)
	e2 := newEnv(t)
	defer e2.run("stack", "destroy", "shop")
	if r := e2.run("stack", "destroy", "shop"); r.code != exitNotFound {
		t.Errorf("destroy before import: exit %d", r.code)
	}
	e2.must("bundle", "import", snap)
	waitFor(t, func() bool {
		r := e2.must("ps", "-o", "json")
		json.Unmarshal([]byte(r.stdout), &rows)
		return len(rows) == 2
	}, "exported stack running elsewhere")
	if r := e2.must("container", "exec", "shop/web", "--", "cat", "/etc/web.conf"); !strings.Contains(r.stdout, "password=s3cret") {
		t.Errorf("exported web.conf: %q", r.stdout)
	}
	if b, err := os.ReadFile(filepath.Join(e2.dir, "root/volumes/shop/dbdata/keep")); err != nil || string(b) != "kept" {
		t.Errorf("volume data not carried: %v %q", err, b)
	}
	e2.must("stack", "destroy", "shop")

	// Hooks without --run-hooks are reported, not run.
	os.Remove(filepath.Join(e.dir, "root/stacks/shop/pre-deploy-ran"))
	r = e.must("bundle", "import", "--force", "--set", "DB_PASSWORD=x", bundlePath)
	if !strings.Contains(r.stderr, "not run") {
		t.Errorf("import without --run-hooks does not say hooks were skipped: %s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "root/stacks/shop/pre-deploy-ran")); err == nil {
		t.Errorf("hook ran without --run-hooks")
	}

	// rm removes one workload; the rest of the stack keeps running.
	e.must("container", "rm", "shop/web")
	r = e.must("container", "list", "-a", "-o", "json")
	json.Unmarshal([]byte(r.stdout), &rows)
	if len(rows) != 1 || rows[0].Service != "db" || rows[0].Status != "running" {
		t.Errorf("after rm web: %+v", rows)
	}
	if r := e.run("container", "inspect", "shop/web"); r.code != exitNotFound {
		t.Errorf("inspect of a removed container: exit %d", r.code)
	}

	e.must("stack", "destroy", "shop")
	if r := e.must("ps", "-a", "-o", "json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("after destroy, ps -a = %s", r.stdout)
	}
	if r := e.run("stack", "destroy", "shop"); r.code != exitNotFound {
		t.Errorf("destroy of a missing stack: exit %d", r.code)
	}
}

func TestDeployFailures(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeFiles(t, stack, map[string]string{
		"volt-compose.yaml": `version: "1"
name: broken
containers:
  nocmd:
    image: images/busybox.tar.gz
    command: ["/bin/does-not-exist"]
`,
	})
	writeImage(t, stack)
	out := filepath.Join(e.dir, "broken.vbundle")
	e.must("bundle", "create", stack, "-o", out)
	defer e.run("stack", "destroy", "broken")
	e.must("bundle", "import", out)
	var rows []struct{ Status, Reason string }
	waitFor(t, func() bool {
		r := e.must("ps", "-a", "-o", "json")
		json.Unmarshal([]byte(r.stdout), &rows)
		return len(rows) == 1 && rows[0].Status == "failed"
	}, "the service with a missing command to be reported failed")
	if rows[0].Reason == "" {
		t.Errorf("failed workload has no reason")
	}

	// --verify with an unsigned bundle is refused before anything runs.
	e.must("stack", "destroy", "broken")
	if r := e.run("bundle", "import", "--verify", out); r.code != exitVerify {
		t.Errorf("--verify on an unsigned bundle: exit %d: %s", r.code, r.stderr)
	}
	if r := e.must("stack", "list", "-o", "json"); strings.Contains(r.stdout, "broken") {
		t.Errorf("refused import left state: %s", r.stdout)
	}
}

// waitFor polls cond every 100 ms for up to 20 s and fails the test if it
// never holds.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	waitWithin(t, 20*time.Second, 100*time.Millisecond, cond, what)
}

// waitWithin polls cond every poll until it holds, failing the test after d.
func waitWithin(t *testing.T, d, poll time.Duration, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(poll) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
