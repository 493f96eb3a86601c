package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/registry/server"
)

// target is a registry under test with client options that may push.
type target struct {
	name string
	host string
	opts Options
}

func targets(t *testing.T) []target {
	dr := startDockerRegistry(t)
	vs := startServe(t, false)
	return []target{
		{"docker-registry", dr, optsFor(t, dr, "")},
		{"serve", vs.host, optsFor(t, vs.host, vs.token(t, time.Hour, server.Access{Repo: "*", Actions: all}))},
	}
}

func TestPushPullRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: defaultImages(t)})
	want, _ := os.ReadFile(src)
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ref := tg.host + "/team/stack"
			res, err := Push(ctx, src, ref, PushOptions{Options: tg.opts, Tags: []string{"1.0.0", "latest"}})
			if err != nil {
				t.Fatal(err)
			}
			if res.BlobsSent != res.Blobs || res.BytesSent != res.Bytes {
				t.Errorf("first push sent %d/%d blobs, %d/%d bytes", res.BlobsSent, res.Blobs, res.BytesSent, res.Bytes)
			}
			if len(res.Tags) != 2 || !strings.HasPrefix(res.Digest, "sha256:") {
				t.Errorf("result %+v", res)
			}
			for _, tag := range []string{"1.0.0", "latest"} {
				out := filepath.Join(t.TempDir(), "pulled.vbundle")
				pr, err := Pull(ctx, ref+":"+tag, PullOptions{Options: tg.opts, Output: out})
				if err != nil {
					t.Fatal(err)
				}
				got, _ := os.ReadFile(out)
				if !bytes.Equal(got, want) {
					t.Fatalf("tag %s: pulled bundle differs from pushed (%d vs %d bytes)", tag, len(got), len(want))
				}
				if !pr.Identical || !pr.Signed || pr.Partial || pr.Name != "stack" || pr.Version != "1.0.0" {
					t.Errorf("pull result %+v", pr)
				}
				verifySigned(t, out)
			}
			// Into a bundles directory as NAME-VERSION.vbundle.
			bdir := t.TempDir()
			pr, err := Pull(ctx, ref+":latest", PullOptions{Options: tg.opts, Dir: bdir})
			if err != nil {
				t.Fatal(err)
			}
			if pr.Path != filepath.Join(bdir, "stack-1.0.0.vbundle") {
				t.Errorf("pulled to %s", pr.Path)
			}
			// PullToTemp for `volt bundle import oci://…`.
			p, cleanup, err := PullToTemp(ctx, "oci://"+ref+":1.0.0", PullOptions{Options: tg.opts})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
				t.Error("PullToTemp: bundle differs")
			}
			cleanup()
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("cleanup left %s", p)
			}
		})
	}
}

func TestDedupOnRepush(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	imgs := defaultImages(t)
	v1 := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: imgs})
	imgs2 := map[string][]byte{}
	for k, v := range imgs {
		imgs2[k] = v
	}
	changed := "images/web/linux-amd64.tar"
	imgs2[changed] = randBytes(t, 310<<10)
	v2 := writeBundle(t, dir, bundleSpec{name: "stack", version: "2.0.0", images: imgs2})
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ref := tg.host + "/dedup/stack"
			first, err := Push(ctx, v1, ref, PushOptions{Options: tg.opts, Tags: []string{"1.0.0"}})
			if err != nil {
				t.Fatal(err)
			}
			again, err := Push(ctx, v1, ref, PushOptions{Options: tg.opts, Tags: []string{"1.0.0"}})
			if err != nil {
				t.Fatal(err)
			}
			if again.BytesSent != 0 || again.ImageBytesSent != 0 || again.BlobsSent != 0 {
				t.Errorf("unchanged re-push sent %d bytes (%d image bytes, %d blobs)", again.BytesSent, again.ImageBytesSent, again.BlobsSent)
			}
			second, err := Push(ctx, v2, ref, PushOptions{Options: tg.opts, Tags: []string{"2.0.0"}})
			if err != nil {
				t.Fatal(err)
			}
			if second.ImageBytesSent != int64(len(imgs2[changed])) {
				t.Errorf("new version sent %d image bytes, want only the changed image's %d (first push sent %d)", second.ImageBytesSent, len(imgs2[changed]), first.ImageBytesSent)
			}
			// Sent besides the image: bundle.json, skeleton (both small).
			if other := second.BytesSent - second.ImageBytesSent; other > 64<<10 {
				t.Errorf("new version sent %d non-image bytes", other)
			}
			out := filepath.Join(t.TempDir(), "v2.vbundle")
			if _, err := Pull(ctx, ref+":2.0.0", PullOptions{Options: tg.opts, Output: out}); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(out)
			b, _ := os.ReadFile(v2)
			if !bytes.Equal(a, b) {
				t.Error("v2 pulled differs")
			}
		})
	}
}

