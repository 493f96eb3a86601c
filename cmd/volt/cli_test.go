package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// voltBin is the CLI binary under test: $VOLT_BIN, else one built by TestMain.
var voltBin string

func TestMain(m *testing.M) {
	voltBin = os.Getenv("VOLT_BIN")
	if voltBin == "" {
		dir, err := os.MkdirTemp("", "volt-cli-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		voltBin = filepath.Join(dir, "volt")
		out, err := exec.Command("go", "build", "-o", voltBin, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build volt: %v\n%s", err, out)
			os.Exit(1)
		}
		if os.Getenv("VOLT_PLUGIN_PATH") == "" {
			// The plugins the CLI needs, built beside it (found as the
			// executable's directory).
			for _, p := range []string{"format-oci", "format-qcow2", "format-ace", "runtime-nspawn", "runtime-qemu"} {
				if _, err := os.Stat(filepath.Join("..", "..", "plugins", p, "main.go")); err != nil {
					continue
				}
				out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "volt-plugin-"+p), "../../plugins/"+p).CombinedOutput()
				if err != nil {
					fmt.Fprintf(os.Stderr, "build plugin %s: %v\n%s", p, err, out)
					os.Exit(1)
				}
			}
			// The containers' init, found beside runtime-nspawn.
			build := exec.Command("go", "build", "-o", filepath.Join(dir, "volt-init"), "../volt-init")
			build.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build volt-init: %v\n%s", err, out)
				os.Exit(1)
			}
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// env is an isolated state root and config for one test.
type env struct {
	t    *testing.T
	dir  string
	vars []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	return &env{t: t, dir: dir, vars: []string{
		"VOLT_ROOT=" + filepath.Join(dir, "root"),
		"VOLT_CONFIG=" + filepath.Join(dir, "config.yaml"),
		"NO_COLOR=1",
	}}
}

type result struct {
	stdout, stderr string
	code           int
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runIn("", args...)
}

func (e *env) runIn(wd string, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(voltBin, args...)
	cmd.Dir = wd
	cmd.Env = append(os.Environ(), e.vars...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run volt %v: %v", args, err)
	}
	return result{so.String(), se.String(), code}
}

// must runs volt and fails the test unless it exits 0.
func (e *env) must(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("volt %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// writeStack makes a Constellation directory with one container whose image
// is a small rootfs tarball, a config overlay and a hook.
func writeStack(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"volt-compose.yaml": `version: "1"
name: demo
containers:
  web:
    image: images/web.tar.gz
    command: ["/bin/sh", "-c", "echo hi"]
    configs:
      - {source: app, target: /etc/app.conf, template: true}
configs:
  app:
    file: conf/app.conf
`,
		"conf/app.conf": "greeting = ${GREETING:-hello}\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct{ name, body string }{{"bin/", ""}, {"usr/", ""}, {"etc/motd", "welcome\n"}} {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(f.name, "/") {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.body))
	}
	tw.Close()
	gz.Close()
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "images/web.tar.gz"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHelpEverywhere(t *testing.T) {
	e := newEnv(t)
	var walk func(path []string, c *command)
	walk = func(path []string, c *command) {
		if c.hidden {
			return
		}
		args := append(append([]string(nil), path[1:]...), "--help")
		r := e.run(args...)
		if r.code != 0 {
			t.Errorf("volt %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("volt %s: no Usage section", strings.Join(args, " "))
		}
		if len(c.subs) == 0 && !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("volt %s: no Examples section", strings.Join(args, " "))
		}
		for _, s := range c.subs {
			walk(append(path, s.name), s)
		}
	}
	walk([]string{"volt"}, rootCommand())
}

func TestUsageErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bundel"}, `did you mean "bundle"`},
		{[]string{"bundle", "inspect"}, "want BUNDLE"},
		{[]string{"bundle", "verify", "--no-such-flag", "x"}, "unknown flag"},
		{[]string{"version", "-o", "xml"}, "unknown output format"},
		{[]string{"config", "set", "bundle.trusted_key", "x"}, `did you mean "bundle.trusted_keys"`},
		{[]string{"key", "generate"}, "needs -o FILE"},
	} {
		r := e.run(tc.args...)
		if r.code != exitUsage {
			t.Errorf("volt %v: exit %d, want %d", tc.args, r.code, exitUsage)
		}
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("volt %v: stderr %q does not contain %q", tc.args, r.stderr, tc.want)
		}
		if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
			t.Errorf("volt %v: stack trace on stderr", tc.args)
		}
	}
}

