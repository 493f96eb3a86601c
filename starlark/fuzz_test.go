package starlark

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzEval checks that evaluating any source never panics and that every
// failure is a *Diagnostic.
func FuzzEval(f *testing.F) {
	for _, dir := range []string{"testdata/errors", "../examples/web-recipe", "../examples/multi", "../examples/shared-lib"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.star"))
		for _, p := range files {
			if strings.HasPrefix(filepath.Base(p), "huge_") {
				continue // mutations of these only make big allocations (bounded, but slow)
			}
			if b, err := os.ReadFile(p); err == nil {
				f.Add(string(b))
			}
		}
	}
	f.Add("bundle(name = \"x\", version = \"1\")\nx = [i for i in range(10)] * 3\n")
	f.Add("def f(x):\n    return f(x)\nf(1)\n")
	f.Add("load(\"@volt//images.star\", \"per_platform\")\nbundle(\"x\", \"1\")\n")
	f.Fuzz(func(t *testing.T, src string) {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "images"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "images", "app.tar"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "volt.star"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := Eval(context.Background(), Options{Root: root, MaxSteps: 20_000})
		if err != nil {
			if !IsRecipeError(err) {
				t.Fatalf("error is not a *Diagnostic: %T %v", err, err)
			}
			if strings.Contains(err.Error(), "goroutine ") {
				t.Fatalf("Go stack trace in error: %v", err)
			}
			return
		}
		if p.Name == "" || p.Version == "" {
			t.Fatalf("plan without name or version: %+v", p)
		}
	})
}
