package oci_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/volt-cli/volt/plugins/format-oci/oci"
	"github.com/volt-cli/volt/sdk/conformance"
	"github.com/volt-cli/volt/sdk/sdktest"
)

// packed makes an OCI image tar of a small tree with the package itself.
func packed(t *testing.T, build func(dir string)) string {
	src := t.TempDir()
	build(src)
	out := filepath.Join(t.TempDir(), "image.tar")
	if _, err := oci.PackOCI(t.Context(), src, out, oci.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestConformance(t *testing.T) {
	conformance.Format(t, func(t *testing.T) conformance.FormatFixture {
		return conformance.FormatFixture{
			Format: sdktest.Format(t, &oci.Plugin{Logf: t.Logf}),
			Name:   oci.FormatOCI,
			Input: func(t *testing.T) string {
				return packed(t, func(dir string) {
					os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
					os.WriteFile(filepath.Join(dir, "etc/hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
					os.Symlink("hosts", filepath.Join(dir, "etc/hosts.link"))
					os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\n"), 0o755)
				})
			},
			Bad: func(t *testing.T) []string {
				full := packed(t, func(dir string) { os.WriteFile(filepath.Join(dir, "f"), make([]byte, 100000), 0o644) })
				b, _ := os.ReadFile(full)
				trunc := filepath.Join(t.TempDir(), "truncated.tar")
				os.WriteFile(trunc, b[:len(b)/2], 0o644)
				junk := filepath.Join(t.TempDir(), "junk.tar")
				os.WriteFile(junk, []byte("not an image"), 0o644)
				return []string{trunc, junk}
			},
			DeviceInput: func(t *testing.T) (string, string) { return conformance.DeviceTar(t), oci.FormatRootfs },
		}
	})
}

func TestBinaryHandshake(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	bin := filepath.Join(t.TempDir(), "volt-plugin-format-oci")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	conformance.Binary(t, bin, "format")
}
