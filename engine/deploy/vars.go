package deploy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUndefinedVar is wrapped by Expand when a ${VAR} has no value and no default.
var ErrUndefinedVar = errors.New("undefined variable")

// Expand replaces ${VAR}, ${VAR:-default}, ${VAR-default} and $VAR in s with
// values from vars; "$$" is a literal "$". name names the text in errors,
// which give its line: `config/web/app.conf:3: undefined variable "DB_HOST"`.
// ${VAR:-d} uses d when VAR is unset or empty, ${VAR-d} only when unset.
func Expand(name, s string, vars map[string]string) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	line := 1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\n' {
			line++
		}
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		next := s[i+1]
		switch {
		case next == '$':
			b.WriteByte('$')
			i++
		case next == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("%s:%d: unterminated ${ (add a closing } or write $$ for a literal $)", name, line)
			}
			expr := s[i+2 : i+2+end]
			v, err := lookup(expr, vars)
			if err != nil {
				return "", fmt.Errorf("%s:%d: %w", name, line, err)
			}
			b.WriteString(v)
			i += 2 + end
		case isNameStart(next):
			j := i + 1
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			v, ok := vars[s[i+1:j]]
			if !ok {
				return "", fmt.Errorf("%s:%d: %w %q (set it with --set %s=VALUE, or write $$ for a literal $)", name, line, ErrUndefinedVar, s[i+1:j], s[i+1:j])
			}
			b.WriteString(v)
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func lookup(expr string, vars map[string]string) (string, error) {
	name, def, hasDef, emptyIsUnset := expr, "", false, false
	if k, d, ok := strings.Cut(expr, ":-"); ok {
		name, def, hasDef, emptyIsUnset = k, d, true, true
	} else if k, d, ok := strings.Cut(expr, "-"); ok {
		name, def, hasDef = k, d, true
	}
	if name == "" || !isNameStart(name[0]) {
		return "", fmt.Errorf("bad variable reference ${%s}", expr)
	}
	for i := 1; i < len(name); i++ {
		if !isNameChar(name[i]) {
			return "", fmt.Errorf("bad variable name %q in ${%s}", name, expr)
		}
	}
	v, ok := vars[name]
	if ok && (v != "" || !emptyIsUnset) {
		return v, nil
	}
	if hasDef {
		return def, nil
	}
	return "", fmt.Errorf("%w %q (set it with --set %s=VALUE, or give a default: ${%s:-value})", ErrUndefinedVar, name, name, name)
}

func isNameStart(c byte) bool { return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }
func isNameChar(c byte) bool  { return isNameStart(c) || c >= '0' && c <= '9' }
