// Package config reads and edits Volt's configuration file (YAML). Keys are
// dotted names from a fixed table (Keys); unknown keys are errors with a
// "did you mean" hint, so a typo never silently does nothing.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/volt-cli/volt/engine/suggest"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// Kind is the type of a configuration value.
type Kind int

// Value kinds.
const (
	String Kind = iota
	Bool
	Int
	List
)

func (k Kind) String() string {
	return [...]string{"string", "bool", "int", "list"}[k]
}

// Key describes one configuration key.
type Key struct {
	Name string
	Kind Kind
	Doc  string
}

// Keys is every key Volt reads.
var Keys = []Key{
	{"bundle.trusted_keys", List, "public keys (authorized_keys form: \"ssh-ed25519 AAAA… principal\") whose signatures are trusted"},
	{"bundle.allowed_signers", String, "path of an OpenSSH allowed_signers file of trusted signers"},
	{"bundle.require_signature", Bool, "refuse to deploy bundles without a trusted signature"},
	{"bundle.sign_key", String, "default private key for --sign"},
	{"recipe.max_steps", Int, "Starlark step limit for recipe evaluation (0 = default)"},
	{"cas.remotes", List, "HTTP(S) base URLs of Stellarium stores to fetch missing objects from"},
	{"registry.insecure", List, "registries (host:port) reached over plain HTTP"},
	{"plugins.dirs", List, "extra directories searched for volt-plugin-* binaries"},
	{"gitops.keep", Int, "bundles kept per GitOps source for rollback (0 = default 5)"},
}

// ErrUnknownKey is returned for a key not in Keys.
var ErrUnknownKey = errors.New("unknown configuration key")

// Lookup returns the Key named name.
func Lookup(name string) (Key, error) {
	for _, k := range Keys {
		if k.Name == name {
			return k, nil
		}
	}
	names := make([]string, len(Keys))
	for i, k := range Keys {
		names[i] = k.Name
	}
	if best := suggest.Closest(name, names); best != "" {
		return Key{}, fmt.Errorf("%w %q (did you mean %q?)", ErrUnknownKey, name, best)
	}
	return Key{}, fmt.Errorf("%w %q (see: volt config list)", ErrUnknownKey, name)
}

// Config is a loaded configuration file. The zero value is an empty config.
type Config struct {
	Path   string
	values map[string]any // dotted key -> string | bool | int | []string
}

// DefaultPath returns $VOLT_CONFIG, else /etc/volt/config.yaml for root, else
// $XDG_CONFIG_HOME/volt/config.yaml (~/.config/volt/config.yaml).
func DefaultPath() string {
	if p := os.Getenv("VOLT_CONFIG"); p != "" {
		return p
	}
	if os.Geteuid() == 0 {
		return "/etc/volt/config.yaml"
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "volt", "config.yaml")
}

// Load reads path. A missing file is an empty config, not an error.
func Load(path string) (*Config, error) {
	c := &Config{Path: path, values: map[string]any{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.flatten("", tree); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func (c *Config) flatten(prefix string, tree map[string]any) error {
	for k, v := range tree {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			if err := c.flatten(name, sub); err != nil {
				return err
			}
			continue
		}
		key, err := Lookup(name)
		if err != nil {
			return err
		}
		val, err := coerce(key, v)
		if err != nil {
			return err
		}
		c.values[name] = val
	}
	return nil
}

func coerce(key Key, v any) (any, error) {
	bad := fmt.Errorf("%s: want a %s, got %v", key.Name, key.Kind, v)
	switch key.Kind {
	case String:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case Bool:
		switch t := v.(type) {
		case bool:
			return t, nil
		case string:
			b, err := strconv.ParseBool(t)
			if err == nil {
				return b, nil
			}
		}
	case Int:
		switch t := v.(type) {
		case int:
			return t, nil
		case string:
			n, err := strconv.Atoi(t)
			if err == nil {
				return n, nil
			}
		}
	case List:
		switch t := v.(type) {
		case []any:
			out := make([]string, 0, len(t))
			for _, e := range t {
				s, ok := e.(string)
				if !ok {
					return nil, bad
				}
				out = append(out, s)
			}
			return out, nil
		case []string:
			return t, nil
		case string:
			return []string{t}, nil
		}
	}
	return nil, bad
}

// Get returns the value of name (nil when unset).
func (c *Config) Get(name string) (any, error) {
	if _, err := Lookup(name); err != nil {
		return nil, err
	}
	return c.values[name], nil
}

// String returns a string key's value, or "".
func (c *Config) String(name string) string { s, _ := c.values[name].(string); return s }

// Bool returns a bool key's value, or false.
func (c *Config) Bool(name string) bool { b, _ := c.values[name].(bool); return b }

// Int returns an int key's value, or 0.
func (c *Config) Int(name string) int { n, _ := c.values[name].(int); return n }

// List returns a list key's value, or nil.
func (c *Config) List(name string) []string { l, _ := c.values[name].([]string); return l }

// Set changes name. op is "=" (replace), "+=" (append to a list, once) or
// "-=" (remove from a list). The change is in memory until Save.
func (c *Config) Set(name, op, value string) error {
	key, err := Lookup(name)
	if err != nil {
		return err
	}
	if c.values == nil {
		c.values = map[string]any{}
	}
	switch op {
	case "=":
		v, err := coerce(key, value)
		if err != nil {
			return err
		}
		c.values[name] = v
	case "+=", "-=":
		if key.Kind != List {
			return fmt.Errorf("%s is a %s: %s works only on lists", name, key.Kind, op)
		}
		cur := c.List(name)
		out := make([]string, 0, len(cur)+1)
		for _, e := range cur {
			if e != value {
				out = append(out, e)
			}
		}
		if op == "+=" {
			out = append(out, value)
		}
		c.values[name] = out
	default:
		return fmt.Errorf("unknown operator %q (use =, += or -=)", op)
	}
	return nil
}

// Unset removes name.
func (c *Config) Unset(name string) error {
	if _, err := Lookup(name); err != nil {
		return err
	}
	delete(c.values, name)
	return nil
}

// All returns every set key and its value, sorted by key.
func (c *Config) All() []KV {
	out := make([]KV, 0, len(c.values))
	for k, v := range c.values {
		out = append(out, KV{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// KV is one key and its value.
type KV struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// Save writes the config back to c.Path atomically, nesting dotted keys.
func (c *Config) Save() error {
	tree := map[string]any{}
	for k, v := range c.values {
		parts := strings.Split(k, ".")
		m := tree
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = v
	}
	data, err := yaml.Marshal(tree)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return atomicfile.WriteFile(c.Path, data, 0o644)
}
