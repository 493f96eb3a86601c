// Package build executes a Plan into a .vbundle: it resolves every image
// source to a file (packing directories and running build steps through
// plugins), lays out the entries of FORMATS.md §1, and hands them to
// engine/bundle, which hashes each input once while writing it.
package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/constellation"
	"github.com/volt-cli/volt/engine/plan"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// ErrNoPacker is returned when a directory image needs a format plugin and none is available.
var ErrNoPacker = errors.New("no format plugin to pack directories")

// ErrNoBuilder is returned when a build() step needs a runtime plugin and none is available.
var ErrNoBuilder = errors.New("no runtime plugin to run build steps")

// Packer turns a directory image (OCI layout dir, rootfs dir) into an image
// file inside staging. It is implemented with the format-oci plugin.
type Packer interface {
	// Pack packs dir into staging as format ("oci" or "rootfs") for platform
	// and returns the path of the file it made.
	Pack(ctx context.Context, dir, format, platform, staging string, mtime time.Time) (string, error)
}

// Builder runs a plan.BuildStep and returns the path of the image file it made in staging.
type Builder interface {
	Build(ctx context.Context, step *plan.BuildStep, root, platform, staging string, mtime time.Time) (string, error)
}

// Store puts an image into a content-addressed store (Stellarium) and
// returns its "stellarium://<hex>" reference and "blake3:<hex>" digest.
// label ("<bundle>-<version>.<service>.<os>-<arch>") names the image, so the
// store can keep it alive until its owner lets it go.
type Store interface {
	PutFile(ctx context.Context, path, label string) (ref, digest string, size int64, err error)
}

// Options control one build.
type Options struct {
	// Output is the .vbundle path; it is written atomically.
	Output string
	// Platforms limits the bundle to these "os/arch" values (nil = all of the Plan's).
	Platforms []string
	// Created is the bundle's timestamp; zero means SOURCE_DATE_EPOCH, else
	// the newest mtime of the inputs, so rebuilding unchanged inputs gives the same bytes.
	Created time.Time
	// Tool goes into provenance (e.g. "volt 0.1.0").
	Tool string
	// Sign, when set, signs the exact bytes of bundle.json.
	Sign func(manifest []byte) ([]byte, error)
	// Packer packs directory images; nil means directories are refused with ErrNoPacker.
	Packer Packer
	// Builder runs build() steps; nil means they are refused with ErrNoBuilder.
	Builder Builder
	// CAS, when set, receives images; the bundle then holds casRef entries instead.
	CAS Store
	// PluginVersions goes into provenance.
	PluginVersions map[string]string
	// Progress reports bytes written.
	Progress func(done, total int64)
}

// Layout is what a build would put in a bundle: the manifest (without digests
// for files not yet hashed) and the entries with their sources. DryRun returns it.
type Layout struct {
	Manifest *bundle.Manifest
	Entries  []bundle.Entry
	// Compose is the bundle's compose.yaml as data. A dry run leaves the
	// compose.yaml entry without Data: marshaling is most of a dry run's
	// cost for thousands of services (constellation.Marshal(Compose) gives it).
	Compose *constellation.File
	// Stored are the image files put in the CAS instead of embedded: inputs
	// like the entries' files (they count for the bundle's created time).
	Stored []string
}

// stagingPrefix starts the name of a build's staging directory, made
// beside the output so packed images can be renamed or copied cheaply.
const stagingPrefix = ".volt-build-"

// Build executes p into opts.Output and returns the final manifest.
func Build(ctx context.Context, p *plan.Plan, opts Options) (*bundle.Manifest, error) {
	// Staging dirs of builds that were killed are removed here; a live
	// build holds a lock on its own (atomicfile.MkdirTemp).
	dir := filepath.Dir(absOr(opts.Output))
	_, _ = atomicfile.RemoveStale(dir, stagingPrefix) // best effort: MkdirTemp reports an unusable dir
	staging, hold, err := atomicfile.MkdirTemp(dir, stagingPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("build: staging dir: %w", err)
	}
	defer hold.Release()
	defer os.RemoveAll(staging)
	l, err := layout(ctx, p, opts, staging, true)
	if err != nil {
		return nil, err
	}
	created, err := createdTime(p, l, staging, opts)
	if err != nil {
		return nil, err
	}
	return bundle.Write(ctx, opts.Output, l.Manifest, l.Entries, bundle.WriteOptions{
		Created:  created,
		Sign:     opts.Sign,
		Progress: opts.Progress,
	})
}

