package constellation

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	data, err := os.ReadFile("testdata/env.sample")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseEnvFile("env.sample", data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"APP_ENV": "production", "PORT": "8080", "QUOTED": "a \"b\" c\nd",
		"SINGLE": `literal $HOME \n`, "INLINE": "value", "EMPTY": "",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestParseEnvFileForms(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"\ufeffA=1\r\nB=2\r\n", map[string]string{"A": "1", "B": "2"}},
		{"A=1\nA=2\n", map[string]string{"A": "2"}},
		{"  A = x y  \n", map[string]string{"A": "x y"}},
		{"URL=http://h/#frag\n", map[string]string{"URL": "http://h/#frag"}},
		{`A="x" # c` + "\n", map[string]string{"A": "x"}},
		{"A=b=c\n", map[string]string{"A": "b=c"}},
		{"", map[string]string{}},
	}
	for _, tt := range tests {
		got, err := ParseEnvFile("e", []byte(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseEnvFile(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseEnvFileErrors(t *testing.T) {
	tests := []struct{ in, want, hint string }{
		{"A=1\nJUSTTEXT\n", `.env:2:1: want KEY=VALUE, got "JUSTTEXT"`, "write KEY=VALUE"},
		{"  1A=x\n", `.env:1:3: invalid variable name "1A"`, "names are letters, digits and '_', not starting with a digit"},
		{"A=\"open\n", `.env:1:3: unterminated double-quoted value`, "close the quote on the same line"},
		{"export  B='open\n", `.env:1:11: unterminated single-quoted value`, "close the quote on the same line"},
		{"A=\"x\" y\n", `.env:1:3: unexpected text after closing quote: "y"`, "remove the text after the closing quote"},
	}
	for _, tt := range tests {
		_, err := ParseEnvFile(".env", []byte(tt.in))
		var e *Error
		if !errors.As(err, &e) || err.Error() != tt.want || e.Hint != tt.hint {
			t.Errorf("ParseEnvFile(%q) error = %v (hint %q); want %s (hint %q)", tt.in, err, hintOf(err), tt.want, tt.hint)
		}
	}
}

func hintOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Hint
	}
	return ""
}
