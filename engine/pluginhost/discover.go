package pluginhost

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// BinaryPrefix starts the file name of every plugin binary: volt-plugin-<name>.
const BinaryPrefix = "volt-plugin-"

// PathEnv is the colon-separated list of extra plugin directories.
const PathEnv = "VOLT_PLUGIN_PATH"

// validName reports whether name is a plugin name: [a-z0-9][a-z0-9-]*, at most 64 bytes.
func validName(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '-' {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// NameFromBinary returns the plugin name of a binary path
// (".../volt-plugin-format-oci" → "format-oci"), or an error wrapping ErrBadName.
func NameFromBinary(path string) (string, error) {
	base := filepath.Base(path)
	name, ok := strings.CutPrefix(base, BinaryPrefix)
	if !ok || !validName(name) {
		return "", fmt.Errorf("%q: want a file named %s<name> with name of [a-z0-9-]: %w", base, BinaryPrefix, ErrBadName)
	}
	return name, nil
}

// found is one discovered plugin binary.
type found struct {
	name      string
	path      string
	installed bool // found in $VOLT_ROOT/plugins (checked against the lock)
}

// searchDirs returns the plugin search path in order: Options.Dirs,
// $VOLT_PLUGIN_PATH, $VOLT_ROOT/plugins, the executable's directory.
func (h *Host) searchDirs() []string {
	var dirs []string
	dirs = append(dirs, h.opts.Dirs...)
	if !h.opts.IgnoreEnv {
		for _, d := range filepath.SplitList(os.Getenv(PathEnv)) {
			if d != "" {
				dirs = append(dirs, d)
			}
		}
	}
	if d := h.installDir(); d != "" {
		dirs = append(dirs, d)
	}
	if h.opts.ExecutableDir != "-" {
		d := h.opts.ExecutableDir
		if d == "" {
			if exe, err := os.Executable(); err == nil {
				d = filepath.Dir(exe)
			}
		}
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// discover lists plugin binaries on the search path; the first directory
// holding a name wins. The result is sorted by name.
func (h *Host) discover() []found {
	seen := map[string]bool{}
	var out []found
	inst := h.installDir()
	for _, dir := range h.searchDirs() {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			name, err := NameFromBinary(e.Name())
			if err != nil || seen[name] {
				continue
			}
			p := filepath.Join(dir, e.Name())
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
				continue
			}
			seen[name] = true
			out = append(out, found{name: name, path: p, installed: inst != "" && sameDir(dir, inst)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func sameDir(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// lookup finds one plugin by name.
func (h *Host) lookup(name string) (found, error) {
	if !validName(name) {
		return found{}, fmt.Errorf("plugin %q: %w", name, ErrBadName)
	}
	for _, f := range h.discover() {
		if f.name == name {
			return f, nil
		}
	}
	return found{}, fmt.Errorf("plugin %q: no %s%s in %s: %w", name, BinaryPrefix, name,
		strings.Join(h.searchDirs(), ":"), ErrPluginNotFound)
}