// DryRun resolves the layout of p without packing, building or writing anything.
func DryRun(ctx context.Context, p *plan.Plan, opts Options) (*Layout, error) {
	return layout(ctx, p, opts, "", false)
}

func absOr(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// selectPlatforms returns the platforms to build, in the Plan's order.
func selectPlatforms(p *plan.Plan, want []string) ([]bundle.Platform, error) {
	if len(p.Platforms) == 0 {
		return nil, &plan.Error{Msg: "the bundle declares no platforms", Hint: `add platforms = ["linux/amd64"] to bundle()`}
	}
	chosen := p.Platforms
	if len(want) > 0 {
		chosen = nil
		for _, w := range want {
			found := false
			for _, have := range p.Platforms {
				if have == w {
					found = true
				}
			}
			if !found {
				return nil, &plan.Error{Msg: fmt.Sprintf("platform %q is not one the bundle declares (%s)", w, strings.Join(p.Platforms, ", "))}
			}
			chosen = append(chosen, w)
		}
	}
	out := make([]bundle.Platform, 0, len(chosen))
	for _, s := range chosen {
		pl, err := bundle.ParsePlatform(s)
		if err != nil {
			return nil, &plan.Error{Msg: err.Error()}
		}
		out = append(out, pl)
	}
	return out, nil
}

func layout(ctx context.Context, p *plan.Plan, opts Options, staging string, execute bool) (*Layout, error) {
	platforms, err := selectPlatforms(p, opts.Platforms)
	if err != nil {
		return nil, err
	}
	m := &bundle.Manifest{
		Version:       bundle.FormatVersion,
		Name:          p.Name,
		BundleVersion: p.Version,
		Description:   p.Description,
		Platforms:     platforms,
		Compose:       "compose.yaml",
		Services:      map[string]*bundle.Service{},
		Provenance: &bundle.Provenance{
			Recipe:  p.Recipe,
			Sources: p.Sources,
			Tool:    opts.Tool,
			Plugins: opts.PluginVersions,
		},
	}
	b := &builder{ctx: ctx, p: p, opts: opts, staging: staging, execute: execute}
	topo := bundleTopology(p.Constellation)
	if err := b.inlineEnvFiles(topo); err != nil {
		return nil, err
	}

	for _, s := range p.Services {
		svc := &bundle.Service{Type: s.Type, Images: map[string]*bundle.Image{}}
		if s.CPU != 0 || s.Memory != "" {
			svc.Resources = &bundle.Resources{CPU: s.CPU, Memory: s.Memory}
		}
		for _, pl := range platforms {
			src := s.Images[pl.String()]
			if src == nil {
				if len(s.Images) == 0 && len(s.Boot) > 0 {
					continue // a VM that boots a kernel only
				}
				return nil, &plan.Error{At: s.At, Msg: fmt.Sprintf("service %q has no image for platform %s (it has: %s)",
					s.Name, pl, strings.Join(sortedKeys(s.Images), ", "))}
			}
			img, err := b.image(s, src, pl)
			if err != nil {
				return nil, err
			}
			svc.Images[pl.String()] = img
		}
		for key, boot := range s.Boot {
			pl, err := bundle.ParsePlatform(key)
			if err != nil || !hasPlatform(platforms, pl) {
				continue
			}
			if svc.Boot == nil {
				svc.Boot = map[string]*bundle.Boot{}
			}
			bb := &bundle.Boot{Cmdline: boot.Cmdline}
			base := path.Join("images", s.Name, pl.FileString())
			bb.Kernel = base + ".vmlinuz"
			b.add(bundle.Entry{Name: bb.Kernel, Path: b.abs(boot.Kernel)})
			if boot.Initrd != "" {
				bb.Initrd = base + ".initrd"
				b.add(bundle.Entry{Name: bb.Initrd, Path: b.abs(boot.Initrd)})
			}
			svc.Boot[key] = bb
		}
		used := map[string]bool{}
		for _, ov := range s.Config {
			name := path.Join("config", s.Name, path.Base(ov.Source))
			for i := 2; used[name]; i++ {
				name = path.Join("config", s.Name, fmt.Sprintf("%d-%s", i, path.Base(ov.Source)))
			}
			used[name] = true
			if err := b.checkFile(ov.Source, ov.At); err != nil {
				return nil, err
			}
			b.add(bundle.Entry{Name: name, Path: b.abs(ov.Source), Compress: true})
			svc.Config = append(svc.Config, bundle.ConfigFile{Path: name, Target: ov.Target, Template: ov.Template})
		}
		m.Services[s.Name] = svc
		pointImages(topo, s.Name, svc)
	}
	for _, v := range p.Volumes {
		src := &plan.ImageSource{Kind: plan.KindRootfs, Path: v.Dir}
		file, err := b.resolve(&plan.Service{Name: v.Service}, src, platforms[0])
		if err != nil {
			return nil, fmt.Errorf("volume %s of %s: %w", v.Name, v.Service, err)
		}
		ext := ".tar"
		if b.execute {
			fi, err := b.stat(file)
			if err == nil {
				_, ext, err = b.detectFormat(file, fi)
			}
			if err != nil {
				return nil, fmt.Errorf("volume %s of %s: %w", v.Name, v.Service, err)
			}
		}
		b.add(bundle.Entry{Name: path.Join("volumes", v.Service, v.Name+ext), Path: file})
	}
	for _, h := range p.Hooks {
		if err := b.checkFile(h.Path, h.At); err != nil {
			return nil, err
		}
		name := "hooks/" + h.Kind + ".sh"
		if m.Hooks == nil {
			m.Hooks = map[string]string{}
		}
		m.Hooks[h.Kind] = name
		b.add(bundle.Entry{Name: name, Path: b.abs(h.Path), Compress: true})
	}
	var compose []byte
	if b.execute {
		if compose, err = constellation.Marshal(topo); err != nil {
			return nil, fmt.Errorf("build: write compose.yaml: %w", err)
		}
	}
	b.add(bundle.Entry{Name: "compose.yaml", Data: compose, Compress: true})
	sort.Slice(b.entries, func(i, j int) bool { return b.entries[i].Name < b.entries[j].Name })
	return &Layout{Manifest: m, Entries: b.entries, Compose: topo, Stored: b.stored}, nil
}

// bundleTopology copies the Constellation so image references can be
// rewritten for the bundle without touching the Plan.
func bundleTopology(f *constellation.File) *constellation.File {
	if f == nil {
		return &constellation.File{Version: "1"}
	}
	c := *f
	c.Containers = make(map[string]*constellation.Container, len(f.Containers))
	for k, v := range f.Containers {
		cc := *v
		c.Containers[k] = &cc
	}
	c.VMs = make(map[string]*constellation.VM, len(f.VMs))
	for k, v := range f.VMs {
		vv := *v
		c.VMs[k] = &vv
	}
	return &c
}

// inlineEnvFiles reads each container's env_file entries (paths relative to
// the stack root, in order, a later file winning) and merges them under its
// environment, which wins, as docker-compose does. The bundle's compose.yaml
// then carries the values and needs no file at deploy. Values stay literal:
// "$" is written "$$", which the deploy-time ${VAR} expansion reads as "$".
func (b *builder) inlineEnvFiles(topo *constellation.File) error {
	at := map[string]plan.Pos{}
	for _, s := range b.p.Services {
		at[s.Name] = s.At
	}
	for _, name := range sortedKeys(topo.Containers) {
		c := topo.Containers[name]
		if len(c.EnvFile) == 0 {
			continue
		}
		env := map[string]string{}
		for _, f := range c.EnvFile {
			data, err := os.ReadFile(b.abs(f))
			if errors.Is(err, fs.ErrNotExist) {
				return &plan.Error{At: at[name], Msg: fmt.Sprintf("container %s: env_file %q does not exist", name, f),
					Hint: "env_file paths are relative to the directory of the stack file or recipe"}
			}
			if err != nil {
				return &plan.Error{At: at[name], Msg: fmt.Sprintf("container %s: env_file %q: %v", name, f, err)}
			}
			vals, err := constellation.ParseEnvFile(f, data)
			if err != nil {
				return err
			}
			for k, v := range vals {
				env[k] = strings.ReplaceAll(v, "$", "$$")
			}
		}
		for k, v := range c.Environment {
			env[k] = v
		}
		c.Environment, c.EnvFile = env, nil
	}
	return nil
}

// pointImages makes a service's image in the bundle's compose.yaml name the
// bundle entries (or CAS references), one per platform, instead of the
// recipe's source paths, so the compose.yaml inside a bundle is
// self-contained.
func pointImages(topo *constellation.File, name string, svc *bundle.Service) {
	refs := map[string]string{}
	for pl, img := range svc.Images {
		if img.Path != nil {
			refs[pl] = *img.Path
		} else {
			refs[pl] = img.CASRef
		}
	}
	if len(refs) == 0 {
		return
	}
	if c := topo.Containers[name]; c != nil {
		c.Image = constellation.ImageRef{PerPlatform: refs}
	}
	if v := topo.VMs[name]; v != nil {
		v.Image = constellation.ImageRef{PerPlatform: refs}
	}
}

type builder struct {
	ctx     context.Context
	p       *plan.Plan
	opts    Options
	staging string
	execute bool
	entries []bundle.Entry
	stored  []string // image files put in the CAS
	// packed caches staged files by source so one directory packed for two
	// platforms is packed once per platform only.
	packed map[string]string
	// stats memoizes os.Stat per path and formats DetectFormat per file
	// version, so 1,000 services on one image file stat it once and open
	// and read it once.
	stats   map[string]statResult
	formats map[fileKey]detected
	images  []imageEntry // image files in the bundle, for sharedImage
}

type statResult struct {
	fi  os.FileInfo
	err error
}

// stat is os.Stat of path, once per build.
func (b *builder) stat(path string) (os.FileInfo, error) {
	if r, ok := b.stats[path]; ok {
		return r.fi, r.err
	}
	fi, err := os.Stat(path)
	if b.stats == nil {
		b.stats = map[string]statResult{}
	}
	b.stats[path] = statResult{fi, err}
	return fi, err
}

// fileKey names one version of a file: its path, size, mtime and inode.
type fileKey struct {
	path       string
	size       int64
	mtime      int64
	dev, inode uint64
}

// detected is a memoized DetectFormat answer.
type detected struct {
	format, ext string
	err         error
}

// detectFormat is bundle.DetectFormat of file (stat'ed as fi), computed
// once per file version within one build.
func (b *builder) detectFormat(file string, fi os.FileInfo) (string, string, error) {
	k := fileKey{path: file, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.dev, k.inode = uint64(st.Dev), st.Ino
	}
	if d, ok := b.formats[k]; ok {
		return d.format, d.ext, d.err
	}
	var d detected
	d.format, d.ext, d.err = bundle.DetectFormat(file)
	if b.formats == nil {
		b.formats = map[fileKey]detected{}
	}
	b.formats[k] = d
	return d.format, d.ext, d.err
}

func (b *builder) add(e bundle.Entry) { b.entries = append(b.entries, e) }

func (b *builder) abs(rel string) string {
	if filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(b.p.Root, filepath.FromSlash(rel))
}

func (b *builder) checkFile(rel string, at plan.Pos) error {
	fi, err := b.stat(b.abs(rel))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &plan.Error{At: at, Msg: fmt.Sprintf("file %q does not exist", rel)}
		}
		return &plan.Error{At: at, Msg: err.Error()}
	}
	if !fi.Mode().IsRegular() {
		return &plan.Error{At: at, Msg: fmt.Sprintf("%q is not a regular file", rel)}
	}
	return nil
}

