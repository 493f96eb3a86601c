package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	oras "oras.land/oras-go/v2"
	orasreg "oras.land/oras-go/v2/registry"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/registry/server"
)

// pushPlainArtifact pushes a small artifact that is not a Volt bundle and
// returns its reference.
func pushPlainArtifact(t testing.TB, host, repoTag string) string {
	t.Helper()
	ctx := context.Background()
	r, err := orasreg.ParseReference(host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := optsFor(t, host, "").repository(r)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := oras.PushBytes(ctx, repo, "text/plain", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example.thing", oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(ctx, desc, r.Reference); err != nil {
		t.Fatal(err)
	}
	return r.String()
}

var (
	orasOnce sync.Once
	orasPath string
	orasErr  error
)

// orasBin returns the oras CLI: $ORAS, on PATH, or built once from the module
// proxy into a cache directory (GOBIN=DIR go install oras.land/oras/cmd/oras@v1.3.6).
func orasBin(t *testing.T) string {
	orasOnce.Do(func() {
		if p := os.Getenv("ORAS"); p != "" {
			orasPath = p
			return
		}
		if p, err := exec.LookPath("oras"); err == nil {
			orasPath = p
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "volt-test", "oras-v1.3.6")
		if p := filepath.Join(dir, "oras"); fileExists(p) {
			orasPath = p
			return
		}
		cmd := exec.Command("go", "install", "oras.land/oras/cmd/oras@v1.3.6")
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
		cmd.Dir = os.TempDir()
		if out, err := cmd.CombinedOutput(); err != nil {
			orasErr = &buildError{out: string(out), err: err}
			return
		}
		orasPath = filepath.Join(dir, "oras")
	})
	if orasErr != nil {
		t.Skipf("cannot build the oras CLI (go install oras.land/oras/cmd/oras@v1.3.6): %v", orasErr)
	}
	return orasPath
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestOrasPullsVoltPush: `oras pull` of what Volt pushed yields every entry
// as a file with the entry's content.
func TestOrasPullsVoltPush(t *testing.T) {
	oras := orasBin(t)
	dir := t.TempDir()
	imgs := defaultImages(t)
	src := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: imgs})
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ref := tg.host + "/interop/stack:1.0.0"
			if _, err := Push(context.Background(), src, ref, PushOptions{Options: tg.opts}); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			args := []string{"pull", "--plain-http", "-o", out, ref}
			if tg.name == "serve" {
				args = append(args, "-u", "token", "-p", passwordOf(t, tg))
			}
			run(t, out, oras, args...)
			for name, data := range imgs {
				got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(name)))
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("oras pull: %s differs or missing (%v)", name, err)
				}
			}
			if got, _ := os.ReadFile(filepath.Join(out, "hooks/pre-deploy.sh")); !bytes.Contains(got, []byte("pre-deploy")) {
				t.Errorf("oras pull: hook content %q", got)
			}
		})
	}
}

func passwordOf(t *testing.T, tg target) string {
	c, err := tg.opts.Credentials.Get(context.Background(), tg.host)
	if err != nil {
		t.Fatal(err)
	}
	return c.Password
}

