package qcow2_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/volt-cli/volt/plugins/format-qcow2/qcow2"
	"github.com/volt-cli/volt/sdk/conformance"
	"github.com/volt-cli/volt/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	conformance.Format(t, func(t *testing.T) conformance.FormatFixture {
		return conformance.FormatFixture{
			Format: sdktest.Format(t, qcow2.New()),
			Name:   qcow2.FormatQcow2,
			Input: func(t *testing.T) string {
				p := filepath.Join(t.TempDir(), "in.qcow2")
				if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, "4M").CombinedOutput(); err != nil {
					t.Fatalf("qemu-img create: %v %s", err, out)
				}
				return p
			},
			Bad: func(t *testing.T) []string {
				dir := t.TempDir()
				backed := filepath.Join(dir, "backed.qcow2")
				if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "/etc/passwd", "-F", "raw", backed, "1M").CombinedOutput(); err != nil {
					t.Fatalf("qemu-img create: %v %s", err, out)
				}
				notQcow := filepath.Join(dir, "raw.qcow2")
				os.WriteFile(notQcow, make([]byte, 4096), 0o644)
				return []string{backed, notQcow}
			},
			Equal: func(t *testing.T, a, b string) {
				out, err := exec.Command("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2",
					filepath.Join(a, "disk.qcow2"), filepath.Join(b, "disk.qcow2")).CombinedOutput()
				if err != nil {
					t.Errorf("qemu-img compare: %v %s", err, out)
				}
			},
		}
	})
}

func TestBinaryHandshake(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	bin := filepath.Join(t.TempDir(), "volt-plugin-format-qcow2")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	conformance.Binary(t, bin, "format")
}
