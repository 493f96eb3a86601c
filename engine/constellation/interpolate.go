package constellation

import (
	"fmt"
	"strings"
)

// InterpolateError is a fault in a ${...} reference or an unset variable,
// at byte Offset of the text.
type InterpolateError struct {
	Offset int
	// Var is the variable concerned ("" for a syntax fault).
	Var string
	// Unset is true when Var has no value and the reference no default.
	Unset bool
	Msg   string
}

func (e *InterpolateError) Error() string { return e.Msg }

// Unset says what an unset variable without a default becomes: ref is the
// reference as written ("$VAR", "${VAR}"), name the variable. Compose
// substitutes "" (UnsetEmpty); deploy-time text refuses it (UnsetError);
// commands keep it for the shell (UnsetKeep).
type Unset func(ref, name string) (string, error)

// UnsetEmpty substitutes "", as compose does.
func UnsetEmpty(ref, name string) (string, error) { return "", nil }

// UnsetKeep leaves the reference as written.
func UnsetKeep(ref, name string) (string, error) { return ref, nil }

// UnsetError refuses the reference.
func UnsetError(ref, name string) (string, error) {
	return "", &InterpolateError{Var: name, Unset: true, Msg: fmt.Sprintf("variable %q is not set", name)}
}

// Interpolate expands s as the compose specification's interpolation does:
// "$$" is a literal "$"; $VAR and ${VAR} take VAR's value; ${VAR:-d} gives d
// when VAR is unset or empty, ${VAR-d} only when unset; ${VAR:?err} and
// ${VAR?err} fail with err when VAR is unset or empty / unset; ${VAR:+alt}
// gives alt when VAR is set and not empty, ${VAR+alt} when set, else "".
// Defaults, alternatives and messages may hold references themselves
// (${A:-${B:-c}}). A "$" followed by anything else is kept as written.
// lookup returns a variable's value and whether it is set; unset decides
// what a plain reference to an unset variable becomes. Errors are
// *InterpolateError.
func Interpolate(s string, lookup func(name string) (string, bool), unset Unset) (string, error) {
	return interpolate(s, 0, lookup, unset, 0)
}

// maxDepth bounds nesting of references in defaults.
const maxDepth = 32

func interpolate(s string, base int, lookup func(string) (string, bool), unset Unset, depth int) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	if depth > maxDepth {
		return "", &InterpolateError{Offset: base, Msg: fmt.Sprintf("references nested more than %d deep", maxDepth)}
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch next := s[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i++
		case next == '{':
			end := closingBrace(s, i+2)
			if end < 0 {
				return "", &InterpolateError{Offset: base + i, Msg: "unterminated ${ (add a closing } or write $$ for a literal $)"}
			}
			v, err := braced(s[i+2:end], base+i, lookup, unset, depth)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i = end
		case isNameStart(next):
			j := i + 1
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			name := s[i+1 : j]
			v, ok := lookup(name)
			if !ok {
				var err error
				if v, err = unset(s[i:j], name); err != nil {
					return "", withOffset(err, base+i)
				}
			}
			b.WriteString(v)
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// closingBrace returns the index of the "}" closing a "${" whose body starts
// at from, skipping nested ${...}; -1 when there is none.
func closingBrace(s string, from int) int {
	depth := 0
	for i := from; i < len(s); i++ {
		switch {
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '$':
			i++
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			depth++
			i++
		case s[i] == '}':
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return -1
}

// braced expands the body of one ${...} found at offset at.
func braced(expr string, at int, lookup func(string) (string, bool), unset Unset, depth int) (string, error) {
	n := 0
	for n < len(expr) && isNameChar(expr[n]) {
		n++
	}
	name, op := expr[:n], expr[n:]
	if name == "" || !isNameStart(name[0]) {
		return "", &InterpolateError{Offset: at, Msg: fmt.Sprintf("bad variable reference ${%s}", expr)}
	}
	val, set := lookup(name)
	word := func(w string) (string, error) { return interpolate(w, at, lookup, unset, depth+1) }
	colon := strings.HasPrefix(op, ":")
	rest := strings.TrimPrefix(op, ":")
	present := set && (!colon || val != "")
	if op == "" {
		if set {
			return val, nil
		}
		v, err := unset("${"+expr+"}", name)
		return v, withOffset(err, at)
	}
	if rest == "" {
		return "", &InterpolateError{Offset: at, Msg: fmt.Sprintf("bad variable name %q in ${%s}", expr, expr)}
	}
	arg := rest[1:]
	switch rest[0] {
	case '-':
		if present {
			return val, nil
		}
		return word(arg)
	case '+':
		if present {
			return word(arg)
		}
		return "", nil
	case '?':
		if present {
			return val, nil
		}
		msg, err := word(arg)
		if err != nil {
			return "", err
		}
		if msg == "" {
			msg = fmt.Sprintf("variable %q is not set", name)
			if colon {
				msg = fmt.Sprintf("variable %q is not set or empty", name)
			}
		}
		return "", &InterpolateError{Offset: at, Var: name, Unset: true, Msg: fmt.Sprintf("%s: %s", name, msg)}
	}
	return "", &InterpolateError{Offset: at, Msg: fmt.Sprintf("bad variable name %q in ${%s}", expr, expr)}
}

func withOffset(err error, at int) error {
	if ie, ok := err.(*InterpolateError); ok && ie.Offset == 0 {
		ie.Offset = at
	}
	return err
}

func isNameStart(c byte) bool { return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }
func isNameChar(c byte) bool  { return isNameStart(c) || c >= '0' && c <= '9' }
