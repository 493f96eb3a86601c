package deploy

import (
	"errors"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "EMPTY": "", "NAME_2": "x"}
	for _, tc := range []struct {
		in, want string
	}{
		{"plain", "plain"},
		{"${A}", "1"},
		{"$A and $NAME_2", "1 and x"},
		{"${B:-def}", "def"},
		{"${EMPTY:-def}", "def"},
		{"${EMPTY-def}", ""},
		{"${B-def}", "def"},
		{"$$A", "$A"},
		{"cost: 5$", "cost: 5$"},
		{"${A:-}", "1"},
		{"a $ b", "a $ b"},
	} {
		got, err := Expand("t", tc.in, vars)
		if err != nil || got != tc.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestExpandErrors(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"line1\n${MISSING}", `app.conf:2: undefined variable "MISSING"`},
		{"$MISSING", `app.conf:1: undefined variable "MISSING"`},
		{"${A", "app.conf:1: unterminated ${"},
		{"${1X}", "bad variable reference"},
		{"${A B}", "bad variable name"},
	} {
		_, err := Expand("app.conf", tc.in, map[string]string{"A": "1"})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Expand(%q) error = %v, want %q", tc.in, err, tc.want)
		}
	}
	_, err := Expand("x", "${NOPE}", nil)
	if !errors.Is(err, ErrUndefinedVar) {
		t.Errorf("error %v does not wrap ErrUndefinedVar", err)
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "${A}", "$A", "${A:-b}", "$$", "${", "${A-}", "x$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Expand("f", s, map[string]string{"A": "v"})
		if err == nil && !strings.Contains(s, "$") && out != s {
			t.Fatalf("text without $ changed: %q -> %q", s, out)
		}
	})
}