func TestCreateInspectVerify(t *testing.T) {
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeStack(t, stack)
	out := filepath.Join(e.dir, "demo.vbundle")
	e.must("bundle", "create", stack, "-o", out)

	r := e.must("bundle", "inspect", out)
	for _, want := range []string{"Bundle: demo v", "Signed: No", "NAME", "web", "container", "1 (amd64)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, r.stdout)
		}
	}
	var js struct {
		Name     string `json:"name"`
		Services []struct {
			Name        string `json:"name"`
			ConfigFiles int    `json:"configFiles"`
		} `json:"services"`
	}
	r = e.must("bundle", "inspect", out, "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil {
		t.Fatalf("inspect -o json: %v\n%s", err, r.stdout)
	}
	if js.Name != "demo" || len(js.Services) != 1 || js.Services[0].ConfigFiles != 1 {
		t.Errorf("inspect -o json = %+v", js)
	}

	r = e.must("bundle", "verify", out)
	if !strings.Contains(r.stdout, "Bundle verification: PASSED") {
		t.Errorf("verify output:\n%s", r.stdout)
	}

	// Reproducible: a second create of the same inputs is byte-identical.
	out2 := filepath.Join(e.dir, "demo2.vbundle")
	e.must("bundle", "create", stack, "-o", out2)
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if !bytes.Equal(a, b) {
		t.Errorf("two creates of the same inputs differ (%d vs %d bytes)", len(a), len(b))
	}

	// Without -o the bundle lands in the local cache and shows in list.
	e.must("bundle", "create", stack)
	r = e.must("bundle", "list")
	if !strings.Contains(r.stdout, "demo") || !strings.Contains(r.stdout, "SIGNED") {
		t.Errorf("bundle list:\n%s", r.stdout)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeStack(t, stack)
	before, _ := os.ReadDir(stack)
	r := e.must("bundle", "create", stack, "--dry-run")
	if !strings.Contains(r.stdout, "images/web/linux-amd64.tar.gz") {
		t.Errorf("dry run does not list the image entry:\n%s", r.stdout)
	}
	after, _ := os.ReadDir(stack)
	if len(before) != len(after) {
		t.Errorf("dry run wrote into the stack dir")
	}
	if _, err := os.Stat(filepath.Join(e.dir, "root", "bundles")); err == nil {
		t.Errorf("dry run created the bundle cache")
	}
	r = e.must("bundle", "create", stack, "--dry-run", "-o", "json")
	var js map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil || js["plan"] == nil {
		t.Errorf("dry run -o json: %v\n%s", err, r.stdout)
	}
}

