package starlark

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	sl "go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/volt-cli/volt/engine/constellation"
	"github.com/volt-cli/volt/engine/digest"
	"github.com/volt-cli/volt/engine/plan"
)

// decls is what a recipe has declared so far.
type decls struct {
	entry        string
	bundle       *bundleDecl
	paramValues  map[string]sl.Value
	paramStrings map[string]string
	services     map[string]*serviceDecl
	networks     map[string]*constellation.Network
	volumes      map[string]*constellation.Volume
	hooks        map[string]plan.Hook
	inputs       map[string]string
	extra        *constellation.File // host services, tasks, configs, secrets from constellation()
}

func newDecls() *decls {
	return &decls{
		paramValues:  map[string]sl.Value{},
		paramStrings: map[string]string{},
		services:     map[string]*serviceDecl{},
		networks:     map[string]*constellation.Network{},
		volumes:      map[string]*constellation.Volume{},
		hooks:        map[string]plan.Hook{},
		inputs:       map[string]string{},
	}
}

type bundleDecl struct {
	name, version, description string
	platforms                  []string
	at                         plan.Pos
}

type serviceDecl struct {
	name, typ   string
	at          plan.Pos
	depsAt      plan.Pos
	imageAt     plan.Pos
	single      *plan.ImageSource
	perPlatform map[string]*plan.ImageSource
	container   *constellation.Container
	vm          *constellation.VM
	config      []plan.Overlay
}

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	platformRE = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`)
	memoryRE   = regexp.MustCompile(`^[0-9]+[KMGT]?$`)
	restarts   = []string{"no", "always", "on-failure", "unless-stopped"}
	runtimes   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

func validName(v sl.Value) error {
	s, _ := sl.AsString(v)
	if !nameRE.MatchString(s) {
		return fmt.Errorf("invalid name %q: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit", s)
	}
	return nil
}

func validPlatforms(v sl.Value) error {
	for _, p := range strList(v) {
		if !platformRE.MatchString(p) {
			return fmt.Errorf("invalid platform %q: want \"os/arch\", e.g. \"linux/amd64\"", p)
		}
	}
	if len(strList(v)) == 0 {
		return fmt.Errorf("platforms must not be empty")
	}
	return nil
}

func validMemory(v sl.Value) error {
	s, _ := sl.AsString(v)
	if !memoryRE.MatchString(s) {
		return fmt.Errorf("invalid memory %q: want a size such as \"512M\" or \"2G\"", s)
	}
	return nil
}

func validAbs(v sl.Value) error {
	s, _ := sl.AsString(v)
	if !path.IsAbs(s) {
		return fmt.Errorf("target %q must be an absolute path inside the workload", s)
	}
	return nil
}

func oneOf(choices ...string) func(sl.Value) error {
	return func(v sl.Value) error {
		s, _ := sl.AsString(v)
		if !slices.Contains(choices, s) {
			return fmt.Errorf("%q is not one of %s%s", s, strings.Join(choices, ", "), meanHint(s, choices))
		}
		return nil
	}
}

// builtinTable is the recipe builtin catalogue (RECIPES.md).
var builtinTable []*Builtin

func init() {
	builtinTable = []*Builtin{
		{Name: "bundle", fn: (*evaluator).bBundle,
			Doc: "Declares the bundle. Every recipe calls it exactly once.",
			Params: []Param{
				{Name: "name", Type: TStr, Required: true, Positional: true, Doc: "bundle name", validate: validName},
				{Name: "version", Type: TStr, Doc: "bundle version; when omitted, the value of the `version` parameter (which must then be declared)"},
				{Name: "platforms", Type: TStrList, Default: `["linux/amd64"]`, Doc: "\"os/arch\" platforms the bundle carries images for", validate: validPlatforms},
				{Name: "description", Type: TStr, Doc: "one-line description"},
				{Name: "params", Type: TParams, Doc: "recipe parameters settable with `--set KEY=VALUE`, e.g. `{\"replicas\": param.int(default = 1)}`; read them as `params.KEY`"},
			}},
		{Name: "container", fn: (*evaluator).bContainer, Returns: "the service name",
			Doc: "Declares a container service (systemd-nspawn).",
			Params: []Param{
				{Name: "name", Type: TStr, Required: true, Positional: true, Doc: "service name, unique among containers and VMs", validate: validName},
				{Name: "image", Type: TImage, Required: true, Doc: "the image: an image source (`oci_layout`, `docker_archive`, `rootfs`, `build`, or a path string for an image file), or a dict from platform to image source"},
				{Name: "command", Type: TStrList, Doc: "command and arguments"},
				{Name: "entrypoint", Type: TStrList, Doc: "entrypoint override"},
				{Name: "working_dir", Type: TStr, Doc: "working directory inside the container"},
				{Name: "user", Type: TStr, Doc: "user to run as"},
				{Name: "environment", Type: TStrDict, Doc: "environment variables; `${VAR:-default}` is substituted at deploy"},
				{Name: "env_file", Type: TStrList, Doc: "environment files (relative to the root), recorded as inputs; their variables go into the bundle under environment"},
				{Name: "ports", Type: TStrList, Doc: "published ports, \"HOST:CONTAINER[/proto]\""},
				{Name: "networks", Type: TStrList, Doc: "networks to join (declared with `network`)"},
				{Name: "volumes", Type: TStrList, Doc: "volume mounts, \"NAME:/path[:ro]\""},
				{Name: "depends_on", Type: TDeps, Doc: "services started first: a list of names, or a dict from name to condition (service_started, service_healthy, service_completed_successfully)"},
				{Name: "healthcheck", Type: TStruct, Doc: "dict with test (list of str), interval, timeout, retries, start_period"},
				{Name: "restart", Type: TStr, Doc: "restart policy: no, always, on-failure, unless-stopped", validate: oneOf(restarts...)},
				{Name: "resources", Type: TStruct, Doc: "dict with memory (str) and cpus (float)"},
				{Name: "security", Type: TStruct, Doc: "dict with landlock (default, strict, none or a profile name), seccomp (default, unconfined or a profile path), no_new_privileges (bool, default true), writable (list of str)"},
				{Name: "cap_add", Type: TStrList, Doc: "capabilities added to docker's default set, e.g. [\"NET_ADMIN\"]"},
				{Name: "cap_drop", Type: TStrList, Doc: "capabilities dropped from docker's default set (\"ALL\" drops every one)"},
				{Name: "privileged", Type: TBool, Doc: "every capability and no seccomp filter; import needs --allow-privileged"},
				{Name: "read_only", Type: TBool, Doc: "mount the container's root read-only"},
				{Name: "tmpfs", Type: TStrList, Doc: "container paths that get a fresh tmpfs"},
				{Name: "config", Type: TOverlays, Doc: "config overlays made with `overlay`"},
			}},
		{Name: "vm", fn: (*evaluator).bVM, Returns: "the service name",
			Doc: "Declares a virtual machine service (QEMU). It boots `image`, or `kernel` (+ `initrd`, `cmdline`).",
			Params: []Param{
				{Name: "name", Type: TStr, Required: true, Positional: true, Doc: "service name, unique among containers and VMs", validate: validName},
				{Name: "image", Type: TImage, Doc: "disk image: `disk(...)`, a path, or a dict from platform to image source"},
				{Name: "cpu", Type: TInt, Default: "1", Doc: "virtual CPUs"},
				{Name: "memory", Type: TStr, Default: `"512M"`, Doc: "memory size", validate: validMemory},
				{Name: "kernel", Type: TStr, Doc: "kernel for direct boot (relative to the root), recorded as an input"},
				{Name: "initrd", Type: TStr, Doc: "initrd for direct boot, recorded as an input"},
				{Name: "cmdline", Type: TStr, Doc: "kernel command line"},
				{Name: "ports", Type: TStrList, Doc: "published ports"},
				{Name: "networks", Type: TStrList, Doc: "networks to join"},
				{Name: "environment", Type: TStrDict, Doc: "environment for hooks and templates"},
				{Name: "depends_on", Type: TDeps, Doc: "services started first"},
				{Name: "config", Type: TOverlays, Doc: "config overlays made with `overlay`"},
			}},
		{Name: "network", fn: (*evaluator).bNetwork,
			Doc: "Declares a virtual network between workloads.",
			Params: []Param{
				{Name: "name", Type: TStr, Required: true, Positional: true, Doc: "network name", validate: validName},
				{Name: "subnet", Type: TStr, Doc: "CIDR subnet, e.g. \"10.89.0.0/24\""},
				{Name: "internal", Type: TBool, Default: "False", Doc: "no route to the outside"},
			}},
		{Name: "volume", fn: (*evaluator).bVolume,
			Doc: "Declares named persistent storage.",
			Params: []Param{
				{Name: "name", Type: TStr, Required: true, Positional: true, Doc: "volume name", validate: validName},
				{Name: "driver", Type: TStr, Doc: "volume driver"},
			}},
		{Name: "hook", fn: (*evaluator).bHook,
			Doc: "Declares a lifecycle script, run at deploy. The script is recorded as an input.",
			Params: []Param{
				{Name: "kind", Type: TStr, Required: true, Positional: true, Doc: "one of " + strings.Join(plan.HookKinds, ", "), validate: oneOf(plan.HookKinds...)},
				{Name: "path", Type: TStr, Required: true, Positional: true, Doc: "the script, relative to the root"},
			}},
		{Name: "overlay", fn: (*evaluator).bOverlay, Returns: "an overlay for a service's `config`",
			Doc: "A config file copied over a service's image at deploy. The source is recorded as an input.",
			Params: []Param{
				{Name: "src", Type: TStr, Required: true, Positional: true, Doc: "source file, relative to the root"},
				{Name: "target", Type: TStr, Required: true, Positional: true, Doc: "absolute path inside the workload", validate: validAbs},
				{Name: "template", Type: TBool, Default: "False", Doc: "substitute `${VAR}` at deploy"},
			}},
		{Name: "constellation", fn: (*evaluator).bConstellation,
			Returns: "a struct with name, description, platforms (sorted) and services (sorted names)",
			Doc:     "Reads a Constellation file and declares every container, VM, network and volume it holds.",
			Params: []Param{
				{Name: "path", Type: TStr, Positional: true, Default: "the first of volt-compose.yaml, volt-compose.yml, Voltfile", Doc: "the Constellation file, relative to the root"},
			}},
		{Name: "oci_layout", fn: imageBuiltin(plan.KindOCILayout, true, false), Returns: "an image source",
			Doc:    "An OCI image layout directory (packed by the format-oci plugin).",
			Params: []Param{{Name: "dir", Type: TStr, Required: true, Positional: true, Doc: "the layout directory, relative to the root"}}},
		{Name: "docker_archive", fn: imageBuiltin(plan.KindDockerArchive, false, true), Returns: "an image source",
			Doc:    "A docker-archive tarball (`docker save`).",
			Params: []Param{{Name: "path", Type: TStr, Required: true, Positional: true, Doc: "the tarball, relative to the root"}}},
		{Name: "rootfs", fn: imageBuiltin(plan.KindRootfs, true, true), Returns: "an image source",
			Doc:    "A root filesystem: a tarball or a directory.",
			Params: []Param{{Name: "path_or_dir", Type: TStr, Required: true, Positional: true, Doc: "the tarball or directory, relative to the root"}}},
		{Name: "disk", fn: imageBuiltin(plan.KindDisk, false, true), Returns: "an image source",
			Doc:    "A VM disk image (qcow2 or raw).",
			Params: []Param{{Name: "path", Type: TStr, Required: true, Positional: true, Doc: "the disk file, relative to the root"}}},
		{Name: "build", fn: (*evaluator).bBuild, Returns: "an image source (a handle; nothing runs during evaluation)",
			Doc: "An image made by running commands on a base image in a runtime plugin, network off, when the bundle is built.",
			Params: []Param{
				{Name: "base", Type: TImageBase, Required: true, Doc: "the base image source"},
				{Name: "run", Type: TArgvList, Required: true, Doc: "commands, each an argv list, run in order"},
				{Name: "runtime", Type: TStr, Default: `"nspawn"`, Doc: "runtime plugin that runs the steps", validate: func(v sl.Value) error {
					s, _ := sl.AsString(v)
					if !runtimes.MatchString(s) {
						return fmt.Errorf("invalid runtime name %q", s)
					}
					return nil
				}},
				{Name: "env", Type: TStrDict, Doc: "environment for the commands"},
				{Name: "workdir", Type: TStr, Doc: "working directory for the commands"},
			}},
		{Name: "glob", fn: (*evaluator).bGlob, Returns: "sorted list of matching file paths, relative to the root",
			Doc: "Declares the files under the root matching patterns as inputs (hashed into the Plan). `*` matches within a path segment, `**` any number of segments.",
			Params: []Param{
				{Name: "include", Type: TStrOrList, Required: true, Positional: true, Doc: "patterns to include"},
				{Name: "exclude", Type: TStrOrList, Doc: "patterns to leave out"},
			}},
		{Name: "file", fn: (*evaluator).bFile, Returns: "the clean path",
			Doc:    "Declares one file under the root as an input (hashed into the Plan). It must exist.",
			Params: []Param{{Name: "path", Type: TStr, Required: true, Positional: true, Doc: "the file, relative to the root"}}},
		{Name: "param.string", fn: paramBuiltin("string", sl.String("")), Returns: "a parameter declaration for bundle(params = ...)",
			Doc:    "Declares a string parameter.",
			Params: []Param{{Name: "default", Type: TStr, Positional: true, Default: `""`, Doc: "value when not --set"}, {Name: "doc", Type: TStr, Doc: "what it is for"}}},
		{Name: "param.int", fn: paramBuiltin("int", sl.MakeInt(0)), Returns: "a parameter declaration for bundle(params = ...)",
			Doc:    "Declares an integer parameter.",
			Params: []Param{{Name: "default", Type: TInt, Positional: true, Default: "0", Doc: "value when not --set"}, {Name: "doc", Type: TStr, Doc: "what it is for"}}},
		{Name: "param.bool", fn: paramBuiltin("bool", sl.False), Returns: "a parameter declaration for bundle(params = ...)",
			Doc:    "Declares a boolean parameter (`--set KEY=true|false`).",
			Params: []Param{{Name: "default", Type: TBool, Positional: true, Default: "False", Doc: "value when not --set"}, {Name: "doc", Type: TStr, Doc: "what it is for"}}},
		{Name: "fail", Variadic: true, Doc: "Stops evaluation with an error at the calling line: `fail(msg)`."},
		{Name: "print", Variadic: true, Doc: "Prints its arguments to standard error (`volt` shows them; they do not affect the Plan)."},
	}
}

