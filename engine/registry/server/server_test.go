package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	godigest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/volt-cli/volt/engine/cas"
)

type testServer struct {
	*Server
	url  string
	now  time.Time
	cas  *cas.Store
	root string
}

func newTestServer(t *testing.T, anon bool) *testServer {
	t.Helper()
	return newTestServerWith(t, t.TempDir(), func(c *Config) { c.AnonymousPull = anon })
}

// newTestServerWith starts a server on state under dir, its Config adjusted by set.
func newTestServerWith(t *testing.T, dir string, set func(*Config)) *testServer {
	t.Helper()
	cs, err := cas.Open(filepath.Join(dir, "cas"))
	if err != nil {
		t.Fatal(err)
	}
	cs.Sync = cas.SyncNone
	ts := &testServer{now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), cas: cs, root: filepath.Join(dir, "reg")}
	cfg := Config{Root: ts.root, CAS: cs, Now: func() time.Time { return ts.now }}
	set(&cfg)
	srv, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = srv
	hs := httptest.NewServer(srv)
	ts.url = hs.URL
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return ts
}

func (ts *testServer) tok(t *testing.T, ttl time.Duration, access ...Access) string {
	t.Helper()
	tok, err := ts.Mint("t", access, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends a request with an optional bearer token.
func (ts *testServer) do(t *testing.T, method, path, tok string, body []byte, hdr ...string) *http.Response {
	t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = ts.url + path
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func expect(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, b)
	}
	if code != "" {
		var body struct {
			Errors []struct{ Code, Message string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Errors) == 0 || body.Errors[0].Code != code {
			t.Fatalf("%s %s: error body %+v (%v), want code %s", resp.Request.Method, resp.Request.URL.Path, body, err, code)
		}
	}
}

// pushBlob uploads data monolithically and returns its digest.
func (ts *testServer) pushBlob(t *testing.T, repo, tok string, data []byte) godigest.Digest {
	t.Helper()
	d := godigest.FromBytes(data)
	expect(t, ts.do(t, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), tok, data), http.StatusCreated, "")
	return d
}

// pushManifest pushes an image manifest with the given config and layers.
func (ts *testServer) pushManifest(t *testing.T, repo, ref, tok string, m ocispec.Manifest) (godigest.Digest, *http.Response) {
	t.Helper()
	m.Versioned = specs.Versioned{SchemaVersion: 2}
	m.MediaType = ocispec.MediaTypeImageManifest
	raw, _ := json.Marshal(m)
	resp := ts.do(t, "PUT", "/v2/"+repo+"/manifests/"+ref, tok, raw, "Content-Type", ocispec.MediaTypeImageManifest)
	return godigest.FromBytes(raw), resp
}

func desc(mt string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mt, Digest: godigest.FromBytes(data), Size: int64(len(data))}
}

