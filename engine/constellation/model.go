// Package constellation holds the Constellation: Volt's Compose-style stack
// description (FORMATS.md §2, docs/formats.md). It parses and validates
// volt-compose.yaml / Voltfile (and plain docker-compose files), and orders
// services by their dependencies. It performs no deployment.
package constellation

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// File is a whole Constellation. Maps are keyed by name. The YAML and JSON
// names are the file's keys; marshalling a File gives a valid Constellation.
type File struct {
	Version     string                  `yaml:"version,omitempty" json:"version,omitempty"`
	Name        string                  `yaml:"name,omitempty" json:"name,omitempty"`
	Description string                  `yaml:"description,omitempty" json:"description,omitempty"`
	Containers  map[string]*Container   `yaml:"containers,omitempty" json:"containers,omitempty"`
	VMs         map[string]*VM          `yaml:"vms,omitempty" json:"vms,omitempty"`
	Services    map[string]*HostService `yaml:"services,omitempty" json:"services,omitempty"`
	Tasks       map[string]*Task        `yaml:"tasks,omitempty" json:"tasks,omitempty"`
	Networks    map[string]*Network     `yaml:"networks,omitempty" json:"networks,omitempty"`
	Volumes     map[string]*Volume      `yaml:"volumes,omitempty" json:"volumes,omitempty"`
	Configs     map[string]*Config      `yaml:"configs,omitempty" json:"configs,omitempty"`
	Secrets     map[string]*Secret      `yaml:"secrets,omitempty" json:"secrets,omitempty"`

	// Warnings lists what Parse read but ignored (docker-compose keys Volt
	// does not support), each "file:line:col: msg". Never marshalled.
	Warnings []string `yaml:"-" json:"-"`

	source string             // file name given to Parse, for positioned errors
	docker bool               // read from a docker-compose file (containers came from services:)
	pos    map[string]nodePos // YAML path ("containers.web.ports[0]") -> position
}

// ImageRef is a service's image: one path for every platform (Single), or
// a map from "os/arch" to path (PerPlatform). Exactly one is set.
type ImageRef struct {
	Single      string            `json:"single,omitempty"`
	PerPlatform map[string]string `json:"perPlatform,omitempty"`
}

// IsZero reports whether no image is set.
func (r ImageRef) IsZero() bool { return r.Single == "" && len(r.PerPlatform) == 0 }

// Dependency is one depends_on entry.
type Dependency struct {
	Condition string `yaml:"condition,omitempty" json:"condition,omitempty"`
}

// Dependency conditions.
const (
	ServiceStarted               = "service_started"
	ServiceHealthy               = "service_healthy"
	ServiceCompletedSuccessfully = "service_completed_successfully"
)