// makePredeclared builds the global names recipes see.
func (ev *evaluator) makePredeclared() sl.StringDict {
	pre := sl.StringDict{}
	param := &starlarkstruct.Module{Name: "param", Members: sl.StringDict{}}
	for _, b := range builtinTable {
		if b.fn == nil {
			continue // a language builtin (fail, print)
		}
		if short, ok := strings.CutPrefix(b.Name, "param."); ok {
			param.Members[short] = ev.value(b)
			continue
		}
		pre[b.Name] = ev.value(b)
	}
	pre["param"] = param
	pre["range"] = boundedRange
	pre["params"] = &paramsValue{ev: ev}
	return pre
}

// hashFile returns the digest of the root-relative regular file rel.
func (ev *evaluator) hashFile(rel, abs string, fi os.FileInfo) (string, *recipeError) {
	if d, ok := ev.hashes[rel]; ok {
		return d, nil
	}
	v, haveV := versionOf(fi)
	if d, ok := ev.fileHashes[v]; ok && haveV {
		ev.hashes[rel] = d
		return d, nil
	}
	d, _, err := digest.File(abs)
	if err != nil {
		return "", errorf("hash %q: %v", rel, err)
	}
	ev.hashes[rel] = d
	if haveV {
		ev.fileHashes[v] = d
	}
	return d, nil
}

