package starlark

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestDocs fails when docs/recipes.md is stale; -update regenerates it.
func TestDocs(t *testing.T) {
	var b bytes.Buffer
	if err := Docs(&b, ""); err != nil {
		t.Fatal(err)
	}
	const path = "../docs/recipes.md"
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./starlark -run TestDocs -update)", err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Error("docs/recipes.md is stale: run go test ./starlark -run TestDocs -update")
	}
}

func TestDocsBuiltin(t *testing.T) {
	for _, b := range Builtins() {
		if b.Doc == "" {
			t.Errorf("%s has no doc", b.Name)
		}
		for _, p := range b.Params {
			if p.Doc == "" {
				t.Errorf("%s(%s) has no doc", b.Name, p.Name)
			}
		}
	}
	var out bytes.Buffer
	if err := Docs(&out, "container"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "| `environment` | dict of str to str |") {
		t.Errorf("container docs lack the environment row:\n%s", out.String())
	}
	err := Docs(&out, "contaner")
	if err == nil || !strings.Contains(err.Error(), `did you mean "container"?`) {
		t.Errorf("Docs(contaner) = %v, want a did-you-mean error", err)
	}
}
