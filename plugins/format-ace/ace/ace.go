// Package ace is Volt's ACE adapter (FORMATS.md §3): it reads an Android
// Container Engine zip safely and lays it out as a vbundle tree (compose.yaml,
// images/<svc>/<os>-<arch>.<ext>, meta.json) for the host to hash and sign,
// and writes such a tree back as an ACE zip. It never computes bundle hashes
// and never writes bundle.json. docs/plugins-formats.md documents the tree.
package ace

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/volt-cli/volt/sdk"
)

// Sentinel errors; each wraps sdk.ErrInvalid.
var (
	// ErrNoCompose: the zip has no compose.json at its root.
	ErrNoCompose = fmt.Errorf("ACE zip has no compose.json: %w", sdk.ErrInvalid)
	// ErrUnsafeName: an entry name is absolute, has "..", a backslash or NUL,
	// is a duplicate or a symlink (zip-slip and friends).
	ErrUnsafeName = fmt.Errorf("unsafe zip entry: %w", sdk.ErrInvalid)
	// ErrBadImagePath: a service's image is not a file under images/ in the zip.
	ErrBadImagePath = fmt.Errorf("bad image path: %w", sdk.ErrInvalid)
	// ErrTooLarge: an entry or the whole zip exceeds the reader's limits.
	ErrTooLarge = fmt.Errorf("ACE zip too large: %w", sdk.ErrInvalid)
	// ErrBadCompose: compose.json (or compose.yaml of a tree) does not describe valid services.
	ErrBadCompose = fmt.Errorf("bad compose: %w", sdk.ErrInvalid)
)

// Limits bound what ReadZip accepts.
type Limits struct {
	MaxEntries    int    // entries in the zip
	MaxCompose    int64  // bytes of compose.json
	MaxTotalBytes uint64 // sum of uncompressed sizes
}

// DefaultLimits are generous for real bundles and small enough to stop zip bombs.
var DefaultLimits = Limits{MaxEntries: 10000, MaxCompose: 1 << 20, MaxTotalBytes: 64 << 30}

// DefaultPlatform is assumed for a service whose compose.json gives none.
const DefaultPlatform = "android/arm64-v8a"

// Compose is compose.json.
type Compose struct {
	Name     string              `json:"name"`
	Version  string              `json:"version"`
	Services map[string]*Service `json:"services"`
}

// Service is one compose.json service.
type Service struct {
	Image       string            `json:"image"`
	Platform    string            `json:"platform,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	Ports       []string          `json:"ports,omitempty"`
	Command     []string          `json:"command,omitempty"`
}

// UnmarshalJSON accepts the loose shapes ACE files use: environment values
// of any scalar type, ports as numbers or strings, command as a list or a
// shell string (run as ["/bin/sh", "-c", s]).
func (s *Service) UnmarshalJSON(b []byte) error {
	var raw struct {
		Image       string                     `json:"image"`
		Platform    string                     `json:"platform"`
		Environment map[string]json.RawMessage `json:"environment"`
		Ports       []json.RawMessage          `json:"ports"`
		Command     json.RawMessage            `json:"command"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	s.Image, s.Platform = raw.Image, raw.Platform
	if len(raw.Environment) > 0 {
		s.Environment = map[string]string{}
		for k, v := range raw.Environment {
			str, err := scalar(v)
			if err != nil {
				return fmt.Errorf("environment %q: %w", k, err)
			}
			s.Environment[k] = str
		}
	}
	for i, p := range raw.Ports {
		str, err := scalar(p)
		if err != nil {
			return fmt.Errorf("ports[%d]: %w", i, err)
		}
		s.Ports = append(s.Ports, str)
	}
	if len(raw.Command) > 0 && string(raw.Command) != "null" {
		var shell string
		if err := json.Unmarshal(raw.Command, &s.Command); err != nil {
			if err := json.Unmarshal(raw.Command, &shell); err != nil {
				return fmt.Errorf("command: want a list of strings or a string")
			}
			s.Command = []string{"/bin/sh", "-c", shell}
		}
	}
	return nil
}

// scalar renders a JSON string, number or bool as a string.
func scalar(v json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if dec.Decode(&n) == nil {
		return n.String(), nil
	}
	var b bool
	if json.Unmarshal(v, &b) == nil {
		return strconv.FormatBool(b), nil
	}
	return "", fmt.Errorf("want a string, number or bool, got %s", v)
}