// fileVersion identifies one version of a file within an evaluation.
type fileVersion struct {
	dev, inode  uint64
	size, mtime int64
}

func versionOf(fi os.FileInfo) (fileVersion, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileVersion{}, false
	}
	return fileVersion{dev: uint64(st.Dev), inode: st.Ino, size: fi.Size(), mtime: fi.ModTime().UnixNano()}, true
}

// statEntry is a cached resolution of a root-relative path.
type statEntry struct {
	abs  string
	info os.FileInfo
	err  *recipeError
}

// statPath resolves and stats rel under the root, once per evaluation.
func (ev *evaluator) statPath(rel string) (string, os.FileInfo, *recipeError) {
	if e, ok := ev.stats[rel]; ok {
		return e.abs, e.info, e.err
	}
	var e statEntry
	e.abs, e.err = ev.openPath(rel)
	if e.err == nil {
		var err error
		if e.info, err = os.Stat(e.abs); err != nil {
			e.err = errorf("%q: %v", rel, err)
		}
	}
	ev.stats[rel] = e
	if e.err != nil {
		c := *e.err // callers decorate their copy
		return e.abs, e.info, &c
	}
	return e.abs, e.info, nil
}

// input stats a declared file under the root, records it in Inputs and
// returns its clean path.
func (ev *evaluator) input(rel string, at plan.Pos) (string, error) {
	abs, st, rerr := ev.statPath(rel)
	if rerr != nil {
		return "", rerr.atPos(at)
	}
	if !st.Mode().IsRegular() {
		return "", errorf("%q is not a regular file", rel).atPos(at)
	}
	c := path.Clean(rel)
	d, rerr := ev.hashFile(c, abs, st)
	if rerr != nil {
		return "", rerr.atPos(at)
	}
	ev.d.inputs[c] = d
	return c, nil
}

