package starlark

import (
	"fmt"
	"sort"
	"strings"

	sl "go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/volt-cli/volt/engine/plan"
)

// Type is the type of a builtin parameter, as documented and checked.
type Type string

// Parameter types.
const (
	TStr       Type = "str"
	TInt       Type = "int"
	TBool      Type = "bool"
	TNumber    Type = "int or float"
	TStrList   Type = "list of str"
	TStrDict   Type = "dict of str to str"
	TImage     Type = "image, or dict of platform to image"
	TImageBase Type = "image"
	TOverlays  Type = "list of overlay"
	TArgvList  Type = "list of list of str"
	TDeps      Type = "list of str, or dict of service to condition"
	TStruct    Type = "dict"
	TParams    Type = "dict of str to param"
	TStrOrList Type = "str or list of str"
	TAny       Type = "any"
)

// Param is one parameter of a builtin.
type Param struct {
	Name       string
	Type       Type
	Required   bool
	Positional bool   // may be passed by position (in declaration order)
	Default    string // documented default when not Required ("" = none/empty)
	Doc        string
	validate   func(sl.Value) error // extra check after the type check
}

// Builtin is a recipe builtin as declared data: the single source of its
// argument checking, its error messages and its documentation.
type Builtin struct {
	Name    string
	Doc     string
	Params  []Param
	Returns string
	// Variadic names a builtin taking *args (print); its Params are not checked.
	Variadic bool
	fn       func(ev *evaluator, c *call) (sl.Value, error)
}

// call is one invocation of a builtin after argument checking.
type call struct {
	b      *Builtin
	thread *sl.Thread
	at     plan.Pos // the recipe position of the call (innermost recipe frame)
	lparen syntax.Position
	args   map[string]sl.Value
}