// image resolves one platform's image source to a bundle entry (or CAS ref).
func (b *builder) image(s *plan.Service, src *plan.ImageSource, pl bundle.Platform) (*bundle.Image, error) {
	if src.Kind == plan.KindBuild && !b.execute {
		// Dry run: the step would run and its tree be packed as an OCI image.
		name := path.Join("images", s.Name, pl.FileString()+".tar")
		b.add(bundle.Entry{Name: name})
		return &bundle.Image{Path: &name, Format: bundle.FormatOCI}, nil
	}
	file, err := b.resolve(s, src, pl)
	if err != nil {
		return nil, err
	}
	var format, ext string
	fi, serr := b.stat(file)
	if serr == nil && fi.IsDir() {
		// Dry run of a directory image: it would be packed into an OCI tar.
		format, ext = bundle.FormatOCI, ".tar"
		if src.Kind == plan.KindRootfs {
			format = bundle.FormatRootfs
		}
	} else if serr != nil {
		return nil, &plan.Error{At: src.At, Msg: fmt.Sprintf("image %q: %v", src.Path, serr)}
	} else if format, ext, err = b.detectFormat(file, fi); err != nil {
		return nil, &plan.Error{At: src.At, Msg: fmt.Sprintf("image %q: %v", src.Path, err)}
	}
	if s.Type == plan.VM && format != bundle.FormatQCOW2 && format != bundle.FormatRaw {
		return nil, &plan.Error{At: src.At, Msg: fmt.Sprintf("vm %q: image %q is %s, want a qcow2 or raw disk", s.Name, src.Path, format)}
	}
	if s.Type == plan.Container && (format == bundle.FormatQCOW2 || format == bundle.FormatRaw) {
		return nil, &plan.Error{At: src.At, Msg: fmt.Sprintf("container %q: image %q is a %s disk, want an OCI image or rootfs tarball", s.Name, src.Path, format)}
	}
	if b.opts.CAS != nil && b.execute {
		label := fmt.Sprintf("%s-%s.%s.%s", b.p.Name, b.p.Version, s.Name, pl.FileString())
		ref, dg, size, err := b.opts.CAS.PutFile(b.ctx, file, label)
		if err != nil {
			return nil, fmt.Errorf("build: store image of %s (%s) in the CAS: %w", s.Name, pl, err)
		}
		b.stored = append(b.stored, file)
		return &bundle.Image{Format: format, Size: size, Digest: dg, CASRef: ref}, nil
	}
	name := path.Join("images", s.Name, pl.FileString()+ext)
	if shared := b.sharedImage(file, fi, name); shared != "" {
		return &bundle.Image{Path: &shared, Format: format}, nil
	}
	b.add(bundle.Entry{Name: name, Path: file})
	return &bundle.Image{Path: &name, Format: format}, nil
}

