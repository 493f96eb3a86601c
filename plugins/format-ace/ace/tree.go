package ace

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/atomicfile"
	"go.yaml.in/yaml/v3"
)

// Tree file names (docs/plugins-formats.md).
const (
	ComposeFile = "compose.yaml"
	MetaFile    = "meta.json"
)

// Image formats recorded in meta.json.
const (
	FormatOCI    = "oci"
	FormatRootfs = "rootfs"
)

// Meta is meta.json: what the host needs for bundle.json that compose.yaml does not say.
type Meta struct {
	Name      string                 `json:"name"`
	Version   string                 `json:"version"`
	Platforms []string               `json:"platforms"`
	Services  map[string]MetaService `json:"services"`
}

// MetaService is one service's image in meta.json.
type MetaService struct {
	Platform string `json:"platform"` // "os/arch"
	Image    string `json:"image"`    // tree path: images/<svc>/<os>-<arch><ext>
	Format   string `json:"format"`   // FormatOCI or FormatRootfs
	Size     int64  `json:"size"`
}

// treeCompose is the part of a Constellation (FORMATS.md §2) this adapter
// reads and writes.
type treeCompose struct {
	Version    string                    `yaml:"version,omitempty"`
	Name       string                    `yaml:"name,omitempty"`
	Containers map[string]*treeContainer `yaml:"containers,omitempty"`
	VMs        map[string]yaml.Node      `yaml:"vms,omitempty"`
	Services   map[string]yaml.Node      `yaml:"services,omitempty"`
	Tasks      map[string]yaml.Node      `yaml:"tasks,omitempty"`
}

type treeContainer struct {
	Image       imageRef          `yaml:"image"`
	Command     []string          `yaml:"command,omitempty"`
	Environment map[string]string `yaml:"environment,omitempty"`
	Ports       []string          `yaml:"ports,omitempty"`
}

// imageRef is a Constellation image: one path or a map platform → path.
type imageRef struct {
	Single      string
	PerPlatform map[string]string
}

func (r *imageRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&r.Single)
	}
	return n.Decode(&r.PerPlatform)
}

func (r imageRef) MarshalYAML() (any, error) {
	if r.Single != "" {
		return r.Single, nil
	}
	return r.PerPlatform, nil
}

// tarFormat reports whether an image archive is an OCI layout / docker
// archive (FormatOCI) or a plain rootfs tarball (FormatRootfs), by scanning
// its tar headers for index.json, oci-layout or manifest.json at the top.
func tarFormat(r io.Reader) (string, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	var tr *tar.Reader
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return "", fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		tr = tar.NewReader(zr)
	case len(magic) == 4 && string(magic) == "\x28\xb5\x2f\xfd":
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
		if err != nil {
			return "", fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		tr = tar.NewReader(zr)
	default:
		tr = tar.NewReader(br)
	}
	format := FormatRootfs
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return format, nil
		}
		if err != nil {
			return "", fmt.Errorf("read tar: %w", err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "index.json", "oci-layout", "manifest.json":
			format = FormatOCI
		}
	}
}

