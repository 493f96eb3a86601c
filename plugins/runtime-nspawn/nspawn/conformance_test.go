package nspawn_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/volt-cli/volt/plugins/runtime-nspawn/nspawn"
	"github.com/volt-cli/volt/plugins/runtime-nspawn/testrootfs"
	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/conformance"
	"github.com/volt-cli/volt/sdk/sdktest"
)

// TestConformance runs the SDK's runtime suite against the runtime served
// over real gRPC (sdktest), with real containers.
func TestConformance(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Skip("systemd-nspawn not installed")
	}
	conformance.Runtime(t, func(t *testing.T) conformance.Fixture {
		base := t.TempDir()
		// One rootfs per workload: nspawn locks a rootfs while a container uses it.
		spec := func(t *testing.T, name, script string) sdk.WorkloadSpec {
			root := filepath.Join(base, name, "rootfs")
			if err := testrootfs.Build(root); err != nil {
				t.Fatal(err)
			}
			return sdk.WorkloadSpec{Name: name, Root: root, StateDir: filepath.Join(base, name, "state"),
				Command: []string{"/bin/sh", "-c", script}}
		}
		return conformance.Fixture{
			Runtime: sdktest.Runtime(t, nspawn.New(nspawn.Options{})),
			Reopen:  func(t *testing.T) sdk.Runtime { return sdktest.Runtime(t, nspawn.New(nspawn.Options{})) },
			LongRunning: func(t *testing.T, name string) sdk.WorkloadSpec {
				return spec(t, name, "echo "+conformance.Marker+"; exec sleep 1000")
			},
			ShortLived: func(t *testing.T, name string, code int) sdk.WorkloadSpec {
				return spec(t, name, fmt.Sprintf("echo %s; exit %d", conformance.Marker, code))
			},
			BuildStep: func(t *testing.T, code int) sdk.RunRequest {
				root := filepath.Join(t.TempDir(), "rootfs")
				if err := testrootfs.Build(root); err != nil {
					t.Fatal(err)
				}
				return sdk.RunRequest{Root: root, Command: []string{"/bin/sh", "-c", fmt.Sprintf("echo %s; exit %d", conformance.Marker, code)}}
			},
		}
	})
}
