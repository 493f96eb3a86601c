package starlark

import (
	"fmt"
	"sort"
	"strings"

	sl "go.starlark.net/starlark"

	"github.com/volt-cli/volt/engine/plan"
)

// imageValue is the handle returned by the image-source builtins and build().
type imageValue struct {
	src *plan.ImageSource
}

var _ sl.Value = (*imageValue)(nil)

func (v *imageValue) String() string {
	if v.src.Kind == plan.KindBuild {
		return fmt.Sprintf("build(runtime = %q)", v.src.Build.Runtime)
	}
	return fmt.Sprintf("%s(%q)", v.src.Kind, v.src.Path)
}
func (v *imageValue) Type() string          { return "image" }
func (v *imageValue) Freeze()               {}
func (v *imageValue) Truth() sl.Bool        { return true }
func (v *imageValue) Hash() (uint32, error) { return sl.String(v.String()).Hash() }

// Attr exposes kind and path.
func (v *imageValue) Attr(name string) (sl.Value, error) {
	switch name {
	case "kind":
		return sl.String(v.src.Kind), nil
	case "path":
		return sl.String(v.src.Path), nil
	}
	return nil, nil
}

// AttrNames lists the attributes.
func (v *imageValue) AttrNames() []string { return []string{"kind", "path"} }

// overlayValue is the handle returned by overlay().
type overlayValue struct {
	o plan.Overlay
}

func (v *overlayValue) String() string {
	return fmt.Sprintf("overlay(%q, target = %q)", v.o.Source, v.o.Target)
}
func (v *overlayValue) Type() string          { return "overlay" }
func (v *overlayValue) Freeze()               {}
func (v *overlayValue) Truth() sl.Bool        { return true }
func (v *overlayValue) Hash() (uint32, error) { return sl.String(v.String()).Hash() }

// paramSpec is a declared recipe parameter: param.string/int/bool(...).
type paramSpec struct {
	kind string // "string", "int", "bool"
	def  sl.Value
	doc  string
}

func (v *paramSpec) String() string        { return fmt.Sprintf("param.%s(default = %s)", v.kind, v.def) }
func (v *paramSpec) Type() string          { return "param" }
func (v *paramSpec) Freeze()               {}
func (v *paramSpec) Truth() sl.Bool        { return true }
func (v *paramSpec) Hash() (uint32, error) { return sl.String(v.String()).Hash() }

// paramsValue is the predeclared `params`: params.KEY reads a declared parameter.
type paramsValue struct{ ev *evaluator }

func (v *paramsValue) String() string        { return "params" }
func (v *paramsValue) Type() string          { return "params" }
func (v *paramsValue) Freeze()               {}
func (v *paramsValue) Truth() sl.Bool        { return true }
func (v *paramsValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: params") }

// Attr returns the value of parameter name.
func (v *paramsValue) Attr(name string) (sl.Value, error) {
	d := v.ev.d
	if d.bundle == nil {
		return nil, errorf("params.%s read before bundle() declared the parameters", name).
			withHint("call bundle(..., params = {...}) before reading params")
	}
	val, ok := d.paramValues[name]
	if !ok {
		names := v.AttrNames()
		return nil, errorf("no parameter %q%s (declared: %s)", name, meanHint(name, names), listOrNone(names)).
			withHint(fmt.Sprintf("declare it: bundle(..., params = {%q: param.string(default = \"\")})", name))
	}
	return val, nil
}

// AttrNames lists the declared parameters.
func (v *paramsValue) AttrNames() []string {
	var names []string
	for k := range v.ev.d.paramValues {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