// ToTree converts the ACE zip at zipPath into the vbundle tree layout in
// staging (compose.yaml, meta.json, images/<svc>/<os>-<arch><ext>) and
// returns the files written, relative to staging.
func ToTree(ctx context.Context, zipPath, staging string, lim Limits) ([]sdk.PackedFile, error) {
	a, err := OpenZip(zipPath, lim)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	meta := Meta{Name: a.Compose.Name, Version: a.Compose.Version, Services: map[string]MetaService{}}
	tc := treeCompose{Version: "1", Name: a.Compose.Name, Containers: map[string]*treeContainer{}}
	var files []sdk.PackedFile
	platforms := map[string]bool{}
	for _, name := range sortedKeys(a.Compose.Services) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := a.Compose.Services[name]
		osName, arch, _ := strings.Cut(s.Platform, "/")
		rel := path.Join("images", name, osName+"-"+strings.ReplaceAll(arch, "/", "-")+imageExt(s.Image))
		format, size, err := copyImage(ctx, a, name, filepath.Join(staging, filepath.FromSlash(rel)))
		if err != nil {
			return nil, fmt.Errorf("service %q: image %q: %w", name, s.Image, err)
		}
		meta.Services[name] = MetaService{Platform: s.Platform, Image: rel, Format: format, Size: size}
		platforms[s.Platform] = true
		tc.Containers[name] = &treeContainer{
			Image:       imageRef{PerPlatform: map[string]string{s.Platform: rel}},
			Command:     s.Command,
			Environment: s.Environment,
			Ports:       s.Ports,
		}
		files = append(files, sdk.PackedFile{Path: rel, Format: format, Meta: map[string]string{"service": name, "platform": s.Platform}})
	}
	meta.Platforms = sortedKeys(platforms)
	y, err := yaml.Marshal(tc)
	if err != nil {
		return nil, fmt.Errorf("encode compose.yaml: %w", err)
	}
	if err := writeFile(filepath.Join(staging, ComposeFile), y); err != nil {
		return nil, err
	}
	j, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(staging, MetaFile), append(j, '\n')); err != nil {
		return nil, err
	}
	files = append([]sdk.PackedFile{
		{Path: ComposeFile, Format: "compose", Meta: map[string]string{"name": meta.Name}},
		{Path: MetaFile, Format: "meta", Meta: map[string]string{"name": meta.Name, "version": meta.Version}},
	}, files...)
	return files, nil
}

// copyImage copies a service's image out of the zip (CRC-checked by
// archive/zip) to dst atomically, and detects its format.
func copyImage(ctx context.Context, a *Archive, svc, dst string) (string, int64, error) {
	rc, _, err := a.OpenImage(svc)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	var n int64
	err = atomicfile.Publish(dst, 0o644, func(f *os.File) error {
		n, err = io.Copy(f, ctxReader{ctx, rc})
		return err
	})
	if err != nil {
		if errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) {
			return "", 0, fmt.Errorf("%w: %w", sdk.ErrInvalid, err)
		}
		return "", 0, err
	}
	f, err := os.Open(dst)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	format, err := tarFormat(ctxReader{ctx, f})
	if err != nil {
		return "", 0, fmt.Errorf("%w: not a (compressed) tar: %w", ErrBadImagePath, err)
	}
	return format, n, nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func writeFile(p string, b []byte) error {
	return atomicfile.Publish(p, 0o644, func(f *os.File) error { _, err := f.Write(b); return err })
}