// imageSource declares an image source of kind at rel.
func (ev *evaluator) imageSource(kind plan.Kind, rel string, dirOK, fileOK bool, at plan.Pos) (*plan.ImageSource, error) {
	abs, st, rerr := ev.statPath(rel)
	if rerr != nil {
		rerr.msg = string(kind) + ": image " + rerr.msg
		return nil, rerr.withHint(orHint(rerr.hint, "image paths are relative to the recipe root")).atPos(at)
	}
	src := &plan.ImageSource{Kind: kind, Path: path.Clean(rel), At: at}
	switch {
	case st.IsDir() && dirOK:
	case st.Mode().IsRegular() && fileOK:
		if ev.opts.DeferImageDigests {
			break
		}
		d, rerr := ev.hashFile(src.Path, abs, st)
		if rerr != nil {
			return nil, rerr.atPos(at)
		}
		src.Digest = d
	case st.IsDir():
		return nil, errorf("image %q is a directory; %s wants a file", rel, kind).atPos(at)
	default:
		return nil, errorf("image %q is not a directory; %s wants a directory", rel, kind).atPos(at)
	}
	return src, nil
}

func orHint(h, def string) string {
	if h != "" {
		return h
	}
	return def
}

func imageBuiltin(kind plan.Kind, dirOK, fileOK bool) func(*evaluator, *call) (sl.Value, error) {
	return func(ev *evaluator, c *call) (sl.Value, error) {
		src, err := ev.imageSource(kind, c.str(c.b.Params[0].Name), dirOK, fileOK, c.at)
		if err != nil {
			return nil, err
		}
		return &imageValue{src: src}, nil
	}
}