func TestChunkedUploadAndPull(t *testing.T) {
	ts := newTestServer(t, false)
	tok := ts.tok(t, time.Hour, Access{Repo: "a/b", Actions: []string{ActionPull, ActionPush}})
	data := bytes.Repeat([]byte("0123456789abcdef"), 20000)
	resp := ts.do(t, "POST", "/v2/a/b/blobs/uploads/", tok, nil)
	expect(t, resp, http.StatusAccepted, "")
	loc := resp.Header.Get("Location")
	for i, part := range [][]byte{data[:100000], data[100000:250000], data[250000:]} {
		start := []int{0, 100000, 250000}[i]
		resp = ts.do(t, "PATCH", loc, tok, part, "Content-Range", fmt.Sprintf("%d-%d", start, start+len(part)-1), "Content-Type", "application/octet-stream")
		expect(t, resp, http.StatusAccepted, "")
		if want := fmt.Sprintf("0-%d", start+len(part)-1); resp.Header.Get("Range") != want {
			t.Errorf("Range %q, want %q", resp.Header.Get("Range"), want)
		}
		loc = resp.Header.Get("Location")
	}
	// A chunk that does not continue where the upload is: 416.
	expect(t, ts.do(t, "PATCH", loc, tok, []byte("x"), "Content-Range", "5-5"), http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid)
	expect(t, ts.do(t, "GET", loc, tok, nil), http.StatusNoContent, "")
	d := godigest.FromBytes(data)
	expect(t, ts.do(t, "PUT", loc+"?digest="+d.String(), tok, nil), http.StatusCreated, "")
	// The upload session is gone.
	expect(t, ts.do(t, "PUT", loc+"?digest="+d.String(), tok, nil), http.StatusNotFound, codeBlobUploadUnknown)

	resp = ts.do(t, "GET", "/v2/a/b/blobs/"+d.String(), tok, nil)
	expect(t, resp, http.StatusOK, "")
	got, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(got, data) || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("blob GET: %d bytes, digest header %q", len(got), resp.Header.Get("Docker-Content-Digest"))
	}
	resp = ts.do(t, "HEAD", "/v2/a/b/blobs/"+d.String(), tok, nil)
	expect(t, resp, http.StatusOK, "")
	if resp.ContentLength != int64(len(data)) {
		t.Errorf("HEAD Content-Length %d", resp.ContentLength)
	}
	// The blob lives in the CAS, pinned.
	pins, _ := ts.cas.Pins()
	if _, ok := pins["registry-sha256-"+d.Encoded()]; !ok {
		t.Errorf("blob not pinned in the CAS: %v", pins)
	}
	if _, err := os.Stat(filepath.Join(ts.root, "uploads")); err == nil {
		ents, _ := os.ReadDir(filepath.Join(ts.root, "uploads"))
		if len(ents) != 0 {
			t.Errorf("uploads left: %d", len(ents))
		}
	}
}

func TestDigestMismatchKeepsNothing(t *testing.T) {
	ts := newTestServer(t, false)
	tok := ts.tok(t, time.Hour, Access{Repo: "*", Actions: []string{ActionPull, ActionPush}})
	wrong := godigest.FromBytes([]byte("something else"))
	for _, path := range []string{"/v2/r/blobs/uploads/?digest=" + wrong.String(), ""} {
		if path == "" {
			resp := ts.do(t, "POST", "/v2/r/blobs/uploads/", tok, nil)
			expect(t, resp, http.StatusAccepted, "")
			expect(t, ts.do(t, "PATCH", resp.Header.Get("Location"), tok, []byte("payload")), http.StatusAccepted, "")
			path = resp.Header.Get("Location") + "?digest=" + wrong.String()
			expect(t, ts.do(t, "PUT", path, tok, nil), http.StatusBadRequest, codeDigestInvalid)
		} else {
			expect(t, ts.do(t, "POST", path, tok, []byte("payload")), http.StatusBadRequest, codeDigestInvalid)
		}
	}
	for _, d := range []godigest.Digest{wrong, godigest.FromBytes([]byte("payload"))} {
		expect(t, ts.do(t, "HEAD", "/v2/r/blobs/"+d.String(), tok, nil), http.StatusNotFound, "")
	}
	objs, _ := ts.cas.List(context.Background())
	ents, _ := os.ReadDir(filepath.Join(ts.root, "uploads"))
	if len(objs) != 0 || len(ents) != 0 {
		t.Errorf("after refused uploads: %d CAS objects, %d upload files", len(objs), len(ents))
	}
	// A sha512 digest that does not match, and an algorithm other than
	// sha256 and sha512, are refused.
	expect(t, ts.do(t, "POST", "/v2/r/blobs/uploads/?digest=sha512:"+strings.Repeat("0", 128), tok, []byte("x")), http.StatusBadRequest, codeDigestInvalid)
	expect(t, ts.do(t, "POST", "/v2/r/blobs/uploads/?digest=sha384:"+strings.Repeat("0", 96), tok, []byte("x")), http.StatusBadRequest, codeDigestInvalid)
}

