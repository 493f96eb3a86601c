package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/volt-cli/volt/engine/constellation"
	"github.com/volt-cli/volt/sdk"
)

// startAll starts the stack's workloads in order, honouring depends_on
// conditions, and saves the state after each start so that an interrupted
// import knows what it started.
func (d *Deployer) startAll(ctx context.Context, st *Stack) error {
	for i := range st.Workloads {
		w := &st.Workloads[i]
		if err := d.waitDeps(ctx, st, w); err != nil {
			return err
		}
		if err := d.startOne(ctx, w); err != nil {
			return err
		}
		if err := st.Save(d.Root); err != nil {
			return err
		}
	}
	return nil
}

func (d *Deployer) startOne(ctx context.Context, w *Workload) error {
	rt, err := d.Plugins.Runtime(ctx, w.Runtime)
	if err != nil {
		return fmt.Errorf("start %s: %w", w.Service, err)
	}
	if err := os.MkdirAll(w.Spec.StateDir, stateDirMode); err != nil {
		return err
	}
	d.notify("%s: starting %s (%s)", w.Service, w.Type, w.Runtime)
	h, err := rt.Start(ctx, w.Spec)
	if err != nil {
		return fmt.Errorf("start %s: %w", w.Service, err)
	}
	w.Handle = &h
	w.Status = sdk.StatusRunning
	w.Started = time.Now().UTC()
	return nil
}

// waitDeps blocks until every dependency of w meets its condition.
func (d *Deployer) waitDeps(ctx context.Context, st *Stack, w *Workload) error {
	for dep, cond := range w.DependsOn {
		dw, ok := st.Workload(dep)
		if !ok || dw.Handle == nil {
			continue // not deployed by this runtime (host service) or not started
		}
		rt, err := d.Plugins.Runtime(ctx, dw.Runtime)
		if err != nil {
			return err
		}
		switch cond {
		case constellation.ServiceCompletedSuccessfully:
			d.notify("%s: waiting for %s to complete", w.Service, dep)
			ws, err := rt.Wait(ctx, *dw.Handle)
			if err != nil {
				return fmt.Errorf("%s waits for %s: %w", w.Service, dep, err)
			}
			if ws.ExitCode != 0 {
				return fmt.Errorf("%s depends on %s completing successfully, but it exited with code %d%s", w.Service, dep, ws.ExitCode, reasonSuffix(ws))
			}
			dw.Status = sdk.StatusStopped
		case constellation.ServiceHealthy:
			if dw.Healthcheck == nil {
				continue
			}
			d.notify("%s: waiting for %s to be healthy", w.Service, dep)
			if err := d.waitHealthy(ctx, rt, dw); err != nil {
				return fmt.Errorf("%s depends on %s being healthy: %w", w.Service, dep, err)
			}
		default: // service_started: Start has returned.
		}
	}
	return nil
}

func reasonSuffix(ws sdk.WorkloadStatus) string {
	if ws.Reason != "" {
		return ": " + ws.Reason
	}
	return ""
}

// waitHealthy runs the workload's healthcheck through Exec until it passes.
func (d *Deployer) waitHealthy(ctx context.Context, rt sdk.Runtime, w *Workload) error {
	hc := w.Healthcheck
	var last error
	for i := 0; i < hc.Retries; i++ {
		cctx, cancel := context.WithTimeout(ctx, hc.Timeout)
		code, err := rt.Exec(cctx, *w.Handle, sdk.ExecRequest{Command: hc.Command, Stdout: io.Discard, Stderr: io.Discard})
		cancel()
		if err == nil && code == 0 {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("healthcheck exited with code %d", code)
		}
		if st, ierr := rt.Inspect(ctx, *w.Handle); ierr == nil && st.State != sdk.StatusRunning {
			return fmt.Errorf("%s is %s%s", w.Service, st.State, reasonSuffix(st))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(hc.Interval):
		}
	}
	return fmt.Errorf("not healthy after %d tries: %w", hc.Retries, last)
}