func TestPlatformPull(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	imgs := defaultImages(t)
	src := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: imgs})
	tg := targets(t)[0]
	ref := tg.host + "/plat/stack:1.0.0"
	if _, err := Push(ctx, src, ref, PushOptions{Options: tg.opts}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		platform string
		want     []string // image/boot entries kept
		err      error
	}{
		{"linux/arm64", []string{"images/db/linux-arm64.qcow2", "images/web/linux-arm64.tar"}, nil},
		{"linux/amd64", []string{"images/db/linux-amd64.qcow2", "images/db/linux-amd64.vmlinuz", "images/web/linux-amd64.tar"}, nil},
		{"android/arm64-v8a", nil, ErrPlatform},
		{"beos/m68k", nil, ErrPlatform},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.platform, "/", "-"), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "p.vbundle")
			var received int64
			res, err := Pull(ctx, ref, PullOptions{Options: tg.opts, Output: out, Platform: c.platform})
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
				if _, serr := os.Stat(out); !os.IsNotExist(serr) {
					t.Error("failed pull left a file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			received = res.BytesReceived
			var wantBytes int64
			for _, e := range c.want {
				wantBytes += int64(len(imgs[e]))
			}
			if received < wantBytes || received > wantBytes+64<<10 {
				t.Errorf("received %d bytes; the platform's images are %d", received, wantBytes)
			}
			br, err := bundle.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer br.Close()
			m := br.Manifest()
			if !m.Partial || !res.Partial || len(m.Platforms) != 1 || m.Platforms[0].String() != c.platform {
				t.Errorf("manifest partial=%v platforms=%v", m.Partial, m.Platforms)
			}
			var imgEntries []string
			for _, e := range br.Entries() {
				if strings.HasPrefix(e.Name, "images/") {
					imgEntries = append(imgEntries, e.Name)
				}
			}
			if fmt.Sprint(imgEntries) != fmt.Sprint(c.want) {
				t.Errorf("image entries %v, want %v", imgEntries, c.want)
			}
			rep, err := br.Verify(ctx, bundle.VerifyOptions{})
			if err != nil || !rep.OK() {
				t.Fatalf("partial bundle does not verify: %v", err)
			}
			// The original signed bundle.json travels along and still verifies,
			// and every kept entry matches it.
			if err := CheckOrigin(br, func(data, sig []byte) error { checkSig(t, data, sig); return nil }); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPullInterruptedLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	src := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: defaultImages(t)})
	tg := targets(t)[0]
	ref := tg.host + "/intr/stack:1.0.0"
	if _, err := Push(context.Background(), src, ref, PushOptions{Options: tg.opts}); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	// A leftover of a killed pull (pid that cannot exist) is cleaned up.
	stale := filepath.Join(outDir, tempPrefix+"999999999-abc")
	os.WriteFile(stale, []byte("partial"), 0o644)
	for _, platform := range []string{"", "linux/amd64"} {
		ctx, cancel := context.WithCancel(context.Background())
		o := tg.opts
		o.Progress = func(p Progress) {
			if p.Phase == "download" && p.Done > 100<<10 {
				cancel()
			}
		}
		out := filepath.Join(outDir, "x.vbundle")
		_, err := Pull(ctx, ref, PullOptions{Options: o, Output: out, Platform: platform})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("platform %q: err = %v, want canceled", platform, err)
		}
		ents, _ := os.ReadDir(outDir)
		for _, e := range ents {
			t.Errorf("platform %q: interrupted pull left %s", platform, e.Name())
		}
	}
	// And the next pull succeeds.
	if _, err := Pull(context.Background(), ref, PullOptions{Options: tg.opts, Output: filepath.Join(outDir, "x.vbundle")}); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsSayWhich(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: map[string][]byte{
		"images/web/linux-amd64.tar": []byte("a"), "images/web/linux-arm64.tar": []byte("b"),
		"images/db/linux-amd64.qcow2": []byte("c"), "images/db/linux-arm64.qcow2": []byte("d"), "images/db/linux-amd64.vmlinuz": []byte("e"),
	}})
	dr := startDockerRegistry(t)
	vs := startServe(t, false)
	down := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	pullTok := vs.token(t, time.Hour, server.Access{Repo: "*", Actions: []string{server.ActionPull}})
	if _, err := Push(ctx, src, dr+"/err/stack:1", PushOptions{Options: optsFor(t, dr, "")}); err != nil {
		t.Fatal(err)
	}
	notBundle := pushPlainArtifact(t, dr, "err/image:1")
	cases := []struct {
		name string
		run  func() error
		want error
		text string
	}{
		{"down", func() error {
			_, err := Pull(ctx, down+"/x/y:1", PullOptions{Options: optsFor(t, down, ""), Output: filepath.Join(dir, "o")})
			return err
		}, ErrUnreachable, "unreachable"},
		{"401 push without token", func() error {
			_, err := Push(ctx, src, vs.host+"/x/y:1", PushOptions{Options: optsFor(t, vs.host, "")})
			return err
		}, ErrUnauthorized, "401"},
		{"403 push with pull token", func() error {
			_, err := Push(ctx, src, vs.host+"/x/y:1", PushOptions{Options: optsFor(t, vs.host, pullTok)})
			return err
		}, ErrDenied, "403"},
		{"404 tag", func() error {
			_, err := Pull(ctx, dr+"/err/stack:nope", PullOptions{Options: optsFor(t, dr, ""), Output: filepath.Join(dir, "o")})
			return err
		}, ErrNotFound, "404"},
		{"404 repo on serve", func() error {
			_, err := Pull(ctx, vs.host+"/no/such:1", PullOptions{Options: optsFor(t, vs.host, pullTok), Output: filepath.Join(dir, "o")})
			return err
		}, ErrNotFound, "404"},
		{"not a bundle", func() error {
			_, err := Pull(ctx, notBundle, PullOptions{Options: optsFor(t, dr, ""), Output: filepath.Join(dir, "o")})
			return err
		}, ErrNotBundle, "not a Volt bundle"},
		{"no registry in reference", func() error {
			_, err := Pull(ctx, "stack:1", PullOptions{Options: optsFor(t, dr, ""), Output: filepath.Join(dir, "o")})
			return err
		}, ErrReference, "name a registry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.run()
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, "\n") || !strings.Contains(msg, c.text) {
				t.Errorf("message %q: want one line mentioning %q", msg, c.text)
			}
			if _, err := os.Stat(filepath.Join(dir, "o")); !os.IsNotExist(err) {
				t.Error("failed pull left its output")
			}
		})
	}
}

