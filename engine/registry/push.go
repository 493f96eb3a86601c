package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	godigest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/digest"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// PushOptions controls Push.
type PushOptions struct {
	Options
	// Tags are applied to the pushed manifest, in addition to the tag in the
	// reference (if any). With no tag at all the manifest is pushed by digest.
	Tags []string
}

// PushResult describes a Push.
type PushResult struct {
	// Reference is "host/repo" the bundle went to.
	Reference string `json:"reference"`
	// Digest is the OCI manifest's sha256 digest.
	Digest string `json:"digest"`
	// Tags are the tags that now point at Digest.
	Tags []string `json:"tags"`
	// Blobs is the number of distinct blobs (config, layers, skeleton).
	Blobs int `json:"blobs"`
	// BlobsSent is how many of them were uploaded; the rest were already there.
	BlobsSent int `json:"blobsSent"`
	// Bytes is the total size of the distinct blobs.
	Bytes int64 `json:"bytes"`
	// BytesSent is the blob content actually uploaded.
	BytesSent int64 `json:"bytesSent"`
	// ImageBytesSent is the part of BytesSent that is image or disk layers.
	ImageBytesSent int64 `json:"imageBytesSent"`
}

// pushBlob is one blob to push and how to read it.
type pushBlob struct {
	desc ocispec.Descriptor
	open func() (io.ReadCloser, error)
	// want is the BLAKE3 the content must have ("" = unchecked).
	want string
}

// Push uploads the bundle at path to ref ("host/repo[:tag]") as one OCI
// artifact and tags it. It reads each blob twice at most: once to compute
// its sha256 and BLAKE3 together (the BLAKE3 is checked against
// bundle.json, so a corrupt bundle is refused), and once to upload it if
// the registry does not already have it (checked with HEAD); blobs are
// uploaded while others are still being hashed.
func Push(ctx context.Context, path, ref string, opts PushOptions) (*PushResult, error) {
	res, err := push(ctx, path, ref, opts)
	if err != nil {
		return nil, fmt.Errorf("push %q to %s: %w", path, ref, err)
	}
	return res, nil
}

func push(ctx context.Context, path, refStr string, opts PushOptions) (*PushResult, error) {
	ref, err := ParseReference(refStr, opts.Options)
	if err != nil {
		return nil, err
	}
	tags := append([]string(nil), opts.Tags...)
	if ref.Reference != "" {
		if _, err := ref.Digest(); err == nil {
			return nil, fmt.Errorf("%w %q: push to a tag, not a digest", ErrReference, refStr)
		}
		tags = append([]string{ref.Reference}, tags...)
	}
	tags = dedupStrings(tags)
	for _, t := range tags {
		r := ref
		r.Reference = t
		if err := r.ValidateReferenceAsTag(); err != nil {
			return nil, fmt.Errorf("%w: tag %q: %v", ErrReference, t, err)
		}
	}
	br, err := bundle.Open(path)
	if err != nil {
		return nil, err
	}
	defer br.Close()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	blobs, man, err := planPush(br, f)
	if err != nil {
		return nil, err
	}
	repo, err := opts.repository(ref)
	if err != nil {
		return nil, err
	}
	res := &PushResult{Reference: ref.Registry + "/" + ref.Repository}
	if err := pushBlobs(ctx, repo, blobs, opts.Options, res); err != nil {
		return nil, wrapErr(err, ref.Registry)
	}
	// Copy the computed descriptors into the manifest.
	man.Config = blobs[0].desc
	for i := range man.Layers {
		man.Layers[i] = blobs[i+1].desc
	}
	raw, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: godigest.FromBytes(raw), Size: int64(len(raw)), ArtifactType: MediaTypeArtifact}
	if len(tags) == 0 {
		if err := repo.Push(ctx, mdesc, bytes.NewReader(raw)); err != nil {
			return nil, wrapErr(err, ref.Registry)
		}
	}
	for _, t := range tags {
		if err := repo.PushReference(ctx, mdesc, bytes.NewReader(raw), t); err != nil {
			return nil, wrapErr(fmt.Errorf("tag %s: %w", t, err), ref.Registry)
		}
	}
	res.Digest = mdesc.Digest.String()
	res.Tags = tags
	return res, nil
}

