package starlark

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/volt-cli/volt/engine/plan"
	"github.com/volt-cli/volt/engine/suggest"
)

// Diagnostic is a recipe error: a syntax, resolve or evaluation error, or
// an error found after evaluation that points at the declaring call.
// Line and Col are 1-based; 0 means unknown.
type Diagnostic struct {
	File   string
	Line   int
	Col    int
	Msg    string
	Hint   string
	Source string // the source line at Line, without its newline ("" if unknown)
}

// Error returns "file:line:col: msg".
func (d *Diagnostic) Error() string {
	switch {
	case d.File == "":
		return d.Msg
	case d.Line == 0:
		return d.File + ": " + d.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Line, d.Col, d.Msg)
}

// Render returns the error line, the source line with a caret under the
// column, and the hint (when there is one), each ending in a newline.
func (d *Diagnostic) Render() string {
	var b strings.Builder
	b.WriteString(d.Error())
	b.WriteByte('\n')
	if d.Source != "" {
		src := strings.ReplaceAll(d.Source, "\t", " ")
		b.WriteString("    " + src + "\n")
		if d.Col > 0 {
			b.WriteString("    " + strings.Repeat(" ", min(d.Col-1, len(src))) + "^\n")
		}
	}
	if d.Hint != "" {
		b.WriteString("hint: " + d.Hint + "\n")
	}
	return b.String()
}

// IsRecipeError reports whether err is (or wraps) a *Diagnostic, that is, a
// fault in the recipe rather than in Volt or the system. The CLI exits 2 for these.
func IsRecipeError(err error) bool {
	var d *Diagnostic
	return errors.As(err, &d)
}

// recipeError is what builtins return: a message, a hint, and optionally a
// more precise position than the call (e.g. the offending keyword argument).
type recipeError struct {
	msg  string
	hint string
	at   *plan.Pos
}

func (e *recipeError) Error() string { return e.msg }

// errorf makes a *recipeError.
func errorf(format string, args ...any) *recipeError {
	return &recipeError{msg: fmt.Sprintf(format, args...)}
}

func (e *recipeError) withHint(h string) *recipeError { e.hint = h; return e }

func (e *recipeError) atPos(p plan.Pos) *recipeError {
	if p.File != "" {
		e.at = &p
	}
	return e
}

// literalHints maps names from other languages to their Starlark spelling.
var literalHints = map[string]string{
	"true":  "`True`, not `true`",
	"false": "`False`, not `false`",
	"null":  "`None`, not `null`",
	"nil":   "`None`, not `nil`",
	"none":  "`None`, not `none`",
}

// didYouMean returns the candidate closest to name within an edit distance
// of a third of its length (at least 1, at most 3), or "".
func didYouMean(name string, candidates []string) string {
	best, bestD := "", 1+min(3, max(1, len(name)/3))
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	for _, c := range sorted {
		if c == name {
			continue
		}
		if d := suggest.Distance(strings.ToLower(name), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// meanHint renders ` (did you mean "x"?)` or "".
func meanHint(name string, candidates []string) string {
	if s := didYouMean(name, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}
