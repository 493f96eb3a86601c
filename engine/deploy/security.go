package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/constellation"
	"github.com/volt-cli/volt/engine/security"
)

// secure resolves each container's security settings into its spec
// (engine/security). It runs before anything is staged, so a bad setting
// fails the import with nothing changed.
func (d *Deployer) secure(work []Workload, f *constellation.File, opts security.Options) error {
	if opts.Warn == nil {
		opts.Warn = func(msg string) { d.notify("%s", msg) }
	}
	for i := range work {
		w := &work[i]
		c := f.Containers[w.Service]
		if w.Type != bundle.TypeContainer || c == nil {
			continue
		}
		ws, err := security.Resolve(w.Service, c, w.Spec.Mounts, opts)
		if err != nil {
			return err
		}
		w.Spec.Security = ws
	}
	return nil
}

// warnMissingPolicyPaths warns about Landlock profile paths that the
// unpacked image does not have (they are skipped when the policy is
// applied). Volume targets and tmpfs mounts appear at start and are not
// checked.
func (d *Deployer) warnMissingPolicyPaths(work []Workload) {
	for _, w := range work {
		sec := w.Spec.Security
		if sec == nil || sec.Landlock == nil {
			continue
		}
		mounted := map[string]bool{}
		for _, m := range w.Spec.Mounts {
			mounted[m.Target] = true
		}
		for _, t := range sec.Tmpfs {
			mounted[t] = true
		}
		var missing []string
		for _, list := range [][]string{sec.Landlock.Read, sec.Landlock.Execute, sec.Landlock.Write} {
			for _, p := range list {
				if mounted[p] || slices.Contains(security.TmpfsDirs, p) || strings.HasPrefix(p, "/dev/") || strings.HasPrefix(p, "/run") || strings.HasPrefix(p, "/tmp") {
					continue // made by nspawn or a mount at start
				}
				if _, err := os.Lstat(filepath.Join(w.Spec.Root+".new", p)); err != nil {
					missing = append(missing, p)
				}
			}
		}
		if len(missing) > 0 {
			d.notify("warning: service %s: landlock %s names paths the image does not have (skipped): %s", w.Service, sec.LandlockName, strings.Join(missing, ", "))
		}
	}
}

// ReadConstellation reads and parses a bundle's Constellation.
func ReadConstellation(r *bundle.Reader) (*constellation.File, error) { return readCompose(r) }