// TestTamperedBlobRefused: a registry serving a layer whose bytes do not
// match its digest (or the entry's BLAKE3) fails the pull, and nothing is kept.
func TestTamperedBlobRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	imgs := defaultImages(t)
	src := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: imgs})
	host, data := startDockerRegistryDir(t)
	opts := optsFor(t, host, "")
	ref := host + "/tamper/stack:1.0.0"
	if _, err := Push(ctx, src, ref, PushOptions{Options: opts}); err != nil {
		t.Fatal(err)
	}
	// Flip a byte of the web amd64 image in the registry's storage.
	d := sha256.Sum256(imgs["images/web/linux-amd64.tar"])
	h := hex.EncodeToString(d[:])
	blob := filepath.Join(data, "docker/registry/v2/blobs/sha256", h[:2], h, "data")
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[1000] ^= 0xff
	os.WriteFile(blob, b, 0o644)
	for _, platform := range []string{"", "linux/amd64"} {
		outDir := t.TempDir()
		_, err := Pull(ctx, ref, PullOptions{Options: opts, Output: filepath.Join(outDir, "x.vbundle"), Platform: platform})
		if !errors.Is(err, ErrDigest) {
			t.Fatalf("platform %q: err = %v, want ErrDigest", platform, err)
		}
		if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
			t.Errorf("platform %q: tampered pull left %d files", platform, len(ents))
		}
	}
	// The other platform's images are intact: a filtered pull still works.
	if _, err := Pull(ctx, ref, PullOptions{Options: opts, Output: filepath.Join(t.TempDir(), "a.vbundle"), Platform: "linux/arm64"}); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseArtifact(f *testing.F) {
	seeds := []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.volt.bundle.v1","config":{"mediaType":"application/vnd.volt.bundle.manifest.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":10,"annotations":{"io.volt.bundle.offset":"41"}},"layers":[{"mediaType":"application/vnd.volt.bundle.skeleton.v1","digest":"sha256:` + strings.Repeat("b", 64) + `","size":100},{"mediaType":"application/vnd.volt.bundle.image.v1.tar","digest":"sha256:` + strings.Repeat("c", 64) + `","size":5,"annotations":{"io.volt.bundle.offset":"60","org.opencontainers.image.title":"images/a/linux-amd64.tar"}}]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`,
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.volt.bundle.manifest.v1+json","size":-1},"layers":[{"mediaType":"application/vnd.volt.bundle.skeleton.v1","size":1},{"mediaType":"x","size":9,"annotations":{"io.volt.bundle.offset":"-5"}}]}`,
		`[]`, `{}`, ``,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := parseArtifact(raw, "")
		if err != nil {
			return
		}
		// Accepted holes must tile a file of a.size bytes.
		var end int64
		for _, h := range a.holes {
			if h.off < end || h.size < 0 {
				t.Fatalf("overlapping or negative hole %+v", h)
			}
			end = h.off + h.size
		}
		if end > a.size && a.skeleton != nil {
			t.Fatalf("hole past end %d > %d", end, a.size)
		}
		var gapTotal int64
		for _, g := range gaps(a.holes, a.size) {
			gapTotal += g[1] - g[0]
		}
		if a.skeleton != nil && gapTotal != a.skeleton.Size {
			t.Fatalf("gaps %d bytes, skeleton %d", gapTotal, a.skeleton.Size)
		}
	})
}