func paramBuiltin(kind string, zero sl.Value) func(*evaluator, *call) (sl.Value, error) {
	return func(ev *evaluator, c *call) (sl.Value, error) {
		def := zero
		if v, ok := c.args["default"]; ok {
			def = v
		}
		return &paramSpec{kind: kind, def: def, doc: c.str("doc")}, nil
	}
}

func (ev *evaluator) bBundle(c *call) (sl.Value, error) {
	d := ev.d
	if d.bundle != nil {
		return nil, errorf("bundle() called twice (first at %s)", d.bundle.at).withHint("a recipe declares exactly one bundle")
	}
	b := &bundleDecl{name: c.str("name"), version: c.str("version"), description: c.str("description"),
		platforms: []string{"linux/amd64"}, at: c.at}
	if c.has("platforms") {
		b.platforms = c.strList("platforms")
		for i, p := range b.platforms {
			if slices.Contains(b.platforms[:i], p) {
				return nil, errorf("bundle: platform %q listed twice", p).atPos(ev.argPos(c, "platforms", 2))
			}
		}
	}
	specs := map[string]*paramSpec{}
	if pd, ok := c.args["params"].(*sl.Dict); ok {
		for _, kv := range pd.Items() {
			k, _ := sl.AsString(kv[0])
			specs[k] = kv[1].(*paramSpec)
		}
	}
	var declared []string
	for k := range specs {
		declared = append(declared, k)
	}
	slices.Sort(declared)
	setKeys := make([]string, 0, len(ev.opts.Params))
	for k := range ev.opts.Params {
		setKeys = append(setKeys, k)
	}
	slices.Sort(setKeys)
	for _, k := range setKeys {
		if _, ok := specs[k]; !ok {
			return nil, errorf("--set %s: the recipe declares no parameter %q%s (declared: %s)", k, k, meanHint(k, declared), listOrNone(declared)).
				withHint("declare it in bundle(params = {...}) or drop the --set")
		}
	}
	for _, k := range declared {
		s := specs[k]
		v := s.def
		if raw, ok := ev.opts.Params[k]; ok {
			var err error
			if v, err = parseParam(s.kind, raw); err != nil {
				return nil, errorf("--set %s=%s: %v", k, raw, err).atPos(ev.argPos(c, "params", 4))
			}
		}
		d.paramValues[k] = v
		switch x := v.(type) {
		case sl.String:
			d.paramStrings[k] = string(x)
		case sl.Bool:
			d.paramStrings[k] = strconv.FormatBool(bool(x))
		default:
			d.paramStrings[k] = v.String()
		}
	}
	if !c.has("version") {
		v, ok := d.paramValues["version"].(sl.String)
		if !ok {
			return nil, errorf("bundle: missing required argument \"version\"").
				withHint("pass version = \"1.0.0\", or declare params = {\"version\": param.string(default = \"0.1.0\")}")
		}
		b.version = string(v)
	}
	if b.version == "" {
		return nil, errorf("bundle: version must not be empty").atPos(ev.argPos(c, "version", 1))
	}
	d.bundle = b
	return sl.None, nil
}