// planPush lists the blobs of the bundle (config first, then layers in
// manifest order) and returns the manifest with placeholders.
func planPush(br *bundle.Reader, f *os.File) ([]*pushBlob, *ocispec.Manifest, error) {
	m := br.Manifest()
	ks := kinds(m)
	var blobs []*pushBlob
	var holes [][2]int64 // stored-entry data ranges

	// stored returns the data range of a stored entry.
	stored := func(name string) (int64, int64, bool) {
		sr, err := br.EntryReaderAt(name)
		if err != nil {
			return 0, 0, false
		}
		_, off, n := sr.Outer()
		return off, n, true
	}
	cfg := &pushBlob{
		desc: ocispec.Descriptor{MediaType: MediaTypeManifest, Size: int64(len(br.ManifestBytes())), Annotations: map[string]string{AnnotationBLAKE3: bundle.ManifestDigest(br.ManifestBytes())}},
		open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(br.ManifestBytes())), nil },
	}
	if off, n, ok := stored(bundle.ManifestName); ok {
		cfg.desc.Annotations[AnnotationOffset] = strconv.FormatInt(off, 10)
		holes = append(holes, [2]int64{off, off + n})
	}
	blobs = append(blobs, cfg)
	for _, e := range br.Entries() {
		if e.Name == bundle.ManifestName {
			continue
		}
		if e.Name != bundle.SignatureName && len(e.Name) > len(bundle.SignaturesDir) && e.Name[:len(bundle.SignaturesDir)] == bundle.SignaturesDir {
			return nil, nil, fmt.Errorf("entry %q: only %s is supported under %s", e.Name, bundle.SignatureName, bundle.SignaturesDir)
		}
		k := kindOf(ks, e.Name)
		ann := map[string]string{AnnotationTitle: e.Name}
		if e.Digest != "" {
			ann[AnnotationBLAKE3] = e.Digest
		}
		if k.platform != "" {
			ann[AnnotationPlatform] = k.platform
		}
		name := e.Name
		b := &pushBlob{desc: ocispec.Descriptor{MediaType: k.mediaType, Size: e.Size, Annotations: ann}, want: e.Digest}
		if off, n, ok := stored(name); ok && e.Stored {
			ann[AnnotationOffset] = strconv.FormatInt(off, 10)
			holes = append(holes, [2]int64{off, off + n})
			b.open = func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(f, off, n)), nil }
		} else {
			ann[AnnotationCompress] = "deflate"
			b.open = func() (io.ReadCloser, error) { return br.OpenEntry(name) }
		}
		blobs = append(blobs, b)
	}
	// The skeleton: every byte outside the holes.
	sort.Slice(holes, func(i, j int) bool { return holes[i][0] < holes[j][0] })
	var gapsR [][2]int64
	var pos, skelSize int64
	for _, h := range holes {
		if h[0] > pos {
			gapsR = append(gapsR, [2]int64{pos, h[0]})
			skelSize += h[0] - pos
		}
		pos = h[1]
	}
	if pos < br.Size() {
		gapsR = append(gapsR, [2]int64{pos, br.Size()})
		skelSize += br.Size() - pos
	}
	blobs = append(blobs, &pushBlob{
		desc: ocispec.Descriptor{MediaType: MediaTypeSkeleton, Size: skelSize},
		open: func() (io.ReadCloser, error) {
			rs := make([]io.Reader, len(gapsR))
			for i, g := range gapsR {
				rs[i] = io.NewSectionReader(f, g[0], g[1]-g[0])
			}
			return io.NopCloser(io.MultiReader(rs...)), nil
		},
	})
	man := &ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: MediaTypeArtifact,
		Layers:       make([]ocispec.Descriptor, len(blobs)-1),
		Annotations: map[string]string{
			AnnotationCreated: m.Created,
			AnnotationName:    m.Name,
			AnnotationVersion: m.BundleVersion,
			AnnotationSize:    strconv.FormatInt(br.Size(), 10),
		},
	}
	return blobs, man, nil
}

