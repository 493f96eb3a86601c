package starlark

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"go.starlark.net/resolve"
	sl "go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/volt-cli/volt/engine/digest"
	"github.com/volt-cli/volt/engine/plan"
	"github.com/volt-cli/volt/stdlib"
)

// DefaultFile is the recipe evaluated when Options.File is empty.
const DefaultFile = "volt.star"

// DefaultRecipe is the embedded recipe used when a directory has no volt.star.
const DefaultRecipe = "@volt//constellation.star"

// DefaultMaxSteps is the step limit when Options.MaxSteps is 0.
const DefaultMaxSteps uint64 = 10_000_000

// Options say what to evaluate and how.
type Options struct {
	// Root is the recipe root directory (absolute). Recipes read nothing outside it.
	Root string
	// DeferImageDigests leaves ImageSource.Digest of image files empty
	// instead of hashing every image during evaluation. bundle create sets
	// it: the bundle writer hashes each image as it copies it, so a 1 GiB
	// image is read once, not twice; the engine fills the digests in after.
	DeferImageDigests bool
	// File is the recipe path relative to Root; "" means DefaultFile, or
	// DefaultRecipe when DefaultFile does not exist.
	File string
	// Params are --set KEY=VALUE pairs; each key must be declared by bundle(params = ...).
	Params map[string]string
	// MaxSteps bounds Starlark execution steps over the whole evaluation (0 = DefaultMaxSteps).
	MaxSteps uint64
	// Print receives print() output; nil discards it.
	Print func(msg string)
	// Constellation, when set, is the Constellation file (relative to Root)
	// read by constellation() without a path, and File "" then means
	// DefaultRecipe even where a volt.star exists: `bundle create -f
	// docker-compose.yml` builds that file with the embedded recipe.
	Constellation string
	// Warn receives one line per ignored Constellation key ("file:line:col:
	// path: not supported by Volt; ignored"), each at most once; nil discards them.
	Warn func(msg string)
}

// fileOptions are the Starlark dialect options for every recipe and
// stdlib module (documented in docs/recipes.md). The global resolve.Allow*
// flags are never consulted.
var fileOptions = &syntax.FileOptions{
	Set:             true,  // set() is handy for de-duplication
	While:           false, // use for over a range: loops stay visibly bounded
	TopLevelControl: true,  // if/for at top level, e.g. to declare services in a loop
	GlobalReassign:  false, // a global is bound once; prevents accidental shadowing
	Recursion:       false, // recursion is an error
}

// module is one loaded Starlark file.
type module struct {
	globals sl.StringDict
	err     error
	done    bool
}

// evaluator holds the state of one evaluation.
type evaluator struct {
	ctx      context.Context
	root     string // cleaned absolute root, symlinks resolved
	rootOrig string // Root as given (recorded in the Plan)
	opts     Options

	modules map[string]*module
	stack   []string // labels being loaded, for cycle reports
	sources map[string]string
	text    map[string][]byte       // module name -> source, for diagnostics
	files   map[string]*syntax.File // module name -> syntax tree, for argument positions
	calls   map[string]map[lineCol]*syntax.CallExpr

	predeclared sl.StringDict // for recipes
	stdlibPre   sl.StringDict // for @volt// modules (adds native)

	warned map[string]bool // Constellation warnings already given to opts.Warn

	budget uint64 // steps left for the whole evaluation
	fatal  *Diagnostic
	hashes map[string]string // path -> digest cache
	// fileHashes memoizes digests by file version (device, inode, size,
	// mtime), so two paths naming one file (a symlink, "a/../b") hash it once.
	fileHashes map[fileVersion]string
	stats      map[string]statEntry

	d *decls
}

// Eval evaluates the recipe described by opts and returns its Plan.
// A fault in the recipe is returned as a *Diagnostic; cancellation of ctx as
// an error wrapping ctx.Err().
func Eval(ctx context.Context, opts Options) (*plan.Plan, error) {
	ev, err := newEvaluator(ctx, opts)
	if err != nil {
		return nil, err
	}
	return ev.run()
}