// Healthcheck is a container's health test.
type Healthcheck struct {
	Test        []string `yaml:"test,omitempty" json:"test,omitempty"`
	Interval    string   `yaml:"interval,omitempty" json:"interval,omitempty"`
	Timeout     string   `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Retries     int      `yaml:"retries,omitempty" json:"retries,omitempty"`
	StartPeriod string   `yaml:"start_period,omitempty" json:"start_period,omitempty"`
}

// Resources limit a workload.
type Resources struct {
	Memory string  `yaml:"memory,omitempty" json:"memory,omitempty"`
	CPUs   float64 `yaml:"cpus,omitempty" json:"cpus,omitempty"`
}

// Security selects sandboxing for a workload (docs/workload-security.md).
type Security struct {
	// Landlock is default, strict, none or a profile's name ("" is none).
	Landlock string `yaml:"landlock,omitempty" json:"landlock,omitempty"`
	// Seccomp is default, unconfined or the path of a docker-format JSON
	// profile ("" is default).
	Seccomp string `yaml:"seccomp,omitempty" json:"seccomp,omitempty"`
	// NoNewPrivileges defaults to true.
	NoNewPrivileges *bool `yaml:"no_new_privileges,omitempty" json:"no_new_privileges,omitempty"`
	// Writable lists more container paths the Landlock profiles let the
	// service write.
	Writable []string `yaml:"writable,omitempty" json:"writable,omitempty"`
	// LandlockRules is an inline policy, written as a map in place of a
	// profile name (landlock: {fs_read: [...]}); Landlock is then "inline".
	LandlockRules *LandlockRules `yaml:"-" json:"-"`
}

// LandlockInline is the Landlock value of a Security with inline rules.
const LandlockInline = "inline"

// LandlockRules is an inline Landlock policy: container paths and TCP ports.
type LandlockRules struct {
	FSRead      []string `yaml:"fs_read,omitempty" json:"fs_read,omitempty"`
	FSWrite     []string `yaml:"fs_write,omitempty" json:"fs_write,omitempty"`
	FSExecute   []string `yaml:"fs_execute,omitempty" json:"fs_execute,omitempty"`
	NetBind     []int    `yaml:"net_bind,omitempty" json:"net_bind,omitempty"`
	NetConnect  []int    `yaml:"net_connect,omitempty" json:"net_connect,omitempty"`
	RestrictNet bool     `yaml:"restrict_net,omitempty" json:"restrict_net,omitempty"`
}

// securityWire is Security on the wire: landlock is a name or inline rules.
type securityWire struct {
	Landlock        any      `yaml:"landlock,omitempty" json:"landlock,omitempty"`
	Seccomp         string   `yaml:"seccomp,omitempty" json:"seccomp,omitempty"`
	NoNewPrivileges *bool    `yaml:"no_new_privileges,omitempty" json:"no_new_privileges,omitempty"`
	Writable        []string `yaml:"writable,omitempty" json:"writable,omitempty"`
}

func (s Security) wire() securityWire {
	w := securityWire{Seccomp: s.Seccomp, NoNewPrivileges: s.NoNewPrivileges, Writable: s.Writable}
	switch {
	case s.LandlockRules != nil:
		w.Landlock = s.LandlockRules
	case s.Landlock != "":
		w.Landlock = s.Landlock
	}
	return w
}

// MarshalYAML writes landlock as a name or as the inline rules.
func (s Security) MarshalYAML() (any, error) { return s.wire(), nil }

// MarshalJSON writes landlock as a name or as the inline rules.
func (s Security) MarshalJSON() ([]byte, error) { return json.Marshal(s.wire()) }

// UnmarshalJSON reads landlock as a name or as inline rules (the recipe's
// container(security = {...}) arrives as JSON); unknown keys are an error.
func (s *Security) UnmarshalJSON(b []byte) error {
	var w struct {
		Landlock        json.RawMessage `json:"landlock"`
		Seccomp         string          `json:"seccomp"`
		NoNewPrivileges *bool           `json:"no_new_privileges"`
		Writable        []string        `json:"writable"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*s = Security{Seccomp: w.Seccomp, NoNewPrivileges: w.NoNewPrivileges, Writable: w.Writable}
	if len(w.Landlock) == 0 || string(w.Landlock) == "null" {
		return nil
	}
	if w.Landlock[0] == '{' {
		var r LandlockRules
		dec := json.NewDecoder(bytes.NewReader(w.Landlock))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("landlock: %w", err)
		}
		s.Landlock, s.LandlockRules = LandlockInline, &r
		return nil
	}
	return json.Unmarshal(w.Landlock, &s.Landlock)
}

// ConfigRef attaches a top-level config to a service as an overlay.
type ConfigRef struct {
	Source   string `yaml:"source" json:"source"`
	Target   string `yaml:"target" json:"target"`
	Template bool   `yaml:"template,omitempty" json:"template,omitempty"`
}

