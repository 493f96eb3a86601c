package registry

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/cas"
	"github.com/volt-cli/volt/engine/registry/server"
	"github.com/volt-cli/volt/engine/sign"
)

// testSigner is one signing key for the whole test binary.
var testSigner = func() *sign.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	s, err := sign.NewSigner(priv, "test@volt")
	if err != nil {
		panic(err)
	}
	return s
}()

// bundleSpec describes a test bundle: image contents by entry name.
type bundleSpec struct {
	name, version string
	images        map[string][]byte // entry name -> content
}

// randBytes returns n pseudo-random bytes.
func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// defaultImages returns images for web (container, 2 platforms) and db (vm,
// 2 platforms, amd64 has a kernel).
func defaultImages(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"images/web/linux-amd64.tar":    randBytes(t, 300<<10),
		"images/web/linux-arm64.tar":    randBytes(t, 200<<10),
		"images/db/linux-amd64.qcow2":   randBytes(t, 150<<10),
		"images/db/linux-arm64.qcow2":   randBytes(t, 100<<10),
		"images/db/linux-amd64.vmlinuz": randBytes(t, 20<<10),
	}
}

// writeBundle writes a signed bundle from spec into dir and returns its path.
func writeBundle(t testing.TB, dir string, spec bundleSpec) string {
	t.Helper()
	src := filepath.Join(dir, "src-"+spec.version)
	var entries []bundle.Entry
	for name, data := range spec.images {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, bundle.Entry{Name: name, Path: p})
	}
	entries = append(entries,
		bundle.Entry{Name: "compose.yaml", Data: []byte("version: \"1\"\nname: " + spec.name + "\ncontainers:\n  web: {image: images/web}\nvms:\n  db: {image: images/db}\n"), Compress: true},
		bundle.Entry{Name: "config/web/nginx.conf", Data: []byte(strings.Repeat("server { listen 80; }\n", 50)), Compress: true},
		bundle.Entry{Name: "hooks/pre-deploy.sh", Data: []byte("#!/bin/sh\necho pre-deploy\n"), Compress: true},
	)
	p := func(s string) *string { return &s }
	m := &bundle.Manifest{
		Name: spec.name, BundleVersion: spec.version,
		Platforms: []bundle.Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}},
		Compose:   "compose.yaml",
		Services: map[string]*bundle.Service{
			"web": {Type: bundle.TypeContainer, Images: map[string]*bundle.Image{
				"linux/amd64": {Path: p("images/web/linux-amd64.tar"), Format: bundle.FormatOCI},
				"linux/arm64": {Path: p("images/web/linux-arm64.tar"), Format: bundle.FormatOCI},
			}, Config: []bundle.ConfigFile{{Path: "config/web/nginx.conf", Target: "/etc/nginx/nginx.conf"}}},
			"db": {Type: bundle.TypeVM, Images: map[string]*bundle.Image{
				"linux/amd64": {Path: p("images/db/linux-amd64.qcow2"), Format: bundle.FormatQCOW2},
				"linux/arm64": {Path: p("images/db/linux-arm64.qcow2"), Format: bundle.FormatQCOW2},
			}, Boot: map[string]*bundle.Boot{"linux/amd64": {Kernel: "images/db/linux-amd64.vmlinuz", Cmdline: "console=ttyS0"}}},
		},
		Hooks: map[string]string{"pre-deploy": "hooks/pre-deploy.sh"},
	}
	out := filepath.Join(dir, spec.name+"-"+spec.version+".vbundle")
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := bundle.Write(context.Background(), out, m, entries, bundle.WriteOptions{Created: created, Sign: testSigner.Sign}); err != nil {
		t.Fatal(err)
	}
	return out
}

// verifySigned checks path opens, verifies and carries a trusted signature.
func verifySigned(t testing.TB, path string) {
	t.Helper()
	br, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	rep, err := br.Verify(context.Background(), bundle.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("verify %s: %v %+v", path, err, rep.Failures())
	}
	sig, err := br.Signature()
	if err != nil || sig == nil {
		t.Fatalf("signature of %s: %v (present: %v)", path, err, sig != nil)
	}
	checkSig(t, br.ManifestBytes(), sig)
}

func checkSig(t testing.TB, data, sig []byte) {
	t.Helper()
	ts, err := sign.ParseAllowedSigners(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.AddKeyLine(testSigner.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Verify(data, sig); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
}

// freePort returns a loopback port nobody listens on (for a moment).
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startDockerRegistry runs Debian's docker-registry on loopback and returns
// its host:port.
func startDockerRegistry(t testing.TB) string {
	t.Helper()
	host, _ := startDockerRegistryDir(t)
	return host
}

// startDockerRegistryDir is startDockerRegistry, also returning the
// registry's storage directory.
func startDockerRegistryDir(t testing.TB) (string, string) {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry not installed (apt-get install docker-registry)")
	}
	dir := t.TempDir()
	var host string
	for attempt := 0; attempt < 3; attempt++ {
		host = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), host)
		cfgPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", cfgPath)
		cmd.Stdout, cmd.Stderr = nil, nil
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		for i := 0; i < 200; i++ {
			resp, err := http.Get("http://" + host + "/v2/")
			if err == nil {
				resp.Body.Close()
				return host, filepath.Join(dir, "data")
			}
			time.Sleep(10 * time.Millisecond)
		}
		cmd.Process.Kill()
	}
	t.Fatalf("docker-registry did not start")
	return "", ""
}

// voltServer is a running `volt registry serve`.
type voltServer struct {
	*server.Server
	host string
	cas  *cas.Store
	root string
	url  string
}

// startServe runs the Volt registry in-process on loopback.
func startServe(t testing.TB, anonymousPull bool) *voltServer {
	t.Helper()
	dir := t.TempDir()
	cs, err := cas.Open(filepath.Join(dir, "cas"))
	if err != nil {
		t.Fatal(err)
	}
	cs.Sync = cas.SyncNone
	srv, err := server.New(context.Background(), server.Config{Root: filepath.Join(dir, "registry"), CAS: cs, AnonymousPull: anonymousPull})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return &voltServer{Server: srv, host: strings.TrimPrefix(hs.URL, "http://"), cas: cs, root: filepath.Join(dir, "registry"), url: hs.URL}
}

// token mints a token for access, valid for ttl.
func (v *voltServer) token(t testing.TB, ttl time.Duration, access ...server.Access) string {
	t.Helper()
	tok, err := v.Mint("test", access, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// optsFor returns client options for host with the given token (or none).
func optsFor(t testing.TB, host, token string) Options {
	t.Helper()
	st := credentials.NewMemoryStore()
	if token != "" {
		if err := st.Put(context.Background(), host, auth.Credential{Username: "token", Password: token}); err != nil {
			t.Fatal(err)
		}
	}
	return Options{PlainHTTP: true, Credentials: st, Concurrency: 3}
}

var all = []string{server.ActionPull, server.ActionPush, server.ActionDelete}