// Check evaluates the recipe and validates the resulting Plan, building nothing.
func Check(ctx context.Context, opts Options) error {
	_, err := Eval(ctx, opts)
	return err
}

func newEvaluator(ctx context.Context, opts Options) (*evaluator, error) {
	if !filepath.IsAbs(opts.Root) {
		return nil, fmt.Errorf("recipe root %q: not an absolute path", opts.Root)
	}
	root, err := filepath.EvalSymlinks(filepath.Clean(opts.Root))
	if err != nil {
		return nil, fmt.Errorf("recipe root: %w", err)
	}
	if opts.MaxSteps == 0 {
		opts.MaxSteps = DefaultMaxSteps
	}
	ev := &evaluator{
		ctx:        ctx,
		root:       root,
		rootOrig:   opts.Root,
		opts:       opts,
		modules:    map[string]*module{},
		sources:    map[string]string{},
		text:       map[string][]byte{},
		files:      map[string]*syntax.File{},
		calls:      map[string]map[lineCol]*syntax.CallExpr{},
		budget:     opts.MaxSteps,
		hashes:     map[string]string{},
		fileHashes: map[fileVersion]string{},
		stats:      map[string]statEntry{},
		d:          newDecls(),
	}
	ev.predeclared = ev.makePredeclared()
	ev.stdlibPre = sl.StringDict{"native": nativeModule(ev.predeclared)}
	for k, v := range ev.predeclared {
		ev.stdlibPre[k] = v
	}
	return ev, nil
}

// run evaluates the entry recipe and finalises the Plan.
func (ev *evaluator) run() (p *plan.Plan, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("evaluate recipe: internal error: %v", r)
		}
	}()
	entry := ev.opts.File
	recipe := entry
	if entry == "" {
		entry, recipe = DefaultFile, DefaultFile
		if _, err := os.Lstat(filepath.Join(ev.root, DefaultFile)); errors.Is(err, fs.ErrNotExist) || ev.opts.Constellation != "" {
			entry, recipe = DefaultRecipe, ""
		}
	}
	label := entry
	if !strings.HasPrefix(label, "@") {
		if filepath.IsAbs(label) {
			return nil, &Diagnostic{File: label, Msg: "recipe file must be relative to the recipe root"}
		}
		label = "//" + filepath.ToSlash(label)
	}
	name, err := ev.resolveLabel(label, "")
	if err != nil {
		return nil, ev.diag(err, plan.Pos{File: entry})
	}
	ev.d.entry = name
	if recipe != "" {
		recipe = name
	}
	if _, err := ev.load(name); err != nil {
		if IsRecipeError(err) || ev.ctx.Err() != nil {
			return nil, err
		}
		return nil, ev.diag(err, plan.Pos{File: name})
	}
	p, err = ev.finish(recipe)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// resolveLabel turns a load() label into a module name: "@volt//x.star" for
// the stdlib, or a clean slash path relative to the root. from is the
// loading module's name ("" for the entry point).
func (ev *evaluator) resolveLabel(label, from string) (string, error) {
	if !strings.HasSuffix(label, ".star") {
		return "", errorf("cannot load %q: a module label must end in .star", label)
	}
	var rel string
	switch {
	case strings.HasPrefix(label, "@volt//"):
		rel = strings.TrimPrefix(label, "@volt//")
		if c := path.Clean(rel); c != rel || strings.HasPrefix(c, "../") || path.IsAbs(c) {
			return "", errorf("cannot load %q: not a clean stdlib path", label)
		}
		return label, nil
	case strings.HasPrefix(label, "@"):
		return "", errorf("cannot load %q: unknown repository (only @volt// exists)", label).
			withHint("use //path.star for a file under the recipe root")
	case strings.HasPrefix(label, "//"):
		rel = strings.TrimPrefix(label, "//")
	case strings.HasPrefix(label, "/"):
		return "", errorf("cannot load %q: absolute paths are not allowed", label).
			withHint("use //path.star (from the recipe root) or ./path.star (from this file)")
	default:
		if strings.HasPrefix(from, "@volt//") {
			return "@volt//" + path.Join(path.Dir(strings.TrimPrefix(from, "@volt//")), label), nil
		}
		rel = path.Join(path.Dir(from), label)
	}
	rel, err := ev.cleanRel(rel)
	if err != nil {
		return "", errorf("cannot load %q: %s", label, err.msg).withHint(err.hint)
	}
	return rel, nil
}

