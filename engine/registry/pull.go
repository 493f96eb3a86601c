package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	godigest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/digest"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// Entry names a partial bundle keeps from the bundle it was cut from.
const (
	// OriginManifestName holds the original, signed bundle.json.
	OriginManifestName = "origin/bundle.json"
	// OriginSignatureName holds the original signatures/bundle.sig.
	OriginSignatureName = "origin/bundle.sig"
)

// PullOptions controls Pull.
type PullOptions struct {
	Options
	// Output is the file to write. When empty the bundle goes to
	// Dir/NAME-VERSION.vbundle.
	Output string
	// Dir is the directory for NAME-VERSION.vbundle ($VOLT_ROOT/bundles).
	Dir string
	// Platform ("os/arch"), when set, pulls only that platform's images and
	// boot files and writes a bundle marked partial (see docs/registry.md).
	Platform string
}

// PullResult describes a Pull.
type PullResult struct {
	// Path is the written .vbundle.
	Path string `json:"path"`
	// Reference is the pulled reference, and Digest its manifest digest.
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	// Name and Version are the bundle's.
	Name    string `json:"name"`
	Version string `json:"version"`
	// Bytes is the size of the written bundle; BytesReceived the blob
	// content downloaded.
	Bytes         int64 `json:"bytes"`
	BytesReceived int64 `json:"bytesReceived"`
	// Identical is true when the file was reassembled byte for byte from
	// the pushed one (artifact with a skeleton).
	Identical bool `json:"identical"`
	// Partial is true for a platform-filtered pull.
	Partial bool `json:"partial"`
	// Signed is true when the bundle carries signatures/bundle.sig (for a
	// partial bundle: origin/bundle.sig).
	Signed bool `json:"signed"`
}

// Pull downloads the bundle at ref and writes it atomically (temp file in
// the destination directory, fsync, rename). Every blob is checked against
// its sha256 and every entry against its BLAKE3 in bundle.json as it
// streams. An interrupted pull leaves no file at the destination, and
// leftovers of killed pulls (".volt-pull-<pid>-*") are removed by the next.
func Pull(ctx context.Context, ref string, opts PullOptions) (*PullResult, error) {
	res, err := pull(ctx, ref, opts)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return res, nil
}

// PullToTemp pulls ref into a new temporary directory and returns the
// bundle's path and a cleanup function removing it (for `volt bundle import
// oci://…`). opts.Output and opts.Dir are ignored.
func PullToTemp(ctx context.Context, ref string, opts PullOptions) (path string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "volt-pull-")
	if err != nil {
		return "", nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	cleanup = func() { os.RemoveAll(dir) }
	opts.Output = filepath.Join(dir, "bundle.vbundle")
	opts.Dir = ""
	res, err := Pull(ctx, ref, opts)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return res.Path, cleanup, nil
}

// fetched is a pulled artifact: its manifest, bundle.json and repository.
type fetched struct {
	repo     *remote.Repository
	host     string
	desc     ocispec.Descriptor
	art      *artifact
	config   []byte
	manifest *bundle.Manifest
}

// fetchArtifact resolves ref and reads its manifest and bundle.json.
func fetchArtifact(ctx context.Context, refStr string, o Options) (*fetched, error) {
	ref, err := ParseReference(refStr, o)
	if err != nil {
		return nil, err
	}
	if ref.Reference == "" {
		ref.Reference = "latest"
	}
	repo, err := o.repository(ref)
	if err != nil {
		return nil, err
	}
	fe := &fetched{repo: repo, host: ref.Registry}
	desc, rc, err := repo.FetchReference(ctx, ref.Reference)
	if err != nil {
		return nil, wrapErr(err, ref.Registry)
	}
	raw, err := readVerified(rc, desc, MaxManifestSize)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", wrapErr(err, ref.Registry))
	}
	fe.desc = desc
	if fe.art, err = parseArtifact(raw, desc.MediaType); err != nil {
		return nil, err
	}
	crc, err := repo.Fetch(ctx, fe.art.manifest.Config)
	if err != nil {
		return nil, fmt.Errorf("bundle.json: %w", wrapErr(err, ref.Registry))
	}
	fe.config, err = readVerified(crc, fe.art.manifest.Config, bundle.DefaultMaxManifestSize)
	crc.Close()
	if err != nil {
		return nil, fmt.Errorf("bundle.json: %w", wrapErr(err, ref.Registry))
	}
	if fe.manifest, err = bundle.ParseManifest(fe.config); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotBundle, err)
	}
	return fe, nil
}

