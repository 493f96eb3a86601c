// Package bundle reads, writes and verifies .vbundle files: the manifest
// (bundle.json), the deterministic ZIP layout and the integrity map.
//
// The format is fixed by FORMATS.md §1 (see docs/formats.md). This package
// knows nothing of recipes, plugins or deployment.
package bundle

import (
	"fmt"
	"strings"
)

// FormatVersion is the only bundle.json "version" this package reads and writes.
const FormatVersion = 1

// Well-known entry names.
const (
	ManifestName  = "bundle.json"
	SignatureName = "signatures/bundle.sig"
	// SignaturesDir is the prefix of entries not covered by the integrity map.
	SignaturesDir = "signatures/"
)

// Manifest is bundle.json. Field names and JSON keys follow FORMATS.md §1 exactly.
type Manifest struct {
	Version       int                 `json:"version"`
	Name          string              `json:"name"`
	BundleVersion string              `json:"bundleVersion"`
	Description   string              `json:"description,omitempty"`
	Created       string              `json:"created"`
	Platforms     []Platform          `json:"platforms"`
	Compose       string              `json:"compose,omitempty"`
	Services      map[string]*Service `json:"services"`
	Hooks         map[string]string   `json:"hooks,omitempty"`
	Integrity     Integrity           `json:"integrity"`
	Provenance    *Provenance         `json:"provenance,omitempty"`
	// Partial is set on a bundle that holds only some of its platforms' images
	// (for example after a platform-filtered pull).
	Partial bool `json:"partial,omitempty"`
}

// Platform is an os/arch pair such as linux/amd64 or android/arm64-v8a.
type Platform struct {
	OS   string `json:"os"`
	Arch string `json:"arch"`
}

// String returns "os/arch", the key form used in Service.Images.
func (p Platform) String() string { return p.OS + "/" + p.Arch }

// FileString returns "os-arch", the form used in entry file names.
func (p Platform) FileString() string { return p.OS + "-" + p.Arch }

// KnownOS and KnownArch list the values FORMATS.md allows.
var (
	KnownOS   = []string{"linux", "android"}
	KnownArch = []string{"amd64", "arm64", "armv7", "arm64-v8a", "armeabi-v7a", "x86_64"}
)

// ParsePlatform parses "os/arch" and checks both parts against KnownOS and KnownArch.
func ParsePlatform(s string) (Platform, error) {
	os, arch, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok || os == "" || arch == "" {
		return Platform{}, fmt.Errorf("platform %q: want OS/ARCH, e.g. linux/amd64", s)
	}
	if !contains(KnownOS, os) {
		return Platform{}, fmt.Errorf("platform %q: unknown OS %q (known: %s)", s, os, strings.Join(KnownOS, ", "))
	}
	if !contains(KnownArch, arch) {
		return Platform{}, fmt.Errorf("platform %q: unknown architecture %q (known: %s)", s, arch, strings.Join(KnownArch, ", "))
	}
	return Platform{OS: os, Arch: arch}, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Service types.
const (
	TypeContainer = "container"
	TypeVM        = "vm"
)

// Image formats.
const (
	FormatOCI    = "oci"
	FormatRootfs = "rootfs"
	FormatQCOW2  = "qcow2"
	FormatRaw    = "raw"
)

// Service is one workload in the bundle.
type Service struct {
	Type string `json:"type"`
	// Images maps "os/arch" to the image for that platform.
	Images map[string]*Image `json:"images"`
	// Boot maps "os/arch" to direct-kernel-boot files (VMs only).
	Boot      map[string]*Boot `json:"boot,omitempty"`
	Config    []ConfigFile     `json:"config,omitempty"`
	Resources *Resources       `json:"resources,omitempty"`
}

// Image is one platform's image of a service. Path is nil for a CAS reference.
type Image struct {
	Path   *string `json:"path"`
	Format string  `json:"format"`
	Size   int64   `json:"size"`
	Digest string  `json:"digest"`
	CASRef string  `json:"casRef,omitempty"`
}

// EntryPath returns the image's entry path, or "" for a CAS reference.
func (i *Image) EntryPath() string {
	if i == nil || i.Path == nil {
		return ""
	}
	return *i.Path
}

// Boot holds the entries for direct kernel boot of a VM.
type Boot struct {
	Kernel  string `json:"kernel"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
}

// ConfigFile is a configuration overlay copied over the image at deploy.
type ConfigFile struct {
	Path     string `json:"path"`
	Target   string `json:"target"`
	Template bool   `json:"template,omitempty"`
}

// Resources are a VM's (or container's) CPU and memory.
type Resources struct {
	CPU    float64 `json:"cpu,omitempty"`
	Memory string  `json:"memory,omitempty"`
}

// Integrity is the map of every entry (except bundle.json and signatures/*) to its digest.
type Integrity struct {
	Algorithm string            `json:"algorithm"`
	Files     map[string]string `json:"files"`
}

// Provenance records what made the bundle.
type Provenance struct {
	Recipe  string            `json:"recipe,omitempty"`
	Sources map[string]string `json:"sources,omitempty"`
	Tool    string            `json:"tool,omitempty"`
	Plugins map[string]string `json:"plugins,omitempty"`
}
