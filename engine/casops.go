package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/cas"
	"github.com/volt-cli/volt/engine/deploy"
)

// CAS opens the Stellarium store under the state root ($VOLT_ROOT/cas).
func (e *Engine) CAS() (*cas.Store, error) {
	if e.cas == nil {
		if err := e.ensureRoot(); err != nil {
			return nil, err
		}
		s, err := cas.Open(e.Path("cas"))
		if err != nil {
			return nil, err
		}
		e.cas = s
	}
	return e.cas, nil
}

// CASRemotes returns config cas.remotes.
func (e *Engine) CASRemotes() []string { return e.Config.List("cas.remotes") }

// CASFetchMissing is the CAS fetch policy: an object the local store lacks
// is fetched (only its missing chunks) from config cas.remotes. With the
// object local, or no remotes configured, it does nothing (a later Get
// reports the object missing).
func (e *Engine) CASFetchMissing(ctx context.Context, r cas.Ref) error {
	s, err := e.CAS()
	if err != nil {
		return err
	}
	if s.Has(r) || len(e.CASRemotes()) == 0 {
		return nil
	}
	_, err = s.Fetch(ctx, r, e.CASRemotes())
	return err
}

// casStore adapts the store to engine/build's Store. Each image is pinned
// under its label ("bundle-" + label, characters outside [A-Za-z0-9._-]
// replaced), so gc keeps it even when the bundle lives outside
// $VOLT_ROOT/bundles; volt cas pin NAME --remove releases it.
type casStore struct{ s *cas.Store }

func (c casStore) PutFile(ctx context.Context, path, label string) (string, string, int64, error) {
	pin := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, "bundle-"+label)
	if len(pin) > 128 {
		pin = pin[:128]
	}
	ref, st, err := c.s.PutFile(ctx, path, cas.WithPin(pin))
	if err != nil {
		return "", "", 0, err
	}
	return ref.String(), ref.Digest(), st.Size, nil
}

// casResolver makes CAS-referenced images available at deploy: from the
// local store, else fetched (only missing chunks) from cas.remotes.
// The store is opened on first use, so commands that never meet a CAS
// reference create nothing.
type casResolver struct{ e *Engine }

// Materialize writes object ref to dst, checking it against want ("blake3:…").
func (c casResolver) Materialize(ctx context.Context, ref, want, dst string) error {
	r, err := cas.ParseRef(ref)
	if err != nil {
		return err
	}
	if want != "" && r.Digest() != want {
		return fmt.Errorf("CAS reference %s does not match the manifest digest %s", ref, want)
	}
	s, err := c.e.CAS()
	if err != nil {
		return err
	}
	if !s.Has(r) && len(c.e.CASRemotes()) == 0 {
		return fmt.Errorf("object %s is not in the local store and no cas.remotes are configured: %w", ref, cas.ErrMissing)
	}
	if err := c.e.CASFetchMissing(ctx, r); err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	err = s.Get(ctx, r, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}

// CASRoots lists the objects that must survive GC: CAS references of the
// bundles in $VOLT_ROOT/bundles, of those GitOps keeps, and of deployed stacks (pins are the
// store's own roots).
func (e *Engine) CASRoots() ([]cas.Ref, error) {
	var refs []cas.Ref
	add := func(s string) {
		if r, err := cas.ParseRef(s); err == nil {
			refs = append(refs, r)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(e.BundlesDir(), "*.vbundle"))
	matches = append(matches, e.gitopsBundles()...)
	for _, p := range matches {
		r, err := bundle.Open(p)
		if err != nil {
			return nil, fmt.Errorf("gc: cannot read %s, so cannot know what it references: %w", p, err)
		}
		for _, svc := range r.Manifest().Services {
			for _, img := range svc.Images {
				add(img.CASRef)
			}
		}
		r.Close()
	}
	stacks, errs := deploy.ListStacks(e.Root)
	if len(errs) > 0 {
		return nil, fmt.Errorf("gc: %w", errs[0])
	}
	for _, st := range stacks {
		if st.Phase == deploy.PhaseCorrupt {
			return nil, fmt.Errorf("gc: cannot know what stack %s references: %s", st.Name, st.Problem)
		}
		for _, s := range st.Bundle.CASRefs {
			add(s)
		}
	}
	return refs, nil
}

// casRefs lists the CAS references of a manifest, sorted.
func casRefs(m *bundle.Manifest) []string {
	var out []string
	for _, svc := range m.Services {
		for _, img := range svc.Images {
			if img.CASRef != "" {
				out = append(out, img.CASRef)
			}
		}
	}
	sort.Strings(out)
	return out
}

// verifyCAS checks that every object in refs is in the local store and
// whole, listing every missing or corrupt chunk.
func (e *Engine) verifyCAS(ctx context.Context, refs []string) Check {
	c := Check{Name: "cas"}
	s, err := e.CAS()
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	var rs []cas.Ref
	for _, ref := range refs {
		r, err := cas.ParseRef(ref)
		if err != nil {
			c.Detail = err.Error()
			return c
		}
		rs = append(rs, r)
	}
	rep, err := s.Verify(ctx, cas.VerifyOptions{Refs: rs, Deep: true})
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	if !rep.OK() {
		var probs []string
		for _, p := range rep.BadObjects {
			probs = append(probs, fmt.Sprintf("object %s: %s", p.Ref, p.Error))
		}
		for _, p := range rep.Problems {
			probs = append(probs, fmt.Sprintf("chunk %x: %s", p.Chunk[:6], p.Problem))
		}
		c.Detail = fmt.Sprintf("%d problem(s): %s", len(probs), strings.Join(probs, "; "))
		c.Hint = "fetch or repair with: volt cas verify --repair-from URL"
		return c
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%d CAS objects present and whole (%s)", len(refs), FormatSize(rep.Bytes))
	return c
}