func TestManifestsTagsCatalogReferrersDelete(t *testing.T) {
	ts := newTestServer(t, false)
	tok := ts.tok(t, time.Hour, Access{Repo: "*", Actions: []string{ActionPull, ActionPush, ActionDelete}})
	cfg, layer := []byte(`{"x":1}`), []byte("layer")
	ts.pushBlob(t, "team/app", tok, cfg)
	ts.pushBlob(t, "team/app", tok, layer)
	m := ocispec.Manifest{ArtifactType: "application/vnd.test", Config: desc("application/vnd.test.config", cfg), Layers: []ocispec.Descriptor{desc("text/plain", layer)}}
	md, resp := ts.pushManifest(t, "team/app", "v1", tok, m)
	expect(t, resp, http.StatusCreated, "")
	for _, tag := range []string{"v2", "latest"} {
		_, resp = ts.pushManifest(t, "team/app", tag, tok, m)
		expect(t, resp, http.StatusCreated, "")
	}
	// A manifest naming a blob the repository lacks is refused.
	bad := m
	bad.Layers = []ocispec.Descriptor{desc("text/plain", []byte("missing"))}
	_, resp = ts.pushManifest(t, "team/app", "bad", tok, bad)
	expect(t, resp, http.StatusBadRequest, codeManifestBlobUnkown)
	// Oversized manifest: 413.
	huge := append([]byte(`{"schemaVersion":2,"x":"`), bytes.Repeat([]byte("a"), MaxManifestSize)...)
	expect(t, ts.do(t, "PUT", "/v2/team/app/manifests/huge", tok, huge, "Content-Type", ocispec.MediaTypeImageManifest), http.StatusRequestEntityTooLarge, codeSizeInvalid)

	resp = ts.do(t, "GET", "/v2/team/app/manifests/v1", tok, nil)
	expect(t, resp, http.StatusOK, "")
	if resp.Header.Get("Docker-Content-Digest") != md.String() || resp.Header.Get("Content-Type") != ocispec.MediaTypeImageManifest {
		t.Errorf("manifest headers %v", resp.Header)
	}
	// Tags, paginated.
	var tl struct {
		Name string
		Tags []string
	}
	resp = ts.do(t, "GET", "/v2/team/app/tags/list?n=2", tok, nil)
	json.NewDecoder(resp.Body).Decode(&tl)
	if fmt.Sprint(tl.Tags) != "[latest v1]" || !strings.Contains(resp.Header.Get("Link"), "last=v1") {
		t.Errorf("tags page 1 %v, Link %q", tl.Tags, resp.Header.Get("Link"))
	}
	resp = ts.do(t, "GET", "/v2/team/app/tags/list?n=2&last=v1", tok, nil)
	json.NewDecoder(resp.Body).Decode(&tl)
	if fmt.Sprint(tl.Tags) != "[v2]" {
		t.Errorf("tags page 2 %v", tl.Tags)
	}
	// Cross-repository mount, then catalog.
	resp = ts.do(t, "POST", "/v2/other/app/blobs/uploads/?mount="+godigest.FromBytes(layer).String()+"&from=team/app", tok, nil)
	expect(t, resp, http.StatusCreated, "")
	resp = ts.do(t, "POST", "/v2/other/app/blobs/uploads/?mount="+godigest.FromBytes([]byte("nope")).String()+"&from=team/app", tok, nil)
	expect(t, resp, http.StatusAccepted, "") // not mountable: an upload session
	ts.pushBlob(t, "other/app", tok, cfg)
	_, resp = ts.pushManifest(t, "other/app", "v1", tok, m)
	expect(t, resp, http.StatusCreated, "")
	var cat struct{ Repositories []string }
	json.NewDecoder(ts.do(t, "GET", "/v2/_catalog", tok, nil).Body).Decode(&cat)
	if fmt.Sprint(cat.Repositories) != "[other/app team/app]" {
		t.Errorf("catalog %v", cat.Repositories)
	}
	// Referrers.
	sig := []byte("signature")
	ts.pushBlob(t, "team/app", tok, sig)
	ref := ocispec.Manifest{ArtifactType: "application/vnd.test.sig", Config: desc("application/vnd.oci.empty.v1+json", cfg), Layers: []ocispec.Descriptor{desc("text/plain", sig)},
		Subject: &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: 1}}
	_, resp = ts.pushManifest(t, "team/app", "sig", tok, ref)
	expect(t, resp, http.StatusCreated, "")
	if resp.Header.Get("OCI-Subject") != md.String() {
		t.Errorf("OCI-Subject %q", resp.Header.Get("OCI-Subject"))
	}
	for _, c := range []struct {
		filter string
		n      int
	}{{"", 1}, {"application/vnd.test.sig", 1}, {"application/other", 0}} {
		var idx ocispec.Index
		resp = ts.do(t, "GET", "/v2/team/app/referrers/"+md.String()+"?artifactType="+c.filter, tok, nil)
		json.NewDecoder(resp.Body).Decode(&idx)
		if len(idx.Manifests) != c.n || (c.n == 1 && idx.Manifests[0].ArtifactType != "application/vnd.test.sig") {
			t.Errorf("referrers filter %q: %+v", c.filter, idx.Manifests)
		}
	}
	// Delete a tag, then the manifest (its tags go with it), then a blob.
	expect(t, ts.do(t, "DELETE", "/v2/team/app/manifests/v2", tok, nil), http.StatusAccepted, "")
	expect(t, ts.do(t, "GET", "/v2/team/app/manifests/v2", tok, nil), http.StatusNotFound, codeManifestUnknown)
	expect(t, ts.do(t, "GET", "/v2/team/app/manifests/v1", tok, nil), http.StatusOK, "")
	expect(t, ts.do(t, "DELETE", "/v2/team/app/manifests/"+md.String(), tok, nil), http.StatusAccepted, "")
	expect(t, ts.do(t, "GET", "/v2/team/app/manifests/v1", tok, nil), http.StatusNotFound, codeManifestUnknown)
	ld := godigest.FromBytes(layer)
	expect(t, ts.do(t, "DELETE", "/v2/team/app/blobs/"+ld.String(), tok, nil), http.StatusAccepted, "")
	expect(t, ts.do(t, "GET", "/v2/team/app/blobs/"+ld.String(), tok, nil), http.StatusNotFound, codeBlobUnknown)
	// Still in other/app (mounted), so still pinned.
	expect(t, ts.do(t, "GET", "/v2/other/app/blobs/"+ld.String(), tok, nil), http.StatusOK, "")
	pins, _ := ts.cas.Pins()
	if _, ok := pins["registry-sha256-"+ld.Encoded()]; !ok {
		t.Error("blob still used by other/app was unpinned")
	}
	expect(t, ts.do(t, "DELETE", "/v2/other/app/blobs/"+ld.String(), tok, nil), http.StatusAccepted, "")
	pins, _ = ts.cas.Pins()
	if _, ok := pins["registry-sha256-"+ld.Encoded()]; ok {
		t.Error("blob deleted everywhere is still pinned")
	}
	// Bad names and tags.
	expect(t, ts.do(t, "GET", "/v2/Bad..Name/tags/list", tok, nil), http.StatusBadRequest, codeNameInvalid)
	expect(t, ts.do(t, "GET", "/v2/team/app/manifests/..%2f..", tok, nil), http.StatusNotFound, "")
	expect(t, ts.do(t, "GET", "/v2/team/app/manifests/.hidden", tok, nil), http.StatusBadRequest, codeManifestInvalid)
}

