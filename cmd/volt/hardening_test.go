package main

// End-to-end tests of the hardening issue (#11): sandboxed plugins on every
// start, a private state root, state files that cannot be turned against
// the host, and an import --force that is true after kill -9.

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sandboxLine is a format plugin's own report that its Landlock ruleset is
// in force (sdk, at debug level): plugin, ABI, read and write lists.
var sandboxLine = regexp.MustCompile(`msg="sandbox applied" plugin=(\S+) landlock_abi=(\d+) read=\[([^\]]*)\] write=\[([^\]]*)\]`)

// startedLine is the host's record of a plugin process start.
var startedLine = regexp.MustCompile(`msg="plugin started" plugin=(\S+)`)

// assertConfined checks, in the --debug stderr of one command, that every
// format plugin process that started reported its own Landlock ruleset, and
// that plugin's ruleset reads read and writes write ("" = any).
func assertConfined(t *testing.T, what, stderr, plugin, read, write string) {
	t.Helper()
	starts := map[string]int{}
	for _, m := range startedLine.FindAllStringSubmatch(stderr, -1) {
		if strings.HasPrefix(m[1], "format-") {
			starts[m[1]]++
		}
	}
	applied := map[string]int{}
	found := false
	for _, m := range sandboxLine.FindAllStringSubmatch(stderr, -1) {
		applied[m[1]]++
		if abi, _ := strconv.Atoi(m[2]); abi == 0 {
			t.Errorf("%s: %s runs without Landlock (ABI 0)", what, m[1])
		}
		if m[1] == plugin && (read == "" || strings.Contains(" "+m[3]+" ", " "+read+" ")) && (write == "" || strings.Contains(" "+m[4]+" ", " "+write+" ")) {
			found = true
		}
	}
	if starts[plugin] == 0 {
		t.Errorf("%s: %s never started:\n%s", what, plugin, stderr)
	}
	for p, n := range starts {
		if applied[p] != n {
			t.Errorf("%s: %s started %d times, confined itself %d times", what, p, n, applied[p])
		}
	}
	if !found {
		t.Errorf("%s: no %s confined to read %s, write %s:\n%s", what, plugin, read, write, stderr)
	}
}

