package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	godigest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// What the OCI conformance suite checks beyond the basics (scripts/
// conformance.sh runs the suite itself): sha512 content, a final chunk
// sent out of order with PUT, non-distributable layers, tag parameters.

func TestSHA512BlobsAndManifests(t *testing.T) {
	ts := newTestServer(t, false)
	tok := ts.tok(t, time.Hour, Access{Repo: "*", Actions: []string{ActionPull, ActionPush, ActionDelete}})
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := bytes.Repeat([]byte("sha512 layer "), 5000)
	cd, ld := godigest.SHA512.FromBytes(cfg), godigest.SHA512.FromBytes(layer)
	// Monolithic, then chunked with the digest on the final PUT.
	expect(t, ts.do(t, "POST", "/v2/r/blobs/uploads/?digest="+cd.String(), tok, cfg), http.StatusCreated, "")
	resp := ts.do(t, "POST", "/v2/r/blobs/uploads/", tok, nil)
	expect(t, resp, http.StatusAccepted, "")
	resp = ts.do(t, "PATCH", resp.Header.Get("Location"), tok, layer[:1000], "Content-Range", "0-999")
	expect(t, resp, http.StatusAccepted, "")
	resp = ts.do(t, "PUT", resp.Header.Get("Location")+"?digest="+ld.String(), tok, layer[1000:], "Content-Range", fmt.Sprintf("1000-%d", len(layer)-1))
	expect(t, resp, http.StatusCreated, "")
	if resp.Header.Get("Docker-Content-Digest") != ld.String() {
		t.Errorf("Docker-Content-Digest %q, want %q", resp.Header.Get("Docker-Content-Digest"), ld)
	}
	resp = ts.do(t, "GET", "/v2/r/blobs/"+ld.String(), tok, nil)
	expect(t, resp, http.StatusOK, "")
	if got, _ := io.ReadAll(resp.Body); !bytes.Equal(got, layer) || resp.Header.Get("Docker-Content-Digest") != ld.String() {
		t.Fatalf("GET sha512 blob: %d bytes, digest %q", len(got), resp.Header.Get("Docker-Content-Digest"))
	}
	// A manifest pushed by its sha512 digest, tagged with tag parameters.
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))},
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: ld, Size: int64(len(layer))}}}
	raw, _ := json.Marshal(m)
	md := godigest.SHA512.FromBytes(raw)
	resp = ts.do(t, "PUT", "/v2/r/manifests/"+md.String()+"?tag=v1&tag=latest", tok, raw, "Content-Type", ocispec.MediaTypeImageManifest)
	expect(t, resp, http.StatusCreated, "")
	if resp.Header.Get("OCI-Tag") != "v1, latest" || resp.Header.Get("Docker-Content-Digest") != md.String() {
		t.Errorf("PUT by sha512: OCI-Tag %q, digest %q", resp.Header.Get("OCI-Tag"), resp.Header.Get("Docker-Content-Digest"))
	}
	for _, ref := range []string{md.String(), "v1", "latest"} {
		resp = ts.do(t, "GET", "/v2/r/manifests/"+ref, tok, nil)
		expect(t, resp, http.StatusOK, "")
		if got, _ := io.ReadAll(resp.Body); !bytes.Equal(got, raw) || resp.Header.Get("Docker-Content-Digest") != md.String() {
			t.Errorf("GET manifest %s: digest %q", ref, resp.Header.Get("Docker-Content-Digest"))
		}
	}
	// The sha256 digest of the same bytes was never pushed; a body that
	// does not hash to the sha512 reference is refused; bad tags too.
	expect(t, ts.do(t, "GET", "/v2/r/manifests/"+godigest.FromBytes(raw).String(), tok, nil), http.StatusNotFound, codeManifestUnknown)
	expect(t, ts.do(t, "PUT", "/v2/r/manifests/"+md.String(), tok, append(raw, ' '), "Content-Type", ocispec.MediaTypeImageManifest), http.StatusBadRequest, codeDigestInvalid)
	expect(t, ts.do(t, "PUT", "/v2/r/manifests/"+md.String()+"?tag=..bad", tok, raw, "Content-Type", ocispec.MediaTypeImageManifest), http.StatusBadRequest, codeManifestInvalid)
	// Delete by sha512 digest: the blob and its pin go.
	expect(t, ts.do(t, "DELETE", "/v2/r/blobs/"+ld.String(), tok, nil), http.StatusAccepted, "")
	expect(t, ts.do(t, "HEAD", "/v2/r/blobs/"+ld.String(), tok, nil), http.StatusNotFound, "")
	pins, _ := ts.cas.Pins()
	if _, ok := pins[pinFor(ld)]; ok || len(pinFor(ld)) > 128 {
		t.Errorf("pin %q after delete: %v", pinFor(ld), pins)
	}
}

