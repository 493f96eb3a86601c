package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestExecAndLogsTail(t *testing.T) {
	rt := sdktest.Runtime(t, &Runtime{})
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "w")
	h, err := rt.Start(ctx, sdk.WorkloadSpec{Name: "w", StateDir: dir, Env: map[string]string{"A": "1"},
		Command: []string{"/bin/sh", "-c", "echo one; echo two; echo three; exec sleep 600"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Destroy(ctx, h)
	tests := []struct {
		cmd   []string
		stdin string
		out   string
		code  int
	}{
		{[]string{"cat"}, "hello", "hello", 0},
		{[]string{"/bin/sh", "-c", "echo $A$B; exit 4"}, "", "1x\n", 4},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		req := sdk.ExecRequest{Command: tc.cmd, Env: map[string]string{"B": "x"}, Stdout: &out, Stderr: &out}
		if tc.stdin != "" {
			req.Stdin = strings.NewReader(tc.stdin)
		}
		code, err := rt.Exec(ctx, h, req)
		if err != nil || code != tc.code || out.String() != tc.out {
			t.Errorf("Exec(%v) = %d, %q, %v; want %d, %q", tc.cmd, code, out.String(), err, tc.code, tc.out)
		}
	}
	var logs bytes.Buffer
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "three"); {
		if time.Now().After(deadline) {
			t.Fatalf("log never showed the third line: %q", logs.String())
		}
		logs.Reset()
		if err := rt.Logs(ctx, h, false, 2, &logs); err != nil {
			t.Fatal(err)
		}
	}
	if logs.String() != "two\nthree\n" {
		t.Errorf("Logs(tail 2) = %q", logs.String())
	}
	if _, err := rt.Start(ctx, sdk.WorkloadSpec{Name: "w", StateDir: dir, Command: []string{"true"}}); !errors.Is(err, sdk.ErrExists) {
		t.Errorf("Start into a used state dir: err = %v, want ErrExists", err)
	}
	if _, err := rt.Start(ctx, sdk.WorkloadSpec{Name: "x", StateDir: t.TempDir()}); !errors.Is(err, sdk.ErrInvalid) {
		t.Errorf("Start without a command: err = %v, want ErrInvalid", err)
	}
}
