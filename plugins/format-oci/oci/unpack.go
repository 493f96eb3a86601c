package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/volt-cli/volt/sdk"
)

// Sentinel errors. Each wraps sdk.ErrInvalid (or sdk.ErrNotFound), so they
// keep their meaning across the plugin wire.
var (
	// ErrUnsafePath: an entry would land outside the destination (absolute
	// name, "..", a link or a parent symlink leading out of it).
	ErrUnsafePath = fmt.Errorf("unsafe path: %w", sdk.ErrInvalid)
	// ErrDigestMismatch: a blob's sha256 is not what the manifest says.
	ErrDigestMismatch = fmt.Errorf("digest mismatch: %w", sdk.ErrInvalid)
	// ErrSizeMismatch: a blob is shorter or longer than its descriptor says (e.g. truncated).
	ErrSizeMismatch = fmt.Errorf("size mismatch: %w", sdk.ErrInvalid)
	// ErrCorrupt: an archive or compressed stream cannot be read.
	ErrCorrupt = fmt.Errorf("corrupt archive: %w", sdk.ErrInvalid)
	// ErrNotImage: the input is neither an OCI image layout nor a docker-archive.
	ErrNotImage = fmt.Errorf("not an OCI image layout or docker-archive: %w", sdk.ErrInvalid)
	// ErrNoPlatform: the image has no manifest for the requested platform,
	// or several and none was requested.
	ErrNoPlatform = fmt.Errorf("platform: %w", sdk.ErrNotFound)
	// ErrDestNotEmpty: Unpack's destination must be an empty directory.
	ErrDestNotEmpty = fmt.Errorf("destination not empty: %w", sdk.ErrInvalid)
)

// Format names this package understands.
const (
	FormatOCI           = "oci"            // OCI image layout (dir or tar) or docker-archive
	FormatDockerArchive = "docker-archive" // `docker save` tar (also accepted as "oci")
	FormatRootfs        = "rootfs"         // plain filesystem tarball, optionally gzip/zstd
)

// UnpackOptions tune Unpack. The zero value is ready to use.
type UnpackOptions struct {
	// Platform selects a manifest ("linux/amd64", "linux/arm/v7"). Empty: the
	// only manifest, else the one for linux/GOARCH, else ErrNoPlatform.
	Platform string
	// NonRoot forces unprivileged semantics even when running as root:
	// no chown. Running as non-root implies it. (Device nodes are never
	// created, root or not.)
	NonRoot bool
	// Logf receives warnings, one per skipped entry naming it. Nil discards them.
	Logf func(format string, args ...any)
}

// UnpackResult says what Unpack did.
type UnpackResult struct {
	Platform string   // platform of the manifest used ("" for rootfs tarballs)
	Layers   int      // layers applied
	Skipped  []string // entries not created (device nodes, unknown types, links to them)
}

// ParseFormat splits "oci;platform=linux/arm64" into the format and its
// parameters (the UnpackRequest has no options, so they ride on the format).
func ParseFormat(s string) (string, map[string]string) {
	parts := strings.Split(s, ";")
	params := map[string]string{}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[k] = v
	}
	return strings.TrimSpace(parts[0]), params
}

// Unpack unpacks image (format FormatOCI, FormatDockerArchive or
// FormatRootfs) into dest, an existing empty directory. Every path is
// resolved inside dest; nothing is written outside it. Each layer is checked
// against its manifest digest and size as it streams. On any error dest is
// emptied again, so a failed unpack leaves nothing behind.
func Unpack(ctx context.Context, image, format, dest string, opts UnpackOptions) (*UnpackResult, error) {
	r, err := openRoot(dest)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if names, err := r.readDirNames(r.fd); err != nil {
		return nil, fmt.Errorf("list destination %q: %w", dest, err)
	} else if len(names) > 0 {
		return nil, fmt.Errorf("%w: %q", ErrDestNotEmpty, dest)
	}
	a := newApplier(r, os.Geteuid() == 0 && !opts.NonRoot, opts.Logf)
	res, err := unpackInto(ctx, a, image, format, opts)
	if err == nil {
		err = a.finish(ctx)
	}
	if err != nil {
		if cerr := r.clear(); cerr != nil {
			err = fmt.Errorf("%w (cleaning %q also failed: %v)", err, dest, cerr)
		}
		return nil, fmt.Errorf("unpack %q: %w", image, err)
	}
	res.Skipped = a.skipped
	return res, nil
}