func parseParam(kind, raw string) (sl.Value, error) {
	switch kind {
	case "int":
		i, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("want an integer")
		}
		return sl.MakeInt64(i), nil
	case "bool":
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return nil, fmt.Errorf("want true or false")
		}
		return sl.Bool(b), nil
	}
	return sl.String(raw), nil
}

// declareService registers a new service name, rejecting duplicates.
func (ev *evaluator) declareService(s *serviceDecl) error {
	if prev, ok := ev.d.services[s.name]; ok {
		return errorf("duplicate service name %q (first declared at %s)", s.name, prev.at).
			withHint("containers and VMs share one namespace")
	}
	ev.d.services[s.name] = s
	return nil
}

// images converts the image argument of c.
func (ev *evaluator) images(c *call, s *serviceDecl) error {
	v, ok := c.args["image"]
	if !ok {
		return nil
	}
	s.imageAt = ev.argPos(c, "image", 1)
	one := func(v sl.Value) (*plan.ImageSource, error) {
		switch x := v.(type) {
		case *imageValue:
			return x.src, nil
		case sl.String:
			kind := plan.KindFile
			if s.typ == plan.VM {
				kind = plan.KindDisk
			}
			return ev.imageSource(kind, string(x), false, true, s.imageAt)
		}
		return nil, errorf("image: unexpected %s", v.Type())
	}
	if d, ok := v.(*sl.Dict); ok {
		s.perPlatform = map[string]*plan.ImageSource{}
		for _, kv := range d.Items() {
			p, _ := sl.AsString(kv[0])
			if !platformRE.MatchString(p) {
				return errorf("%s: image: invalid platform %q: want \"os/arch\"", c.b.Name, p).atPos(s.imageAt)
			}
			src, err := one(kv[1])
			if err != nil {
				return err
			}
			s.perPlatform[p] = src
		}
		return nil
	}
	src, err := one(v)
	s.single = src
	return err
}

func (ev *evaluator) deps(c *call, s *serviceDecl) map[string]constellation.Dependency {
	v, ok := c.args["depends_on"]
	if !ok {
		return nil
	}
	s.depsAt = ev.argPos(c, "depends_on", -1)
	out := map[string]constellation.Dependency{}
	if d, ok := v.(*sl.Dict); ok {
		for _, kv := range d.Items() {
			k, _ := sl.AsString(kv[0])
			cond, _ := sl.AsString(kv[1])
			out[k] = constellation.Dependency{Condition: cond}
		}
		return out
	}
	for _, n := range strList(v) {
		out[n] = constellation.Dependency{}
	}
	return out
}

