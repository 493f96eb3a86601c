package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startRegistry runs Debian's docker-registry (CNCF distribution) on loopback.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), host)
	os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644)
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 500; i++ {
		if resp, err := http.Get("http://" + host + "/v2/"); err == nil {
			resp.Body.Close()
			return host
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("docker-registry did not start")
	return ""
}

// TestRegistryPushPullImport pushes a signed bundle to a real registry, pulls
// it back byte-identical (its signature still verifies), and imports it
// straight from the registry with oci://.
func TestRegistryPushPullImport(t *testing.T) {
	host := startRegistry(t)
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeStack(t, stack)
	key := filepath.Join(e.dir, "key")
	e.must("key", "generate", "-o", key, "--comment", "ci@example.com")
	pub, _ := os.ReadFile(key + ".pub")
	b := filepath.Join(e.dir, "demo.vbundle")
	e.must("bundle", "create", stack, "--sign-key", key, "-o", b)
	ref := host + "/team/demo"
	e.must("bundle", "push", b, ref, "--tag", "v1", "--tag", "latest", "--plain-http")

	pulled := filepath.Join(e.dir, "pulled.vbundle")
	e.must("bundle", "pull", ref+":v1", "-o", pulled, "--plain-http")
	a, _ := os.ReadFile(b)
	c, _ := os.ReadFile(pulled)
	if !bytes.Equal(a, c) {
		t.Fatalf("pulled bundle differs from the pushed one (%d vs %d bytes)", len(c), len(a))
	}
	e.must("bundle", "verify", "--require-signature", "--trusted-key", strings.TrimSpace(string(pub)), pulled)

	if !needsRootTools() {
		return
	}
	e.must("config", "set", "registry.insecure", "+=", host)
	defer e.run("stack", "destroy", "demo")
	r := e.must("bundle", "import", "--no-start", "oci://"+ref+":latest")
	if !strings.Contains(r.stderr, "Deployed stack demo") {
		t.Errorf("import from oci://: %s", r.stderr)
	}
	if r := e.run("bundle", "import", "oci://"+host+"/team/missing:v9"); r.code == 0 || !strings.Contains(r.stderr, "missing") {
		t.Errorf("import of a missing tag: exit %d: %s", r.code, r.stderr)
	}
}

// needsRootTools reports whether deploy tests can run here.
func needsRootTools() bool {
	_, err := exec.LookPath("systemd-nspawn")
	return os.Geteuid() == 0 && err == nil
}
