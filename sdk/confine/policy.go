package confine

// InitPolicyPath and InitReportPath are where a container's init finds its
// policy and writes what it enforced, inside the container.
const (
	InitPolicyPath = "/.volt/policy.json"
	InitReportPath = "/.volt/enforced.json"
)

// InitPolicy is what Volt's container init (cmd/volt-init) applies to the
// workload, and to every `container exec`, before running the command.
type InitPolicy struct {
	// Capabilities is the bounding set to keep (nil: keep what there is).
	Capabilities    []string        `json:"capabilities"`
	NoNewPrivileges bool            `json:"no_new_privileges"`
	Seccomp         *SeccompProfile `json:"seccomp,omitempty"`
	Landlock        *LandlockPolicy `json:"landlock,omitempty"`
	// LandlockRequired makes a kernel answer of "no Landlock" an error
	// rather than a report (the host checked that it has Landlock).
	LandlockRequired bool `json:"landlock_required,omitempty"`
}

// InitReport is what the init enforced, written to InitReportPath.
type InitReport struct {
	Landlock        *LandlockReport `json:"landlock,omitempty"`
	Seccomp         bool            `json:"seccomp"`
	SeccompRules    int             `json:"seccomp_rules,omitempty"`
	NoNewPrivileges bool            `json:"no_new_privileges"`
	Capabilities    []string        `json:"capabilities"`
}
