// Package sdk is the public Go SDK for Volt plugins: the interfaces a runtime
// or format plugin implements, Serve to run one, and typed errors. The wire
// protocol (gRPC over hashicorp/go-plugin, package volt.plugin.v1) is an
// implementation detail; plugin authors see only these Go types.
//
// sdk imports nothing from Volt's engine: it is what a third party builds against.
package sdk

import (
	"context"
	"errors"
	"io"
	"time"
)

// APIVersion is the highest plugin API version this SDK speaks.
const APIVersion = 1

// Plugin kinds.
const (
	KindRuntime = "runtime"
	KindFormat  = "format"
)

// Info describes a plugin. Every plugin returns it from Info.
type Info struct {
	Name         string   // e.g. "runtime-nspawn"
	Kind         string   // KindRuntime or KindFormat
	Version      string   // the plugin's own semver
	APIVersions  []int    // plugin API versions it speaks
	Capabilities []string // e.g. "exec", "logs-follow", "unpack:oci"
	// ConfigSchema is an optional JSON schema of the plugin's configuration.
	ConfigSchema string
}

// Typed errors. They cross the wire as gRPC status codes and come back as
// these values, so callers can branch on them with errors.Is.
var (
	ErrNotFound    = errors.New("not found")
	ErrUnsupported = errors.New("unsupported")
	ErrInvalid     = errors.New("invalid argument")
	ErrExists      = errors.New("already exists")
)

// Health is the outcome of a Fingerprint.
type Health struct {
	Healthy bool
	// Detail says why, in one line: "systemd-nspawn 252, detached supervisor", "kvm", "tcg", "qemu-system-x86_64 not found".
	Detail     string
	Attributes map[string]string
}

// Status of a workload.
const (
	StatusRunning = "running"
	StatusStopped = "stopped"
	StatusFailed  = "failed"
	StatusUnknown = "unknown"
)

// Mount is a bind mount into a workload.
type Mount struct {
	Source   string // host path
	Target   string // path inside the workload
	ReadOnly bool
}

// WorkloadSpec is everything a runtime needs to start one workload.
// Paths are on the host and owned by Volt; Root is the container's rootfs
// or the VM's directory.
type WorkloadSpec struct {
	Name        string // unique on the host, e.g. "shop-web"
	Root        string // container rootfs dir, or VM state dir
	StateDir    string // a dir the runtime may use for pidfiles, logs, sockets
	Image       string // VM disk image path (VMs)
	Kernel      string // direct kernel boot (VMs)
	Initrd      string
	Cmdline     string
	Command     []string
	Env         map[string]string
	WorkingDir  string
	User        string
	Mounts      []Mount
	Ports       []string // "host:guest[/proto]"
	NetworkMode string   // "host" (default), "none", "private"
	CPUs        float64
	MemoryBytes int64
	Labels      map[string]string
	// Security confines a container; nil means the runtime's defaults
	// (DefaultCapabilities, no_new_privileges, no seccomp, no Landlock).
	Security *WorkloadSecurity `json:",omitempty"`
}

// Handle identifies a started workload. Data is opaque to the host, stored in
// stack.json and handed back to Recover by a later process.
type Handle struct {
	Name string
	Data []byte
}

// WorkloadStatus is what Inspect reports.
type WorkloadStatus struct {
	State     string // StatusRunning, ...
	PID       int
	StartedAt time.Time
	ExitCode  int
	// Reason is a one-line explanation for a failed workload (tail of its log).
	Reason string
	Detail map[string]string
}

// ExecRequest runs a command inside a running workload.
type ExecRequest struct {
	Command []string
	Env     map[string]string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	// TTY runs the command on a new pseudo-terminal of Size: everything it
	// writes goes to Stdout (Stderr is unused), and terminal control bytes
	// in Stdin (Ctrl-C, Ctrl-Z) act on it. Resize delivers window changes;
	// the runtime stops reading it when the command ends.
	TTY    bool
	Size   TermSize
	Resize <-chan TermSize
}

// TermSize is a terminal window size in character cells (zero: unknown).
type TermSize struct {
	Rows, Cols uint16
}

// RunRequest is a build step: run commands in a scratch rootfs, network off.
type RunRequest struct {
	Root    string // scratch rootfs (a copy the host owns)
	Command []string
	Env     map[string]string
	WorkDir string
	Output  io.Writer // combined stdout/stderr of the step
}

// Runtime runs workloads. Every method honours ctx; Stop and Destroy are
// idempotent (stopping a stopped workload is not an error).
type Runtime interface {
	Info(ctx context.Context) (Info, error)
	Fingerprint(ctx context.Context) (Health, error)
	// Start starts the workload detached, so it outlives the plugin and the CLI.
	Start(ctx context.Context, spec WorkloadSpec) (Handle, error)
	// Recover reattaches to a workload from a handle made by Start in another process.
	// It returns ErrNotFound when the workload no longer exists.
	Recover(ctx context.Context, h Handle) error
	// Wait blocks until the workload exits or ctx ends, and returns its final status.
	Wait(ctx context.Context, h Handle) (WorkloadStatus, error)
	// Stop asks the workload to stop, waits up to timeout, then forces it.
	Stop(ctx context.Context, h Handle, timeout time.Duration) error
	// Destroy stops the workload if needed and removes the runtime's state for it.
	Destroy(ctx context.Context, h Handle) error
	Inspect(ctx context.Context, h Handle) (WorkloadStatus, error)
	// Logs writes the workload's log to w; with follow it keeps writing until ctx ends.
	Logs(ctx context.Context, h Handle, follow bool, tail int, w io.Writer) error
	// Exec runs a command inside the workload and returns its exit code (ErrUnsupported if not available).
	Exec(ctx context.Context, h Handle, req ExecRequest) (int, error)
	// Run executes one build step to completion and returns its exit code.
	Run(ctx context.Context, req RunRequest) (int, error)
}

// FormatDescription lists what a format plugin handles.
type FormatDescription struct {
	// Formats it can unpack or pack, e.g. "oci", "docker-archive", "rootfs", "qcow2", "raw", "ace".
	Formats    []string
	MediaTypes []string
}

// UnpackRequest unpacks an image file into a directory the host owns.
type UnpackRequest struct {
	Image  string // path, read-only, verified by the host
	Format string
	Dest   string // existing empty directory
}

// PackRequest packs a tree (or converts a file) into the staging dir.
type PackRequest struct {
	Source  string // directory or file
	Format  string // target format
	Staging string // existing empty directory the plugin writes into
	// Options are format-specific (e.g. "mtime": "1700000000", "platform": "linux/amd64").
	Options map[string]string
}

// PackedFile is one file a plugin wrote into its staging dir. The host
// re-hashes it before trusting it.
type PackedFile struct {
	Path   string // relative to staging
	Format string
	// Meta is format-specific (e.g. "platform", "virtual-size").
	Meta map[string]string
}

// ConvertRequest converts a whole bundle between formats (e.g. ACE ⇄ vbundle layout).
type ConvertRequest struct {
	Bundle  string // input path, read-only
	To      string // "vbundle-tree" or "ace"
	Staging string
}

// Format converts images and bundles. Every method honours ctx.
type Format interface {
	Info(ctx context.Context) (Info, error)
	Describe(ctx context.Context) (FormatDescription, error)
	Unpack(ctx context.Context, req UnpackRequest) error
	Pack(ctx context.Context, req PackRequest) ([]PackedFile, error)
	Convert(ctx context.Context, req ConvertRequest) ([]PackedFile, error)
}