func TestTokenScopesAndExpiry(t *testing.T) {
	ts := newTestServer(t, false)
	pushAll := ts.tok(t, time.Hour, Access{Repo: "*", Actions: []string{ActionPull, ActionPush}})
	blob := []byte("blob")
	d := ts.pushBlob(t, "team/app", pushAll, blob)
	path := "/v2/team/app/blobs/" + d.String()
	upload := "/v2/team/app/blobs/uploads/?digest=" + d.String()

	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	forged, _ := MintToken(otherPriv, Claims{Service: DefaultService, Expires: ts.now.Add(time.Hour).Unix(), Access: []Access{{Repo: "*", Actions: []string{ActionPush}}}})
	wrongSvc, _ := MintToken(ts.cfg.Key, Claims{Service: "other", Expires: ts.now.Add(time.Hour).Unix(), Access: []Access{{Repo: "*", Actions: []string{ActionPush}}}})
	cases := []struct {
		name   string
		method string
		path   string
		tok    string
		status int
		code   string
	}{
		{"pull without token", "GET", path, "", 401, codeUnauthorized},
		{"push without token", "POST", upload, "", 401, codeUnauthorized},
		{"pull token pulls", "GET", path, ts.tok(t, time.Hour, Access{Repo: "team/app", Actions: []string{ActionPull}}), 200, ""},
		{"pull token cannot push", "POST", upload, ts.tok(t, time.Hour, Access{Repo: "team/app", Actions: []string{ActionPull}}), 403, codeDenied},
		{"other repo", "GET", path, ts.tok(t, time.Hour, Access{Repo: "team/other", Actions: []string{ActionPull, ActionPush}}), 403, codeDenied},
		{"prefix grant", "POST", upload, ts.tok(t, time.Hour, Access{Repo: "team/*", Actions: []string{ActionPush}}), 201, ""},
		{"prefix grant elsewhere", "POST", "/v2/teamx/app/blobs/uploads/?digest=" + d.String(), ts.tok(t, time.Hour, Access{Repo: "team/*", Actions: []string{ActionPush}}), 403, codeDenied},
		{"expired", "GET", path, ts.tok(t, -time.Second, Access{Repo: "*", Actions: []string{ActionPull}}), 401, codeUnauthorized},
		{"forged", "GET", path, forged, 401, codeUnauthorized},
		{"wrong service", "GET", path, wrongSvc, 401, codeUnauthorized},
		{"garbage", "GET", path, "not-a-token", 401, codeUnauthorized},
		{"delete needs delete", "DELETE", path, pushAll, 403, codeDenied},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := ts.do(t, c.method, c.path, c.tok, blob)
			expect(t, resp, c.status, c.code)
			if c.status == 401 {
				ch := resp.Header.Get("WWW-Authenticate")
				if !strings.HasPrefix(ch, `Bearer realm="http://`) || !strings.Contains(ch, `service="volt-registry"`) {
					t.Errorf("challenge %q", ch)
				}
				if strings.Contains(c.path, "team/app/blobs") && !strings.Contains(ch, `scope="repository:team/app:`) {
					t.Errorf("challenge without scope: %q", ch)
				}
			}
		})
	}
	// The catalog lists what a token may pull.
	ts.pushBlob(t, "other/app", pushAll, blob)
	for _, c := range []struct {
		tok  string
		want string
	}{{ts.tok(t, time.Hour, Access{Repo: "team/*", Actions: []string{ActionPull}}), "[team/app]"}, {pushAll, "[other/app team/app]"}} {
		var cat struct{ Repositories []string }
		resp := ts.do(t, "GET", "/v2/_catalog", c.tok, nil)
		expect(t, resp, 200, "")
		json.NewDecoder(resp.Body).Decode(&cat)
		if fmt.Sprint(cat.Repositories) != c.want {
			t.Errorf("catalog %v, want %s", cat.Repositories, c.want)
		}
	}
	expect(t, ts.do(t, "GET", "/v2/_catalog", "", nil), 401, codeUnauthorized)
	// Expiry is checked against the clock: a token valid now fails later.
	tok := ts.tok(t, time.Minute, Access{Repo: "*", Actions: []string{ActionPull}})
	expect(t, ts.do(t, "GET", path, tok, nil), 200, "")
	ts.now = ts.now.Add(2 * time.Minute)
	expect(t, ts.do(t, "GET", path, tok, nil), 401, codeUnauthorized)
}

