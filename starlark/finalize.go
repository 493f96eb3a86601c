package starlark

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	sl "go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/volt-cli/volt/engine/constellation"
	"github.com/volt-cli/volt/engine/plan"
)

// finish validates the declarations and assembles the Plan.
func (ev *evaluator) finish(recipe string) (*plan.Plan, error) {
	d := ev.d
	if d.bundle == nil {
		return nil, ev.diagPos(plan.Pos{File: d.entry, Line: 1, Col: 1}, "the recipe never calls bundle()",
			`declare the bundle once: bundle(name = "my-stack", version = "1.0.0")`)
	}
	names := make([]string, 0, len(d.services))
	for n := range d.services {
		names = append(names, n)
	}
	sort.Strings(names)
	if err := ev.checkServices(names); err != nil {
		return nil, err
	}
	cf := &constellation.File{Version: "1", Name: d.bundle.name, Description: d.bundle.description}
	if d.extra != nil {
		cf.Services, cf.Tasks, cf.Secrets = d.extra.Services, d.extra.Tasks, d.extra.Secrets
		if len(d.extra.Configs) > 0 {
			cf.Configs = map[string]*constellation.Config{}
			for k, v := range d.extra.Configs {
				cf.Configs[k] = v
			}
		}
	}
	if len(d.networks) > 0 {
		cf.Networks = d.networks
	}
	if len(d.volumes) > 0 {
		cf.Volumes = d.volumes
	}
	p := &plan.Plan{
		Name: d.bundle.name, Version: d.bundle.version, Description: d.bundle.description,
		Platforms: d.bundle.platforms, Root: ev.rootOrig, Constellation: cf, Recipe: recipe,
		Services: make([]*plan.Service, 0, len(names)), Sources: ev.sources,
	}
	if len(d.paramStrings) > 0 {
		p.Params = d.paramStrings
	}
	for _, n := range names {
		s := d.services[n]
		ps := &plan.Service{Name: n, Type: s.typ, Images: map[string]*plan.ImageSource{}, Config: s.config, At: s.at}
		ref := constellation.ImageRef{}
		if s.single != nil {
			ref.Single = refPath(s.single)
			for _, plat := range d.bundle.platforms {
				c := *s.single
				ps.Images[plat] = &c
			}
		} else if s.perPlatform != nil {
			ref.PerPlatform = map[string]string{}
			for plat, src := range s.perPlatform {
				ref.PerPlatform[plat] = refPath(src)
				ps.Images[plat] = src
			}
		}
		var cfgs []constellation.ConfigRef
		for _, o := range s.config {
			cfgs = append(cfgs, constellation.ConfigRef{Source: configName(cf, o.Source), Target: o.Target, Template: o.Template})
		}
		switch s.typ {
		case plan.Container:
			c := *s.container
			c.Image, c.Configs = ref, cfgs
			if cf.Containers == nil {
				cf.Containers = map[string]*constellation.Container{}
			}
			cf.Containers[n] = &c
			if c.Resources != nil {
				ps.CPU, ps.Memory = c.Resources.CPUs, c.Resources.Memory
			}
		case plan.VM:
			v := *s.vm
			v.Image, v.Configs = ref, cfgs
			if cf.VMs == nil {
				cf.VMs = map[string]*constellation.VM{}
			}
			cf.VMs[n] = &v
			ps.CPU, ps.Memory = float64(v.CPU), v.Memory
			if v.Kernel != "" {
				ps.Boot = map[string]*plan.Boot{}
				for _, plat := range d.bundle.platforms {
					ps.Boot[plat] = &plan.Boot{Kernel: v.Kernel, Initrd: v.Initrd, Cmdline: v.Cmdline}
				}
			}
		}
		if len(ps.Images) == 0 {
			ps.Images = nil
		}
		p.Services = append(p.Services, ps)
	}
	for _, k := range plan.HookKinds {
		if h, ok := d.hooks[k]; ok {
			p.Hooks = append(p.Hooks, h)
		}
	}
	for path, dg := range d.inputs {
		p.Inputs = append(p.Inputs, plan.Input{Path: path, Digest: dg})
	}
	sort.Slice(p.Inputs, func(i, j int) bool { return p.Inputs[i].Path < p.Inputs[j].Path })
	if err := cf.Validate(); err != nil {
		return nil, ev.constellationDiag(err)
	}
	return p, nil
}