// zipEpoch is the fixed timestamp of every entry FromTree writes.
var zipEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// FromTree writes the vbundle tree in dir (compose.yaml, images/..., and
// optionally meta.json or bundle.json for name and version) as an ACE zip
// staging/<name>.zip: compose.json first, then images/<svc><ext>, sorted,
// with fixed timestamps. Only containers are representable; each must
// have exactly one image (one platform).
func FromTree(ctx context.Context, dir, staging string) ([]sdk.PackedFile, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open tree %q: %w", dir, err)
	}
	defer root.Close()
	yb, err := readSmall(root, ComposeFile)
	if err != nil {
		return nil, err
	}
	var tc treeCompose
	if err := yaml.Unmarshal(yb, &tc); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadCompose, ComposeFile, err)
	}
	if len(tc.VMs)+len(tc.Services)+len(tc.Tasks) > 0 {
		return nil, fmt.Errorf("%w: ACE holds containers only (this stack has vms, services or tasks)", sdk.ErrUnsupported)
	}
	name, version := tc.Name, ""
	var meta Meta
	var bj bundleJSON
	if b, err := readSmall(root, MetaFile); err == nil {
		if err := json.Unmarshal(b, &meta); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadCompose, MetaFile, err)
		}
		name, version = firstNonEmpty(meta.Name, name), meta.Version
	} else if b, err := readSmall(root, "bundle.json"); err == nil {
		if err := json.Unmarshal(b, &bj); err != nil {
			return nil, fmt.Errorf("%w: bundle.json: %w", ErrBadCompose, err)
		}
		name, version = firstNonEmpty(bj.Name, name), bj.BundleVersion
	}
	c := Compose{Name: name, Version: version, Services: map[string]*Service{}}
	images := map[string]string{} // zip path → tree path
	for _, svc := range sortedKeys(tc.Containers) {
		ct := tc.Containers[svc]
		if ct == nil || !validName(svc) {
			return nil, fmt.Errorf("%w: container %q", ErrBadCompose, svc)
		}
		// bundle.json's image entries are authoritative (compose.yaml may
		// still name the recipe's sources); then the compose.yaml image.
		platform, img := ct.Image.PerPlatform, ""
		if bs, ok := bj.Services[svc]; ok && len(bs.Images) > 0 {
			platform = map[string]string{}
			for plat, im := range bs.Images {
				if im.Path == nil {
					return nil, fmt.Errorf("%w: container %q: image for %s is a CAS reference; ACE embeds images", sdk.ErrUnsupported, svc, plat)
				}
				platform[plat] = *im.Path
			}
		} else if ct.Image.Single != "" {
			platform = map[string]string{meta.Services[svc].Platform: ct.Image.Single}
		}
		var plat string
		if len(platform) != 1 {
			return nil, fmt.Errorf("%w: container %q has %d images; ACE holds one platform per service (limit with --platforms)", ErrBadCompose, svc, len(platform))
		}
		for p, i := range platform {
			plat, img = p, i
		}
		rel, err := cleanEntry(img)
		if err != nil || !strings.HasPrefix(rel, "images/") || imageExt(rel) == "" {
			return nil, fmt.Errorf("%w: container %q: image %q", ErrBadImagePath, svc, img)
		}
		zipPath := "images/" + svc + imageExt(rel)
		images[zipPath] = rel
		c.Services[svc] = &Service{Image: zipPath, Platform: plat, Environment: ct.Environment, Ports: ct.Ports, Command: ct.Command}
	}
	a := &Archive{Compose: c, files: map[string]*zip.File{}}
	for zp := range images {
		a.files[zp] = nil
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	cj, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	out := name + ".zip"
	err = atomicfile.Publish(filepath.Join(staging, out), 0o644, func(f *os.File) error {
		zw := zip.NewWriter(f)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "compose.json", Method: zip.Deflate, Modified: zipEpoch})
		if err != nil {
			return err
		}
		if _, err := w.Write(append(cj, '\n')); err != nil {
			return err
		}
		for _, zp := range sortedKeys(images) {
			src, err := root.Open(filepath.FromSlash(images[zp]))
			if err != nil {
				return fmt.Errorf("image %q: %w", images[zp], err)
			}
			h := &zip.FileHeader{Name: zp, Method: zip.Store, Modified: zipEpoch}
			h.SetMode(0o644)
			w, err := zw.CreateHeader(h)
			if err == nil {
				_, err = io.Copy(w, ctxReader{ctx, src})
			}
			src.Close()
			if err != nil {
				return fmt.Errorf("image %q: %w", images[zp], err)
			}
		}
		return zw.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("write ACE zip: %w", err)
	}
	return []sdk.PackedFile{{Path: out, Format: "ace", Meta: map[string]string{"name": name, "version": version}}}, nil
}

// bundleJSON is the part of a vbundle's bundle.json (FORMATS.md §1) FromTree reads.
type bundleJSON struct {
	Name          string `json:"name"`
	BundleVersion string `json:"bundleVersion"`
	Services      map[string]struct {
		Images map[string]struct {
			Path *string `json:"path"`
		} `json:"images"`
	} `json:"services"`
}

func readSmall(root *os.Root, name string) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, DefaultLimits.MaxCompose+1))
	if err != nil {
		return nil, fmt.Errorf("tree: read %s: %w", name, err)
	}
	if int64(len(b)) > DefaultLimits.MaxCompose {
		return nil, fmt.Errorf("%w: %s larger than %d bytes", ErrTooLarge, name, DefaultLimits.MaxCompose)
	}
	return b, nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