func unpackInto(ctx context.Context, a *applier, image, format string, opts UnpackOptions) (*UnpackResult, error) {
	switch format {
	case FormatRootfs:
		f, err := os.Open(image)
		if err != nil {
			return nil, fmt.Errorf("open image: %w", err)
		}
		defer f.Close()
		zr, err := decompress(f)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		if err := a.applyLayer(ctx, zr); err != nil {
			return nil, err
		}
		return &UnpackResult{Layers: 1}, nil
	case FormatOCI, FormatDockerArchive:
	default:
		return nil, fmt.Errorf("format %q: %w", format, sdk.ErrUnsupported)
	}
	src, err := openSource(image)
	if err != nil {
		return nil, err
	}
	defer src.close()
	var img *resolved
	switch {
	case src.exists("index.json"):
		img, err = resolveOCI(ctx, src, opts.Platform)
	case src.exists("manifest.json"):
		img, err = resolveDocker(ctx, src, opts.Platform)
	default:
		err = fmt.Errorf("%w: no index.json or manifest.json", ErrNotImage)
	}
	if err != nil {
		return nil, err
	}
	// Check every layer is present with the right size before writing anything.
	for i, l := range img.layers {
		if !src.exists(l.name) {
			return nil, fmt.Errorf("layer %d: %w: blob %q missing", i, ErrNotImage, l.name)
		}
		if l.size >= 0 {
			rc, size, err := src.open(ctx, l.name)
			if err != nil {
				return nil, fmt.Errorf("layer %d: %w", i, err)
			}
			rc.Close()
			if size != l.size {
				return nil, fmt.Errorf("layer %d (%s): %w: manifest says %d bytes, blob has %d", i, l.name, ErrSizeMismatch, l.size, size)
			}
		}
	}
	for i, l := range img.layers {
		if err := applyBlob(ctx, a, src, l); err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, l.name, err)
		}
	}
	return &UnpackResult{Platform: img.platform, Layers: len(img.layers)}, nil
}

// layerRef is one layer to apply, with what to check it against.
type layerRef struct {
	name   string        // member name in the layout
	size   int64         // -1: unknown
	digest digest.Digest // of the blob as stored ("" if unknown)
	diffID digest.Digest // of the uncompressed tar ("" if unknown)
}

type resolved struct {
	platform string
	layers   []layerRef
}

// verifier hashes what is read through it and checks size and digest at EOF.
type verifier struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	want digest.Digest
	size int64
	what string
}

func newVerifier(r io.Reader, want digest.Digest, size int64, what string) *verifier {
	return &verifier{r: r, h: sha256.New(), want: want, size: size, what: what}
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		return n, fmt.Errorf("%w: %s longer than %d bytes", ErrSizeMismatch, v.what, v.size)
	}
	return n, err
}

// check drains the rest of the stream and compares size and digest.
func (v *verifier) check() error {
	if _, err := io.Copy(io.Discard, v); err != nil {
		return fmt.Errorf("read %s: %w", v.what, err)
	}
	if v.size >= 0 && v.n != v.size {
		return fmt.Errorf("%w: %s has %d bytes, expected %d", ErrSizeMismatch, v.what, v.n, v.size)
	}
	if v.want != "" {
		got := "sha256:" + hex.EncodeToString(v.h.Sum(nil))
		if got != string(v.want) {
			return fmt.Errorf("%w: %s is %s, expected %s", ErrDigestMismatch, v.what, got, v.want)
		}
	}
	return nil
}