func TestOutOfOrderChunks(t *testing.T) {
	ts := newTestServer(t, false)
	tok := ts.tok(t, time.Hour, Access{Repo: "*", Actions: []string{ActionPull, ActionPush}})
	data := bytes.Repeat([]byte("abcdefgh"), 3000)
	d := godigest.FromBytes(data)
	resp := ts.do(t, "POST", "/v2/r/blobs/uploads/", tok, nil)
	expect(t, resp, http.StatusAccepted, "")
	loc := resp.Header.Get("Location")
	expect(t, ts.do(t, "PATCH", loc, tok, data[:8000], "Content-Range", "0-7999"), http.StatusAccepted, "")
	tests := []struct {
		name, method, rng string
		body              []byte
	}{
		{"PATCH skipping ahead", "PATCH", "16000-23999", data[16000:]},
		{"PATCH from the start", "PATCH", "0-7999", data[:8000]},
		{"final PUT skipping ahead", "PUT", "16000-23999", data[16000:]},
		{"unparsable range", "PATCH", "x-y", data[8000:16000]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := loc
			if tt.method == "PUT" {
				u += "?digest=" + d.String()
			}
			resp := ts.do(t, tt.method, u, tok, tt.body, "Content-Range", tt.rng)
			if resp.Header.Get("Range") != "0-7999" || resp.Header.Get("Location") == "" {
				t.Errorf("416 headers: Range %q, Location %q", resp.Header.Get("Range"), resp.Header.Get("Location"))
			}
			expect(t, resp, http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid)
			// The session goes on where it was.
			resp = ts.do(t, "GET", loc, tok, nil)
			expect(t, resp, http.StatusNoContent, "")
			if resp.Header.Get("Range") != "0-7999" {
				t.Errorf("after %s: Range %q", tt.name, resp.Header.Get("Range"))
			}
		})
	}
	expect(t, ts.do(t, "PATCH", loc, tok, data[8000:16000], "Content-Range", "8000-15999"), http.StatusAccepted, "")
	expect(t, ts.do(t, "PUT", loc+"?digest="+d.String(), tok, data[16000:], "Content-Range", "16000-23999"), http.StatusCreated, "")
	resp = ts.do(t, "GET", "/v2/r/blobs/"+d.String(), tok, nil)
	expect(t, resp, http.StatusOK, "")
	if got, _ := io.ReadAll(resp.Body); !bytes.Equal(got, data) {
		t.Fatal("blob differs after out-of-order chunks")
	}
}

func TestNonDistributableLayers(t *testing.T) {
	ts := newTestServer(t, false)
	tok := ts.tok(t, time.Hour, Access{Repo: "*", Actions: []string{ActionPull, ActionPush}})
	cfg, layer := []byte(`{}`), []byte("pushed layer")
	ts.pushBlob(t, "r", tok, cfg)
	ts.pushBlob(t, "r", tok, layer)
	foreign := func(mt string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: mt, Digest: godigest.FromString(mt), Size: 123456, URLs: []string{"https://example.com/blob"}}
	}
	tests := []struct {
		name   string
		layer  ocispec.Descriptor
		status int
	}{
		{"OCI non-distributable gzip", foreign("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"), http.StatusCreated},
		{"OCI non-distributable tar", foreign("application/vnd.oci.image.layer.nondistributable.v1.tar"), http.StatusCreated},
		{"Docker foreign layer", foreign("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"), http.StatusCreated},
		{"ordinary layer not pushed", foreign(ocispec.MediaTypeImageLayerGzip), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, resp := ts.pushManifest(t, "r", "t", tok, ocispec.Manifest{
				Config: desc(ocispec.MediaTypeImageConfig, cfg),
				Layers: []ocispec.Descriptor{tt.layer, desc(ocispec.MediaTypeImageLayer, layer)},
			})
			code := ""
			if tt.status != http.StatusCreated {
				code = codeManifestBlobUnkown
			}
			expect(t, resp, tt.status, code)
		})
	}
	// The config is never exempt, whatever its media type says.
	_, resp := ts.pushManifest(t, "r", "t", tok, ocispec.Manifest{Config: foreign("application/vnd.oci.image.layer.nondistributable.v1.tar")})
	expect(t, resp, http.StatusBadRequest, codeManifestBlobUnkown)
}