// cleanRel checks a slash path relative to the root: not absolute, not
// leaving the root. It returns the cleaned path.
func (ev *evaluator) cleanRel(p string) (string, *recipeError) {
	if p == "" {
		return "", errorf("empty path")
	}
	if path.IsAbs(p) || filepath.IsAbs(p) {
		return "", errorf("absolute path %q is not allowed", p).withHint("paths are relative to the recipe root")
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errorf("path %q escapes the recipe root", p).withHint("recipes read only files under their root directory")
	}
	return c, nil
}

// openPath resolves a root-relative path to an absolute one, following
// symlinks and checking the result is still under the root.
func (ev *evaluator) openPath(rel string) (string, *recipeError) {
	c, rerr := ev.cleanRel(rel)
	if rerr != nil {
		return "", rerr
	}
	abs := filepath.Join(ev.root, filepath.FromSlash(c))
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errorf("%q does not exist under the recipe root", c)
		}
		return "", errorf("%q: %v", c, errors.Unwrap(err))
	}
	if r, err := filepath.Rel(ev.root, real); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", errorf("path %q escapes the recipe root through a symlink", c).withHint("recipes read only files under their root directory")
	}
	return real, nil
}

// source returns the bytes of a module.
func (ev *evaluator) source(name string) ([]byte, error) {
	if rel, ok := strings.CutPrefix(name, "@volt//"); ok {
		b, err := fs.ReadFile(stdlib.FS, rel)
		if err != nil {
			return nil, errorf("cannot load %q: no such module in the Volt standard library", name)
		}
		return b, nil
	}
	abs, rerr := ev.openPath(name)
	if rerr != nil {
		rerr.msg = "cannot load " + strconvQuote(name) + ": " + rerr.msg
		return nil, rerr
	}
	st, err := os.Stat(abs)
	if err != nil || !st.Mode().IsRegular() {
		return nil, errorf("cannot load %q: not a regular file", name)
	}
	if st.Size() > maxSourceBytes {
		return nil, errorf("cannot load %q: source larger than %d bytes", name, maxSourceBytes)
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		return nil, errorf("cannot load %q: %v", name, errors.Unwrap(err))
	}
	return b, nil
}

// maxSourceBytes bounds one recipe source file.
const maxSourceBytes = 4 << 20

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// load loads (or returns the cached) module name. Errors are *Diagnostic.
func (ev *evaluator) load(name string) (sl.StringDict, error) {
	if m, ok := ev.modules[name]; ok {
		if !m.done {
			cycle := append([]string(nil), ev.stack[indexOf(ev.stack, name):]...)
			cycle = append(cycle, name)
			return nil, errorf("load cycle: %s", strings.Join(cycle, " -> "))
		}
		return m.globals, m.err
	}
	m := &module{}
	ev.modules[name] = m
	ev.stack = append(ev.stack, name)
	defer func() { ev.stack = ev.stack[:len(ev.stack)-1]; m.done = true }()

	src, err := ev.source(name)
	if err != nil {
		m.err = err
		return nil, err
	}
	ev.text[name] = src
	ev.sources[name] = digest.Bytes(src)

	f, err := fileOptions.Parse(name, src, 0)
	if err != nil {
		m.err = ev.syntaxDiag(err)
		return nil, m.err
	}
	ev.files[name] = f
	pre := ev.predeclared
	if strings.HasPrefix(name, "@volt//") {
		pre = ev.stdlibPre
	}
	prog, err := sl.FileProgram(f, pre.Has)
	if err != nil {
		m.err = ev.syntaxDiag(err)
		return nil, m.err
	}
	thread, done := ev.newThread(name)
	g, err := prog.Init(thread, pre)
	done()
	if err != nil {
		m.err = ev.evalDiag(err)
		return nil, m.err
	}
	g.Freeze()
	m.globals = g
	return g, nil
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return 0
}