func applyBlob(ctx context.Context, a *applier, src source, l layerRef) error {
	rc, _, err := src.open(ctx, l.name)
	if err != nil {
		return err
	}
	defer rc.Close()
	blob := newVerifier(rc, l.digest, l.size, "blob")
	zr, err := decompress(blob)
	if err != nil {
		return err
	}
	defer zr.Close()
	var diff *verifier
	var tarStream io.Reader = zr
	if l.diffID != "" {
		diff = newVerifier(zr, l.diffID, -1, "uncompressed layer (diff_id)")
		tarStream = diff
	}
	err = a.applyLayer(ctx, tarStream)
	if err == nil {
		if diff != nil {
			err = diff.check()
		} else if _, derr := io.Copy(io.Discard, zr); derr != nil {
			err = fmt.Errorf("%w: read layer: %w", ErrCorrupt, derr)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// A wrong blob explains any error met while reading it best.
	if verr := blob.check(); verr != nil {
		if err != nil && !errors.Is(err, ErrSizeMismatch) && !errors.Is(err, ErrDigestMismatch) {
			return fmt.Errorf("%w (while reading it: %v)", verr, err)
		}
		return verr
	}
	return err
}

// readJSON reads a small JSON member, checking its digest when given.
func readJSON(ctx context.Context, src source, name string, want digest.Digest, v any) error {
	rc, size, err := src.open(ctx, name)
	if err != nil {
		return err
	}
	defer rc.Close()
	if size > maxJSONSize {
		return fmt.Errorf("%w: %q is %d bytes (limit %d)", ErrNotImage, name, size, maxJSONSize)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxJSONSize+1))
	if err != nil {
		return fmt.Errorf("read %q: %w", name, err)
	}
	if want != "" {
		if err := want.Validate(); err != nil {
			return fmt.Errorf("%w: %q: %w", ErrNotImage, want, err)
		}
		if got := digest.FromBytes(b); got != want {
			return fmt.Errorf("%w: %q is %s, expected %s", ErrDigestMismatch, name, got, want)
		}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: parse %q: %w", ErrNotImage, name, err)
	}
	return nil
}

// blobName maps a digest to its path in an OCI layout.
func blobName(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: digest %q: %w", ErrNotImage, d, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("digest %q: algorithm %w", d, sdk.ErrUnsupported)
	}
	return path.Join("blobs", string(d.Algorithm()), d.Encoded()), nil
}

// platformOf formats os/arch[/variant].
func platformOf(os, arch, variant string) string {
	p := os + "/" + arch
	if variant != "" {
		p += "/" + variant
	}
	return p
}

// matchPlatform reports whether have satisfies want ("os/arch[/variant]";
// a want without variant matches any variant).
func matchPlatform(want, have string) bool {
	w := strings.Split(want, "/")
	h := strings.Split(have, "/")
	if len(w) < 2 || len(h) < 2 || w[0] != h[0] || w[1] != h[1] {
		return false
	}
	return len(w) < 3 || (len(h) >= 3 && w[2] == h[2])
}

type candidate struct {
	desc     v1.Descriptor
	platform string
}

// choose picks the candidate for want (see UnpackOptions.Platform).
func choose(cands []candidate, want string) (candidate, error) {
	if len(cands) == 0 {
		return candidate{}, fmt.Errorf("%w: image has no manifests", ErrNotImage)
	}
	all := make([]string, len(cands))
	for i, c := range cands {
		all[i] = c.platform
	}
	sort.Strings(all)
	if want == "" {
		if len(cands) == 1 {
			return cands[0], nil
		}
		want = "linux/" + runtime.GOARCH
	}
	for _, c := range cands {
		if matchPlatform(want, c.platform) {
			return c, nil
		}
	}
	return candidate{}, fmt.Errorf("%w: no manifest for %q (image has %s)", ErrNoPlatform, want, strings.Join(all, ", "))
}

