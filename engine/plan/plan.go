// Package plan holds the Plan: the plain data a recipe declares and
// engine/build executes into a bundle. A Plan performs no I/O and knows
// nothing of Starlark, ZIP or plugins. Paths in a Plan are slash-separated
// and relative to Plan.Root.
package plan

import (
	"fmt"

	"github.com/volt-cli/volt/engine/constellation"
)

// Plan is everything that goes into one bundle.
type Plan struct {
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	Description string   `json:"description,omitempty"`
	Platforms   []string `json:"platforms"` // "os/arch", in declaration order
	// Root is the absolute directory relative paths resolve against.
	Root string `json:"root"`
	// Constellation is the stack's topology; it is written into the bundle as compose.yaml.
	Constellation *constellation.File `json:"constellation"`
	// Services are sorted by name; each names a Constellation container or VM.
	Services []*Service `json:"services"`
	Hooks    []Hook     `json:"hooks,omitempty"` // sorted by Kind
	// Inputs are the declared input files with their BLAKE3 digests, sorted by Path.
	Inputs []Input `json:"inputs,omitempty"`
	// Recipe is the recipe's path relative to Root ("" when none).
	Recipe string `json:"recipe,omitempty"`
	// Sources maps each recipe source that was loaded to its BLAKE3.
	Sources map[string]string `json:"sources,omitempty"`
	// Params holds the recipe parameters after --set, rendered as strings.
	Params map[string]string `json:"params,omitempty"`
	// Volumes are volume contents to carry (bundle export --include-volumes).
	Volumes []VolumeData `json:"volumes,omitempty"`
}

// VolumeData is a named volume's directory, carried as volumes/<service>/<name>.
type VolumeData struct {
	Service string `json:"service"`
	Name    string `json:"name"`
	Dir     string `json:"dir"`
}

// Service types (the same words as bundle.json).
const (
	Container = "container"
	VM        = "vm"
)

// Service is a workload whose images go into the bundle.
type Service struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Images maps "os/arch" to where that platform's image comes from.
	Images map[string]*ImageSource `json:"images"`
	// Boot maps "os/arch" to direct-kernel-boot files (VMs only).
	Boot   map[string]*Boot `json:"boot,omitempty"`
	Config []Overlay        `json:"config,omitempty"`
	CPU    float64          `json:"cpu,omitempty"`
	Memory string           `json:"memory,omitempty"`
	At     Pos              `json:"at"`
}

// Kind says what an ImageSource is.
type Kind string

// Image source kinds.
const (
	// KindFile is an image file embedded as it is; its format is detected by content.
	KindFile Kind = "file"
	// KindOCILayout is an OCI image layout directory (packed by the format-oci plugin).
	KindOCILayout Kind = "oci_layout"
	// KindDockerArchive is a docker-archive tarball.
	KindDockerArchive Kind = "docker_archive"
	// KindRootfs is a rootfs tarball or directory.
	KindRootfs Kind = "rootfs"
	// KindDisk is a VM disk (qcow2 or raw).
	KindDisk Kind = "disk"
	// KindBuild is an image made by running Build in a runtime plugin.
	KindBuild Kind = "build"
)

// ImageSource says where one image comes from.
type ImageSource struct {
	Kind Kind `json:"kind"`
	// Path is relative to Plan.Root (empty for KindBuild).
	Path string `json:"path,omitempty"`
	// Digest is the BLAKE3 of the file at Path when it is a file ("" for directories and builds).
	Digest string     `json:"digest,omitempty"`
	Build  *BuildStep `json:"build,omitempty"`
	At     Pos        `json:"at"`
}

// BuildStep is an image made by running commands on a base image, network off.
type BuildStep struct {
	Base    *ImageSource      `json:"base"`
	Run     [][]string        `json:"run"`
	Runtime string            `json:"runtime"`
	Env     map[string]string `json:"env,omitempty"`
	Workdir string            `json:"workdir,omitempty"`
}

// Boot names the kernel, initrd and command line for direct kernel boot.
type Boot struct {
	Kernel  string `json:"kernel"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
}

// Overlay is a config file copied over a service's image at deploy.
type Overlay struct {
	Source   string `json:"source"` // relative to Root
	Target   string `json:"target"` // absolute path inside the workload
	Template bool   `json:"template,omitempty"`
	At       Pos    `json:"at"`
}

// Hook is a lifecycle script.
type Hook struct {
	Kind string `json:"kind"` // validate, pre-deploy, post-deploy, pre-destroy, post-destroy
	Path string `json:"path"` // relative to Root
	At   Pos    `json:"at"`
}

// HookKinds lists the lifecycle hooks in the order they may run.
var HookKinds = []string{"validate", "pre-deploy", "post-deploy", "pre-destroy", "post-destroy"}

// Input is a declared input file and its BLAKE3 ("blake3:<hex>").
type Input struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
}

// Pos is where in a recipe (or Constellation file) something was declared.
// The zero Pos means "unknown".
type Pos struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

// String returns "file:line:col", or "" for the zero Pos.
func (p Pos) String() string {
	if p.File == "" {
		return ""
	}
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is an error found after evaluation that points at the declaration it concerns.
type Error struct {
	At   Pos
	Msg  string
	Hint string
}

func (e *Error) Error() string {
	if s := e.At.String(); s != "" {
		return s + ": " + e.Msg
	}
	return e.Msg
}

// PlanHint returns the hint line for the CLI ("" when none).
func (e *Error) PlanHint() string { return e.Hint }
