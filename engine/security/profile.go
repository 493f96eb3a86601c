package security

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/volt-cli/volt/engine/constellation"
	"github.com/volt-cli/volt/sdk"
)

// Profile is a named Landlock profile: a built-in one or a custom file
// (YAML or JSON with the keys fs_read, fs_write, fs_execute, net_bind,
// net_connect and an optional description).
type Profile struct {
	Name        string             `json:"name"`
	Description string             `json:"description,omitempty"`
	Source      string             `json:"source"` // "built-in" or the file's path
	Policy      sdk.LandlockPolicy `json:"policy"`
}

// profileFile is the on-disk form of a custom profile.
type profileFile struct {
	Description string   `json:"description,omitempty" yaml:"description,omitempty"`
	FSRead      []string `json:"fs_read,omitempty" yaml:"fs_read,omitempty"`
	FSWrite     []string `json:"fs_write,omitempty" yaml:"fs_write,omitempty"`
	FSExecute   []string `json:"fs_execute,omitempty" yaml:"fs_execute,omitempty"`
	NetBind     []uint16 `json:"net_bind,omitempty" yaml:"net_bind,omitempty"`
	NetConnect  []uint16 `json:"net_connect,omitempty" yaml:"net_connect,omitempty"`
	// RestrictNet confines TCP even when no port is listed (no TCP at all).
	RestrictNet bool `json:"restrict_net,omitempty" yaml:"restrict_net,omitempty"`
}

// Builtins are the profiles every host has.
var Builtins = []Profile{
	{Name: "default", Source: "built-in", Description: "read and execute the image; write only volumes, tmpfs mounts, /tmp, /run, /var/tmp, a few /dev nodes and security.writable paths",
		Policy: sdk.LandlockPolicy{Execute: []string{"/"}, Write: append(append([]string{}, TmpfsDirs...), deviceFiles...)}},
	{Name: "strict", Source: "built-in", Description: "default, and no TCP bind or connect except binding the service's published container ports (Landlock ABI >= 4)",
		Policy: sdk.LandlockPolicy{Execute: []string{"/"}, Write: append(append([]string{}, TmpfsDirs...), deviceFiles...), RestrictNet: true}},
	{Name: "none", Source: "built-in", Description: "no Landlock restrictions"},
}

var profileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ParseProfile reads a custom profile (YAML or JSON; unknown keys are an
// error). Paths must be absolute container paths.
func ParseProfile(name string, data []byte) (*Profile, error) {
	var f profileFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("profile %s: empty file: want keys fs_read, fs_write, fs_execute, net_bind, net_connect", name)
		}
		return nil, fmt.Errorf("profile %s: %w", name, cleanYAMLError(err))
	}
	return f.profile(name)
}

// InlineProfile is the profile of an inline landlock: {...} policy.
func InlineProfile(r *constellation.LandlockRules) (*Profile, error) {
	f := profileFile{FSRead: r.FSRead, FSWrite: r.FSWrite, FSExecute: r.FSExecute, RestrictNet: r.RestrictNet}
	for _, list := range []struct {
		in  []int
		out *[]uint16
	}{{r.NetBind, &f.NetBind}, {r.NetConnect, &f.NetConnect}} {
		for _, p := range list.in {
			if p < 1 || p > 65535 {
				return nil, fmt.Errorf("landlock: %d is not a TCP port", p)
			}
			*list.out = append(*list.out, uint16(p))
		}
	}
	p, err := f.profile(constellation.LandlockInline)
	if err != nil {
		return nil, err
	}
	p.Source = "inline"
	return p, nil
}

// profile checks f and turns it into a Profile.
func (f profileFile) profile(name string) (*Profile, error) {
	for key, list := range map[string][]string{"fs_read": f.FSRead, "fs_write": f.FSWrite, "fs_execute": f.FSExecute} {
		for _, p := range list {
			if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\n") {
				return nil, fmt.Errorf("profile %s: %s: %q is not an absolute path", name, key, p)
			}
		}
	}
	for key, list := range map[string][]uint16{"net_bind": f.NetBind, "net_connect": f.NetConnect} {
		for _, p := range list {
			if p == 0 {
				return nil, fmt.Errorf("profile %s: %s: port 0 is not a port", name, key)
			}
		}
	}
	return &Profile{Name: name, Description: f.Description, Policy: sdk.LandlockPolicy{
		Read: f.FSRead, Write: f.FSWrite, Execute: f.FSExecute, NetBind: f.NetBind, NetConnect: f.NetConnect,
		RestrictNet: f.RestrictNet || len(f.NetBind) > 0 || len(f.NetConnect) > 0,
	}}, nil
}

// cleanYAMLError drops the "yaml: " prefix from a decoder error.
func cleanYAMLError(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// profileExts are the file name endings a custom profile may have.
var profileExts = []string{".yaml", ".yml", ".json"}

// LoadProfile finds a profile by name: a built-in one, else NAME.yaml,
// NAME.yml or NAME.json in dirs (nil: DefaultProfileDirs). It returns the
// profile and where it came from.
func LoadProfile(name string, dirs []string) (*Profile, string, error) {
	for i := range Builtins {
		if Builtins[i].Name == name {
			p := Builtins[i]
			return &p, "built-in", nil
		}
	}
	if !profileNameRE.MatchString(name) {
		return nil, "", fmt.Errorf("landlock profile %q: want default, strict, none or a profile name ([A-Za-z0-9_.-])", name)
	}
	if dirs == nil {
		dirs = DefaultProfileDirs
	}
	for _, d := range dirs {
		for _, ext := range profileExts {
			path := filepath.Join(d, name+ext)
			data, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, "", fmt.Errorf("landlock profile %s: %w", name, err)
			}
			p, err := ParseProfile(name, data)
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", path, err)
			}
			p.Source = path
			return p, path, nil
		}
	}
	return nil, "", fmt.Errorf("landlock profile %q not found: want default, strict, none or a file %s.yaml in %s (see volt security profile list)", name, name, strings.Join(dirs, ", "))
}

// ListProfiles returns the built-in profiles and the custom ones in dirs
// (nil: DefaultProfileDirs), sorted by name. Files that do not parse are
// reported in errs and left out.
func ListProfiles(dirs []string) (out []Profile, errs []error) {
	out = append(out, Builtins...)
	if dirs == nil {
		dirs = DefaultProfileDirs
	}
	seen := map[string]bool{"default": true, "strict": true, "none": true}
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		for _, e := range ents {
			ext := filepath.Ext(e.Name())
			name := strings.TrimSuffix(e.Name(), ext)
			if e.IsDir() || !slices.Contains(profileExts, ext) || seen[name] {
				continue
			}
			seen[name] = true
			p, _, err := LoadProfile(name, []string{d})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, *p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, errs
}

// MarshalProfile renders a profile in its file form (YAML).
func MarshalProfile(p *Profile) []byte {
	f := profileFile{Description: p.Description, FSRead: p.Policy.Read, FSWrite: p.Policy.Write, FSExecute: p.Policy.Execute,
		NetBind: p.Policy.NetBind, NetConnect: p.Policy.NetConnect, RestrictNet: p.Policy.RestrictNet && len(p.Policy.NetBind)+len(p.Policy.NetConnect) == 0}
	b, _ := yaml.Marshal(f)
	return b
}