func (ev *evaluator) overlays(c *call) []plan.Overlay {
	var out []plan.Overlay
	for _, e := range listValues(c.args["config"]) {
		out = append(out, e.(*overlayValue).o)
	}
	return out
}

func listValues(v sl.Value) []sl.Value {
	if v == nil {
		return nil
	}
	iter := sl.Iterate(v)
	if iter == nil {
		return nil
	}
	defer iter.Done()
	var out []sl.Value
	var e sl.Value
	for iter.Next(&e) {
		out = append(out, e)
	}
	return out
}

// structArg decodes a dict argument into out, rejecting unknown fields.
func (ev *evaluator) structArg(c *call, name string, out any) error {
	v, ok := c.args[name]
	if !ok {
		return nil
	}
	b, err := json.Marshal(toGo(v))
	if err == nil {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		err = dec.Decode(out)
	}
	if err != nil {
		msg := err.Error()
		msg = strings.TrimPrefix(msg, "json: ")
		msg = strings.ReplaceAll(msg, "Go struct field ", "")
		return errorf("%s: argument %q: %s", c.b.Name, name, msg).atPos(ev.argPos(c, name, -1))
	}
	return nil
}

func (ev *evaluator) bContainer(c *call) (sl.Value, error) {
	s := &serviceDecl{name: c.str("name"), typ: plan.Container, at: c.at}
	ct := &constellation.Container{
		Command: c.strList("command"), Entrypoint: c.strList("entrypoint"),
		WorkingDir: c.str("working_dir"), User: c.str("user"),
		Environment: c.strDict("environment"), Ports: c.strList("ports"),
		Networks: c.strList("networks"), Volumes: c.strList("volumes"),
		Restart: c.str("restart"),
		CapAdd:  c.strList("cap_add"), CapDrop: c.strList("cap_drop"), Privileged: c.boolean("privileged"),
		ReadOnly: c.boolean("read_only"), Tmpfs: c.strList("tmpfs"),
	}
	for _, f := range c.strList("env_file") {
		p, err := ev.input(f, ev.argPos(c, "env_file", -1))
		if err != nil {
			return nil, err
		}
		ct.EnvFile = append(ct.EnvFile, p)
	}
	if c.has("healthcheck") {
		ct.Healthcheck = &constellation.Healthcheck{}
		if err := ev.structArg(c, "healthcheck", ct.Healthcheck); err != nil {
			return nil, err
		}
	}
	if c.has("resources") {
		ct.Resources = &constellation.Resources{}
		if err := ev.structArg(c, "resources", ct.Resources); err != nil {
			return nil, err
		}
	}
	if c.has("security") {
		ct.Security = &constellation.Security{}
		if err := ev.structArg(c, "security", ct.Security); err != nil {
			return nil, err
		}
	}
	ct.DependsOn = ev.deps(c, s)
	s.config = ev.overlays(c)
	s.container = ct
	if err := ev.images(c, s); err != nil {
		return nil, err
	}
	if err := ev.declareService(s); err != nil {
		return nil, err
	}
	return sl.String(s.name), nil
}

func (ev *evaluator) bVM(c *call) (sl.Value, error) {
	s := &serviceDecl{name: c.str("name"), typ: plan.VM, at: c.at}
	vm := &constellation.VM{
		Memory: c.str("memory"), Cmdline: c.str("cmdline"), Ports: c.strList("ports"),
		Networks: c.strList("networks"), Environment: c.strDict("environment"),
	}
	if vm.Memory == "" {
		vm.Memory = "512M"
	}
	vm.CPU = 1
	if n, ok := c.integer("cpu"); ok {
		if n < 1 || n > 1024 {
			return nil, errorf("vm: argument \"cpu\": %d is out of range 1..1024", n).atPos(ev.argPos(c, "cpu", -1))
		}
		vm.CPU = int(n)
	}
	for _, k := range []string{"kernel", "initrd"} {
		if !c.has(k) {
			continue
		}
		p, err := ev.input(c.str(k), ev.argPos(c, k, -1))
		if err != nil {
			return nil, err
		}
		if k == "kernel" {
			vm.Kernel = p
		} else {
			vm.Initrd = p
		}
	}
	if !c.has("image") && vm.Kernel == "" {
		return nil, errorf("vm: give an image or a kernel").withHint("e.g. image = disk(\"disks/vm.qcow2\")")
	}
	vm.DependsOn = ev.deps(c, s)
	s.config = ev.overlays(c)
	s.vm = vm
	if err := ev.images(c, s); err != nil {
		return nil, err
	}
	if err := ev.declareService(s); err != nil {
		return nil, err
	}
	return sl.String(s.name), nil
}

