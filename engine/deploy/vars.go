package deploy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/volt-cli/volt/engine/constellation"
)

// ErrUndefinedVar is wrapped by Expand when a ${VAR} has no value and no default.
var ErrUndefinedVar = errors.New("undefined variable")

// Expand interpolates s with vars as the compose specification says
// (constellation.Interpolate: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d},
// ${VAR:?err}, ${VAR?err}, ${VAR:+alt}, ${VAR+alt}); a variable with no value
// and no default is an error wrapping ErrUndefinedVar. name names the text in
// errors, which give its line: `config/web/app.conf:3: undefined variable "DB_HOST"`.
func Expand(name, s string, vars map[string]string) (string, error) {
	out, err := constellation.Interpolate(s, lookupIn(vars), func(ref, v string) (string, error) {
		return "", &constellation.InterpolateError{Var: v, Unset: true}
	})
	var ie *constellation.InterpolateError
	if errors.As(err, &ie) {
		line := 1 + strings.Count(s[:min(ie.Offset, len(s))], "\n")
		switch {
		case ie.Unset && ie.Msg == "":
			return "", fmt.Errorf("%s:%d: %w %q (set it with --set %s=VALUE, give a default: ${%s:-value}, or write $$ for a literal $)",
				name, line, ErrUndefinedVar, ie.Var, ie.Var, ie.Var)
		case ie.Unset:
			return "", fmt.Errorf("%s:%d: %w: %s (set it with --set %s=VALUE)", name, line, ErrUndefinedVar, ie.Msg, ie.Var)
		}
		return "", fmt.Errorf("%s:%d: %s", name, line, ie.Msg)
	}
	return out, err
}

// ExpandCommand interpolates a command's arguments like Expand, except that
// a reference to a variable that is not set is left for the shell in the
// container to expand ($HOME, ${i}); $$ still gives a literal $.
func ExpandCommand(name string, argv []string, vars map[string]string) ([]string, error) {
	if len(argv) == 0 {
		return argv, nil
	}
	out := make([]string, len(argv))
	for i, a := range argv {
		x, err := constellation.Interpolate(a, lookupIn(vars), constellation.UnsetKeep)
		if err != nil {
			return nil, fmt.Errorf("%s argument %d: %w", name, i+1, err)
		}
		out[i] = x
	}
	return out, nil
}

func lookupIn(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}
