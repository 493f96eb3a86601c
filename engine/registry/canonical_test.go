package registry

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestPullRefusesNonCanonicalSkeleton: a registry serving an artifact
// whose skeleton (the ZIP structure around the layers) has a local header
// naming another file than the central directory does is refused by pull,
// which opens the reassembled file with the same reader as verify and
// import; nothing is left behind.
func TestPullRefusesNonCanonicalSkeleton(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: defaultImages(t)})
	host := startDockerRegistry(t)
	opts := optsFor(t, host, "")
	if _, err := Push(ctx, src, host+"/canon/stack:1.0.0", PushOptions{Options: opts}); err != nil {
		t.Fatal(err)
	}
	ref, err := ParseReference(host+"/canon/stack:1.0.0", opts)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := opts.repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, rc, err := repo.FetchReference(ctx, "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	skel := -1
	for i, l := range m.Layers {
		if l.MediaType == MediaTypeSkeleton {
			skel = i
		}
	}
	if skel < 0 {
		t.Fatal("artifact has no skeleton")
	}
	rc, err = repo.Fetch(ctx, m.Layers[skel])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	// Rename an image's local header (same length, so every offset holds).
	renamed := false
	for i := 0; !renamed; i++ {
		j := bytes.Index(b[i:], []byte("PK\x03\x04"))
		if j < 0 {
			t.Fatal("no image local header in the skeleton")
		}
		i += j
		n := int(binary.LittleEndian.Uint16(b[i+26:]))
		if name := string(b[i+30 : i+30+n]); strings.HasPrefix(name, "images/") {
			b[i+30] = 'I'
			renamed = true
		}
	}
	nd := ocispec.Descriptor{MediaType: MediaTypeSkeleton, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := repo.Push(ctx, nd, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	m.Layers[skel].Digest = nd.Digest
	raw, _ = json.Marshal(m)
	md := ocispec.Descriptor{MediaType: desc.MediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := repo.PushReference(ctx, md, bytes.NewReader(raw), "evil"); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	_, err = Pull(ctx, host+"/canon/stack:evil", PullOptions{Options: opts, Output: filepath.Join(out, "x.vbundle")})
	if err == nil || !strings.Contains(err.Error(), "non-canonical ZIP") || !strings.Contains(err.Error(), `names it "Images/`) {
		t.Fatalf("pull err = %v, want a non-canonical ZIP naming the entry", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("refused pull left %d files", len(ents))
	}
	// The untouched tag still pulls.
	if _, err := Pull(ctx, host+"/canon/stack:1.0.0", PullOptions{Options: opts, Output: filepath.Join(out, "ok.vbundle")}); err != nil {
		t.Fatal(err)
	}
}
