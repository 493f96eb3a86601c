package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// Compression choices for Pack.
const (
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// PackOptions tune PackOCI and PackRootfs. The zero value gives: mtime 0,
// platform linux/GOARCH, gzip, numeric owners preserved, tag "latest".
type PackOptions struct {
	// MTime (unix seconds) is stamped on every entry and on the config's "created".
	MTime int64
	// Platform is "os/arch[/variant]" for the image config and index.
	Platform string
	// Compression of the layer (or rootfs tarball): CompressionGzip (default,
	// read by every OCI tool including umoci 0.4) or CompressionZstd.
	Compression string
	// RootOwner normalises every entry to uid/gid 0; otherwise numeric
	// uid/gid are kept (user and group names are never recorded).
	RootOwner bool
	// Tag is the index's org.opencontainers.image.ref.name annotation.
	Tag string
	// Exclude lists slash-separated paths, relative to the tree, left out
	// with everything under them (e.g. ".volt", a runtime's private files).
	Exclude []string
	// Logf receives warnings, one per device node left out, naming it.
	// Nil discards them.
	Logf func(format string, args ...any)
}

// ParsePackOptions reads the sdk.PackRequest options: "mtime" (unix seconds),
// "platform", "compression" (gzip|zstd), "owner" (preserve|root), "tag",
// "exclude" (comma-separated relative paths).
func ParsePackOptions(m map[string]string) (PackOptions, error) {
	var o PackOptions
	if s := m["mtime"]; s != "" {
		t, err := strconv.ParseInt(s, 10, 64)
		if err != nil || t < 0 {
			return o, fmt.Errorf("option mtime %q: want unix seconds: %w", s, sdk.ErrInvalid)
		}
		o.MTime = t
	}
	o.Platform = m["platform"]
	o.Compression = m["compression"]
	switch m["owner"] {
	case "", "preserve":
	case "root":
		o.RootOwner = true
	default:
		return o, fmt.Errorf("option owner %q: want preserve or root: %w", m["owner"], sdk.ErrInvalid)
	}
	o.Tag = m["tag"]
	for _, x := range strings.Split(m["exclude"], ",") {
		if x = strings.Trim(strings.TrimSpace(x), "/"); x != "" {
			o.Exclude = append(o.Exclude, path.Clean(x))
		}
	}
	return o, o.normalise()
}

func (o *PackOptions) normalise() error {
	if o.Platform == "" {
		o.Platform = "linux/" + runtime.GOARCH
	}
	p := strings.Split(o.Platform, "/")
	if len(p) < 2 || len(p) > 3 || p[0] == "" || p[1] == "" {
		return fmt.Errorf("platform %q: want os/arch[/variant]: %w", o.Platform, sdk.ErrInvalid)
	}
	switch o.Compression {
	case "":
		o.Compression = CompressionGzip
	case CompressionGzip, CompressionZstd:
	default:
		return fmt.Errorf("compression %q: want gzip or zstd: %w", o.Compression, sdk.ErrInvalid)
	}
	if o.Tag == "" {
		o.Tag = "latest"
	}
	return nil
}

func (o *PackOptions) compressor(w io.Writer) (io.WriteCloser, error) {
	if o.Compression == CompressionZstd {
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	}
	return gzip.NewWriterLevel(w, gzip.DefaultCompression)
}

func (o *PackOptions) layerMediaType() string {
	if o.Compression == CompressionZstd {
		return v1.MediaTypeImageLayerZstd
	}
	return v1.MediaTypeImageLayerGzip
}

// WriteTree writes the tree under dir to w as a deterministic tar: entries in
// lexical path order, names relative without a leading "./", directories
// with a trailing "/", the given mtime on every entry, no user/group names,
// hard links recorded as links to the first path seen, sockets skipped,
// block and character devices skipped with a warning (Volt never creates
// device nodes from images, so an image does not carry them either).
func WriteTree(ctx context.Context, dir string, w io.Writer, o PackOptions) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	mtime := time.Unix(o.MTime, 0)
	buf := make([]byte, 256<<10)
	var walk func(rel string) error
	walk = func(rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return fmt.Errorf("read dir: %w", err)
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
		for _, e := range ents {
			name := path.Join(rel, e.Name())
			if slices.Contains(o.Exclude, name) {
				continue
			}
			full := filepath.Join(dir, filepath.FromSlash(name))
			fi, err := os.Lstat(full)
			if err != nil {
				return fmt.Errorf("stat %q: %w", name, err)
			}
			st, _ := fi.Sys().(*syscall.Stat_t)
			hdr := &tar.Header{Name: name, ModTime: mtime, Mode: int64(fi.Mode().Perm())}
			if fi.Mode()&os.ModeSetuid != 0 {
				hdr.Mode |= 0o4000
			}
			if fi.Mode()&os.ModeSetgid != 0 {
				hdr.Mode |= 0o2000
			}
			if fi.Mode()&os.ModeSticky != 0 {
				hdr.Mode |= 0o1000
			}
			if st != nil && !o.RootOwner {
				hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
			}
			m := fi.Mode()
			switch {
			case m.IsDir():
				hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
			case m.IsRegular():
				hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
				if st != nil && st.Nlink > 1 {
					key := [2]uint64{uint64(st.Dev), st.Ino}
					if first, ok := links[key]; ok {
						hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
					} else {
						links[key] = name
					}
				}
			case m&os.ModeSymlink != 0:
				hdr.Typeflag = tar.TypeSymlink
				if hdr.Linkname, err = os.Readlink(full); err != nil {
					return fmt.Errorf("readlink %q: %w", name, err)
				}
			case m&os.ModeNamedPipe != 0:
				hdr.Typeflag = tar.TypeFifo
			case m&os.ModeDevice != 0:
				if o.Logf != nil {
					kind, dev := "block", ""
					if m&os.ModeCharDevice != 0 {
						kind = "character"
					}
					if st != nil {
						dev = fmt.Sprintf(" (%d:%d)", major(st.Rdev), minor(st.Rdev))
					}
					o.Logf("leaving %s device %q%s out of the image: Volt never creates device nodes from images (the container gets its own /dev)", kind, name, dev)
				}
				continue
			default:
				continue // sockets and the like are not image content
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("tar header %q: %w", name, err)
			}
			if hdr.Typeflag == tar.TypeReg {
				f, err := os.Open(full)
				if err != nil {
					return fmt.Errorf("open %q: %w", name, err)
				}
				_, err = io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
				f.Close()
				if err != nil {
					return fmt.Errorf("copy %q (changed while packing?): %w", name, err)
				}
			}
			if m.IsDir() {
				if err := walk(name); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return err
	}
	return tw.Close()
}

func major(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func minor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }

// hashWriter counts and hashes what passes through it.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newHashWriter(w io.Writer) *hashWriter { return &hashWriter{w: w, h: sha256.New()} }

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

func (hw *hashWriter) digest() digest.Digest { return digest.NewDigest(digest.SHA256, hw.h) }

// PackRootfs writes dir as a deterministic compressed rootfs tarball at out.
func PackRootfs(ctx context.Context, dir, out string, o PackOptions) error {
	if err := o.normalise(); err != nil {
		return err
	}
	return atomicfile.Publish(out, 0o644, func(f *os.File) error {
		zw, err := o.compressor(f)
		if err != nil {
			return err
		}
		if err := WriteTree(ctx, dir, zw, o); err != nil {
			return fmt.Errorf("pack %q: %w", dir, err)
		}
		return zw.Close()
	})
}

// PackResult describes an image written by PackOCI.
type PackResult struct {
	Platform string
	Manifest digest.Digest // sha256 of the image manifest
	Layer    digest.Digest // sha256 of the compressed layer blob
}

// PackOCI writes dir as a deterministic single-layer OCI image layout in a
// tar at out (oci-layout, index.json, blobs/sha256/{config,manifest,layer}).
// The same tree and options always give byte-identical output.
func PackOCI(ctx context.Context, dir, out string, o PackOptions) (*PackResult, error) {
	if err := o.normalise(); err != nil {
		return nil, err
	}
	// The layer goes to a temp file first: its digest names it in the tar.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".layer-*")
	if err != nil {
		return nil, fmt.Errorf("create layer temp: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	blob := newHashWriter(tmp)
	zw, err := o.compressor(blob)
	if err != nil {
		return nil, err
	}
	diff := newHashWriter(zw)
	if err := WriteTree(ctx, dir, diff, o); err != nil {
		return nil, fmt.Errorf("pack %q: %w", dir, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress layer: %w", err)
	}

	p := strings.Split(o.Platform, "/")
	plat := v1.Platform{OS: p[0], Architecture: p[1]}
	if len(p) == 3 {
		plat.Variant = p[2]
	}
	created := time.Unix(o.MTime, 0).UTC()
	cfg := v1.Image{
		Created:  &created,
		Platform: plat,
		RootFS:   v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{diff.digest()}},
		History:  []v1.History{{Created: &created, CreatedBy: "volt format-oci pack"}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	layerDesc := v1.Descriptor{MediaType: o.layerMediaType(), Digest: blob.digest(), Size: blob.n}
	cfgDesc := v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cfgJSON), Size: int64(len(cfgJSON))}
	man := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, Config: cfgDesc, Layers: []v1.Descriptor{layerDesc}}
	manJSON, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	manDesc := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(manJSON), Size: int64(len(manJSON)),
		Platform: &plat, Annotations: map[string]string{v1.AnnotationRefName: o.Tag}}
	idxJSON, err := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{manDesc}})
	if err != nil {
		return nil, err
	}
	layoutJSON, err := json.Marshal(v1.ImageLayout{Version: v1.ImageLayoutVersion})
	if err != nil {
		return nil, err
	}

	type entry struct {
		name string
		data []byte
		file bool // the layer temp file
		size int64
	}
	blobs := []entry{
		{name: "blobs/sha256/" + cfgDesc.Digest.Encoded(), data: cfgJSON},
		{name: "blobs/sha256/" + manDesc.Digest.Encoded(), data: manJSON},
		{name: "blobs/sha256/" + layerDesc.Digest.Encoded(), file: true, size: blob.n},
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].name < blobs[j].name })
	entries := append(append([]entry{}, blobs...), entry{name: "index.json", data: idxJSON}, entry{name: "oci-layout", data: layoutJSON})
	mtime := time.Unix(o.MTime, 0)
	err = atomicfile.Publish(out, 0o644, func(f *os.File) error {
		tw := tar.NewWriter(f)
		for _, d := range []string{"blobs/", "blobs/sha256/"} {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime}); err != nil {
				return err
			}
		}
		for _, e := range entries {
			size := int64(len(e.data))
			if e.file {
				size = e.size
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: size, ModTime: mtime}); err != nil {
				return err
			}
			var r io.Reader
			if e.file {
				if _, err := tmp.Seek(0, io.SeekStart); err != nil {
					return err
				}
				r = tmp
			} else {
				r = bytes.NewReader(e.data)
			}
			if _, err := io.CopyN(tw, r, size); err != nil {
				return fmt.Errorf("write %q: %w", e.name, err)
			}
		}
		return tw.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("write image %q: %w", out, err)
	}
	return &PackResult{Platform: o.Platform, Manifest: manDesc.Digest, Layer: layerDesc.Digest}, nil
}