func TestSignAndTrust(t *testing.T) {
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeStack(t, stack)
	key := filepath.Join(e.dir, "signing-key")
	e.must("key", "generate", "-o", key, "--comment", "ops@example.com")
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(e.dir, "signed.vbundle")
	e.must("bundle", "create", stack, "--sign-key", key, "-o", out)
	if r := e.must("bundle", "inspect", out); !strings.Contains(r.stdout, "Signed: Yes (ed25519") {
		t.Errorf("inspect of a signed bundle:\n%s", r.stdout)
	}

	// Signed by a key nobody trusts: verification fails with exit 3 and a hint.
	r := e.run("bundle", "verify", out)
	if r.code != exitVerify || !strings.Contains(r.stdout, "FAILED") || !strings.Contains(r.stderr, "bundle.trusted_keys") {
		t.Errorf("untrusted verify: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	e.must("config", "set", "bundle.trusted_keys", "+=", strings.TrimSpace(string(pub)))
	r = e.must("bundle", "verify", out)
	if !strings.Contains(r.stdout, "ops@example.com") || !strings.Contains(r.stdout, "PASSED") {
		t.Errorf("trusted verify:\n%s", r.stdout)
	}

	// ssh-keygen verifies Volt's signature without Volt.
	if _, err := exec.LookPath("ssh-keygen"); err == nil {
		manifest, sig := unzipEntry(t, out, "bundle.json"), unzipEntry(t, out, "signatures/bundle.sig")
		allowed := filepath.Join(e.dir, "allowed_signers")
		f := strings.Fields(string(pub))
		os.WriteFile(allowed, []byte("ops@example.com "+f[0]+" "+f[1]+"\n"), 0o644)
		sigPath := filepath.Join(e.dir, "m.sig")
		os.WriteFile(sigPath, sig, 0o644)
		cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "ops@example.com", "-n", "volt-bundle", "-s", sigPath)
		cmd.Stdin = bytes.NewReader(manifest)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("ssh-keygen -Y verify: %v\n%s", err, out)
		}
	}

	// Unsigned bundle with --require-signature fails; sign adds a signature.
	plain := filepath.Join(e.dir, "plain.vbundle")
	e.must("bundle", "create", stack, "-o", plain)
	if r := e.run("bundle", "verify", "--require-signature", plain); r.code != exitVerify {
		t.Errorf("unsigned + --require-signature: exit %d", r.code)
	}
	e.must("bundle", "sign", plain, "--sign-key", key)
	e.must("bundle", "verify", "--require-signature", plain)
}

func TestVerifyDetectsTampering(t *testing.T) {
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeStack(t, stack)
	out := filepath.Join(e.dir, "demo.vbundle")
	e.must("bundle", "create", stack, "-o", out)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Flip one byte inside the stored image payload (gzip data, stored as is).
	i := bytes.Index(data, []byte{0x1f, 0x8b, 0x08})
	if i < 0 {
		t.Fatal("no gzip payload found in bundle")
	}
	data[i+40] ^= 0xff
	bad := filepath.Join(e.dir, "bad.vbundle")
	os.WriteFile(bad, data, 0o644)
	r := e.run("bundle", "verify", bad)
	if r.code != exitVerify || !strings.Contains(r.stdout, "FAILED") {
		t.Errorf("tampered bundle: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A file that is not a bundle at all.
	junk := filepath.Join(e.dir, "junk.vbundle")
	os.WriteFile(junk, []byte("not a zip"), 0o644)
	if r := e.run("bundle", "verify", junk); r.code != exitVerify {
		t.Errorf("junk: exit %d: %s", r.code, r.stderr)
	}
	if r := e.run("bundle", "inspect", junk); r.code == 0 || strings.Contains(r.stderr, "panic") {
		t.Errorf("inspect junk: exit %d: %s", r.code, r.stderr)
	}
}

func TestCreateRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeStack(t, stack)
	os.Remove(filepath.Join(stack, "images/web.tar.gz"))
	out := filepath.Join(e.dir, "x.vbundle")
	r := e.run("bundle", "create", stack, "-o", out)
	if r.code != exitUsage || !strings.Contains(r.stderr, "images/web.tar.gz") {
		t.Errorf("missing image: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a failed create left %s behind", out)
	}
	// An RSA key is not a signing key.
	if _, err := exec.LookPath("ssh-keygen"); err == nil {
		writeStack(t, stack)
		rsa := filepath.Join(e.dir, "rsa")
		if b, err := exec.Command("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", rsa).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, b)
		}
		r := e.run("bundle", "create", stack, "--sign-key", rsa, "-o", out)
		if r.code == 0 || !strings.Contains(r.stderr, "ed25519") {
			t.Errorf("rsa key: exit %d: %s", r.code, r.stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("a failed signed create left %s behind", out)
		}
	}
}

func unzipEntry(t *testing.T, zipPath, name string) []byte {
	t.Helper()
	out, err := exec.Command("unzip", "-p", zipPath, name).Output()
	if err != nil {
		t.Fatalf("unzip -p %s %s: %v", zipPath, name, err)
	}
	return out
}
