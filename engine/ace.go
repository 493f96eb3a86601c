package engine

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/volt-cli/volt/engine/build"
	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/constellation"
	"github.com/volt-cli/volt/engine/plan"
	"github.com/volt-cli/volt/engine/sign"
	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// aceFormat is the plugin format name of ACE bundles (FORMATS.md §3).
const aceFormat = "ace"

// IsACE reports whether path is an ACE bundle: a ZIP with compose.json and
// without bundle.json.
func IsACE(path string) bool {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return false
	}
	defer zr.Close()
	hasCompose, hasManifest := false, false
	for _, f := range zr.File {
		switch f.Name {
		case "compose.json":
			hasCompose = true
		case bundle.ManifestName:
			hasManifest = true
		}
	}
	return hasCompose && !hasManifest
}

// aceMeta is the meta.json the format-ace plugin writes beside its tree.
type aceMeta struct {
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	Platforms []string `json:"platforms"`
	Services  map[string]struct {
		Platform string `json:"platform"`
		Image    string `json:"image"`
		Format   string `json:"format"`
	} `json:"services"`
}

// ConvertACE turns an ACE bundle into a .vbundle at out. The plugin only
// maps structure into a tree; the host hashes and writes the bundle.
func (e *Engine) ConvertACE(ctx context.Context, zipPath, out string, signKey string, passphrase func() ([]byte, error)) (*bundle.Manifest, error) {
	staging, err := os.MkdirTemp(filepath.Dir(absPath(out)), ".volt-ace-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	f, name, err := e.Plugins().FormatFor(ctx, aceFormat, formatPolicy([]string{absPath(zipPath)}, []string{staging}))
	if err != nil {
		return nil, err
	}
	tree := filepath.Join(staging, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return nil, err
	}
	if _, err := f.Convert(ctx, sdk.ConvertRequest{Bundle: absPath(zipPath), To: "vbundle-tree", Staging: tree}); err != nil {
		return nil, fmt.Errorf("convert %s with %s: %w", zipPath, name, err)
	}
	var meta aceMeta
	data, err := os.ReadFile(filepath.Join(tree, "meta.json"))
	if err != nil {
		return nil, fmt.Errorf("%s wrote no meta.json: %w", name, err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, fmt.Errorf("%s: meta.json: %w", name, err)
	}
	topo, err := constellation.Load(filepath.Join(tree, "compose.yaml"))
	if err != nil {
		return nil, fmt.Errorf("%s: compose.yaml: %w", name, err)
	}
	p := &plan.Plan{Name: meta.Name, Version: meta.Version, Platforms: meta.Platforms, Root: tree, Constellation: topo}
	if p.Version == "" {
		p.Version = "0.0.0"
	}
	for svc, s := range meta.Services {
		p.Services = append(p.Services, &plan.Service{Name: svc, Type: plan.Container,
			Images: map[string]*plan.ImageSource{s.Platform: {Kind: plan.KindFile, Path: s.Image}}})
	}
	sort.Slice(p.Services, func(i, j int) bool { return p.Services[i].Name < p.Services[j].Name })
	bopts := build.Options{Output: out, Tool: "volt " + Version + " (from ACE)", Created: modTime(zipPath)}
	if signKey != "" {
		s, err := sign.LoadSigner(signKey, passphrase)
		if err != nil {
			return nil, err
		}
		bopts.Sign = s.Sign
	}
	return build.Build(ctx, p, bopts)
}

func modTime(path string) time.Time {
	if fi, err := os.Stat(path); err == nil {
		return fi.ModTime()
	}
	return time.Unix(0, 0)
}

// WriteACE converts a .vbundle into an ACE zip at out (containers only).
func (e *Engine) WriteACE(ctx context.Context, vbundle, out string) error {
	r, err := bundle.Open(vbundle)
	if err != nil {
		return err
	}
	defer r.Close()
	// Every entry used below is verified as it is extracted.
	staging, err := os.MkdirTemp(filepath.Dir(absPath(out)), ".volt-ace-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	tree := filepath.Join(staging, "tree")
	m := r.Manifest()
	entries := []string{m.Compose}
	for _, svc := range m.Services {
		if svc.Type != bundle.TypeContainer {
			return fmt.Errorf("ACE bundles hold containers only; this bundle has a %s", svc.Type)
		}
		for _, img := range svc.Images {
			if img.Path == nil {
				return fmt.Errorf("ACE bundles embed their images; this bundle references the CAS (%s)", img.CASRef)
			}
			entries = append(entries, *img.Path)
		}
	}
	for _, name := range entries {
		dst := filepath.Join(tree, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := r.ExtractEntry(ctx, name, dst); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tree, bundle.ManifestName), r.ManifestBytes(), 0o644); err != nil {
		return err
	}
	f, name, err := e.Plugins().FormatFor(ctx, aceFormat, formatPolicy([]string{tree}, []string{staging}))
	if err != nil {
		return err
	}
	outDir := filepath.Join(staging, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		return err
	}
	files, err := f.Convert(ctx, sdk.ConvertRequest{Bundle: tree, To: aceFormat, Staging: outDir})
	if err != nil {
		return fmt.Errorf("write ACE with %s: %w", name, err)
	}
	if len(files) != 1 || !filepath.IsLocal(files[0].Path) {
		return fmt.Errorf("%s: wrote %d files, want one zip", name, len(files))
	}
	src, err := os.Open(filepath.Join(outDir, files[0].Path))
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = atomicfile.WriteFrom(out, src, 0o644)
	return err
}
