package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSetSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "config.yaml")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("missing file: %v", err)
	}
	steps := []struct{ key, op, val string }{
		{"bundle.trusted_keys", "+=", "ssh-ed25519 AAAA a@x"},
		{"bundle.trusted_keys", "+=", "ssh-ed25519 BBBB b@x"},
		{"bundle.trusted_keys", "+=", "ssh-ed25519 AAAA a@x"}, // once only
		{"bundle.trusted_keys", "-=", "ssh-ed25519 BBBB b@x"},
		{"bundle.require_signature", "=", "true"},
		{"recipe.max_steps", "=", "1000"},
	}
	for _, s := range steps {
		if err := c.Set(s.key, s.op, s.val); err != nil {
			t.Fatalf("Set(%s %s %s): %v", s.key, s.op, s.val, err)
		}
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	d, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.List("bundle.trusted_keys"); !reflect.DeepEqual(got, []string{"ssh-ed25519 AAAA a@x"}) {
		t.Errorf("trusted_keys = %q", got)
	}
	if !d.Bool("bundle.require_signature") || d.Int("recipe.max_steps") != 1000 {
		t.Errorf("values lost: %v", d.All())
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "bundle:") {
		t.Errorf("keys not nested in the file:\n%s", data)
	}
}

func TestErrors(t *testing.T) {
	c := &Config{}
	for _, tc := range []struct{ key, op, val, want string }{
		{"bundle.trusted_key", "=", "x", `did you mean "bundle.trusted_keys"`},
		{"bundle.require_signature", "=", "maybe", "want a bool"},
		{"recipe.max_steps", "+=", "1", "works only on lists"},
		{"cas.remotes", "*=", "x", "unknown operator"},
	} {
		err := c.Set(tc.key, tc.op, tc.val)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Set(%s %s %s) = %v, want %q", tc.key, tc.op, tc.val, err, tc.want)
		}
	}
	if _, err := c.Get("nope"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Get(nope) = %v", err)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("bundle:\n  trusted_kyes: [x]\n"), 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "did you mean") {
		t.Errorf("Load with a typo: %v", err)
	}
	os.WriteFile(path, []byte(": : :"), 0o644)
	if _, err := Load(path); err == nil {
		t.Errorf("Load of invalid YAML succeeded")
	}
}