var (
	nameRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	platformRe = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_-]+(/[a-z0-9]+)?$`)
)

// validName reports whether s is usable as a service or bundle name (and so in a path).
func validName(s string) bool { return nameRe.MatchString(s) }

// Archive is an opened, validated ACE zip.
type Archive struct {
	Compose Compose
	files   map[string]*zip.File
	closer  io.Closer
}

// Close releases the zip.
func (a *Archive) Close() error {
	if a.closer != nil {
		return a.closer.Close()
	}
	return nil
}

// OpenImage opens a service's image inside the zip; the reader fails if the
// data does not match the entry's size or CRC-32.
func (a *Archive) OpenImage(svc string) (io.ReadCloser, uint64, error) {
	s, ok := a.Compose.Services[svc]
	if !ok {
		return nil, 0, fmt.Errorf("service %q: %w", svc, sdk.ErrNotFound)
	}
	f := a.files[s.Image]
	rc, err := f.Open()
	if err != nil {
		return nil, 0, fmt.Errorf("open %q: %w", s.Image, err)
	}
	return rc, f.UncompressedSize64, nil
}

// OpenZip opens path as an ACE zip and validates it (see ReadZip).
func OpenZip(path string, lim Limits) (*Archive, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("%w: open zip %q: %w", sdk.ErrInvalid, path, err)
	}
	a, err := ReadZip(&zr.Reader, lim)
	if err != nil {
		zr.Close()
		return nil, fmt.Errorf("ACE zip %q: %w", path, err)
	}
	a.closer = zr
	return a, nil
}

// ReadZip validates an ACE zip: every name safe and unique, sizes within
// lim, compose.json present and valid, every service named safely with an
// image that is a file under images/ in the zip and a platform "os/arch".
func ReadZip(zr *zip.Reader, lim Limits) (*Archive, error) {
	if len(zr.File) > lim.MaxEntries {
		return nil, fmt.Errorf("%w: %d entries (limit %d)", ErrTooLarge, len(zr.File), lim.MaxEntries)
	}
	a := &Archive{files: map[string]*zip.File{}}
	var total uint64
	for _, f := range zr.File {
		name, err := cleanEntry(f.Name)
		if err != nil {
			return nil, err
		}
		if f.Mode()&^0o777 != 0 && !f.Mode().IsDir() && !f.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %q is not a regular file (mode %v)", ErrUnsafeName, f.Name, f.Mode())
		}
		if strings.HasSuffix(f.Name, "/") || f.Mode().IsDir() {
			continue
		}
		if _, dup := a.files[name]; dup {
			return nil, fmt.Errorf("%w: duplicate entry %q", ErrUnsafeName, name)
		}
		total += f.UncompressedSize64
		if total > lim.MaxTotalBytes || total < f.UncompressedSize64 {
			return nil, fmt.Errorf("%w: more than %d bytes uncompressed", ErrTooLarge, lim.MaxTotalBytes)
		}
		a.files[name] = f
	}
	cf, ok := a.files["compose.json"]
	if !ok {
		return nil, ErrNoCompose
	}
	if cf.UncompressedSize64 > uint64(lim.MaxCompose) {
		return nil, fmt.Errorf("%w: compose.json is %d bytes (limit %d)", ErrTooLarge, cf.UncompressedSize64, lim.MaxCompose)
	}
	rc, err := cf.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: open compose.json: %w", ErrBadCompose, err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, lim.MaxCompose+1))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: read compose.json: %w", ErrBadCompose, err)
	}
	if err := json.Unmarshal(b, &a.Compose); err != nil {
		return nil, fmt.Errorf("%w: compose.json: %w", ErrBadCompose, err)
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Archive) validate() error {
	c := &a.Compose
	if !validName(c.Name) {
		return fmt.Errorf("%w: bundle name %q (want letters, digits, '.', '_', '-')", ErrBadCompose, c.Name)
	}
	if len(c.Services) == 0 {
		return fmt.Errorf("%w: no services", ErrBadCompose)
	}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if !validName(name) {
			return fmt.Errorf("%w: service name %q", ErrBadCompose, name)
		}
		if s == nil {
			return fmt.Errorf("%w: service %q is empty", ErrBadCompose, name)
		}
		if s.Platform == "" {
			s.Platform = DefaultPlatform
		}
		if !platformRe.MatchString(s.Platform) {
			return fmt.Errorf("%w: service %q: platform %q (want os/arch)", ErrBadCompose, name, s.Platform)
		}
		img, err := cleanEntry(s.Image)
		if err != nil || !strings.HasPrefix(img, "images/") {
			return fmt.Errorf("%w: service %q: image %q is not under images/", ErrBadImagePath, name, s.Image)
		}
		if _, ok := a.files[img]; !ok {
			return fmt.Errorf("%w: service %q: image %q not in the zip", ErrBadImagePath, name, s.Image)
		}
		if imageExt(img) == "" {
			return fmt.Errorf("%w: service %q: image %q is not a .tar, .tar.gz, .tgz or .tar.zst", ErrBadImagePath, name, s.Image)
		}
		s.Image = img
	}
	return nil
}

// cleanEntry validates a zip entry name and returns it clean.
func cleanEntry(n string) (string, error) {
	switch {
	case n == "", strings.ContainsAny(n, "\\\x00"), strings.HasPrefix(n, "/"):
		return "", fmt.Errorf("%w: %q", ErrUnsafeName, n)
	}
	for _, c := range strings.Split(strings.TrimSuffix(n, "/"), "/") {
		if c == ".." || c == "" && n != "" {
			return "", fmt.Errorf("%w: %q", ErrUnsafeName, n)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return "", fmt.Errorf("%w: %q", ErrUnsafeName, n)
	}
	return c, nil
}

// imageExt returns the archive extension of an image name ("" if unknown).
func imageExt(name string) string {
	for _, e := range []string{".tar.gz", ".tar.zst", ".tgz", ".tar"} {
		if strings.HasSuffix(name, e) {
			if e == ".tgz" {
				return ".tar.gz"
			}
			return e
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