func TestTokenEndpoint(t *testing.T) {
	ts := newTestServer(t, false)
	parent := ts.tok(t, 30*time.Minute, Access{Repo: "team/*", Actions: []string{ActionPull, ActionPush}})
	get := func(basic string, scope string) (int, *Claims) {
		req, _ := http.NewRequest("GET", ts.url+"/token?service=volt-registry&scope="+scope, nil)
		if basic != "" {
			req.SetBasicAuth("anyone", basic)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Token     string `json:"token"`
			ExpiresIn int64  `json:"expires_in"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode != 200 {
			return resp.StatusCode, nil
		}
		c, err := VerifyToken(ts.pub, body.Token, ts.now)
		if err != nil {
			t.Fatal(err)
		}
		if body.ExpiresIn > int64(30*time.Minute/time.Second) {
			t.Errorf("issued token outlives its parent: %ds", body.ExpiresIn)
		}
		return 200, c
	}
	code, c := get(parent, "repository:team/app:pull,push")
	if code != 200 || !c.Allows("team/app", ActionPush) || c.Allows("team/other", ActionPull) {
		t.Fatalf("granted %d %+v", code, c)
	}
	// Asking for more than the parent grants gets only what it grants.
	code, c = get(parent, "repository:prod/app:pull,push")
	if code != 200 || c.Allows("prod/app", ActionPull) {
		t.Fatalf("escalated: %+v", c)
	}
	if code, _ := get("", "repository:team/app:pull"); code != 401 {
		t.Errorf("anonymous token request: %d, want 401", code)
	}
	if code, _ := get("garbage", "repository:team/app:pull"); code != 401 {
		t.Errorf("bad credentials: %d, want 401", code)
	}
	// With anonymous pull, anyone gets pull (and only pull).
	anon := newTestServer(t, true)
	req, _ := http.NewRequest("GET", anon.url+"/token?scope=repository:x:pull,push", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	ac, err := VerifyToken(anon.pub, body.Token, anon.now)
	if err != nil || !ac.Allows("x", ActionPull) || ac.Allows("x", ActionPush) {
		t.Fatalf("anonymous grant %+v %v", ac, err)
	}
	expect(t, anon.do(t, "GET", "/v2/", "", nil), 200, "")
	expect(t, anon.do(t, "GET", "/v2/_catalog", "", nil), 200, "")
	expect(t, anon.do(t, "POST", "/v2/x/blobs/uploads/", "", nil), 401, codeUnauthorized)
}

func TestParseExpiry(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{{"7d", 7 * 24 * time.Hour, true}, {"12h", 12 * time.Hour, true}, {"30m", 30 * time.Minute, true}, {"0d", 0, false}, {"-1h", 0, false}, {"x", 0, false}, {"d", 0, false}} {
		got, err := ParseExpiry(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseExpiry(%q) = %v, %v", c.in, got, err)
		}
	}
}

func TestKeyPersists(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k", KeyFile)
	k1, err := LoadOrCreateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(p)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("key changed on reload: %v", err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
	os.WriteFile(p, []byte("junk"), 0o600)
	if _, err := LoadOrCreateKey(p); err == nil {
		t.Error("junk key accepted")
	}
}

func TestOneServerPerRoot(t *testing.T) {
	ts := newTestServer(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := New(ctx, Config{Root: ts.root, CAS: ts.cas}); err == nil {
		t.Fatal("second server on the same root started")
	}
}

func FuzzVerifyToken(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	good, _ := MintToken(priv, Claims{Service: DefaultService, Expires: 1 << 40, Access: []Access{{Repo: "*", Actions: []string{"pull"}}}})
	for _, s := range []string{good, "", "vrt1.", "vrt1..", "vrt1.e30.AAAA", good[:len(good)-3], strings.Replace(good, "vrt1.", "vrt1.x", 1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := VerifyToken(pub, tok, time.Unix(0, 0))
		if err == nil && tok != good {
			t.Fatalf("accepted a token the key did not sign: %q %+v", tok, c)
		}
	})
}

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{"repository:a/b:pull,push", "registry:catalog:*", "repository:host:5000/x:pull", "::", "a b c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, sc := range parseScopes([]string{s}) {
			if len(sc.actions) == 0 {
				t.Fatalf("scope without actions from %q", s)
			}
		}
	})
}
