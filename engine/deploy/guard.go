package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// State files are private: stack.json holds --set values, and the workload
// records hold runtime handles.
const (
	stateFileMode = 0o600
	stateDirMode  = 0o700
)

// PhaseCorrupt marks a stack whose stack.json cannot be read or fails its
// checks. ListStacks still lists it; `stack destroy --force` removes it
// through its workload records.
const PhaseCorrupt = "corrupt"

// ErrCorrupt means a stack's state is unreadable or names paths it may not.
var ErrCorrupt = errors.New("corrupt stack state")

// within reports whether p lies strictly under root (lexically, after
// cleaning). The state root is private to its owner, so no one else can
// plant a symbolic link on the way.
func within(root, p string) bool {
	if !filepath.IsAbs(p) {
		return false
	}
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(p))
	return err == nil && rel != "." && filepath.IsLocal(rel)
}

// removeUnder removes p and everything below it, but only when p lies under
// root: a path read from state never removes anything outside the root.
func removeUnder(root, p string) error {
	if !within(root, p) {
		return fmt.Errorf("%w: refusing to remove %q: it is not under the state root %s", ErrCorrupt, p, root)
	}
	return os.RemoveAll(p)
}

// validWorkloadName reports whether name can be one path element under
// containers/ or vms/.
func validWorkloadName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\\\x00")
}

// workloadDir is where a workload of type typ named name keeps its root,
// runtime state and record.
func workloadDir(root, typ, name string) string {
	if typ == bundle.TypeVM {
		return filepath.Join(root, "vms", name)
	}
	return filepath.Join(root, "containers", name)
}

// check verifies that a stack read from stack.json names only what Volt
// itself would have written for a stack called name under root: its own
// name, workload roots and state dirs where plan puts them, hooks in its
// stack dir. Anything else makes the state corrupt.
func (s *Stack) check(root, name string) error {
	if s.Name != name {
		return fmt.Errorf("names stack %q, but lies in the directory of %q", s.Name, name)
	}
	seen := map[string]bool{}
	for _, w := range s.Workloads {
		if !validWorkloadName(w.Name) || seen[w.Name] {
			return fmt.Errorf("bad or repeated workload name %q", w.Name)
		}
		seen[w.Name] = true
		var wantRoot string
		switch w.Type {
		case bundle.TypeContainer:
			wantRoot = filepath.Join(workloadDir(root, w.Type, w.Name), "rootfs")
		case bundle.TypeVM:
			wantRoot = filepath.Join(workloadDir(root, w.Type, w.Name), "disk")
		default:
			return fmt.Errorf("workload %s: unknown type %q", w.Name, w.Type)
		}
		if w.Spec.Root != wantRoot {
			return fmt.Errorf("workload %s: root %q, want %s", w.Name, w.Spec.Root, wantRoot)
		}
		if want := filepath.Join(workloadDir(root, w.Type, w.Name), "run"); w.Spec.StateDir != want {
			return fmt.Errorf("workload %s: state dir %q, want %s", w.Name, w.Spec.StateDir, want)
		}
		for _, p := range []string{w.Spec.Image, w.Spec.Kernel, w.Spec.Initrd} {
			if p != "" && !within(w.Spec.Root, p) {
				return fmt.Errorf("workload %s: %q is outside its root %s", w.Name, p, w.Spec.Root)
			}
		}
	}
	for kind, p := range s.Hooks {
		if want := filepath.Join(stackDir(root, name), "hooks", kind+".sh"); p != want || !validWorkloadName(kind) {
			return fmt.Errorf("hook %q: script %q, want %s", kind, p, want)
		}
	}
	return nil
}

// record is a workload's own record (workload.json in its directory),
// written when it starts: what `stack destroy --force` needs to stop and
// remove it when the stack's stack.json is lost or corrupt.
type record struct {
	Stack   string     `json:"stack"`
	Service string     `json:"service"`
	Name    string     `json:"name"`
	Type    string     `json:"type"`
	Runtime string     `json:"runtime"`
	Handle  sdk.Handle `json:"handle"`
}

