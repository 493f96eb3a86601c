package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/conformance"
	"github.com/volt-cli/volt/sdk/sdktest"
)

// TestMain lets Start re-execute the test binary as the supervisor, as the
// real plugin re-executes itself.
func TestMain(m *testing.M) {
	if dir := os.Getenv(superviseEnv); dir != "" {
		os.Exit(supervise(dir))
	}
	os.Exit(m.Run())
}

func fixture(t *testing.T) conformance.Fixture {
	states := t.TempDir()
	sh := func(script string) []string { return []string{"/bin/sh", "-c", script} }
	return conformance.Fixture{
		Runtime: sdktest.Runtime(t, &Runtime{}),
		Reopen:  func(t *testing.T) sdk.Runtime { return sdktest.Runtime(t, &Runtime{}) },
		LongRunning: func(t *testing.T, name string) sdk.WorkloadSpec {
			return sdk.WorkloadSpec{Name: name, StateDir: filepath.Join(states, name),
				Command: sh("echo " + conformance.Marker + "; exec sleep 600")}
		},
		ShortLived: func(t *testing.T, name string, code int) sdk.WorkloadSpec {
			return sdk.WorkloadSpec{Name: name, StateDir: filepath.Join(states, name),
				Command: sh(fmt.Sprintf("echo %s; exit %d", conformance.Marker, code))}
		},
		BuildStep: func(t *testing.T, code int) sdk.RunRequest {
			return sdk.RunRequest{Command: sh(fmt.Sprintf("echo %s; exit %d", conformance.Marker, code))}
		},
	}
}

func TestConformance(t *testing.T) {
	conformance.Runtime(t, fixture)
}
