package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// StateVersion is the version of stack.json this package writes.
const StateVersion = 1

// Stack phases.
const (
	// PhaseDeploying marks a stack whose import has not finished: if no
	// import is running, it was interrupted, and its workloads are not
	// reported as running.
	PhaseDeploying = "deploying"
	// PhaseDeployed marks a finished import.
	PhaseDeployed = "deployed"
)

// Stack is $VOLT_ROOT/stacks/<name>/stack.json (FORMATS.md §5).
type Stack struct {
	StateVersion int        `json:"stateVersion"`
	Name         string     `json:"name"`
	Phase        string     `json:"phase"`
	Bundle       BundleRef  `json:"bundle"`
	DeployedAt   time.Time  `json:"deployedAt,omitzero"` // zero until the import finishes
	Workloads    []Workload `json:"workloads"`           // in start order
	// Hooks maps hook kinds to scripts kept in the stack dir (for destroy).
	Hooks map[string]string `json:"hooks,omitempty"`
	// Vars are the --set values the stack was deployed with.
	Vars map[string]string `json:"vars,omitempty"`
	// Replacing is the bundle an import --force was replacing this stack's
	// with when it stopped the running workloads (Phase PhaseDeploying
	// only): the intent, recorded before anything is touched.
	Replacing *BundleRef `json:"replacing,omitempty"`
	// Problem says why the state is unusable (Phase PhaseCorrupt only; never saved).
	Problem string `json:"problem,omitempty"`
}

// BundleRef names the bundle a stack was deployed from.
type BundleRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Digest is the BLAKE3 of bundle.json.
	Digest   string `json:"digest"`
	Platform string `json:"platform"`
	Signer   string `json:"signer,omitempty"`
	// CASRefs are the Stellarium objects the bundle referenced (kept alive by GC).
	CASRefs []string `json:"casRefs,omitempty"`
}

// Workload is one running (or stopped) service of a stack.
type Workload struct {
	Name    string `json:"name"`    // host-unique: <stack>-<service>
	Service string `json:"service"` // name in the Constellation
	Type    string `json:"type"`    // container or vm
	Runtime string `json:"runtime"` // runtime plugin name
	// Handle is the runtime's opaque handle (nil when not started).
	Handle  *sdk.Handle      `json:"handle,omitempty"`
	Spec    sdk.WorkloadSpec `json:"spec"`
	Config  []AppliedConfig  `json:"config,omitempty"`
	Status  string           `json:"status"`
	Started time.Time        `json:"started,omitempty"`
	// DependsOn maps services this one waits for to their condition.
	DependsOn map[string]string `json:"dependsOn,omitempty"`
	// Healthcheck is run through Exec for service_healthy dependants.
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
}

// Healthcheck is a resolved health test.
type Healthcheck struct {
	Command  []string      `json:"command"`
	Interval time.Duration `json:"interval"`
	Timeout  time.Duration `json:"timeout"`
	Retries  int           `json:"retries"`
}

// AppliedConfig records an overlay written into a workload.
type AppliedConfig struct {
	Source string `json:"source"` // bundle entry
	Target string `json:"target"`
	Digest string `json:"digest"` // BLAKE3 of the bytes written
}

// stackDir is $root/stacks/<name>.
func stackDir(root, name string) string { return filepath.Join(root, "stacks", name) }

func stackFile(root, name string) string { return filepath.Join(stackDir(root, name), "stack.json") }

// ErrNoStack is returned when a stack is not deployed.
var ErrNoStack = errors.New("no such stack")

// LoadStack reads a deployed stack's state. State that cannot be read,
// parsed, or that names paths Volt would not have written for this stack
// (Stack.check) is an error wrapping ErrCorrupt: nothing is done with it.
func LoadStack(root, name string) (*Stack, error) {
	if err := validStackName(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoStack, err)
	}
	data, err := os.ReadFile(stackFile(root, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("stack %q: %w", name, ErrNoStack)
	}
	if err != nil {
		return nil, fmt.Errorf("stack %q: %w: read stack.json: %v", name, ErrCorrupt, err)
	}
	var s Stack
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("stack %q: %w: stack.json: %v", name, ErrCorrupt, err)
	}
	if s.StateVersion != StateVersion {
		return nil, fmt.Errorf("stack %q: %w: stack.json version %d, this volt reads %d", name, ErrCorrupt, s.StateVersion, StateVersion)
	}
	if err := s.check(root, name); err != nil {
		return nil, fmt.Errorf("stack %q: %w: stack.json %v", name, ErrCorrupt, err)
	}
	s.Problem = ""
	return &s, nil
}

// Save writes the stack's state atomically, readable by its owner only
// (it holds --set values), and records each started workload beside its
// root (see record).
func (s *Stack) Save(root string) error {
	s.StateVersion = StateVersion
	if err := os.MkdirAll(stackDir(root, s.Name), stateDirMode); err != nil {
		return fmt.Errorf("save stack %q: %w", s.Name, err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(stackFile(root, s.Name), append(data, '\n'), stateFileMode); err != nil {
		return err
	}
	for i := range s.Workloads {
		if err := saveRecord(root, s.Name, &s.Workloads[i]); err != nil {
			return fmt.Errorf("save stack %q: %w", s.Name, err)
		}
	}
	return nil
}

// ListStacks returns every deployed stack, sorted by name. A stack whose
// state is corrupt is listed with Phase PhaseCorrupt and Problem set;
// other failures are returned as errors.
func ListStacks(root string) ([]*Stack, []error) {
	ents, err := os.ReadDir(filepath.Join(root, "stacks"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, []error{err}
	}
	var out []*Stack
	var errs []error
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		s, err := LoadStack(root, e.Name())
		switch {
		case errors.Is(err, ErrCorrupt):
			s = &Stack{Name: e.Name(), Phase: PhaseCorrupt, Problem: err.Error()}
		case errors.Is(err, ErrNoStack):
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, errs
}

// Workload returns the workload for a service (or a full workload name).
func (s *Stack) Workload(name string) (*Workload, bool) {
	for i := range s.Workloads {
		if s.Workloads[i].Service == name || s.Workloads[i].Name == name {
			return &s.Workloads[i], true
		}
	}
	return nil, false
}
