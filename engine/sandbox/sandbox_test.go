package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	Main()
	os.Exit(m.Run())
}

func TestCommandConfinesWrites(t *testing.T) {
	allowed, denied := t.TempDir(), t.TempDir()
	script := "echo ok > " + filepath.Join(allowed, "a") + "; echo $MARK; echo no > " + filepath.Join(denied, "b")
	cmd, err := Command(context.Background(), Policy{ReadOnly: []string{"/"}, ReadWrite: []string{allowed, "/dev/null"}},
		[]string{"/bin/sh", "-c", script}, []string{"MARK=env-passed", "PATH=/usr/bin:/bin"})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := cmd.CombinedOutput()
	if _, err := os.Stat(filepath.Join(allowed, "a")); err != nil {
		t.Errorf("write to the allowed dir failed: %s", out)
	}
	if _, err := os.Stat(filepath.Join(denied, "b")); err == nil {
		t.Errorf("write outside the policy succeeded (is Landlock available?): %s", out)
	}
	if !strings.Contains(string(out), "env-passed") {
		t.Errorf("environment not passed: %s", out)
	}
	if strings.Contains(string(out), "VOLT_SANDBOX_POLICY") {
		t.Errorf("policy variable leaked")
	}
}
