package starlark

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var directiveRE = regexp.MustCompile(`(?m)^# (want|hint|set|max_steps): (.*)$`)

// TestErrors evaluates each testdata/errors/*.star and compares the
// diagnostic with its "# want:" comment (and "# hint:" when present).
// "# set: K=V" passes a parameter, "# max_steps: N" a step limit.
func TestErrors(t *testing.T) {
	root, err := filepath.Abs("testdata/errors")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "*.star"))
	if len(files) == 0 {
		t.Fatal("no error tests")
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".star"), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{Root: root, File: name, Params: map[string]string{}}
			var want, hint string
			hasHint := false
			for _, m := range directiveRE.FindAllStringSubmatch(string(src), -1) {
				switch m[1] {
				case "want":
					if want, err = strconv.Unquote(m[2]); err != nil {
						t.Fatalf("bad want: %v", err)
					}
				case "hint":
					hasHint = true
					if hint, err = strconv.Unquote(m[2]); err != nil {
						t.Fatalf("bad hint: %v", err)
					}
				case "set":
					k, v, _ := strings.Cut(m[2], "=")
					opts.Params[k] = v
				case "max_steps":
					n, err := strconv.ParseUint(m[2], 10, 64)
					if err != nil {
						t.Fatal(err)
					}
					opts.MaxSteps = n
				}
			}
			_, err = Eval(context.Background(), opts)
			var d *Diagnostic
			if !errors.As(err, &d) {
				t.Fatalf("Eval error = %v (%T), want a *Diagnostic", err, err)
			}
			if *update {
				out := directiveRE.ReplaceAllStringFunc(string(src), func(line string) string {
					if strings.HasPrefix(line, "# want: ") {
						return "# want: " + strconv.Quote(d.Error())
					}
					return line
				})
				if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if d.Error() != want {
				t.Errorf("got  %q\nwant %q", d.Error(), want)
			}
			if hasHint && d.Hint != hint {
				t.Errorf("hint %q, want %q", d.Hint, hint)
			}
			if r := d.Render(); !strings.HasPrefix(r, d.Error()+"\n") {
				t.Errorf("Render does not start with the error line:\n%s", r)
			}
			if d.Line > 0 && d.Source == "" {
				t.Errorf("no source line for %s", d.Error())
			}
		})
	}
}