// threadKey is the thread-local key holding the module name a thread runs.
const threadKey = "volt.module"

// maxKey is the thread-local key holding the thread's step limit.
const maxKey = "volt.max"

// newThread makes a thread for running module name, sharing the
// evaluation's step budget and cancelled with ev.ctx. Call done when finished.
func (ev *evaluator) newThread(name string) (*sl.Thread, func()) {
	t := &sl.Thread{
		Name: name,
		Load: func(t *sl.Thread, label string) (sl.StringDict, error) {
			from, _ := t.Local(threadKey).(string)
			target, err := ev.resolveLabel(label, from)
			if err != nil {
				return nil, err
			}
			parentSteps := t.ExecutionSteps()
			saved := ev.budget
			ev.budget = saved - min(saved, parentSteps)
			left := ev.budget
			g, err := ev.load(target)
			childUsed := left - ev.budget
			ev.budget = saved
			if mx, ok := t.Local(maxKey).(uint64); ok {
				mx -= min(mx, childUsed)
				t.SetLocal(maxKey, mx)
				t.SetMaxExecutionSteps(max(mx, 1))
			}
			if err != nil {
				var d *Diagnostic
				if errors.As(err, &d) && ev.fatal == nil {
					ev.fatal = d
				}
				return nil, err
			}
			return g, nil
		},
		Print: func(_ *sl.Thread, msg string) {
			if ev.opts.Print != nil {
				ev.opts.Print(msg)
			}
		},
	}
	t.SetLocal(threadKey, name)
	t.SetLocal(maxKey, ev.budget)
	t.SetMaxExecutionSteps(max(ev.budget, 1))
	stop := context.AfterFunc(ev.ctx, func() { t.Cancel("context cancelled") })
	if ev.ctx.Err() != nil {
		t.Cancel("context cancelled")
	}
	return t, func() {
		stop()
		ev.budget -= min(ev.budget, t.ExecutionSteps())
	}
}

// syntaxDiag converts a syntax or resolve error into a *Diagnostic.
func (ev *evaluator) syntaxDiag(err error) *Diagnostic {
	var se syntax.Error
	if errors.As(err, &se) {
		hint := ""
		if strings.HasSuffix(se.Msg, "want ','") || strings.Contains(se.Msg, "want ')'") {
			hint = "a ',' or a closing bracket is missing, often at the end of the previous line"
		}
		return ev.diagAt(se.Pos, se.Msg, hint)
	}
	var rl resolve.ErrorList
	if errors.As(err, &rl) && len(rl) > 0 {
		e := rl[0]
		msg, hint := e.Msg, ""
		if name, ok := strings.CutPrefix(msg, "undefined: "); ok {
			if i := strings.IndexByte(name, ' '); i >= 0 {
				name = name[:i] // drop go.starlark.net's own suggestion
			}
			msg = "undefined: " + name
			if h, ok := literalHints[name]; ok {
				hint = h
			} else {
				msg += meanHint(name, ev.globalNames(e.Pos.Filename()))
			}
		}
		switch {
		case strings.Contains(msg, "while loops"):
			hint = "loop over range(n) instead; see the dialect in docs/recipes.md"
		case strings.HasPrefix(msg, "cannot reassign global"):
			hint = "a global is bound once; use a new name, or build the value in a function"
		}
		return ev.diagAt(e.Pos, msg, hint)
	}
	return &Diagnostic{Msg: err.Error()}
}