// TestPluginsConfinedOnEveryStart: bundle create (a directory image and a
// build step), bundle convert and bundle import start every format plugin
// under the Landlock policy of that command, as the plugins themselves
// report.
func TestPluginsConfinedOnEveryStart(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	rootfs := filepath.Join(src, "rootfs")
	for _, d := range []string{"bin", "usr", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("no /bin/busybox")
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"sh", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", app)); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, src, map[string]string{"volt.star": `bundle(name = "sbx", version = "1.0.0")
container("plain", image = rootfs("rootfs"), command = ["/bin/sh", "-c", "exec sleep 1000"])
container("built", image = build(base = rootfs("rootfs"), run = [["/bin/sh", "-c", "echo built > /built"]]), command = ["/bin/sh", "-c", "exec sleep 1000"])
`})
	vb := filepath.Join(e.dir, "sbx.vbundle")
	r := e.must("bundle", "create", "--debug", src, "-o", vb)
	assertConfined(t, "bundle create", r.stderr, "format-oci", src, e.dir)

	ace := filepath.Join(e.dir, "sbx.zip")
	e.must("bundle", "create", src, "--format", "ace", "-o", ace)
	r = e.must("bundle", "convert", "--debug", ace, "-o", filepath.Join(e.dir, "conv.vbundle"))
	assertConfined(t, "bundle convert", r.stderr, "format-ace", ace, "")

	defer e.run("stack", "destroy", "sbx")
	r = e.must("bundle", "import", "--debug", vb)
	// Each unpack: the one image extracted from the bundle, into that
	// workload's new root only.
	assertConfined(t, "bundle import", r.stderr, "format-oci", "", e.rootfs("sbx", "plain")+".new")
	assertConfined(t, "bundle import", r.stderr, "format-oci", "", e.rootfs("sbx", "built")+".new")
}

// TestStateRootPrivate: a user other than the root's owner cannot read an
// imported image's setuid file through the state root, and an existing
// root open to others is made private with one warning.
func TestStateRootPrivate(t *testing.T) {
	needDeploy(t)
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("no useradd")
	}
	e := newEnv(t)
	// The test's own directories are 0700: open them so that only the
	// state root's mode stands between the user and the image.
	for _, d := range []string{filepath.Dir(e.dir), e.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	user := "voltpriv" + strconv.Itoa(os.Getpid()%100000)
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/bin/sh", user).CombinedOutput(); err != nil {
		t.Skipf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", user).Run() })

	// Empty: reading it succeeds exactly when it is reachable.
	secret := tar.Header{Name: "bin/suid-secret", Typeflag: tar.TypeReg, Mode: 0o4755}
	b := e.build(sleeper("priv", imageWith(t, secret)))
	defer e.run("stack", "destroy", "priv")
	e.must("bundle", "import", b)
	file := filepath.Join(e.rootfs("priv", "app"), "bin", "suid-secret")
	if fi, err := os.Stat(file); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Fatalf("the image's setuid file is not in the rootfs: %v %v", fi, err)
	}
	asUser := func(args ...string) error {
		return exec.Command("setpriv", append([]string{"--reuid=" + user, "--regid=" + user, "--clear-groups", "--"}, args...)...).Run()
	}
	if asUser("true") != nil {
		t.Skip("setpriv cannot switch to the test user")
	}
	if err := asUser("cat", file); err == nil {
		t.Errorf("user %s read %s through the state root", user, file)
	}
	if err := asUser("ls", filepath.Join(e.dir, "root")); err == nil {
		t.Errorf("user %s listed the state root", user)
	}
	stackJSON := filepath.Join(e.dir, "root", "stacks", "priv", "stack.json")
	if fi, err := os.Stat(stackJSON); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stack.json mode = %v (%v), want 0600", fi.Mode(), err)
	}

	// An existing root open to others is tightened on first use, once.
	root := filepath.Join(e.dir, "root")
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	r := e.must("stack", "list")
	if !strings.Contains(r.stderr, "made it private") {
		t.Errorf("no notice when tightening the root:\n%s", r.stderr)
	}
	if fi, _ := os.Stat(root); fi.Mode().Perm() != 0o700 {
		t.Errorf("root mode after first use = %v, want 0700", fi.Mode().Perm())
	}
	if r := e.must("stack", "list"); strings.Contains(r.stderr, "made it private") {
		t.Errorf("the notice repeats:\n%s", r.stderr)
	}
}

// sleeper is a stack whose one container, app, sleeps; image nil means busybox.
func sleeper(name string, image []byte) stackSrc {
	return stackSrc{name: name, image: image, compose: `containers:
  app:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "exec sleep 1000"]
`}
}

// TestForceKilledInSwapWindow: import --force killed with -9 after the
// running roots were swapped leaves state that says the stack is
// half-replaced (never "deployed" over the other bundle's roots), and any
// re-run converges to what stack.json then says.
func TestForceKilledInSwapWindow(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	v1 := keepStack(e, "1.0.0", "containers:\n"+keepApp+keepConfigs, nil)
	v2 := keepStack(e, "2.0.0", "containers:\n"+keepApp+keepConfigs, nil)
	defer e.run("stack", "destroy", "keep")
	e.must("bundle", "import", v1)
	root := e.rootfs("keep", "app")
	waitNspawn(t, root, 1)

	paused := &env{t: t, dir: e.dir, vars: append(append([]string(nil), e.vars...), "VOLT_TEST_PAUSE=swapped")}
	p := paused.start("bundle", "import", "--force", v2)
	waitFor(t, func() bool { return strings.Contains(p.stderr.String(), "test: paused at swapped") }, "import --force to reach the swap window")
	if _, err := os.Stat(root + ".old"); err != nil {
		t.Fatalf("no %s.old in the swap window: %v", root, err)
	}
	p.kill9(t)
	waitFor(t, func() bool { return len(pluginProcs()) == 0 }, "the killed import's plugins to end")
	if st := e.state("keep"); st == nil || st.Phase != "deploying" {
		t.Fatalf("state after a kill in the swap window: %+v, want phase deploying", st)
	}
	for _, r := range e.ps(true) {
		if r.Status == "running" {
			t.Errorf("ps reports %s running after a kill in the swap window", r.Service)
		}
	}

	// Re-importing the old bundle deploys it again (not "nothing to do"
	// over the new bundle's root), and what runs is what the state says.
	r := e.must("bundle", "import", v1)
	if strings.Contains(r.stderr, "nothing to do") || !strings.Contains(r.stderr, "interrupted import") {
		t.Errorf("re-import of v1 after the kill:\n%s", r.stderr)
	}
	if ss := e.stacks(); len(ss) != 1 || ss[0].Bundle.Version != "1.0.0" || ss[0].Phase != "deployed" {
		t.Errorf("stack list = %+v, want keep v1.0.0 deployed", ss)
	}
	waitNspawn(t, root, 1)
	if r := e.must("container", "exec", "keep/app", "--", "cat", "/etc/version"); strings.TrimSpace(r.stdout) != "v1.0.0" {
		t.Errorf("app runs %q, stack.json says v1.0.0", r.stdout)
	}
	if r := e.must("bundle", "import", v1); !strings.Contains(r.stderr, "nothing to do") {
		t.Errorf("a second re-import does not converge:\n%s", r.stderr)
	}
	if _, err := os.Stat(root + ".old"); err == nil {
		t.Errorf("%s.old left behind", root)
	}
}

// TestCorruptStackDestroyForce: a stack whose stack.json is corrupt is
// listed as corrupt, its running container is shown by ps, plain destroy
// refuses it, and destroy --force stops the container and removes it.
func TestCorruptStackDestroyForce(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	b := e.build(sleeper("rot", nil))
	defer e.run("stack", "destroy", "--force", "rot")
	e.must("bundle", "import", b)
	root := e.rootfs("rot", "app")
	waitNspawn(t, root, 1)
	if err := os.WriteFile(filepath.Join(e.dir, "root", "stacks", "rot", "stack.json"), []byte("{\"stateVersion\": 1, \"name\": \"rot\", \"work"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ss := e.stacks(); len(ss) != 1 || ss[0].Name != "rot" || ss[0].Phase != "corrupt" {
		t.Errorf("stack list with a corrupt stack.json = %+v, want rot corrupt", ss)
	}
	if rows := e.ps(false); len(rows) != 1 || rows[0].Stack != "rot" || rows[0].Status != "running" || !strings.Contains(rows[0].Reason, "destroy --force") {
		t.Errorf("ps with a corrupt stack.json = %+v, want rot's app running with a reason", rows)
	}
	if r := e.must("ps"); !strings.Contains(r.stderr, "volt stack destroy --force rot") {
		t.Errorf("ps does not say the stack is corrupt:\n%s", r.stderr)
	}
	if r := e.run("stack", "destroy", "rot"); r.code == 0 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("destroy of a corrupt stack without --force: exit %d\n%s", r.code, r.stderr)
	}
	waitNspawn(t, root, 1)
	e.must("stack", "destroy", "--force", "rot")
	waitNspawn(t, root, 0)
	for _, p := range []string{filepath.Dir(root), filepath.Join(e.dir, "root", "stacks", "rot")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("destroy --force left %s", p)
		}
	}
	if ss := e.stacks(); len(ss) != 0 {
		t.Errorf("stack list after destroy --force = %+v", ss)
	}
}

// TestCraftedStateStaysInRoot: a stack.json whose workload root points
// outside the state root cannot make destroy (plain or --force) remove
// anything there.
func TestCraftedStateStaysInRoot(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	b := e.build(sleeper("craft", nil))
	defer e.run("stack", "destroy", "--force", "craft")
	e.must("bundle", "import", b, "--no-start")
	victim := filepath.Join(e.dir, "victim")
	writeFiles(t, filepath.Join(victim, "rootfs"), map[string]string{"precious": "keep me\n"})
	writeFiles(t, victim, map[string]string{"also-precious": "keep me too\n"})
	file := filepath.Join(e.dir, "root", "stacks", "craft", "stack.json")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	spec := st["workloads"].([]any)[0].(map[string]any)["spec"].(map[string]any)
	if _, ok := spec["Root"]; !ok {
		t.Fatalf("stack.json spec has no Root field: %s", data)
	}
	spec["Root"] = filepath.Join(victim, "rootfs")
	crafted, _ := json.Marshal(st)
	if err := os.WriteFile(file, crafted, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run("stack", "destroy", "craft")
	if r.code == 0 {
		t.Errorf("destroy of a crafted stack succeeded:\n%s", r.stderr)
	}
	e.run("stack", "destroy", "--force", "craft")
	for _, p := range []string{filepath.Join(victim, "rootfs", "precious"), filepath.Join(victim, "also-precious")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("destroy of a crafted stack removed %s: %v", p, err)
		}
	}
}

// TestInterruptedLockWait: Ctrl-C while waiting for the state lock exits
// 130, and an interrupted stack's DEPLOYED column is not a date in year 1.
func TestInterruptedLockWait(t *testing.T) {
	e := newEnv(t)
	root := filepath.Join(e.dir, "root")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(root, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// Any file: the import waits for the lock before it reads it.
	writeFiles(t, e.dir, map[string]string{"waits.vbundle": "x"})
	p := e.start("bundle", "import", filepath.Join(e.dir, "waits.vbundle"))
	waitFor(t, func() bool { return strings.Contains(p.stderr.String(), "waiting for another volt process") }, "volt to wait for the lock")
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if r := p.wait(t); r.code != 130 {
		t.Errorf("Ctrl-C while waiting for the lock: exit %d, want 130\n%s", r.code, r.stderr)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)

	// A stack an import never finished: no deployment time to show.
	writeFiles(t, filepath.Join(root, "stacks", "half"), map[string]string{"stack.json": `{"stateVersion": 1, "name": "half", "phase": "deploying", "bundle": {"name": "half", "version": "1.0.0"}, "deployedAt": "0001-01-01T00:00:00Z", "workloads": []}`})
	r := e.must("stack", "list")
	if strings.Contains(r.stdout, "days ago") || !strings.Contains(r.stdout, "deploying") {
		t.Errorf("stack list of an interrupted stack:\n%s", r.stdout)
	}
}

// TestCASBundleCreated: a --cas bundle's created time follows the rule of
// embedded bundles (the newest input, its image included), not 1980.
func TestCASBundleCreated(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	writeFiles(t, src, map[string]string{"volt-compose.yaml": "version: \"1\"\nname: cs\ncontainers:\n  app:\n    image: images/bb.tar.gz\n"})
	if err := os.MkdirAll(filepath.Join(src, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "images", "bb.tar.gz"), sharedBusybox(t), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "volt-compose.yaml"), old, old); err != nil {
		t.Fatal(err)
	}
	img := old.Add(time.Hour)
	if err := os.Chtimes(filepath.Join(src, "images", "bb.tar.gz"), img, img); err != nil {
		t.Fatal(err)
	}
	for _, cas := range []bool{false, true} {
		out := filepath.Join(e.dir, fmt.Sprintf("cas-%v.vbundle", cas))
		args := []string{"bundle", "create", src, "-o", out}
		if cas {
			args = append(args, "--cas")
		}
		e.must(args...)
		var s struct{ Created string }
		if err := json.Unmarshal([]byte(e.must("bundle", "inspect", out, "-o", "json").stdout), &s); err != nil {
			t.Fatal(err)
		}
		if want := img.Format(time.RFC3339); s.Created != want {
			t.Errorf("--cas=%v: created %s, want %s (the image's mtime)", cas, s.Created, want)
		}
	}
}