const recordName = "workload.json"

// saveRecord writes w's record beside its root.
func saveRecord(root, stack string, w *Workload) error {
	dir := workloadDir(root, w.Type, w.Name)
	if _, err := os.Stat(dir); w.Handle == nil || err != nil {
		return nil // never started, or its directory is gone with it
	}
	data, err := json.Marshal(record{Stack: stack, Service: w.Service, Name: w.Name, Type: w.Type, Runtime: w.Runtime, Handle: *w.Handle})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, recordName), data, stateFileMode)
}

// records returns the workload records of stack found under root, each
// checked to describe the directory it lies in.
func records(root, stack string) []record {
	var out []record
	for _, typ := range []string{bundle.TypeContainer, bundle.TypeVM} {
		base := filepath.Dir(workloadDir(root, typ, "x"))
		ents, _ := os.ReadDir(base)
		for _, e := range ents {
			data, err := os.ReadFile(filepath.Join(base, e.Name(), recordName))
			if err != nil {
				continue
			}
			var r record
			if json.Unmarshal(data, &r) != nil || r.Stack != stack || r.Name != e.Name() || r.Type != typ {
				continue
			}
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// corruptReason is the Reason of a workload of a corrupt stack.
func corruptReason(stack string) string {
	return "the stack's state is corrupt; volt stack destroy --force " + stack + " removes it"
}

// recordStatus reports the workloads of a corrupt stack, found from their
// records and asked of their runtimes, so that what still runs is seen.
func (d *Deployer) recordStatus(ctx context.Context, st *Stack) []WorkloadStatus {
	var out []WorkloadStatus
	for _, r := range records(d.Root, st.Name) {
		row := WorkloadStatus{Stack: st.Name, Service: r.Service, Name: r.Name, Type: r.Type, Status: sdk.StatusUnknown, Reason: corruptReason(st.Name)}
		if rt, err := d.Plugins.Runtime(ctx, r.Runtime); err == nil {
			if err := rt.Recover(ctx, r.Handle); err == nil || errors.Is(err, sdk.ErrNotFound) {
				if ws, err := rt.Inspect(ctx, r.Handle); err == nil {
					row.Status, row.PID, row.Started, row.ExitCode = ws.State, ws.PID, ws.StartedAt, ws.ExitCode
				}
			}
		}
		out = append(out, row)
	}
	return out
}

// destroyRecorded removes a stack without usable state: every workload
// recorded for it is stopped and destroyed through its runtime and its
// directory removed, then the stack dir and (unless KeepVolumes) its
// volumes. No hooks run: their scripts are named by the state.
func (d *Deployer) destroyRecorded(ctx context.Context, name string, opts DestroyOptions, cause error) error {
	recs := records(d.Root, name)
	d.notify("stack %s: %v; removing the %d workloads recorded for it", name, cause, len(recs))
	for _, r := range recs {
		rt, err := d.Plugins.Runtime(ctx, r.Runtime)
		if err != nil {
			return fmt.Errorf("destroy %s: %w", r.Name, err)
		}
		if err := rt.Stop(ctx, r.Handle, d.stopTimeout()); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			d.Logger.Warn("stop workload", "workload", r.Name, "err", err)
		}
		if err := rt.Destroy(ctx, r.Handle); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			return fmt.Errorf("destroy %s: %w", r.Name, err)
		}
		if err := removeUnder(d.Root, workloadDir(d.Root, r.Type, r.Name)); err != nil {
			return err
		}
	}
	if !opts.KeepVolumes {
		if err := removeUnder(d.Root, filepath.Join(d.Root, "volumes", name)); err != nil {
			return err
		}
	}
	return removeUnder(d.Root, stackDir(d.Root, name))
}