// Builtins returns the builtin table, sorted by name.
func Builtins() []*Builtin {
	out := append([]*Builtin(nil), builtinTable...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// lookupBuiltin finds a builtin by name.
func lookupBuiltin(name string) *Builtin {
	for _, b := range builtinTable {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// value builds the Starlark callable for b bound to ev.
func (ev *evaluator) value(b *Builtin) *sl.Builtin {
	short := b.Name[strings.LastIndexByte(b.Name, '.')+1:]
	return sl.NewBuiltin(short, func(thread *sl.Thread, fn *sl.Builtin, args sl.Tuple, kwargs []sl.Tuple) (sl.Value, error) {
		c := &call{b: b, thread: thread, args: map[string]sl.Value{}}
		if thread.CallStackDepth() >= 2 {
			c.lparen = thread.CallFrame(1).Pos
		}
		c.at = ev.callPos(thread)
		if err := ev.bind(c, args, kwargs); err != nil {
			return nil, err
		}
		return b.fn(ev, c)
	})
}

// callPos is the position of the innermost recipe (non-stdlib) call site,
// pointing at the callee's name rather than its parenthesis when known.
func (ev *evaluator) callPos(thread *sl.Thread) plan.Pos {
	stack := thread.CallStack()
	if len(stack) > 0 {
		stack = stack[:len(stack)-1] // the builtin itself
	}
	return ev.normPos(recipePos(stack))
}

// lineCol is a position within one file.
type lineCol struct{ line, col int }

// callAt finds the call expression whose '(' is at p.
func (ev *evaluator) callAt(p plan.Pos) *syntax.CallExpr {
	idx, ok := ev.calls[p.File]
	if !ok {
		f := ev.files[p.File]
		if f == nil {
			return nil
		}
		idx = map[lineCol]*syntax.CallExpr{}
		syntax.Walk(f, func(n syntax.Node) bool {
			if ce, ok := n.(*syntax.CallExpr); ok {
				idx[lineCol{int(ce.Lparen.Line), int(ce.Lparen.Col)}] = ce
			}
			return true
		})
		ev.calls[p.File] = idx
	}
	return idx[lineCol{p.Line, p.Col}]
}

// argPos is the position of argument name (or positional index i) in the
// call at c, or the call's position.
func (ev *evaluator) argPos(c *call, name string, i int) plan.Pos {
	lp := plan.Pos{File: c.lparen.Filename(), Line: int(c.lparen.Line), Col: int(c.lparen.Col)}
	ce := ev.callAt(lp)
	if ce == nil || lp.File != c.at.File {
		return c.at
	}
	n := 0
	for _, a := range ce.Args {
		if bin, ok := a.(*syntax.BinaryExpr); ok && bin.Op == syntax.EQ {
			if id, ok := bin.X.(*syntax.Ident); ok && id.Name == name {
				return plan.Pos{File: lp.File, Line: int(id.NamePos.Line), Col: int(id.NamePos.Col)}
			}
			continue
		}
		if n == i {
			s, _ := a.Span()
			return plan.Pos{File: lp.File, Line: int(s.Line), Col: int(s.Col)}
		}
		n++
	}
	return c.at
}

// bind checks args and kwargs against c.b.Params and fills c.args.
func (ev *evaluator) bind(c *call, args sl.Tuple, kwargs []sl.Tuple) error {
	b := c.b
	if b.Variadic {
		return nil
	}
	npos := 0
	for _, p := range b.Params {
		if !p.Positional {
			break
		}
		npos++
	}
	if len(args) > npos {
		return errorf("%s: takes at most %d positional argument(s), got %d", b.Name, npos, len(args)).
			atPos(ev.argPos(c, "", npos)).withHint("pass the others by keyword, e.g. " + exampleKw(b, npos))
	}
	for i, a := range args {
		c.args[b.Params[i].Name] = a
	}
	names := make([]string, len(b.Params))
	for i, p := range b.Params {
		names[i] = p.Name
	}
	for _, kv := range kwargs {
		k := string(kv[0].(sl.String))
		if indexOfParam(b, k) < 0 {
			return errorf("%s: unknown keyword argument %q%s", b.Name, k, meanHint(k, names)).atPos(ev.argPos(c, k, -1))
		}
		if _, dup := c.args[k]; dup {
			return errorf("%s: argument %q given twice", b.Name, k).atPos(ev.argPos(c, k, -1))
		}
		c.args[k] = kv[1]
	}
	for i, p := range b.Params {
		v, ok := c.args[p.Name]
		if !ok || v == sl.None {
			if p.Required {
				return errorf("%s: missing required argument %q", b.Name, p.Name).atPos(c.at)
			}
			delete(c.args, p.Name)
			continue
		}
		if err := checkType(p.Type, v); err != nil {
			return errorf("%s: argument %q: want %s, got %s", b.Name, p.Name, p.Type, err).atPos(ev.argPos(c, p.Name, i))
		}
		if p.validate != nil {
			if err := p.validate(v); err != nil {
				return errorf("%s: argument %q: %v", b.Name, p.Name, err).atPos(ev.argPos(c, p.Name, i))
			}
		}
		if err := checkSize(v, 0); err != nil {
			return errorf("%s: argument %q: %s", b.Name, p.Name, err).atPos(ev.argPos(c, p.Name, i)).
				withHint(fmt.Sprintf("builtin arguments are bounded: strings to %d bytes, collections to %d items", maxString, maxItems))
		}
	}
	return nil
}

func exampleKw(b *Builtin, i int) string {
	if i < len(b.Params) {
		return b.Params[i].Name + " = ..."
	}
	return "name = ..."
}

func indexOfParam(b *Builtin, name string) int {
	for i, p := range b.Params {
		if p.Name == name {
			return i
		}
	}
	return -1
}

// Bounds on values passed to builtins ("huge values").
const (
	maxString = 1 << 20 // bytes in one string
	maxItems  = 100_000 // elements in one list or dict
	maxDepth  = 16      // nesting of lists and dicts
)

// checkSize bounds strings, collections and nesting depth of v.
func checkSize(v sl.Value, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("value nested deeper than %d levels", maxDepth)
	}
	switch x := v.(type) {
	case sl.String:
		if len(x) > maxString {
			return fmt.Errorf("string of %d bytes exceeds the limit of %d", len(x), maxString)
		}
	case *sl.List:
		if x.Len() > maxItems {
			return fmt.Errorf("list of %d items exceeds the limit of %d", x.Len(), maxItems)
		}
		for i := 0; i < x.Len(); i++ {
			if err := checkSize(x.Index(i), depth+1); err != nil {
				return err
			}
		}
	case sl.Tuple:
		for _, e := range x {
			if err := checkSize(e, depth+1); err != nil {
				return err
			}
		}
	case *sl.Dict:
		if x.Len() > maxItems {
			return fmt.Errorf("dict of %d items exceeds the limit of %d", x.Len(), maxItems)
		}
		for _, kv := range x.Items() {
			if err := checkSize(kv[0], depth+1); err != nil {
				return err
			}
			if err := checkSize(kv[1], depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// typeErr describes a mismatching value for an error message.
type typeErr string

func (e typeErr) Error() string { return string(e) }

func got(v sl.Value) error { return typeErr(v.Type()) }

// checkType reports whether v conforms to t; the error names what it got.
func checkType(t Type, v sl.Value) error {
	switch t {
	case TAny:
		return nil
	case TStr:
		if _, ok := v.(sl.String); !ok {
			return got(v)
		}
	case TInt:
		if _, ok := v.(sl.Int); !ok {
			return got(v)
		}
	case TBool:
		if _, ok := v.(sl.Bool); !ok {
			return got(v)
		}
	case TNumber:
		switch v.(type) {
		case sl.Int, sl.Float:
		default:
			return got(v)
		}
	case TStrList:
		return checkList(v, func(e sl.Value) bool { _, ok := e.(sl.String); return ok })
	case TStrOrList:
		if _, ok := v.(sl.String); ok {
			return nil
		}
		return checkList(v, func(e sl.Value) bool { _, ok := e.(sl.String); return ok })
	case TArgvList:
		return checkList(v, func(e sl.Value) bool { return checkType(TStrList, e) == nil })
	case TOverlays:
		return checkList(v, func(e sl.Value) bool { _, ok := e.(*overlayValue); return ok })
	case TStrDict:
		return checkDict(v, func(e sl.Value) bool { _, ok := e.(sl.String); return ok })
	case TParams:
		return checkDict(v, func(e sl.Value) bool { _, ok := e.(*paramSpec); return ok })
	case TStruct:
		if _, ok := v.(*sl.Dict); !ok {
			return got(v)
		}
	case TDeps:
		if checkType(TStrList, v) == nil || checkType(TStrDict, v) == nil {
			return nil
		}
		return got(v)
	case TImageBase:
		switch v.(type) {
		case *imageValue, sl.String:
		default:
			return got(v)
		}
	case TImage:
		switch v.(type) {
		case *imageValue, sl.String:
			return nil
		}
		return checkDict(v, func(e sl.Value) bool { return checkType(TImageBase, e) == nil })
	}
	return nil
}

func checkList(v sl.Value, elem func(sl.Value) bool) error {
	var it sl.Iterable
	switch x := v.(type) {
	case *sl.List:
		it = x
	case sl.Tuple:
		it = x
	default:
		return got(v)
	}
	iter := it.Iterate()
	defer iter.Done()
	var e sl.Value
	for i := 0; iter.Next(&e); i++ {
		if !elem(e) {
			return typeErr(fmt.Sprintf("%s at index %d", e.Type(), i))
		}
	}
	return nil
}

func checkDict(v sl.Value, elem func(sl.Value) bool) error {
	d, ok := v.(*sl.Dict)
	if !ok {
		return got(v)
	}
	for _, kv := range d.Items() {
		k, ok := kv[0].(sl.String)
		if !ok {
			return typeErr(fmt.Sprintf("%s key", kv[0].Type()))
		}
		if !elem(kv[1]) {
			return typeErr(fmt.Sprintf("%s at key %q", kv[1].Type(), string(k)))
		}
	}
	return nil
}

// Argument accessors: call them only for parameters of the matching Type.

func (c *call) has(name string) bool { _, ok := c.args[name]; return ok }

func (c *call) str(name string) string {
	s, _ := sl.AsString(c.args[name])
	return s
}

func (c *call) boolean(name string) bool {
	b, _ := c.args[name].(sl.Bool)
	return bool(b)
}

func (c *call) integer(name string) (int64, bool) {
	i, ok := c.args[name].(sl.Int)
	if !ok {
		return 0, false
	}
	return i.Int64()
}

func (c *call) strList(name string) []string {
	return strList(c.args[name])
}

func strList(v sl.Value) []string {
	if v == nil {
		return nil
	}
	if s, ok := v.(sl.String); ok {
		return []string{string(s)}
	}
	var out []string
	iter := sl.Iterate(v)
	if iter == nil {
		return nil
	}
	defer iter.Done()
	var e sl.Value
	for iter.Next(&e) {
		s, _ := sl.AsString(e)
		out = append(out, s)
	}
	return out
}

func (c *call) strDict(name string) map[string]string {
	d, ok := c.args[name].(*sl.Dict)
	if !ok {
		return nil
	}
	out := make(map[string]string, d.Len())
	for _, kv := range d.Items() {
		k, _ := sl.AsString(kv[0])
		v, _ := sl.AsString(kv[1])
		out[k] = v
	}
	return out
}

// toGo converts a Starlark value of plain data into Go (for dict-shaped
// arguments such as healthcheck).
func toGo(v sl.Value) any {
	switch x := v.(type) {
	case sl.NoneType:
		return nil
	case sl.Bool:
		return bool(x)
	case sl.Int:
		i, _ := x.Int64()
		return i
	case sl.Float:
		return float64(x)
	case sl.String:
		return string(x)
	case *sl.List, sl.Tuple:
		var out []any
		iter := sl.Iterate(x)
		defer iter.Done()
		var e sl.Value
		for iter.Next(&e) {
			out = append(out, toGo(e))
		}
		return out
	case *sl.Dict:
		out := map[string]any{}
		for _, kv := range x.Items() {
			k, _ := sl.AsString(kv[0])
			out[k] = toGo(kv[1])
		}
		return out
	}
	return v.String()
}

// nativeModule exposes the predeclared builtins to stdlib modules as
// native.NAME, so a stdlib module can re-export them under the same name.
func nativeModule(pre sl.StringDict) *starlarkstruct.Module {
	m := &starlarkstruct.Module{Name: "native", Members: sl.StringDict{}}
	for k, v := range pre {
		m.Members[k] = v
	}
	return m
}