func TestBlobCacheServesRangesAndRefills(t *testing.T) {
	ts := newTestServer(t, false)
	tok := ts.tok(t, time.Hour, Access{Repo: "*", Actions: []string{ActionPull, ActionPush}})
	data := bytes.Repeat([]byte("0123456789"), 10000)
	d := ts.pushBlob(t, "r", tok, data)
	cached := filepath.Join(ts.root, "blobcache", "sha256", d.Encoded())
	if fi, err := os.Stat(cached); err != nil || fi.Size() != int64(len(data)) {
		t.Fatalf("a blob pushed whole is not in the cache: %v", err)
	}
	for _, step := range []string{"cached", "evicted", "torn"} {
		switch step {
		case "evicted":
			os.Remove(cached)
		case "torn":
			os.WriteFile(cached, data[:10], 0o644)
		}
		resp := ts.do(t, "GET", "/v2/r/blobs/"+d.String(), tok, nil, "Range", "bytes=10-19")
		expect(t, resp, http.StatusPartialContent, "")
		if got, _ := io.ReadAll(resp.Body); string(got) != "0123456789" {
			t.Errorf("%s: range GET %q", step, got)
		}
		if fi, err := os.Stat(cached); err != nil || fi.Size() != int64(len(data)) {
			t.Errorf("%s: cache not refilled from the CAS: %v", step, err)
		}
	}
}

func TestBlobCacheBoundAndDisabled(t *testing.T) {
	small := bytes.Repeat([]byte("s"), 1000)
	big := bytes.Repeat([]byte("b"), 5000)
	for _, limit := range []int64{3000, -1} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			ts := newTestServerWith(t, t.TempDir(), func(c *Config) { c.BlobCacheBytes = limit })
			tok := ts.tok(t, time.Hour, Access{Repo: "*", Actions: []string{ActionPull, ActionPush}})
			var ds []godigest.Digest
			for i := range 4 {
				ds = append(ds, ts.pushBlob(t, "r", tok, append([]byte{byte(i)}, small...)))
			}
			db := ts.pushBlob(t, "r", tok, big)
			var total int64
			for _, d := range append(ds, db) {
				if fi, err := os.Stat(filepath.Join(ts.root, "blobcache", "sha256", d.Encoded())); err == nil {
					total += fi.Size()
				}
			}
			if limit < 0 && total != 0 || total > max(limit, 0) {
				t.Errorf("cache holds %d bytes, limit %d", total, limit)
			}
			// Every blob still reads whole, cached or not; ranges only from the cache.
			for _, d := range append(ds, db) {
				resp := ts.do(t, "GET", "/v2/r/blobs/"+d.String(), tok, nil)
				expect(t, resp, http.StatusOK, "")
				got, _ := io.ReadAll(resp.Body)
				if godigest.FromBytes(got) != d {
					t.Errorf("blob %s reads wrong", d)
				}
			}
			resp := ts.do(t, "HEAD", "/v2/r/blobs/"+db.String(), tok, nil)
			if resp.Header.Get("Accept-Ranges") == "bytes" || resp.ContentLength != int64(len(big)) {
				t.Errorf("blob larger than the cache: Accept-Ranges %q, length %d", resp.Header.Get("Accept-Ranges"), resp.ContentLength)
			}
		})
	}
}

func TestBlobCacheDroppedAfterUncleanStop(t *testing.T) {
	dir := t.TempDir()
	c, err := openBlobCache(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	d := godigest.FromString("x")
	os.MkdirAll(filepath.Dir(c.path(d)), 0o755)
	os.WriteFile(c.path(d), []byte("x"), 0o644)
	c.close()
	if c, err = openBlobCache(dir, 1<<20); err != nil || c.total != 1 {
		t.Fatalf("after a clean stop the cache is kept: total %d, %v", c.total, err)
	}
	// No close: the next start drops what may be torn.
	if c, err = openBlobCache(dir, 1<<20); err != nil || c.total != 0 {
		t.Fatalf("after an unclean stop: total %d, %v", c.total, err)
	}
	if _, err := os.Stat(c.path(d)); err == nil {
		t.Error("cached file survived an unclean stop")
	}
}