// Container is a container workload (systemd-nspawn).
type Container struct {
	Image       ImageRef              `yaml:"image" json:"image"`
	Command     []string              `yaml:"command,omitempty" json:"command,omitempty"`
	Entrypoint  []string              `yaml:"entrypoint,omitempty" json:"entrypoint,omitempty"`
	WorkingDir  string                `yaml:"working_dir,omitempty" json:"working_dir,omitempty"`
	User        string                `yaml:"user,omitempty" json:"user,omitempty"`
	Environment map[string]string     `yaml:"environment,omitempty" json:"environment,omitempty"`
	EnvFile     []string              `yaml:"env_file,omitempty" json:"env_file,omitempty"`
	Ports       []string              `yaml:"ports,omitempty" json:"ports,omitempty"`
	Networks    []string              `yaml:"networks,omitempty" json:"networks,omitempty"`
	NetworkMode string                `yaml:"network_mode,omitempty" json:"network_mode,omitempty"`
	Volumes     []string              `yaml:"volumes,omitempty" json:"volumes,omitempty"`
	DependsOn   map[string]Dependency `yaml:"depends_on,omitempty" json:"depends_on,omitempty"`
	Healthcheck *Healthcheck          `yaml:"healthcheck,omitempty" json:"healthcheck,omitempty"`
	Restart     string                `yaml:"restart,omitempty" json:"restart,omitempty"`
	Resources   *Resources            `yaml:"resources,omitempty" json:"resources,omitempty"`
	Security    *Security             `yaml:"security,omitempty" json:"security,omitempty"`
	Configs     []ConfigRef           `yaml:"configs,omitempty" json:"configs,omitempty"`
	Secrets     []string              `yaml:"secrets,omitempty" json:"secrets,omitempty"`
	// CapAdd and CapDrop change docker's default capability set ("ALL"
	// allowed in CapDrop); Privileged keeps all capabilities and needs
	// --allow-privileged at import.
	CapAdd     []string `yaml:"cap_add,omitempty" json:"cap_add,omitempty"`
	CapDrop    []string `yaml:"cap_drop,omitempty" json:"cap_drop,omitempty"`
	Privileged bool     `yaml:"privileged,omitempty" json:"privileged,omitempty"`
	// ReadOnly mounts the root read-only; Tmpfs lists paths given a tmpfs.
	ReadOnly bool     `yaml:"read_only,omitempty" json:"read_only,omitempty"`
	Tmpfs    []string `yaml:"tmpfs,omitempty" json:"tmpfs,omitempty"`
}

// VM is a virtual machine workload (QEMU). It boots Image, or Kernel (+Initrd, Cmdline).
type VM struct {
	Image       ImageRef              `yaml:"image,omitempty" json:"image,omitempty"`
	CPU         int                   `yaml:"cpu,omitempty" json:"cpu,omitempty"`
	Memory      string                `yaml:"memory,omitempty" json:"memory,omitempty"`
	Kernel      string                `yaml:"kernel,omitempty" json:"kernel,omitempty"`
	Initrd      string                `yaml:"initrd,omitempty" json:"initrd,omitempty"`
	Cmdline     string                `yaml:"cmdline,omitempty" json:"cmdline,omitempty"`
	Ports       []string              `yaml:"ports,omitempty" json:"ports,omitempty"`
	Networks    []string              `yaml:"networks,omitempty" json:"networks,omitempty"`
	DependsOn   map[string]Dependency `yaml:"depends_on,omitempty" json:"depends_on,omitempty"`
	Environment map[string]string     `yaml:"environment,omitempty" json:"environment,omitempty"`
	Configs     []ConfigRef           `yaml:"configs,omitempty" json:"configs,omitempty"`
}

// HostService is a plain process on the host.
type HostService struct {
	Exec        []string              `yaml:"exec" json:"exec"`
	Environment map[string]string     `yaml:"environment,omitempty" json:"environment,omitempty"`
	DependsOn   map[string]Dependency `yaml:"depends_on,omitempty" json:"depends_on,omitempty"`
}

// Task is a container run on a schedule (systemd calendar syntax).
type Task struct {
	Image       ImageRef          `yaml:"image" json:"image"`
	Command     []string          `yaml:"command,omitempty" json:"command,omitempty"`
	Schedule    string            `yaml:"schedule,omitempty" json:"schedule,omitempty"`
	Environment map[string]string `yaml:"environment,omitempty" json:"environment,omitempty"`
}

// Network is a virtual network between workloads.
type Network struct {
	Subnet   string `yaml:"subnet,omitempty" json:"subnet,omitempty"`
	Internal bool   `yaml:"internal,omitempty" json:"internal,omitempty"`
}

// Volume is named persistent storage.
type Volume struct {
	Driver string `yaml:"driver,omitempty" json:"driver,omitempty"`
}

// Config is a file made available to services as an overlay.
type Config struct {
	File string `yaml:"file,omitempty" json:"file,omitempty"`
}

// Secret is sensitive data given to services at deploy.
type Secret struct {
	File        string `yaml:"file,omitempty" json:"file,omitempty"`
	Environment string `yaml:"environment,omitempty" json:"environment,omitempty"`
}