// configName returns the name of the top-level config holding file rel in
// cf, adding one named after the path when there is none.
func configName(cf *constellation.File, rel string) string {
	for _, n := range sortedKeys(cf.Configs) {
		if c := cf.Configs[n]; c != nil && c.File == rel {
			return n
		}
	}
	base := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, rel)
	base = strings.TrimLeft(base, "._-")
	if len(base) > 56 {
		base = base[len(base)-56:]
	}
	if base == "" {
		base = "config"
	}
	name := base
	for i := 2; cf.Configs[name] != nil; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	if cf.Configs == nil {
		cf.Configs = map[string]*constellation.Config{}
	}
	cf.Configs[name] = &constellation.Config{File: rel}
	return name
}

// refPath is what the Constellation records for an image source. engine/build
// rewrites it to the image's path inside the bundle.
func refPath(src *plan.ImageSource) string {
	if src.Kind == plan.KindBuild {
		return "build:" + src.Build.Runtime
	}
	return src.Path
}

// checkServices checks platforms, dependencies and networks with positions.
func (ev *evaluator) checkServices(names []string) error {
	d := ev.d
	plats := d.bundle.platforms
	for _, n := range names {
		s := d.services[n]
		if s.perPlatform != nil {
			keys := sortedKeys(s.perPlatform)
			for _, k := range keys {
				if !slices.Contains(plats, k) {
					return ev.diagPos(s.perPlatform[k].At, fmt.Sprintf("service %q: platform %q is not in the bundle's platforms [%s]", n, k, strings.Join(plats, ", ")),
						fmt.Sprintf("add it: bundle(..., platforms = [..., %q]), or drop this image", k))
				}
			}
			for _, k := range plats {
				if _, ok := s.perPlatform[k]; !ok {
					return ev.diagPos(s.imageAt, fmt.Sprintf("service %q has no image for platform %q", n, k),
						"give an image for every platform in bundle(platforms = ...)")
				}
			}
		}
		var deps map[string]constellation.Dependency
		var nets []string
		if s.container != nil {
			deps, nets = s.container.DependsOn, s.container.Networks
		} else {
			deps, nets = s.vm.DependsOn, s.vm.Networks
		}
		for _, dep := range sortedKeys(deps) {
			if dep == n {
				return ev.diagPos(s.depsAt, fmt.Sprintf("service %q depends on itself", n), "")
			}
			if _, ok := d.services[dep]; !ok {
				if d.extra == nil || d.extra.Services[dep] == nil {
					return ev.diagPos(s.depsAt, fmt.Sprintf("service %q depends on unknown service %q%s", n, dep, meanHint(dep, names)), "")
				}
			}
		}
		for _, net := range nets {
			if _, ok := d.networks[net]; !ok {
				return ev.diagPos(s.at, fmt.Sprintf("service %q joins unknown network %q%s", n, net, meanHint(net, sortedKeys(d.networks))),
					fmt.Sprintf("declare it: network(%q)", net))
			}
		}
	}
	if cyc := findCycle(names, func(n string) []string {
		s := d.services[n]
		if s.container != nil {
			return sortedKeys(s.container.DependsOn)
		}
		return sortedKeys(s.vm.DependsOn)
	}); cyc != nil {
		s := d.services[cyc[0]]
		return ev.diagPos(orPos(s.depsAt, s.at), "dependency cycle: "+strings.Join(cyc, " -> "), "break the cycle: remove one depends_on entry")
	}
	return nil
}

func orPos(p, def plan.Pos) plan.Pos {
	if p.File != "" {
		return p
	}
	return def
}