// stopAll stops a stack's workloads in reverse order (errors are logged).
func (d *Deployer) stopAll(ctx context.Context, st *Stack) {
	for i := len(st.Workloads) - 1; i >= 0; i-- {
		w := &st.Workloads[i]
		if w.Handle == nil {
			continue
		}
		rt, err := d.Plugins.Runtime(ctx, w.Runtime)
		if err != nil {
			d.Logger.Warn("stop workload", "workload", w.Name, "err", err)
			continue
		}
		if err := rt.Stop(ctx, *w.Handle, d.stopTimeout()); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			d.Logger.Warn("stop workload", "workload", w.Name, "err", err)
		}
		w.Status = sdk.StatusStopped
	}
}

// teardown stops and destroys every recorded workload of st (errors are logged).
func (d *Deployer) teardown(ctx context.Context, st *Stack) {
	d.stopAll(ctx, st)
	for _, w := range st.Workloads {
		if w.Handle == nil {
			continue
		}
		if rt, err := d.Plugins.Runtime(ctx, w.Runtime); err == nil {
			if err := rt.Destroy(ctx, *w.Handle); err != nil && !errors.Is(err, sdk.ErrNotFound) {
				d.Logger.Warn("destroy workload", "workload", w.Name, "err", err)
			}
		}
	}
}

