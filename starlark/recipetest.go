package starlark

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	sl "go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Test runs the test_* functions of every *_test.star file under root whose
// "file::function" name matches the regular expression filter ("" = all),
// writing one PASS/FAIL line per test (and the diagnostic of each failure)
// to out. Test files see the recipe builtins plus an `assert` module
// (assert.eq, assert.true, assert.fails); each test function starts with no
// declarations. err is non-nil only when the tests could not be run.
func Test(ctx context.Context, root string, filter string, out io.Writer) (passed, failed int, err error) {
	if root, err = filepath.Abs(root); err != nil {
		return 0, 0, fmt.Errorf("recipe tests: %w", err)
	}
	re, err := regexp.Compile(filter)
	if err != nil {
		return 0, 0, fmt.Errorf("recipe test filter %q: %w", filter, err)
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !de.IsDir() && strings.HasSuffix(p, "_test.star") {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("find recipe tests under %q: %w", root, err)
	}
	sort.Strings(files)
	for _, f := range files {
		ev, err := newEvaluator(ctx, Options{Root: root, Print: func(msg string) { fmt.Fprintln(out, msg) }})
		if err != nil {
			return passed, failed, err
		}
		ev.predeclared["assert"] = assertModule()
		ev.stdlibPre["assert"] = ev.predeclared["assert"]
		g, err := ev.load(f)
		if err != nil {
			if ctx.Err() != nil {
				return passed, failed, fmt.Errorf("recipe tests: %w", ctx.Err())
			}
			failed++
			fmt.Fprintf(out, "FAIL %s\n%s", f, renderErr(err))
			continue
		}
		var names []string
		for k, v := range g {
			if _, ok := v.(*sl.Function); ok && strings.HasPrefix(k, "test_") && re.MatchString(f+"::"+k) {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			ev.d = newDecls()
			thread, done := ev.newThread(f)
			_, err := sl.Call(thread, g[n], nil, nil)
			done()
			ev.budget = ev.opts.MaxSteps // each test gets the full budget
			if err != nil {
				if ctx.Err() != nil {
					return passed, failed, fmt.Errorf("recipe tests: %w", ctx.Err())
				}
				failed++
				fmt.Fprintf(out, "FAIL %s::%s\n%s", f, n, renderErr(ev.evalDiag(err)))
				continue
			}
			passed++
			fmt.Fprintf(out, "PASS %s::%s\n", f, n)
		}
	}
	return passed, failed, nil
}

func renderErr(err error) string {
	if d, ok := err.(*Diagnostic); ok {
		return d.Render()
	}
	return err.Error() + "\n"
}

// assertModule is the `assert` module of recipe tests.
func assertModule() *starlarkstruct.Module {
	return &starlarkstruct.Module{Name: "assert", Members: sl.StringDict{
		"eq": sl.NewBuiltin("assert.eq", func(_ *sl.Thread, _ *sl.Builtin, args sl.Tuple, kwargs []sl.Tuple) (sl.Value, error) {
			var a, b sl.Value
			msg := ""
			if err := sl.UnpackArgs("assert.eq", args, kwargs, "got", &a, "want", &b, "msg?", &msg); err != nil {
				return nil, err
			}
			eq, err := sl.Equal(a, b)
			if err != nil {
				return nil, err
			}
			if !eq {
				return nil, errorf("assert.eq: got %s, want %s%s", a, b, withMsg(msg))
			}
			return sl.None, nil
		}),
		"true": sl.NewBuiltin("assert.true", func(_ *sl.Thread, _ *sl.Builtin, args sl.Tuple, kwargs []sl.Tuple) (sl.Value, error) {
			var a sl.Value
			msg := ""
			if err := sl.UnpackArgs("assert.true", args, kwargs, "cond", &a, "msg?", &msg); err != nil {
				return nil, err
			}
			if !a.Truth() {
				return nil, errorf("assert.true: %s is not true%s", a, withMsg(msg))
			}
			return sl.None, nil
		}),
		"fails": sl.NewBuiltin("assert.fails", func(t *sl.Thread, _ *sl.Builtin, args sl.Tuple, kwargs []sl.Tuple) (sl.Value, error) {
			var fn sl.Callable
			pattern := ""
			if err := sl.UnpackArgs("assert.fails", args, kwargs, "fn", &fn, "pattern?", &pattern); err != nil {
				return nil, err
			}
			_, err := sl.Call(t, fn, nil, nil)
			if err == nil {
				return nil, errorf("assert.fails: %s did not fail", fn.Name())
			}
			if pattern != "" {
				re, rerr := regexp.Compile(pattern)
				if rerr != nil {
					return nil, errorf("assert.fails: bad pattern %q: %v", pattern, rerr)
				}
				msg := err.Error()
				if ee, ok := err.(*sl.EvalError); ok {
					msg = ee.Msg
				}
				if !re.MatchString(msg) {
					return nil, errorf("assert.fails: error %q does not match %q", msg, pattern)
				}
			}
			return sl.None, nil
		}),
	}}
}

func withMsg(m string) string {
	if m == "" {
		return ""
	}
	return ": " + m
}