// TestVoltPullsOrasPush: what `oras push` writes with Volt's layout (config
// bundle.json, one titled layer per entry, compress annotations) Volt pulls
// back into the same bytes, signature intact; without a skeleton it is
// rebuilt with bundle.Write.
func TestVoltPullsOrasPush(t *testing.T) {
	oras := orasBin(t)
	dir := t.TempDir()
	imgs := defaultImages(t)
	src := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: imgs})
	want, _ := os.ReadFile(src)
	br, err := bundle.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	// Lay the entries out as files, as a user scripting oras would.
	files := filepath.Join(dir, "files")
	ks := kinds(br.Manifest())
	annotations := map[string]map[string]string{"$manifest": {AnnotationCreated: br.Manifest().Created}}
	args := []string{"push", "--plain-http", "--artifact-type", MediaTypeArtifact, "--config", "bundle.json:" + MediaTypeManifest, "--annotation-file", "ann.json"}
	os.MkdirAll(files, 0o755)
	os.WriteFile(filepath.Join(files, "bundle.json"), br.ManifestBytes(), 0o644)
	for _, e := range br.Entries() {
		if e.Name == bundle.ManifestName {
			continue
		}
		rc, err := br.OpenEntry(e.Name)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(rc)
		rc.Close()
		p := filepath.Join(files, filepath.FromSlash(e.Name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, buf.Bytes(), 0o644)
		args = append(args, e.Name+":"+kindOf(ks, e.Name).mediaType)
		if !e.Stored {
			annotations[e.Name] = map[string]string{AnnotationCompress: "deflate"}
		}
	}
	ann, _ := json.Marshal(annotations)
	os.WriteFile(filepath.Join(files, "ann.json"), ann, 0o644)
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ref := tg.host + "/byoras/stack:1.0.0"
			a := append([]string(nil), args...)
			if tg.name == "serve" {
				a = append(a, "-u", "token", "-p", passwordOf(t, tg))
			}
			a = append(a, ref)
			// oras wants args as: push [flags] ref files...; move ref before files.
			flags, rest := splitPushArgs(a)
			run(t, files, oras, append(flags, rest...)...)
			out := filepath.Join(t.TempDir(), "b.vbundle")
			res, err := Pull(context.Background(), ref, PullOptions{Options: tg.opts, Output: out})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, want) {
				t.Errorf("rebuilt bundle differs from the original (%d vs %d bytes)", len(got), len(want))
			}
			if res.Identical {
				t.Error("Identical set for a rebuilt bundle")
			}
			verifySigned(t, out)
		})
	}
}

// splitPushArgs reorders oras push arguments to: push, flags, ref, files.
func splitPushArgs(a []string) ([]string, []string) {
	ref := a[len(a)-1]
	var flags, files []string
	for i := 0; i < len(a)-1; i++ {
		s := a[i]
		switch {
		case s == "push":
			flags = append(flags, s)
		case strings.HasPrefix(s, "-"):
			flags = append(flags, s)
			if s != "--plain-http" && i+1 < len(a)-1 {
				flags = append(flags, a[i+1])
				i++
			}
		default:
			files = append(files, s)
		}
	}
	return flags, append([]string{ref}, files...)
}

// TestSkopeoCopiesBetweenRegistries: skopeo copies a Volt artifact from
// docker-registry to `volt registry serve` (and back), and the copy pulls
// into the same bytes.
func TestSkopeoCopiesBetweenRegistries(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo not installed (apt-get install skopeo)")
	}
	dir := t.TempDir()
	src := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: defaultImages(t)})
	want, _ := os.ReadFile(src)
	dr := startDockerRegistry(t)
	vs := startServe(t, false)
	tok := vs.token(t, time.Hour, server.Access{Repo: "*", Actions: all})
	if _, err := Push(context.Background(), src, dr+"/sk/stack:1.0.0", PushOptions{Options: optsFor(t, dr, "")}); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.json")
	os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644)
	run(t, dir, skopeo, "--policy", policy, "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--dest-creds", "token:"+tok, "docker://"+dr+"/sk/stack:1.0.0", "docker://"+vs.host+"/sk/stack:1.0.0")
	run(t, dir, skopeo, "--policy", policy, "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--src-creds", "token:"+tok, "docker://"+vs.host+"/sk/stack:1.0.0", "docker://"+dr+"/sk/copy:1.0.0")
	for _, c := range []struct{ host, ref, tok string }{{vs.host, vs.host + "/sk/stack:1.0.0", tok}, {dr, dr + "/sk/copy:1.0.0", ""}} {
		out := filepath.Join(t.TempDir(), "c.vbundle")
		if _, err := Pull(context.Background(), c.ref, PullOptions{Options: optsFor(t, c.host, c.tok), Output: out}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
			t.Errorf("%s: copied bundle differs", c.ref)
		}
	}
}
