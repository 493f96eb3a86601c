package security

import (
	"sort"

	"github.com/volt-cli/volt/engine/constellation"
)

// Request is what one container service asks for, as `volt bundle inspect
// --show-security` shows it before import. Problems lists what an import
// would refuse (or, with --security=best-effort, warn about) on this host.
type Request struct {
	Service         string   `json:"service"`
	Privileged      bool     `json:"privileged,omitempty"`
	Capabilities    []string `json:"capabilities"`
	CapAdd          []string `json:"capAdd,omitempty"`
	CapDrop         []string `json:"capDrop,omitempty"`
	NoNewPrivileges bool     `json:"noNewPrivileges"`
	ReadOnly        bool     `json:"readOnly,omitempty"`
	Tmpfs           []string `json:"tmpfs,omitempty"`
	Seccomp         string   `json:"seccomp"`
	Landlock        string   `json:"landlock"`
	Writable        []string `json:"writable,omitempty"`
	Problems        []string `json:"problems,omitempty"`
}

// Describe lists the security requests of f's container services, sorted
// by service, each checked as an import on this host would check it (with
// privileged allowed, so that it is shown rather than refused).
func Describe(f *constellation.File, opts Options) []Request {
	names := make([]string, 0, len(f.Containers))
	for n := range f.Containers {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Request
	for _, n := range names {
		c := f.Containers[n]
		sec := c.Security
		if sec == nil {
			sec = &constellation.Security{}
		}
		r := Request{Service: n, Privileged: c.Privileged, CapAdd: c.CapAdd, CapDrop: c.CapDrop, ReadOnly: c.ReadOnly, Tmpfs: c.Tmpfs,
			NoNewPrivileges: sec.NoNewPrivileges == nil && !c.Privileged || sec.NoNewPrivileges != nil && *sec.NoNewPrivileges,
			Seccomp:         sec.Seccomp, Landlock: sec.Landlock, Writable: sec.Writable}
		if r.Seccomp == "" {
			r.Seccomp = "default"
			if c.Privileged {
				r.Seccomp = "unconfined"
			}
		}
		if r.Landlock == "" {
			r.Landlock = "none"
		}
		o := opts
		o.AllowPrivileged = true
		o.Warn = func(msg string) { r.Problems = append(r.Problems, "warning: "+msg) }
		if ws, err := Resolve(n, c, nil, o); err != nil {
			r.Problems = append(r.Problems, err.Error())
		} else {
			r.Capabilities = ws.Capabilities
		}
		if c.Privileged {
			r.Problems = append(r.Problems, "privileged: import needs --allow-privileged")
		}
		out = append(out, r)
	}
	return out
}
