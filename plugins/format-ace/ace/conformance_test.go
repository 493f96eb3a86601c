package ace_test

import (
	"archive/zip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/volt-cli/volt/plugins/format-ace/ace"
	"github.com/volt-cli/volt/sdk/conformance"
	"github.com/volt-cli/volt/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	conformance.Format(t, func(t *testing.T) conformance.FormatFixture {
		return conformance.FormatFixture{
			Format:      sdktest.Format(t, &ace.Plugin{}),
			Name:        ace.TargetACE,
			NoRoundTrip: true, // ACE is converted, never unpacked
			Input: func(t *testing.T) string {
				p := filepath.Join(t.TempDir(), "in.zip")
				f, _ := os.Create(p)
				zw := zip.NewWriter(f)
				w, _ := zw.Create("compose.json")
				w.Write([]byte(`{"name":"x","version":"1","services":{"s":{"image":"images/s.tar"}}}`))
				w, _ = zw.Create("images/s.tar")
				w.Write(make([]byte, 1024))
				zw.Close()
				f.Close()
				return p
			},
		}
	})
}

func TestBinaryHandshake(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	bin := filepath.Join(t.TempDir(), "volt-plugin-format-ace")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	conformance.Binary(t, bin, "format")
}
