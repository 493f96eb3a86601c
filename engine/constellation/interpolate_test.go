package constellation

import (
	"errors"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestInterpolateSpec follows the compose specification's interpolation
// section, example by example.
func TestInterpolateSpec(t *testing.T) {
	vars := env(map[string]string{"VARIABLE": "set", "EMPTY": "", "FOO": "foo", "TAG": "v1.5"})
	for _, tc := range []struct{ in, want string }{
		// Plain references.
		{"$VARIABLE", "set"},
		{"${VARIABLE}", "set"},
		{"image: webapp:${TAG}", "image: webapp:v1.5"},
		{"$VARIABLE-suffix", "set-suffix"},
		{"${VARIABLE}_suffix", "set_suffix"},
		// ${VARIABLE:-default}: default if unset or empty.
		{"${UNSET:-default}", "default"},
		{"${EMPTY:-default}", "default"},
		{"${VARIABLE:-default}", "set"},
		// ${VARIABLE-default}: default only if unset.
		{"${UNSET-default}", "default"},
		{"${EMPTY-default}", ""},
		{"${VARIABLE-default}", "set"},
		// ${VARIABLE:+replacement}: replacement if set and not empty.
		{"${VARIABLE:+replacement}", "replacement"},
		{"${EMPTY:+replacement}", ""},
		{"${UNSET:+replacement}", ""},
		// ${VARIABLE+replacement}: replacement if set.
		{"${VARIABLE+replacement}", "replacement"},
		{"${EMPTY+replacement}", "replacement"},
		{"${UNSET+replacement}", ""},
		// ${VARIABLE:?err} / ${VARIABLE?err} pass values through.
		{"${VARIABLE:?err}", "set"},
		{"${EMPTY?err}", ""},
		// Nested references.
		{"${UNSET:-${FOO}}", "foo"},
		{"${UNSET?$FOO}", ""}, // replaced below by the error case
		{"${UNSET:-${UNSET2:-default}}", "default"},
		{"${VARIABLE:-${UNSET2:?never}}", "set"},
		// $$ is a literal $, as in "$$VAR_NOT_INTERPOLATED_BY_COMPOSE".
		{"$$VAR_NOT_INTERPOLATED_BY_COMPOSE", "$VAR_NOT_INTERPOLATED_BY_COMPOSE"},
		{"echo $$APP_ENV", "echo $APP_ENV"},
		{"$${VARIABLE}", "${VARIABLE}"},
		{"${UNSET:-$$}", "$"},
		// Unset without a default: compose substitutes "".
		{"a${UNSET}b$UNSET", "ab"},
		// A $ that starts no reference stays.
		{"cost: 5$", "cost: 5$"},
		{"a $ b $1", "a $ b $1"},
		{"${UNSET:-a}}", "a}"},
	} {
		if tc.in == "${UNSET?$FOO}" {
			continue
		}
		got, err := Interpolate(tc.in, vars, UnsetEmpty)
		if err != nil || got != tc.want {
			t.Errorf("Interpolate(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestInterpolateErrors(t *testing.T) {
	vars := env(map[string]string{"EMPTY": "", "FOO": "foo"})
	for _, tc := range []struct {
		in, want string
		unset    bool
		offset   int
	}{
		{"${UNSET:?must be set}", "UNSET: must be set", true, 0},
		{"${EMPTY:?must not be empty}", "EMPTY: must not be empty", true, 0},
		{"x ${UNSET?$FOO is missing}", "UNSET: foo is missing", true, 2},
		{"${UNSET?}", `UNSET: variable "UNSET" is not set`, true, 0},
		{"ab${UNSET", "unterminated ${", false, 2},
		{"${1X}", "bad variable reference", false, 0},
		{"${A B}", "bad variable name", false, 0},
		{"${}", "bad variable reference", false, 0},
		{"${A:}", "bad variable name", false, 0},
	} {
		_, err := Interpolate(tc.in, vars, UnsetEmpty)
		var ie *InterpolateError
		if !errors.As(err, &ie) || !strings.Contains(ie.Msg, tc.want) || ie.Unset != tc.unset || ie.Offset != tc.offset {
			t.Errorf("Interpolate(%q) error = %#v, want %q (unset %v, offset %d)", tc.in, err, tc.want, tc.unset, tc.offset)
		}
	}
}

func TestInterpolateUnsetModes(t *testing.T) {
	vars := env(map[string]string{"A": "1"})
	for _, tc := range []struct {
		unset Unset
		in    string
		want  string
		err   bool
	}{
		{UnsetKeep, "$A ${B} $B ${B:-d} $$x", "1 ${B} $B d $x", false},
		{UnsetEmpty, "[$B]", "[]", false},
		{UnsetError, "x\n${B}", "", true},
	} {
		got, err := Interpolate(tc.in, vars, tc.unset)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("Interpolate(%q) = %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.err)
		}
		var ie *InterpolateError
		if tc.err && (!errors.As(err, &ie) || ie.Offset != 2 || ie.Var != "B") {
			t.Errorf("unset error %#v: want offset 2, var B", err)
		}
	}
}

func FuzzInterpolate(f *testing.F) {
	for _, s := range []string{"", "$A", "${A}", "${A:-b}", "${A-b}", "${A:?e}", "${A?e}", "${A:+x}", "${A+x}",
		"$$", "${", "${A:-${B:-${C}}}", "x$", "${A:-}}", "$${A}"} {
		f.Add(s)
	}
	vars := env(map[string]string{"A": "v", "E": ""})
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Interpolate(s, vars, UnsetEmpty)
		if err == nil && !strings.Contains(s, "$") && out != s {
			t.Fatalf("text without $ changed: %q -> %q", s, out)
		}
		var ie *InterpolateError
		if err != nil && (!errors.As(err, &ie) || ie.Offset < 0 || ie.Offset >= len(s)) {
			t.Fatalf("Interpolate(%q): error %#v has no offset in the text", s, err)
		}
		// Keeping unset references never fails where substituting "" passes.
		if err == nil {
			if _, kerr := Interpolate(s, vars, UnsetKeep); kerr != nil {
				t.Fatalf("UnsetKeep failed on %q: %v", s, kerr)
			}
		}
	})
}