// resolve returns the path of an image file for src, packing or building when needed.
func (b *builder) resolve(s *plan.Service, src *plan.ImageSource, pl bundle.Platform) (string, error) {
	if src.Kind == plan.KindBuild {
		if src.Build == nil {
			return "", &plan.Error{At: src.At, Msg: "build() without a step"}
		}
		if b.opts.Builder == nil {
			return "", &plan.Error{At: src.At, Msg: ErrNoBuilder.Error(), Hint: "install the runtime-nspawn plugin (volt plugin list)"}
		}
		out, err := b.opts.Builder.Build(b.ctx, src.Build, b.p.Root, pl.String(), b.staging, time.Unix(0, 0))
		if err != nil {
			return "", fmt.Errorf("%s: build image of %q: %w", src.At, s.Name, err)
		}
		return out, nil
	}
	file := b.abs(src.Path)
	fi, err := b.stat(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", &plan.Error{At: src.At, Msg: fmt.Sprintf("image %q does not exist", src.Path)}
		}
		return "", &plan.Error{At: src.At, Msg: err.Error()}
	}
	if !fi.IsDir() {
		return file, nil
	}
	format := "rootfs"
	if src.Kind == plan.KindOCILayout {
		format = "oci"
	}
	if b.opts.Packer == nil {
		return "", &plan.Error{At: src.At, Msg: fmt.Sprintf("image %q is a directory; packing it needs the format-oci plugin, which was not found", src.Path),
			Hint: "give an image file (OCI/docker-archive/rootfs tarball), or install format-oci (volt plugin list)"}
	}
	if !b.execute {
		return file, nil
	}
	key := file + "\x00" + format + "\x00" + pl.String()
	if out, ok := b.packed[key]; ok {
		return out, nil
	}
	dir, err := os.MkdirTemp(b.staging, "pack-*")
	if err != nil {
		return "", err
	}
	out, err := b.opts.Packer.Pack(b.ctx, file, format, pl.String(), dir, time.Unix(0, 0))
	if err != nil {
		return "", fmt.Errorf("%s: pack %q: %w", src.At, src.Path, err)
	}
	if b.packed == nil {
		b.packed = map[string]string{}
	}
	b.packed[key] = out
	return out, nil
}

