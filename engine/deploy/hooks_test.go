package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/volt-cli/volt/engine/sandbox"
	"github.com/volt-cli/volt/sdk/proc"
)

func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}

// writeHook writes a hook script and returns it with the environment and
// stack dir it runs with.
func writeHook(t *testing.T, body string) (script string, env []string, stackDir string) {
	t.Helper()
	dir := t.TempDir()
	script, stackDir = filepath.Join(dir, "hook.sh"), filepath.Join(dir, "stack")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, hookEnvironment(&Stack{Name: "s"}, stackDir), stackDir
}

func TestRunHookResults(t *testing.T) {
	for _, tc := range []struct {
		name, body, wantErr string // wantErr "" = success
	}{
		{"success", "echo fine\n", ""},
		{"failure names code and last line", "echo first; echo 'disk full' >&2; exit 4\n", "exit code 4: disk full"},
		{"sees its environment", "[ \"$VOLT_HOOK\" = pre-deploy ] && [ \"$PWD\" = \"$VOLT_STACK_DIR\" ] || exit 9\n", ""},
		{"cannot write outside the stack dir", "echo x > /etc/volt-hook-test || exit 7\n", "exit code 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script, env, dir := writeHook(t, tc.body)
			err := runHook(context.Background(), script, "pre-deploy", dir, env, nil)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("err = %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestRunHookTimeout: a hook over its time is killed with everything it
// started, and the error says so.
func TestRunHookTimeout(t *testing.T) {
	old := HookTimeout
	HookTimeout = 2 * time.Second // room for a slow start under load
	defer func() { HookTimeout = old }()
	script, env, stackDir := writeHook(t, "sleep 1000 &\necho $! > \"$VOLT_STACK_DIR/bg.pid\"\necho started\nexec sleep 1000\n")
	start := time.Now()
	err := runHook(context.Background(), script, "pre-deploy", stackDir, env, nil)
	if err == nil || !strings.Contains(err.Error(), "did not finish within 2s and was killed") {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 12*time.Second {
		t.Errorf("runHook took %v after a 2s timeout", d)
	}
	b, err := os.ReadFile(filepath.Join(stackDir, "bg.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for deadline := time.Now().Add(5 * time.Second); proc.Alive(pid, 0); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the hook's background child %d outlived the timeout", pid)
		}
	}
}
