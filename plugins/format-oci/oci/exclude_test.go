package oci

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestPackExclude(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{".volt/tini", "etc/app.conf", "etc/.volt/kept"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	o, err := ParsePackOptions(map[string]string{"exclude": ".volt, /nothing/"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteTree(context.Background(), dir, &buf, o); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, h := range tarHeaders(t, &buf) {
		got[h.Name] = true
	}
	if got[".volt/"] || got[".volt/tini"] {
		t.Errorf("excluded .volt was packed: %v", got)
	}
	if !got["etc/app.conf"] || !got["etc/.volt/kept"] {
		t.Errorf("exclude removed too much: %v", got)
	}
}