// readVerified reads a small blob, bounded by limit, checking size and sha256.
func readVerified(r io.Reader, d ocispec.Descriptor, limit int64) ([]byte, error) {
	if d.Size > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrTooLarge, d.Digest, d.Size, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, d.Digest, limit)
	}
	if d.Digest != "" {
		if err := d.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDigest, err)
		}
		if got := d.Digest.Algorithm().FromBytes(b); got != d.Digest || (d.Size > 0 && int64(len(b)) != d.Size) {
			return nil, fmt.Errorf("%w: blob %s has digest %s, %d bytes", ErrDigest, d.Digest, got, len(b))
		}
	}
	return b, nil
}

func pull(ctx context.Context, ref string, opts PullOptions) (*PullResult, error) {
	fe, err := fetchArtifact(ctx, ref, opts.Options)
	if err != nil {
		return nil, err
	}
	m := fe.manifest
	out := opts.Output
	if out == "" {
		if opts.Dir == "" {
			return nil, errors.New("no output: set Output or Dir")
		}
		if err := bundle.CheckName(m.Name + "-" + m.BundleVersion + ".vbundle"); err != nil || filepath.Base(m.Name) != m.Name {
			return nil, fmt.Errorf("%w: bundle name %q version %q do not make a file name", ErrNotBundle, m.Name, m.BundleVersion)
		}
		out = filepath.Join(opts.Dir, m.Name+"-"+m.BundleVersion+".vbundle")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	removeStale(filepath.Dir(out))
	res := &PullResult{Path: out, Reference: ref, Digest: fe.desc.Digest.String(), Name: m.Name, Version: m.BundleVersion}
	var recv atomic.Int64
	switch {
	case opts.Platform != "":
		err = pullPartial(ctx, fe, out, opts, &recv)
		res.Partial = true
	case fe.art.skeleton != nil:
		err = assemble(ctx, fe, out, opts.Options, &recv)
		res.Identical = err == nil
	default:
		err = rebuild(ctx, fe, out, opts.Options, &recv)
	}
	res.BytesReceived = recv.Load()
	if err != nil {
		return nil, wrapErr(err, fe.host)
	}
	fi, err := os.Stat(out)
	if err != nil {
		return nil, err
	}
	res.Bytes = fi.Size()
	for _, l := range fe.art.manifest.Layers {
		if l.Annotations[AnnotationTitle] == bundle.SignatureName {
			res.Signed = true
		}
	}
	return res, nil
}

// fetchTo streams blob d into w, checking its size, sha256 and (when want
// is set) BLAKE3 as it goes.
func fetchTo(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor, want string, w io.Writer, prog *progress, recv *atomic.Int64) error {
	if err := d.Digest.Validate(); err != nil || d.Digest.Algorithm() != godigest.SHA256 {
		return fmt.Errorf("%w: blob digest %q is not a valid sha256 digest", ErrDigest, d.Digest)
	}
	rc, err := repo.Fetch(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	sh := sha256.New()
	var bh hash.Hash
	if want != "" {
		bh = digest.New()
	}
	buf := make([]byte, digest.BufSize)
	var n int64
	lr := io.LimitReader(rc, d.Size+1)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, rerr := io.ReadFull(lr, buf)
		if k > 0 {
			n += int64(k)
			if n > d.Size {
				return fmt.Errorf("%w: blob %s is longer than its %d bytes", ErrDigest, d.Digest, d.Size)
			}
			b := buf[:k]
			sh.Write(b)
			if bh != nil {
				bh.Write(b)
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			recv.Add(int64(k))
			prog.add(int64(k))
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("blob %s: %w", d.Digest, rerr)
		}
	}
	if n != d.Size {
		return fmt.Errorf("%w: blob %s has %d bytes, manifest says %d", ErrDigest, d.Digest, n, d.Size)
	}
	if got := hex.EncodeToString(sh.Sum(nil)); got != d.Digest.Encoded() {
		return fmt.Errorf("%w: blob %s has sha256 %s", ErrDigest, d.Digest, got)
	}
	if bh != nil {
		if got := digest.Format(bh.Sum(nil)); got != want {
			return fmt.Errorf("%w: entry %q: bundle.json says %s, content is %s", ErrDigest, d.Annotations[AnnotationTitle], want, got)
		}
	}
	return nil
}

// entryDigest returns the BLAKE3 bundle.json requires of the layer's entry
// ("" for the signature, which has none).
func entryDigest(m *bundle.Manifest, l ocispec.Descriptor) (string, error) {
	name := l.Annotations[AnnotationTitle]
	if name == bundle.SignatureName {
		return "", nil
	}
	if err := bundle.CheckName(name); err != nil {
		return "", fmt.Errorf("%w: layer %s: %v", ErrNotBundle, l.Digest, err)
	}
	d, ok := m.Integrity.Files[name]
	if !ok {
		return "", fmt.Errorf("%w: layer %q is not listed in bundle.json", ErrNotBundle, name)
	}
	return d, nil
}

// assemble writes the pushed .vbundle back byte for byte: each stored
// entry's layer at its offset, the skeleton in the gaps.
func assemble(ctx context.Context, fe *fetched, out string, o Options, recv *atomic.Int64) error {
	a := fe.art
	af, err := createTemp(out)
	if err != nil {
		return err
	}
	defer af.Abort()
	f := af.f
	if err := f.Truncate(a.size); err != nil {
		return err
	}
	var total int64
	for _, l := range a.manifest.Layers {
		if _, ok := l.Annotations[AnnotationOffset]; ok || l.MediaType == MediaTypeSkeleton {
			total += l.Size
		}
	}
	prog := newProgress(o.Progress, "download", total)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.concurrency())
	g.Go(func() error {
		gw := &gapWriter{f: f, gaps: gaps(a.holes, a.size)}
		if err := fetchTo(gctx, fe.repo, *a.skeleton, "", gw, prog, recv); err != nil {
			return fmt.Errorf("skeleton: %w", err)
		}
		return nil
	})
	for _, h := range a.holes {
		if h.idx < 0 {
			if _, err := f.WriteAt(fe.config, h.off); err != nil {
				return err
			}
			continue
		}
		l := a.manifest.Layers[h.idx]
		want, err := entryDigest(fe.manifest, l)
		if err != nil {
			return err
		}
		g.Go(func() error {
			// Writeback starts every few MiB, so the final fsync overlaps
			// the download instead of following it.
			w := &limitedWriterAt{f: f, off: h.off, end: h.off + h.size, wb: atomicfile.NewWriteback(f, h.off)}
			if err := fetchTo(gctx, fe.repo, l, want, w, prog, recv); err != nil {
				return err
			}
			atomicfile.StartWriteback(f, h.off, h.size)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Check what the layers do not cover (deflated entries live in the
	// skeleton) and that bundle.json is the one that was pushed.
	br, err := bundle.NewReader(f, a.size, out, bundle.ReadOptions{})
	if err != nil {
		return fmt.Errorf("%w: reassembled bundle: %v", ErrDigest, err)
	}
	if !bytes.Equal(br.ManifestBytes(), fe.config) {
		return fmt.Errorf("%w: reassembled bundle.json differs from the artifact's config", ErrDigest)
	}
	for _, e := range br.Entries() {
		if e.Stored || e.Name == bundle.ManifestName {
			continue
		}
		rc, err := br.OpenEntry(e.Name)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrDigest, err)
		}
	}
	return af.Commit()
}

// rebuild writes a bundle with bundle.Write from bundle.json and the layers
// of an artifact without a skeleton (for example one made by `oras push`).
// The result reproduces bundle.json (and so its signature) when the bundle
// was written by Volt; otherwise it fails with ErrNotReproducible if signed.
func rebuild(ctx context.Context, fe *fetched, out string, o Options, recv *atomic.Int64) error {
	return writeFromLayers(ctx, fe, out, o, recv, "")
}

// pullPartial writes a bundle holding only platform's images and boot files.
func pullPartial(ctx context.Context, fe *fetched, out string, opts PullOptions, recv *atomic.Int64) error {
	p, err := bundle.ParsePlatform(opts.Platform)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPlatform, err)
	}
	return writeFromLayers(ctx, fe, out, opts.Options, recv, p.String())
}

// writeFromLayers downloads the layers needed into a temporary directory
// beside out and writes the bundle with bundle.Write. With platform set,
// other platforms' images and boot files are left out, the manifest is
// marked partial and the original bundle.json and signature are kept as
// OriginManifestName / OriginSignatureName.
func writeFromLayers(ctx context.Context, fe *fetched, out string, o Options, recv *atomic.Int64, platform string) error {
	m := fe.manifest
	created, err := time.Parse(time.RFC3339, m.Created)
	if err != nil {
		return fmt.Errorf("%w: bundle.json created %q: %v", ErrNotBundle, m.Created, err)
	}
	drop := map[string]bool{}
	wm := m
	if platform != "" {
		wm, drop, err = filterPlatform(m, platform)
		if err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), fmt.Sprintf("%s%d-", tempPrefix, os.Getpid()))
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	type want struct {
		l      ocispec.Descriptor
		blake3 string
		path   string
	}
	var wants []*want
	var sig []byte
	var total int64
	for i, l := range fe.art.manifest.Layers {
		name := l.Annotations[AnnotationTitle]
		if l.MediaType == MediaTypeSkeleton || name == "" || drop[name] {
			continue
		}
		d, err := entryDigest(m, l)
		if err != nil {
			return err
		}
		wants = append(wants, &want{l: l, blake3: d, path: filepath.Join(tmp, strconv.Itoa(i))})
		total += l.Size
	}
	prog := newProgress(o.Progress, "download", total)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.concurrency())
	for _, w := range wants {
		g.Go(func() error {
			f, err := os.Create(w.path)
			if err != nil {
				return err
			}
			err = fetchTo(gctx, fe.repo, w.l, w.blake3, f, prog, recv)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var entries []bundle.Entry
	seen := map[string]bool{}
	for _, w := range wants {
		name := w.l.Annotations[AnnotationTitle]
		if seen[name] {
			return fmt.Errorf("%w: two layers titled %q", ErrNotBundle, name)
		}
		seen[name] = true
		if name == bundle.SignatureName {
			if sig, err = os.ReadFile(w.path); err != nil {
				return err
			}
			continue
		}
		entries = append(entries, bundle.Entry{Name: name, Path: w.path, Compress: w.l.Annotations[AnnotationCompress] == "deflate"})
	}
	wo := bundle.WriteOptions{Created: created}
	if platform != "" {
		entries = append(entries, bundle.Entry{Name: OriginManifestName, Data: fe.config, Compress: true})
		if sig != nil {
			entries = append(entries, bundle.Entry{Name: OriginSignatureName, Data: sig})
		}
	} else if sig != nil {
		wo.Sign = func(mb []byte) ([]byte, error) {
			if !bytes.Equal(mb, fe.config) {
				return nil, ErrNotReproducible
			}
			return sig, nil
		}
	}
	if _, err := bundle.Write(ctx, out, wm, entries, wo); err != nil {
		return err
	}
	return nil
}

// filterPlatform returns a copy of m keeping only platform's images and
// boot files, marked partial, and the entry names it leaves out.
func filterPlatform(m *bundle.Manifest, platform string) (*bundle.Manifest, map[string]bool, error) {
	found := false
	for _, p := range m.Platforms {
		if p.String() == platform {
			found = true
		}
	}
	if !found {
		var have []string
		for _, p := range m.Platforms {
			have = append(have, p.String())
		}
		return nil, nil, fmt.Errorf("%w: %s (bundle has %v)", ErrPlatform, platform, have)
	}
	c := *m
	c.Partial = true
	c.Platforms = []bundle.Platform{}
	for _, p := range m.Platforms {
		if p.String() == platform {
			c.Platforms = append(c.Platforms, p)
		}
	}
	drop := map[string]bool{}
	c.Services = make(map[string]*bundle.Service, len(m.Services))
	names := make([]string, 0, len(m.Services))
	for n := range m.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		svc := *m.Services[n]
		svc.Images = map[string]*bundle.Image{}
		for pk, img := range m.Services[n].Images {
			if pk == platform {
				svc.Images[pk] = img
			} else if p := img.EntryPath(); p != "" {
				drop[p] = true
			}
		}
		if len(svc.Images) == 0 && len(m.Services[n].Images) > 0 {
			return nil, nil, fmt.Errorf("%w: service %q has no image for %s", ErrPlatform, n, platform)
		}
		if m.Services[n].Boot != nil {
			svc.Boot = map[string]*bundle.Boot{}
			for pk, b := range m.Services[n].Boot {
				if pk == platform {
					svc.Boot[pk] = b
				} else if b != nil {
					drop[b.Kernel] = true
					if b.Initrd != "" {
						drop[b.Initrd] = true
					}
				}
			}
		}
		c.Services[n] = &svc
	}
	// A file still used by the kept platform stays.
	for _, svc := range c.Services {
		for _, img := range svc.Images {
			delete(drop, img.EntryPath())
		}
		for _, b := range svc.Boot {
			delete(drop, b.Kernel)
			delete(drop, b.Initrd)
		}
	}
	return &c, drop, nil
}

// tempFile is a temporary file beside its destination.
type tempFile struct {
	f    *os.File
	dest string
	done bool
}

func createTemp(dest string) (*tempFile, error) {
	f, err := os.CreateTemp(filepath.Dir(dest), fmt.Sprintf("%s%d-*", tempPrefix, os.Getpid()))
	if err != nil {
		return nil, err
	}
	return &tempFile{f: f, dest: dest}, nil
}

// Commit fsyncs, renames over dest and fsyncs the directory.
func (t *tempFile) Commit() error {
	if err := t.f.Sync(); err != nil {
		return err
	}
	if err := t.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(t.f.Name(), t.dest); err != nil {
		return err
	}
	t.done = true
	return atomicfile.SyncDir(filepath.Dir(t.dest))
}

// Abort removes the temporary file unless committed.
func (t *tempFile) Abort() {
	if !t.done {
		t.f.Close()
		os.Remove(t.f.Name())
	}
}

// gapWriter writes a stream sequentially into the gaps of a file.
type gapWriter struct {
	f    *os.File
	gaps [][2]int64
	i    int
	pos  int64 // offset within gaps[i]
}

func (g *gapWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if g.i >= len(g.gaps) {
			return n, fmt.Errorf("%w: skeleton is longer than the gaps it fills", ErrDigest)
		}
		gp := g.gaps[g.i]
		room := gp[1] - gp[0] - g.pos
		k := int64(len(p))
		if k > room {
			k = room
		}
		if _, err := g.f.WriteAt(p[:k], gp[0]+g.pos); err != nil {
			return n, err
		}
		n += int(k)
		p = p[k:]
		g.pos += k
		if g.pos == gp[1]-gp[0] {
			g.i++
			g.pos = 0
		}
	}
	return n, nil
}

// limitedWriterAt writes sequentially into [off, end) of f.
type limitedWriterAt struct {
	f        *os.File
	off, end int64
	wb       *atomicfile.Writeback // nil: no early writeback
}

func (w *limitedWriterAt) Write(p []byte) (int, error) {
	if w.off+int64(len(p)) > w.end {
		return 0, fmt.Errorf("%w: blob longer than its slot", ErrDigest)
	}
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	if w.wb != nil {
		w.wb.Advance(w.off)
	}
	return n, err
}