// TestDigestCache: a second push of the same entries reads the sha256 from
// the cache (same manifest), and a wrong cache entry cannot publish a
// bundle: the registry refuses the upload.
func TestDigestCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	imgs := defaultImages(t)
	src := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: imgs})
	host := startDockerRegistry(t)
	opts := optsFor(t, host, "")
	opts.DigestCache = filepath.Join(dir, "cache")
	var hashed int64
	opts.Progress = func(p Progress) { hashed = p.Done }
	first, err := Push(ctx, src, host+"/c1/stack:1", PushOptions{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(opts.DigestCache)
	if len(ents) != len(imgs)+3 { // images, compose, config, hook (not bundle.json, skeleton, signature)
		t.Errorf("cache holds %d entries", len(ents))
	}
	second, err := Push(ctx, src, host+"/c2/stack:1", PushOptions{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	if first.Digest != second.Digest || hashed == 0 {
		t.Errorf("cached push made manifest %s, first %s", second.Digest, first.Digest)
	}
	// Poison the entry of one image: the upload to a fresh repository fails.
	d := digestOf(t, src, "images/web/linux-arm64.tar")
	os.WriteFile(filepath.Join(opts.DigestCache, strings.TrimPrefix(d, "blake3:")), []byte(fmt.Sprintf("sha256:%s %d\n", strings.Repeat("ab", 32), len(imgs["images/web/linux-arm64.tar"]))), 0o644)
	if _, err := Push(ctx, src, host+"/c3/stack:1", PushOptions{Options: opts}); err == nil {
		t.Fatal("push with a wrong cached digest succeeded")
	}
}

func digestOf(t *testing.T, path, entry string) string {
	br, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	return br.Manifest().Integrity.Files[entry]
}
