package qemu

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/conformance"
)

// TestBinaryHandshake builds volt-plugin-runtime-qemu and checks it the way
// the host starts it: nothing on stdout before the handshake, Info answers.
func TestBinaryHandshake(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "volt-plugin-runtime-qemu")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	conformance.Binary(t, bin, sdk.KindRuntime)
}
