package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/constellation"
	"github.com/volt-cli/volt/engine/plan"
	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// composeFile is the stack's Constellation, kept for export.
func composeFile(root, stack string) string {
	return filepath.Join(stackDir(root, stack), "compose.yaml")
}

func saveCompose(root, stack string, f *constellation.File) error {
	data, err := constellation.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stackDir(root, stack), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(composeFile(root, stack), data, 0o644)
}

// ExportPlan describes a deployed stack as a Plan whose images are the
// workloads' current root trees (packed by the build's format plugin), so
// engine/build turns a running stack back into a bundle. Config overlays are
// already applied inside the trees, so the exported Constellation carries no
// configs. With includeVolumes, named volumes travel as volumes/<svc>/<vol>.
func (d *Deployer) ExportPlan(st *Stack, includeVolumes bool) (*plan.Plan, error) {
	data, err := os.ReadFile(composeFile(d.Root, st.Name))
	if err != nil {
		return nil, fmt.Errorf("export %s: the stack's compose.yaml: %w", st.Name, err)
	}
	f, err := constellation.Parse("compose.yaml", data)
	if err != nil {
		return nil, err
	}
	f.Configs = nil
	for _, c := range f.Containers {
		c.Configs = nil
	}
	for _, v := range f.VMs {
		v.Configs = nil
	}
	p := &plan.Plan{
		Name: st.Bundle.Name, Version: st.Bundle.Version,
		Description:   fmt.Sprintf("export of stack %s", st.Name),
		Platforms:     []string{st.Bundle.Platform},
		Root:          "/",
		Constellation: f,
	}
	for _, w := range st.Workloads {
		svc := &plan.Service{Name: w.Service, Type: w.Type, Images: map[string]*plan.ImageSource{}}
		switch w.Type {
		case bundle.TypeContainer:
			svc.Images[st.Bundle.Platform] = &plan.ImageSource{Kind: plan.KindRootfs, Path: w.Spec.Root}
		case bundle.TypeVM:
			if w.Spec.Image != "" {
				svc.Images[st.Bundle.Platform] = &plan.ImageSource{Kind: plan.KindDisk, Path: w.Spec.Image}
			}
			if w.Spec.Kernel != "" {
				svc.Boot = map[string]*plan.Boot{st.Bundle.Platform: {Kernel: w.Spec.Kernel, Initrd: w.Spec.Initrd, Cmdline: w.Spec.Cmdline}}
			}
			svc.CPU = w.Spec.CPUs
		}
		p.Services = append(p.Services, svc)
		if includeVolumes {
			for _, m := range w.Spec.Mounts {
				dir := filepath.Join(d.Root, "volumes", st.Name)
				if rel, err := filepath.Rel(dir, m.Source); err == nil && filepath.IsLocal(rel) && !strings.Contains(rel, string(filepath.Separator)) {
					p.Volumes = append(p.Volumes, plan.VolumeData{Service: w.Service, Name: rel, Dir: m.Source})
				}
			}
		}
	}
	sort.Slice(p.Services, func(i, j int) bool { return p.Services[i].Name < p.Services[j].Name })
	return p, nil
}

// restoreVolumes unpacks volumes/<svc>/<vol>.* entries into the stack's named
// volumes; a volume that already has data is left alone.
func (d *Deployer) restoreVolumes(ctx context.Context, r *bundle.Reader, stack string) error {
	for _, e := range r.Entries() {
		rest, ok := strings.CutPrefix(e.Name, "volumes/")
		if !ok {
			continue
		}
		_, file, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		vol := strings.SplitN(file, ".", 2)[0]
		dst := filepath.Join(d.Root, "volumes", stack, vol)
		if ents, err := os.ReadDir(dst); err == nil && len(ents) > 0 {
			d.notify("volume %s already has data: not restored from the bundle", vol)
			continue
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(d.Root, ".volume-*")
		if err != nil {
			return err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		if err := r.ExtractEntry(ctx, e.Name, tmp.Name()); err != nil {
			return err
		}
		format, _, err := bundle.DetectFormat(tmp.Name())
		if err != nil {
			return fmt.Errorf("volume %s: %w", e.Name, err)
		}
		f, name, err := d.Plugins.FormatFor(ctx, format, sdk.SandboxPolicy{Read: []string{tmp.Name()}, Write: []string{dst}})
		if err != nil {
			return err
		}
		if err := f.Unpack(ctx, sdk.UnpackRequest{Image: tmp.Name(), Format: format, Dest: dst}); err != nil {
			return fmt.Errorf("restore volume %s with %s: %w", vol, name, err)
		}
		d.notify("restored volume %s", vol)
	}
	return nil
}