func resolveOCI(ctx context.Context, src source, want string) (*resolved, error) {
	var idx v1.Index
	if err := readJSON(ctx, src, "index.json", "", &idx); err != nil {
		return nil, err
	}
	var cands []candidate
	if err := collectManifests(ctx, src, idx.Manifests, 0, &cands); err != nil {
		return nil, err
	}
	// Manifests without a platform in their descriptor: ask their config.
	for i := range cands {
		if cands[i].platform != "" {
			continue
		}
		_, cfg, err := readManifest(ctx, src, cands[i].desc)
		if err != nil {
			return nil, err
		}
		cands[i].platform = platformOf(cfg.OS, cfg.Architecture, cfg.Variant)
	}
	c, err := choose(cands, want)
	if err != nil {
		return nil, err
	}
	m, cfg, err := readManifest(ctx, src, c.desc)
	if err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != 0 && len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("%w: config lists %d diff_ids for %d layers", ErrNotImage, len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	res := &resolved{platform: c.platform}
	for i, l := range m.Layers {
		if strings.Contains(l.MediaType, "foreign") || strings.Contains(l.MediaType, "nondistributable") {
			if len(l.URLs) > 0 {
				return nil, fmt.Errorf("layer %d: non-distributable layer with URLs: %w", i, sdk.ErrUnsupported)
			}
		}
		name, err := blobName(l.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		ref := layerRef{name: name, size: l.Size, digest: l.Digest}
		if len(cfg.RootFS.DiffIDs) != 0 {
			ref.diffID = cfg.RootFS.DiffIDs[i]
		}
		res.layers = append(res.layers, ref)
	}
	return res, nil
}

func collectManifests(ctx context.Context, src source, descs []v1.Descriptor, depth int, out *[]candidate) error {
	if depth > 4 {
		return fmt.Errorf("%w: image indexes nested too deep", ErrNotImage)
	}
	for _, d := range descs {
		switch d.MediaType {
		case v1.MediaTypeImageManifest, "application/vnd.docker.distribution.manifest.v2+json":
			p := ""
			if d.Platform != nil {
				p = platformOf(d.Platform.OS, d.Platform.Architecture, d.Platform.Variant)
			}
			*out = append(*out, candidate{desc: d, platform: p})
		case v1.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
			name, err := blobName(d.Digest)
			if err != nil {
				return err
			}
			var idx v1.Index
			if err := readJSON(ctx, src, name, d.Digest, &idx); err != nil {
				return err
			}
			if err := collectManifests(ctx, src, idx.Manifests, depth+1, out); err != nil {
				return err
			}
		}
		// Other artifacts (signatures, attestations) are not images.
	}
	return nil
}

func readManifest(ctx context.Context, src source, d v1.Descriptor) (*v1.Manifest, *v1.Image, error) {
	name, err := blobName(d.Digest)
	if err != nil {
		return nil, nil, err
	}
	var m v1.Manifest
	if err := readJSON(ctx, src, name, d.Digest, &m); err != nil {
		return nil, nil, fmt.Errorf("manifest: %w", err)
	}
	cname, err := blobName(m.Config.Digest)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	var cfg v1.Image
	if err := readJSON(ctx, src, cname, m.Config.Digest, &cfg); err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	return &m, &cfg, nil
}

// dockerManifest is one entry of a docker-archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func resolveDocker(ctx context.Context, src source, want string) (*resolved, error) {
	var ms []dockerManifest
	if err := readJSON(ctx, src, "manifest.json", "", &ms); err != nil {
		return nil, err
	}
	var cands []candidate
	cfgs := map[string]*v1.Image{}
	for i, m := range ms {
		cname, err := cleanName(m.Config)
		if err != nil || cname == "" {
			return nil, fmt.Errorf("%w: manifest.json entry %d: bad config path %q", ErrNotImage, i, m.Config)
		}
		var cfg v1.Image
		want := digest.Digest("")
		if d, ok := strings.CutPrefix(cname, "blobs/sha256/"); ok {
			want = digest.NewDigestFromEncoded(digest.SHA256, d)
		} else if d, ok := strings.CutSuffix(cname, ".json"); ok && len(d) == 64 {
			want = digest.NewDigestFromEncoded(digest.SHA256, d)
		}
		if err := readJSON(ctx, src, cname, want, &cfg); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		cfgs[cname] = &cfg
		cands = append(cands, candidate{
			desc:     v1.Descriptor{Annotations: map[string]string{"index": fmt.Sprint(i)}},
			platform: platformOf(cfg.OS, cfg.Architecture, cfg.Variant),
		})
	}
	c, err := choose(cands, want)
	if err != nil {
		return nil, err
	}
	var i int
	fmt.Sscan(c.desc.Annotations["index"], &i)
	m := ms[i]
	cfg := cfgs[mustClean(m.Config)]
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("%w: config lists %d diff_ids for %d layers", ErrNotImage, len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	res := &resolved{platform: c.platform}
	for j, l := range m.Layers {
		name, err := cleanName(l)
		if err != nil || name == "" {
			return nil, fmt.Errorf("%w: layer %d: bad path %q", ErrNotImage, j, l)
		}
		ref := layerRef{name: name, size: -1, diffID: cfg.RootFS.DiffIDs[j]}
		if d, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			ref.digest = digest.NewDigestFromEncoded(digest.SHA256, d)
		}
		if err := ref.diffID.Validate(); err != nil {
			return nil, fmt.Errorf("%w: layer %d diff_id: %w", ErrNotImage, j, err)
		}
		res.layers = append(res.layers, ref)
	}
	return res, nil
}

func mustClean(n string) string { c, _ := cleanName(n); return c }
