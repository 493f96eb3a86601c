package main

import (
	"archive/zip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestACERoundTripAndImport(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeFiles(t, stack, map[string]string{
		"volt-compose.yaml": `version: "1"
name: legacy
containers:
  app:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "echo ace-app-up; exec sleep 1000"]
    environment: {MODE: prod}
`,
	})
	writeImage(t, stack)

	// vbundle recipe -> ACE zip.
	aceZip := filepath.Join(e.dir, "legacy.zip")
	e.must("bundle", "create", stack, "--format", "ace", "-o", aceZip)
	zr, err := zip.OpenReader(aceZip)
	if err != nil {
		t.Fatalf("ACE output is not a zip: %v", err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	zr.Close()
	if len(names) != 2 || names[0] != "compose.json" || !strings.HasPrefix(names[1], "images/") {
		t.Errorf("ACE entries = %v", names)
	}

	// ACE -> vbundle, with the host computing the hashes: it verifies.
	vb := filepath.Join(e.dir, "legacy.vbundle")
	e.must("bundle", "convert", aceZip, "-o", vb)
	e.must("bundle", "verify", vb)
	if r := e.must("bundle", "inspect", vb); !strings.Contains(r.stdout, "app") || !strings.Contains(r.stdout, "Bundle: legacy") {
		t.Errorf("inspect of converted bundle:\n%s", r.stdout)
	}

	// Importing the ACE zip converts it on the way in.
	defer e.run("stack", "destroy", "legacy")
	r := e.must("bundle", "import", aceZip)
	if !strings.Contains(r.stderr, "ACE bundle") {
		t.Errorf("import did not say it converted: %s", r.stderr)
	}
	waitFor(t, func() bool { return strings.Contains(e.run("logs", "legacy/app").stdout, "ace-app-up") }, "ACE app output")

	// An ACE zip whose image lies outside images/ is refused.
	bad := filepath.Join(e.dir, "bad.zip")
	f, _ := os.Create(bad)
	zw := zip.NewWriter(f)
	w, _ := zw.Create("compose.json")
	w.Write([]byte(`{"name":"bad","version":"1","services":{"x":{"image":"../x.tar.gz"}}}`))
	zw.Close()
	f.Close()
	if r := e.run("bundle", "convert", bad, "-o", filepath.Join(e.dir, "bad.vbundle")); r.code == 0 {
		t.Errorf("ACE with an image outside images/ accepted")
	}
	if _, err := os.Stat(filepath.Join(e.dir, "bad.vbundle")); err == nil {
		t.Errorf("a refused conversion left output behind")
	}
}