func (ev *evaluator) bNetwork(c *call) (sl.Value, error) {
	n := c.str("name")
	if _, ok := ev.d.networks[n]; ok {
		return nil, errorf("network %q declared twice", n)
	}
	ev.d.networks[n] = &constellation.Network{Subnet: c.str("subnet"), Internal: c.boolean("internal")}
	return sl.String(n), nil
}

func (ev *evaluator) bVolume(c *call) (sl.Value, error) {
	n := c.str("name")
	if _, ok := ev.d.volumes[n]; ok {
		return nil, errorf("volume %q declared twice", n)
	}
	ev.d.volumes[n] = &constellation.Volume{Driver: c.str("driver")}
	return sl.String(n), nil
}

func (ev *evaluator) bHook(c *call) (sl.Value, error) {
	kind := c.str("kind")
	if prev, ok := ev.d.hooks[kind]; ok {
		return nil, errorf("hook %q declared twice (first at %s)", kind, prev.At)
	}
	p, err := ev.input(c.str("path"), ev.argPos(c, "path", 1))
	if err != nil {
		return nil, err
	}
	ev.d.hooks[kind] = plan.Hook{Kind: kind, Path: p, At: c.at}
	return sl.None, nil
}

func (ev *evaluator) bOverlay(c *call) (sl.Value, error) {
	p, err := ev.input(c.str("src"), ev.argPos(c, "src", 0))
	if err != nil {
		return nil, err
	}
	return &overlayValue{o: plan.Overlay{Source: p, Target: path.Clean(c.str("target")), Template: c.boolean("template"), At: c.at}}, nil
}

func (ev *evaluator) bBuild(c *call) (sl.Value, error) {
	var base *plan.ImageSource
	switch x := c.args["base"].(type) {
	case *imageValue:
		base = x.src
	case sl.String:
		var err error
		if base, err = ev.imageSource(plan.KindRootfs, string(x), true, true, ev.argPos(c, "base", -1)); err != nil {
			return nil, err
		}
	}
	run := [][]string{}
	for _, argv := range listValues(c.args["run"]) {
		a := strList(argv)
		if len(a) == 0 {
			return nil, errorf("build: argument \"run\": empty command").atPos(ev.argPos(c, "run", -1))
		}
		run = append(run, a)
	}
	if len(run) == 0 {
		return nil, errorf("build: argument \"run\": no commands").atPos(ev.argPos(c, "run", -1))
	}
	rt := "nspawn"
	if c.has("runtime") {
		rt = c.str("runtime")
	}
	step := &plan.BuildStep{Base: base, Run: run, Runtime: rt, Env: c.strDict("env"), Workdir: c.str("workdir")}
	return &imageValue{src: &plan.ImageSource{Kind: plan.KindBuild, Build: step, At: c.at}}, nil
}

func (ev *evaluator) bFile(c *call) (sl.Value, error) {
	p, err := ev.input(c.str("path"), ev.argPos(c, "path", 0))
	if err != nil {
		return nil, err
	}
	return sl.String(p), nil
}

// maxRange bounds the length of range(): a loop long enough to matter hits
// the step limit anyway, and list(range(n)) must not allocate without bound.
const maxRange = 1_000_000

// boundedRange is Starlark's range with a length limit.
var boundedRange = sl.NewBuiltin("range", func(t *sl.Thread, b *sl.Builtin, args sl.Tuple, kwargs []sl.Tuple) (sl.Value, error) {
	v, err := sl.Call(t, sl.Universe["range"], args, kwargs)
	if err != nil {
		return nil, err
	}
	if n := sl.Len(v); n > maxRange {
		return nil, errorf("range of %d elements exceeds the limit of %d", n, maxRange).
			withHint("recipes are bounded; declare fewer things")
	}
	return v, nil
})
