package starlark

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/volt-cli/volt/engine/plan"
)

var update = flag.Bool("update", false, "rewrite golden files and docs/recipes.md")

// examplesDir is the repository's examples directory.
func examplesDir(t testing.TB) string {
	t.Helper()
	d, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// planJSON renders a Plan with its machine-specific Root blanked, and the
// digests of images generated on this host (generatedImages) too.
func planJSON(t testing.TB, p *plan.Plan) []byte {
	t.Helper()
	c := *p
	c.Root = "<root>"
	b, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	var n plan.Plan
	if err := json.Unmarshal(b, &n); err != nil {
		t.Fatal(err)
	}
	var blank func(src *plan.ImageSource)
	blank = func(src *plan.ImageSource) {
		if src == nil {
			return
		}
		if _, ok := generatedImages[src.Path]; ok {
			src.Digest = "<generated>"
		}
		if src.Build != nil {
			blank(src.Build.Base)
		}
	}
	for _, s := range n.Services {
		for _, src := range s.Images {
			blank(src)
		}
	}
	for i := range n.Inputs {
		if _, ok := generatedImages[n.Inputs[i].Path]; ok {
			n.Inputs[i].Digest = "<generated>"
		}
	}
	b, err = json.MarshalIndent(&n, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestGoldenExamples(t *testing.T) {
	for _, ex := range []string{"web-recipe", "multi", "shared-lib"} {
		t.Run(ex, func(t *testing.T) {
			root := filepath.Join(examplesDir(t), ex)
			if _, err := os.Stat(root); err != nil {
				t.Skipf("example %s absent", ex)
			}
			p, err := Eval(context.Background(), Options{Root: root})
			if err != nil {
				var d *Diagnostic
				if errors.As(err, &d) {
					t.Fatalf("Eval: %s", d.Render())
				}
				t.Fatalf("Eval: %v", err)
			}
			got := planJSON(t, p)
			golden := filepath.Join("testdata", ex+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./starlark -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("plan differs from %s (run with -update after checking):\n%s", golden, got)
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	for _, ex := range []string{"multi", "shared-lib"} {
		root := filepath.Join(examplesDir(t), ex)
		a, err := Eval(context.Background(), Options{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Eval(context.Background(), Options{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two evaluations gave different Plans", ex)
		}
		if !bytes.Equal(planJSON(t, a), planJSON(t, b)) {
			t.Errorf("%s: two evaluations gave different JSON", ex)
		}
	}
}

// TestExampleHello evaluates examples/hello, the quick start's recipe: a
// bundle() plus constellation() of the file beside it.
func TestExampleHello(t *testing.T) {
	root := filepath.Join(examplesDir(t), "hello")
	if _, err := os.Stat(root); err != nil {
		t.Skip("examples/hello absent")
	}
	p, err := Eval(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatalf("Eval: %v", err)
	}
	if p.Recipe != "volt.star" || p.Version != "0.1.0" || len(p.Services) != 1 || len(p.Services[0].Config) != 1 {
		t.Errorf("plan = recipe %q version %q services %d", p.Recipe, p.Version, len(p.Services))
	}
}

// TestConcurrentEval checks evaluations share no mutable state (run with -race).
func TestConcurrentEval(t *testing.T) {
	root := filepath.Join(examplesDir(t), "multi")
	want, err := Eval(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			p, err := Eval(context.Background(), Options{Root: root})
			if err == nil && !reflect.DeepEqual(p, want) {
				err = errors.New("different plan")
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestSharedImageHashedOnce: one image file named by two paths (a symlink)
// gets one digest, and every container on it points at the same source.
func TestSharedImageHashedOnce(t *testing.T) {
	root := writeSharedImageRecipe(t, 6)
	p, err := Eval(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]bool{}
	for _, s := range p.Services {
		src := s.Images["linux/amd64"]
		if src == nil || src.Digest == "" {
			t.Fatalf("%s: image %+v", s.Name, src)
		}
		digests[src.Digest] = true
	}
	if len(p.Services) != 6 || len(digests) != 1 {
		t.Fatalf("%d services, %d distinct digests, want 6 and 1", len(p.Services), len(digests))
	}
}