// WorkloadStatus is one row of Status.
type WorkloadStatus struct {
	Stack    string    `json:"stack"`
	Service  string    `json:"service"`
	Name     string    `json:"name"`
	Type     string    `json:"type"`
	Status   string    `json:"status"`
	Reason   string    `json:"reason,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Started  time.Time `json:"started,omitempty"`
	ExitCode int       `json:"exitCode,omitempty"`
	// Security is what the runtime reports about the workload's
	// confinement (its security.* details: asked and enforced).
	Security map[string]string `json:"security,omitempty"`
}

// Status asks each workload's runtime for its state. A workload of an
// interrupted import is reported "interrupted", never running; the
// workloads of a corrupt stack are found from their records (what still
// runs is shown as running, with a reason that says how to remove it).
func (d *Deployer) Status(ctx context.Context, st *Stack) []WorkloadStatus {
	if st.Phase == PhaseCorrupt {
		return d.recordStatus(ctx, st)
	}
	out := make([]WorkloadStatus, 0, len(st.Workloads))
	for i := range st.Workloads {
		out = append(out, d.StatusOf(ctx, st, &st.Workloads[i]))
	}
	return out
}

// StatusOf asks one workload's runtime for its state (see Status).
func (d *Deployer) StatusOf(ctx context.Context, st *Stack, w *Workload) WorkloadStatus {
	if st.Phase == PhaseCorrupt {
		return WorkloadStatus{Stack: st.Name, Service: w.Service, Name: w.Name, Type: w.Type, Status: sdk.StatusUnknown, Reason: corruptReason(st.Name)}
	}
	row := WorkloadStatus{Stack: st.Name, Service: w.Service, Name: w.Name, Type: w.Type, Status: w.Status}
	if st.Phase == PhaseDeploying {
		row.Status, row.Reason = "interrupted", "the import did not finish; run the import again"
		return row
	}
	if w.Handle == nil {
		row.Status = sdk.StatusStopped
		return row
	}
	unknown := func(err error) WorkloadStatus {
		row.Status, row.Reason = sdk.StatusUnknown, err.Error()
		return row
	}
	rt, err := d.Plugins.Runtime(ctx, w.Runtime)
	if err != nil {
		return unknown(err)
	}
	if err := rt.Recover(ctx, *w.Handle); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return unknown(err)
	}
	ws, err := rt.Inspect(ctx, *w.Handle)
	if err != nil {
		return unknown(err)
	}
	row.Status, row.Reason, row.PID, row.ExitCode = ws.State, ws.Reason, ws.PID, ws.ExitCode
	row.Started = ws.StartedAt
	for k, v := range ws.Detail {
		if name, ok := strings.CutPrefix(k, "security."); ok {
			if row.Security == nil {
				row.Security = map[string]string{}
			}
			row.Security[name] = v
		}
	}
	if row.Started.IsZero() {
		row.Started = w.Started
	}
	return row
}

// Find locates a workload by "stack/service", by its host-unique name, or by
// its service name alone when only one stack has a service of that name.
func (d *Deployer) Find(ref string) (*Stack, *Workload, error) {
	stacks, _ := ListStacks(d.Root)
	var byService []string
	var st1 *Stack
	var w1 *Workload
	for _, st := range stacks {
		for i := range st.Workloads {
			w := &st.Workloads[i]
			if ref == st.Name+"/"+w.Service || ref == w.Name {
				return st, w, nil
			}
			if ref == w.Service {
				byService = append(byService, st.Name+"/"+w.Service)
				st1, w1 = st, w
			}
		}
	}
	switch len(byService) {
	case 0:
		return nil, nil, fmt.Errorf("no workload %q (see: volt ps -a): %w", ref, ErrNoStack)
	case 1:
		return st1, w1, nil
	}
	return nil, nil, fmt.Errorf("%q is ambiguous: name one of %s", ref, strings.Join(byService, ", "))
}

// Logs writes a workload's log to w.
func (d *Deployer) Logs(ctx context.Context, ref string, follow bool, tail int, out io.Writer) error {
	_, w, err := d.Find(ref)
	if err != nil {
		return err
	}
	if w.Handle == nil {
		return fmt.Errorf("%s has never been started", ref)
	}
	rt, err := d.Plugins.Runtime(ctx, w.Runtime)
	if err != nil {
		return err
	}
	if !follow {
		return rt.Logs(ctx, *w.Handle, false, tail, out)
	}
	// Following ends when the workload does, as docker logs -f does: once
	// it is no longer running, what it wrote last is given a moment to
	// arrive and the follow is ended.
	_ = rt.Recover(ctx, *w.Handle) // as Status does, so Inspect sees the live state
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for {
			ws, err := rt.Inspect(fctx, *w.Handle)
			if fctx.Err() != nil {
				return
			}
			if err != nil || ws.State != sdk.StatusRunning {
				select {
				case <-time.After(followGrace):
				case <-fctx.Done():
				}
				cancel()
				return
			}
			select {
			case <-time.After(followPoll):
			case <-fctx.Done():
				return
			}
		}
	}()
	err = rt.Logs(fctx, *w.Handle, true, tail, out)
	cancel()
	<-ended
	if ctx.Err() == nil && fctx.Err() != nil {
		return nil // the workload ended
	}
	return err
}

// followPoll is how often logs -f checks the workload still runs;
// followGrace how long it then waits for the last output.
const (
	followPoll  = 250 * time.Millisecond
	followGrace = 400 * time.Millisecond
)

// Exec runs a command in a running workload and returns its exit code.
func (d *Deployer) Exec(ctx context.Context, ref string, req sdk.ExecRequest) (int, error) {
	_, w, err := d.Find(ref)
	if err != nil {
		return -1, err
	}
	if w.Handle == nil {
		return -1, fmt.Errorf("%s is not running", ref)
	}
	rt, err := d.Plugins.Runtime(ctx, w.Runtime)
	if err != nil {
		return -1, err
	}
	if err := rt.Recover(ctx, *w.Handle); err != nil {
		return -1, fmt.Errorf("%s is not running: %w", ref, err)
	}
	return rt.Exec(ctx, *w.Handle, req)
}

// Stop stops one workload and records it.
func (d *Deployer) Stop(ctx context.Context, ref string) error {
	st, w, err := d.Find(ref)
	if err != nil {
		return err
	}
	if w.Handle != nil {
		rt, err := d.Plugins.Runtime(ctx, w.Runtime)
		if err != nil {
			return err
		}
		if err := rt.Stop(ctx, *w.Handle, d.stopTimeout()); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			return fmt.Errorf("stop %s: %w", ref, err)
		}
	}
	w.Status = sdk.StatusStopped
	return st.Save(d.Root)
}

// Start starts one stopped workload (a running one is left alone).
func (d *Deployer) Start(ctx context.Context, ref string) error {
	st, w, err := d.Find(ref)
	if err != nil {
		return err
	}
	if w.Handle != nil {
		rt, err := d.Plugins.Runtime(ctx, w.Runtime)
		if err != nil {
			return err
		}
		if ws, err := rt.Inspect(ctx, *w.Handle); err == nil && ws.State == sdk.StatusRunning {
			return nil
		}
		rt.Destroy(ctx, *w.Handle)
	}
	if err := d.startOne(ctx, w); err != nil {
		return err
	}
	return st.Save(d.Root)
}

// Restart stops then starts one workload.
func (d *Deployer) Restart(ctx context.Context, ref string) error {
	if err := d.Stop(ctx, ref); err != nil {
		return err
	}
	return d.Start(ctx, ref)
}

// DestroyOptions control Destroy.
type DestroyOptions struct {
	RunHooks bool
	// KeepVolumes leaves named volumes in place.
	KeepVolumes bool
	// Force removes a stack whose state is corrupt or lost, through the
	// records its workloads keep (see destroyRecorded).
	Force bool
}

// Destroy stops and removes a stack: its workloads, roots, state and (unless
// KeepVolumes) its named volumes. A stack whose state is corrupt is refused
// unless opts.Force. Nothing outside the state root is ever removed.
func (d *Deployer) Destroy(ctx context.Context, name string, opts DestroyOptions) error {
	st, err := LoadStack(d.Root, name)
	switch {
	case opts.Force && errors.Is(err, ErrCorrupt):
		return d.destroyRecorded(ctx, name, opts, err)
	case opts.Force && errors.Is(err, ErrNoStack) && validStackName(name) == nil && len(records(d.Root, name)) > 0:
		return d.destroyRecorded(ctx, name, opts, fmt.Errorf("no stack.json"))
	case errors.Is(err, ErrCorrupt):
		return fmt.Errorf("%w (volt stack destroy --force %s stops and removes what is recorded for it)", err, name)
	case err != nil:
		return err
	}
	dir := stackDir(d.Root, name)
	env := hookEnvironment(st, dir)
	if opts.RunHooks {
		if err := runHook(ctx, st.Hooks["pre-destroy"], "pre-destroy", dir, env, d.Logger); err != nil {
			return fmt.Errorf("%w: pre-destroy: %v (nothing was removed)", ErrHookFailed, err)
		}
	} else if len(st.Hooks) > 0 && (st.Hooks["pre-destroy"] != "" || st.Hooks["post-destroy"] != "") {
		d.notify("stack has destroy hooks: not run (use --run-hooks to run them)")
	}
	d.teardown(ctx, st)
	for _, w := range st.Workloads {
		if err := removeUnder(d.Root, filepath.Dir(w.Spec.Root)); err != nil {
			return fmt.Errorf("remove %s: %w", w.Name, err)
		}
	}
	var post string
	if opts.RunHooks && st.Hooks["post-destroy"] != "" {
		// Keep the script outside the stack dir, which is removed first.
		f, err := os.CreateTemp("", "volt-post-destroy-*.sh")
		if err == nil {
			data, _ := os.ReadFile(st.Hooks["post-destroy"])
			f.Write(data)
			f.Close()
			post = f.Name()
			defer os.Remove(post)
		}
	}
	if !opts.KeepVolumes {
		os.RemoveAll(filepath.Join(d.Root, "volumes", name))
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if post != "" {
		// The hook runs in the (recreated) stack dir; nothing of the
		// stack may be left once it ends.
		err := runHook(ctx, post, "post-destroy", dir, env, d.Logger)
		os.RemoveAll(dir)
		if err != nil {
			return fmt.Errorf("stack destroyed, but the post-destroy hook failed: %w", err)
		}
	}
	return nil
}

// Remove stops and destroys one workload, deletes its root and drops it from
// the stack's state. The rest of the stack keeps running.
func (d *Deployer) Remove(ctx context.Context, ref string) error {
	st, w, err := d.Find(ref)
	if err != nil {
		return err
	}
	if w.Handle != nil {
		if rt, err := d.Plugins.Runtime(ctx, w.Runtime); err == nil {
			rt.Stop(ctx, *w.Handle, d.stopTimeout())
			if err := rt.Destroy(ctx, *w.Handle); err != nil && !errors.Is(err, sdk.ErrNotFound) {
				return fmt.Errorf("remove %s: %w", ref, err)
			}
		}
	}
	if err := removeUnder(d.Root, filepath.Dir(w.Spec.Root)); err != nil {
		return fmt.Errorf("remove %s: %w", ref, err)
	}
	kept := st.Workloads[:0]
	for _, x := range st.Workloads {
		if x.Name != w.Name {
			kept = append(kept, x)
		}
	}
	st.Workloads = kept
	return st.Save(d.Root)
}