// findCycle returns a dependency cycle as names (first repeated last), or nil.
func findCycle(names []string, deps func(string) []string) []string {
	const (
		white = iota
		grey
		black
	)
	color := make(map[string]int, len(names))
	known := make(map[string]bool, len(names))
	for _, n := range names {
		known[n] = true
	}
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		color[n] = grey
		stack = append(stack, n)
		for _, m := range deps(n) {
			if !known[m] {
				continue
			}
			switch color[m] {
			case grey:
				i := slices.Index(stack, m)
				return append(append([]string(nil), stack[i:]...), m)
			case white:
				if c := visit(m); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return nil
	}
	for _, n := range names {
		if color[n] == white {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// constellationDiag positions an error from constellation validation at the
// declaration of the service it names, else at bundle().
func (ev *evaluator) constellationDiag(err error) *Diagnostic {
	msg, hint := err.Error(), ""
	var ce *constellation.Error
	if errors.As(err, &ce) {
		msg, hint = ce.Msg, ce.Hint
	}
	at := ev.d.bundle.at
	for _, sec := range []string{"containers.", "vms."} {
		if rest, ok := strings.CutPrefix(msg, sec); ok {
			name := rest
			if i := strings.IndexAny(rest, ".: "); i >= 0 {
				name = rest[:i]
			}
			if s, ok := ev.d.services[name]; ok {
				at = s.at
			}
		}
	}
	return ev.diagPos(at, msg, hint)
}

// bConstellation implements constellation(path).
// warn gives each warning to opts.Warn once per evaluation.
func (ev *evaluator) warn(msgs []string) {
	if ev.opts.Warn == nil {
		return
	}
	if ev.warned == nil {
		ev.warned = map[string]bool{}
	}
	for _, m := range msgs {
		if !ev.warned[m] {
			ev.warned[m] = true
			ev.opts.Warn(m)
		}
	}
}

func (ev *evaluator) bConstellation(c *call) (sl.Value, error) {
	var rel string
	if c.has("path") {
		rel = c.str("path")
	} else if ev.opts.Constellation != "" {
		rel = filepath.ToSlash(ev.opts.Constellation)
	} else {
		found, err := constellation.FindFile(ev.root)
		if err != nil {
			re := errorf("no Constellation file in the recipe root (looked for %s)", strings.Join(constellation.FileNames, ", "))
			var ce *constellation.Error
			if errors.As(err, &ce) {
				re.hint = ce.Hint
			}
			return nil, re
		}
		rel, _ = filepath.Rel(ev.root, found)
		rel = filepath.ToSlash(rel)
	}
	abs, rerr := ev.openPath(rel)
	if rerr != nil {
		return nil, rerr.atPos(ev.argPos(c, "path", 0))
	}
	rel = path.Clean(rel)
	if st, err := os.Stat(abs); err != nil || !st.Mode().IsRegular() || st.Size() > maxSourceBytes {
		return nil, errorf("constellation %q: not a regular file of at most %d bytes", rel, maxSourceBytes).atPos(ev.argPos(c, "path", 0))
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, errorf("constellation %q: %v", rel, errors.Unwrap(err))
	}
	ev.text[rel] = data
	f, err := constellation.Parse(rel, data)
	if err != nil {
		var ce *constellation.Error
		if errors.As(err, &ce) {
			return nil, ev.diagPos(plan.Pos{File: rel, Line: ce.Line, Col: ce.Col}, ce.Msg, ce.Hint)
		}
		return nil, errorf("constellation %q: %v", rel, err)
	}
	if _, err := ev.input(rel, c.at); err != nil {
		return nil, err
	}
	ev.warn(f.Warnings)
	platSet := map[string]bool{}
	// userAt is where a workload's key was written in the user's file, so
	// errors about it point there, not into the recipe that read the file.
	userAt := func(name, key string) plan.Pos {
		if p := f.WorkloadPosition(name, key); p.Line > 0 {
			return plan.Pos{File: rel, Line: p.Line, Col: p.Col}
		}
		return c.at
	}
	declare := func(name, typ string, ref constellation.ImageRef, cfgs []constellation.ConfigRef) (*serviceDecl, error) {
		imageAt := userAt(name, "image")
		s := &serviceDecl{name: name, typ: typ, at: c.at, depsAt: c.at, imageAt: imageAt}
		kindOf := func(p string) (*plan.ImageSource, error) {
			return ev.guessImage(p, typ, imageAt)
		}
		if ref.Single != "" {
			src, err := kindOf(ref.Single)
			if err != nil {
				return nil, err
			}
			s.single = src
		}
		if len(ref.PerPlatform) > 0 {
			s.perPlatform = map[string]*plan.ImageSource{}
			for _, plat := range sortedKeys(ref.PerPlatform) {
				src, err := kindOf(ref.PerPlatform[plat])
				if err != nil {
					return nil, err
				}
				s.perPlatform[plat] = src
				platSet[plat] = true
			}
		}
		for _, cr := range cfgs {
			src := cr.Source
			if cfg, ok := f.Configs[src]; ok && cfg != nil && cfg.File != "" {
				src = cfg.File
			}
			p, err := ev.input(src, userAt(name, "configs"))
			if err != nil {
				return nil, err
			}
			s.config = append(s.config, plan.Overlay{Source: p, Target: cr.Target, Template: cr.Template, At: c.at})
		}
		return s, ev.declareService(s)
	}
	var names []string
	for _, n := range sortedKeys(f.Containers) {
		ct := *f.Containers[n]
		s, err := declare(n, plan.Container, ct.Image, ct.Configs)
		if err != nil {
			return nil, err
		}
		for i, ef := range ct.EnvFile {
			p, err := ev.input(ef, userAt(n, "env_file"))
			if err != nil {
				return nil, err
			}
			ct.EnvFile[i] = p
		}
		s.container = &ct
		names = append(names, n)
	}
	for _, n := range sortedKeys(f.VMs) {
		vm := *f.VMs[n]
		s, err := declare(n, plan.VM, vm.Image, vm.Configs)
		if err != nil {
			return nil, err
		}
		for _, p := range []*string{&vm.Kernel, &vm.Initrd} {
			if *p == "" {
				continue
			}
			clean, err := ev.input(*p, c.at)
			if err != nil {
				return nil, err
			}
			*p = clean
		}
		s.vm = &vm
		names = append(names, n)
	}
	for n, net := range f.Networks {
		if _, dup := ev.d.networks[n]; dup {
			return nil, errorf("network %q declared twice", n)
		}
		ev.d.networks[n] = net
	}
	for n, v := range f.Volumes {
		if _, dup := ev.d.volumes[n]; dup {
			return nil, errorf("volume %q declared twice", n)
		}
		ev.d.volumes[n] = v
	}
	ev.d.extra = &constellation.File{Services: f.Services, Tasks: f.Tasks, Configs: f.Configs, Secrets: f.Secrets}
	sort.Strings(names)
	plats := sortedKeys(platSet)
	if len(plats) == 0 {
		plats = []string{"linux/amd64"}
	}
	name := f.Name
	if name == "" {
		name = strings.ToLower(filepath.Base(ev.root))
	}
	return starlarkstruct.FromStringDict(starlarkstruct.Default, sl.StringDict{
		"name":        sl.String(name),
		"description": sl.String(f.Description),
		"platforms":   strValues(plats),
		"services":    strValues(names),
	}), nil
}

func strValues(ss []string) *sl.List {
	vs := make([]sl.Value, len(ss))
	for i, s := range ss {
		vs[i] = sl.String(s)
	}
	return sl.NewList(vs)
}

// guessImage makes an image source for a Constellation image path: an OCI
// layout directory, a rootfs directory, a VM disk, or an image file.
func (ev *evaluator) guessImage(rel, typ string, at plan.Pos) (*plan.ImageSource, error) {
	abs, rerr := ev.openPath(rel)
	if rerr != nil {
		return nil, rerr.atPos(at)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, errorf("image %q: %v", rel, err).atPos(at)
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(abs, "oci-layout")); err == nil {
			return ev.imageSource(plan.KindOCILayout, rel, true, false, at)
		}
		return ev.imageSource(plan.KindRootfs, rel, true, false, at)
	}
	kind := plan.KindFile
	switch strings.ToLower(path.Ext(rel)) {
	case ".qcow2", ".raw", ".img":
		kind = plan.KindDisk
	}
	if typ == plan.VM {
		kind = plan.KindDisk
	}
	return ev.imageSource(kind, rel, false, true, at)
}

// bGlob implements glob(include, exclude).
func (ev *evaluator) bGlob(c *call) (sl.Value, error) {
	inc, exc := c.strList("include"), c.strList("exclude")
	for _, p := range append(append([]string(nil), inc...), exc...) {
		if _, rerr := ev.cleanRel(p); rerr != nil {
			return nil, rerr.atPos(ev.argPos(c, "include", 0))
		}
		if _, err := path.Match(strings.ReplaceAll(p, "**", "*"), ""); err != nil {
			return nil, errorf("glob: bad pattern %q", p).atPos(ev.argPos(c, "include", 0))
		}
	}
	var out []string
	err := filepath.WalkDir(ev.root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable entries are skipped
		}
		if len(out) > maxItems {
			return fs.SkipAll
		}
		rel, _ := filepath.Rel(ev.root, p)
		rel = filepath.ToSlash(rel)
		if de.IsDir() || rel == "." {
			return nil
		}
		if !globAny(inc, rel) || globAny(exc, rel) {
			return nil
		}
		if de.Type()&fs.ModeSymlink != 0 {
			if _, rerr := ev.openPath(rel); rerr != nil {
				return nil // symlinks leading outside the root are not visible
			}
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		return nil, errorf("glob: %v", err)
	}
	if len(out) > maxItems {
		return nil, errorf("glob: more than %d files match", maxItems)
	}
	for _, rel := range out {
		if _, err := ev.input(rel, c.at); err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return strValues(out), nil
}

func globAny(patterns []string, rel string) bool {
	for _, p := range patterns {
		if globMatch(strings.Split(path.Clean(p), "/"), strings.Split(rel, "/")) {
			return true
		}
	}
	return false
}

// globMatch matches path segments against pattern segments; "**" matches
// any number of segments.
func globMatch(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if globMatch(pat[1:], segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}