// globalNames lists predeclared and universe names (for suggestions).
func (ev *evaluator) globalNames(file string) []string {
	var names []string
	for k := range ev.predeclared {
		names = append(names, k)
	}
	for k := range sl.Universe {
		names = append(names, k)
	}
	if f := ev.files[file]; f != nil {
		for _, s := range f.Stmts {
			if a, ok := s.(*syntax.AssignStmt); ok {
				if id, ok := a.LHS.(*syntax.Ident); ok {
					names = append(names, id.Name)
				}
			}
			if d, ok := s.(*syntax.DefStmt); ok {
				names = append(names, d.Name.Name)
			}
		}
	}
	return names
}

// diagAt makes a Diagnostic at a Starlark position.
func (ev *evaluator) diagAt(pos syntax.Position, msg, hint string) *Diagnostic {
	return ev.diagPos(plan.Pos{File: pos.Filename(), Line: int(pos.Line), Col: int(pos.Col)}, msg, hint)
}

// diagPos makes a Diagnostic at a Plan position, filling in the source line.
func (ev *evaluator) diagPos(p plan.Pos, msg, hint string) *Diagnostic {
	d := &Diagnostic{File: p.File, Line: p.Line, Col: p.Col, Msg: msg, Hint: hint}
	if src, ok := ev.text[p.File]; ok && p.Line > 0 {
		lines := strings.Split(string(src), "\n")
		if p.Line <= len(lines) {
			d.Source = strings.TrimRight(lines[p.Line-1], "\r")
		}
	}
	return d
}

// diag converts any error met during evaluation into a *Diagnostic at
// fallback unless it carries a position of its own.
func (ev *evaluator) diag(err error, fallback plan.Pos) *Diagnostic {
	var d *Diagnostic
	if errors.As(err, &d) {
		return d
	}
	var re *recipeError
	if errors.As(err, &re) {
		p := fallback
		if re.at != nil {
			p = *re.at
		}
		return ev.diagPos(p, re.msg, re.hint)
	}
	return ev.diagPos(fallback, err.Error(), "")
}

// evalDiag converts an error from running Starlark code into a *Diagnostic.
func (ev *evaluator) evalDiag(err error) error {
	if ev.fatal != nil {
		return ev.fatal
	}
	var ee *sl.EvalError
	if !errors.As(err, &ee) {
		return ev.diag(err, plan.Pos{})
	}
	pos := ev.normPos(recipePos(ee.CallStack))
	msg := ee.Msg
	if strings.Contains(msg, "too many steps") {
		return ev.diagPos(pos, fmt.Sprintf("evaluation exceeded the step limit (%d steps)", ev.opts.MaxSteps),
			"look for a runaway loop, or raise the limit with --max-steps")
	}
	if ev.ctx.Err() != nil && strings.Contains(msg, "context cancelled") {
		return fmt.Errorf("evaluate recipe: %w", ev.ctx.Err())
	}
	var re *recipeError
	if errors.As(err, &re) {
		if re.at != nil {
			pos = *re.at
		}
		return ev.diagPos(pos, re.msg, re.hint)
	}
	var d *Diagnostic
	if errors.As(err, &d) {
		return d
	}
	return ev.diagPos(pos, msg, "")
}

// normPos moves a call's '(' position to the start of the callee's name.
func (ev *evaluator) normPos(p plan.Pos) plan.Pos {
	if ce := ev.callAt(p); ce != nil {
		start, _ := ce.Fn.Span()
		return plan.Pos{File: p.File, Line: int(start.Line), Col: int(start.Col)}
	}
	return p
}

// recipePos is the position of the innermost frame of the call stack in a
// recipe file; stdlib frames count only when nothing else does.
func recipePos(stack sl.CallStack) plan.Pos {
	var fallback plan.Pos
	for i := len(stack) - 1; i >= 0; i-- {
		p := stack[i].Pos
		name := p.Filename()
		if name == "<builtin>" || name == "" {
			continue
		}
		pp := plan.Pos{File: name, Line: int(p.Line), Col: int(p.Col)}
		if strings.HasPrefix(name, "@volt//") {
			if fallback.File == "" {
				fallback = pp
			}
			continue
		}
		return pp
	}
	return fallback
}