func hasPlatform(list []bundle.Platform, p bundle.Platform) bool {
	for _, q := range list {
		if q == p {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// createdTime picks the bundle timestamp: opts.Created, else
// SOURCE_DATE_EPOCH, else the newest modification time of the recipe sources
// and input files (whole seconds, UTC; files made in staging are not
// inputs), so that unchanged inputs give
// byte-identical bundles.
func createdTime(p *plan.Plan, l *Layout, staging string, opts Options) (time.Time, error) {
	if !opts.Created.IsZero() {
		return opts.Created.UTC().Truncate(time.Second), nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err != nil || sec < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want a non-negative integer of seconds", s)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	var newest time.Time
	consider := func(file string) {
		if fi, err := os.Stat(file); err == nil && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	for src := range p.Sources {
		if !strings.HasPrefix(src, "@") {
			consider(filepath.Join(p.Root, filepath.FromSlash(strings.TrimPrefix(src, "//"))))
		}
	}
	inputs := slices.Clone(l.Stored)
	for _, e := range l.Entries {
		inputs = append(inputs, e.Path)
	}
	for _, file := range inputs {
		if file != "" && !strings.HasPrefix(file, staging+string(filepath.Separator)) {
			consider(file)
		}
	}
	if newest.IsZero() {
		newest = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return newest.UTC().Truncate(time.Second), nil
}