// pushBlobs hashes and uploads the blobs, pipelined: each blob is read
// once to compute its sha256 and BLAKE3 together (the BLAKE3 is checked
// against bundle.json), then, unless an identical blob of this bundle is
// already being handled or the registry has it (HEAD), uploaded, while other
// blobs are still being hashed. Progress counts each byte twice (hash and
// upload, or hash and skip), against a total of twice the bundle's blobs.
func pushBlobs(ctx context.Context, repo *remote.Repository, blobs []*pushBlob, o Options, res *PushResult) error {
	var total int64
	for _, b := range blobs {
		total += b.desc.Size
	}
	prog := newProgress(o.Progress, "push", 2*total)
	var mu sync.Mutex
	claimed := map[godigest.Digest]bool{}
	var sent, imgSent, nSent atomic.Int64
	hashSem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.concurrency())
	for _, b := range blobs {
		g.Go(func() error {
			if !cachedDigest(o.DigestCache, b) {
				// Few hashers, so the first blobs are ready (and uploading)
				// while the rest are hashed, rather than all at the end.
				select {
				case hashSem <- struct{}{}:
				case <-gctx.Done():
					return gctx.Err()
				}
				err := hashBlob(gctx, b, prog)
				<-hashSem
				if err != nil {
					return err
				}
				rememberDigest(o.DigestCache, b)
			} else {
				prog.add(b.desc.Size)
			}
			desc := b.desc
			desc.Annotations = nil
			mu.Lock()
			dup := claimed[desc.Digest]
			if !dup {
				claimed[desc.Digest] = true
				res.Blobs++
				res.Bytes += desc.Size
			}
			mu.Unlock()
			if dup {
				prog.add(desc.Size)
				return nil
			}
			ok, err := repo.Exists(gctx, desc)
			if err != nil {
				return fmt.Errorf("check blob %s: %w", desc.Digest, err)
			}
			if ok {
				prog.add(desc.Size)
				return nil
			}
			rc, err := b.open()
			if err != nil {
				return err
			}
			defer rc.Close()
			cr := &countReader{r: rc, prog: prog}
			if err := repo.Blobs().Push(gctx, desc, cr); err != nil {
				return fmt.Errorf("upload %s (%s): %w", firstNonEmpty(b.desc.Annotations[AnnotationTitle], b.desc.MediaType), desc.Digest, err)
			}
			sent.Add(cr.n)
			nSent.Add(1)
			if isImage(b.desc.MediaType) {
				imgSent.Add(cr.n)
			}
			return nil
		})
	}
	err := g.Wait()
	res.BytesSent, res.ImageBytesSent, res.BlobsSent = sent.Load(), imgSent.Load(), int(nSent.Load())
	return err
}

// cachedDigest fills b's sha256 from the digest cache (keyed by the
// entry's BLAKE3 and size) and reports whether it did.
func cachedDigest(dir string, b *pushBlob) bool {
	if dir == "" || !digest.Valid(b.want) {
		return false
	}
	data, err := os.ReadFile(filepath.Join(dir, digest.Hex(b.want)))
	if err != nil {
		return false
	}
	var d string
	var size int64
	if _, err := fmt.Sscanf(string(data), "%s %d", &d, &size); err != nil || size != b.desc.Size {
		return false
	}
	dg, err := godigest.Parse(d)
	if err != nil || dg.Algorithm() != godigest.SHA256 {
		return false
	}
	b.desc.Digest = dg
	return true
}

// rememberDigest records b's sha256 in the digest cache (best effort).
func rememberDigest(dir string, b *pushBlob) {
	if dir == "" || !digest.Valid(b.want) {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err == nil {
		_ = atomicfile.WriteFile(filepath.Join(dir, digest.Hex(b.want)), []byte(fmt.Sprintf("%s %d\n", b.desc.Digest, b.desc.Size)), 0o644)
	}
}

// hashBlob sets b's digest and size from one read of its content, checking
// its BLAKE3 against b.want.
func hashBlob(ctx context.Context, b *pushBlob, prog *progress) error {
	rc, err := b.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	lr := io.LimitReader(rc, b.desc.Size)
	sh := sha256.New()
	bh := digest.New()
	buf := make([]byte, digest.BufSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, rerr := io.ReadFull(lr, buf)
		if k > 0 {
			sh.Write(buf[:k])
			bh.Write(buf[:k])
			n += int64(k)
			prog.add(int64(k))
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read %s: %w", firstNonEmpty(b.desc.Annotations[AnnotationTitle], b.desc.MediaType), rerr)
		}
	}
	if b.want != "" {
		if got := digest.Format(bh.Sum(nil)); got != b.want {
			return fmt.Errorf("entry %q: %w: bundle.json says %s, content is %s", b.desc.Annotations[AnnotationTitle], ErrDigest, b.want, got)
		}
	}
	b.desc.Size = n
	b.desc.Digest = godigest.NewDigestFromEncoded(godigest.SHA256, hex.EncodeToString(sh.Sum(nil)))
	return nil
}

func isImage(mt string) bool {
	return mt == MediaTypeImage || mt == MediaTypeDiskQCOW2 || mt == MediaTypeDiskRaw || mt == MediaTypeBoot
}

// countReader counts bytes read and reports progress.
type countReader struct {
	r    io.Reader
	n    int64
	prog *progress
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.prog.add(int64(n))
	return n, err
}

// progress serialises calls to an Options.Progress callback.
type progress struct {
	mu    sync.Mutex
	fn    func(Progress)
	phase string
	done  int64
	total int64
}

func newProgress(fn func(Progress), phase string, total int64) *progress {
	p := &progress{fn: fn, phase: phase, total: total}
	if fn != nil {
		fn(Progress{Phase: phase, Total: total})
	}
	return p
}

func (p *progress) add(n int64) {
	if p == nil || p.fn == nil || n == 0 {
		return
	}
	p.mu.Lock()
	p.done += n
	p.fn(Progress{Phase: p.phase, Done: p.done, Total: p.total})
	p.mu.Unlock()
}

func dedupStrings(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
