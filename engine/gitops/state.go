package gitops

import (
	"path/filepath"
	"time"
)

// Results of a history entry.
const (
	ResultDeployed = "deployed" // built, verified and running
	ResultFailed   = "failed"   // recipe, build, verification or import failed; the previous deployment stays
	ResultRefused  = "refused"  // not deployed by policy (unsigned or untrusted commit)
)

// Actions of a history entry.
const (
	ActionSync     = "sync"
	ActionRollback = "rollback"
)

// State is what a source last saw and deployed (state.json).
type State struct {
	// Head is the branch head last seen in the repository (the desired revision).
	Head string `json:"head,omitempty"`
	// Deployed is the commit whose bundle runs now.
	Deployed string `json:"deployed,omitempty"`
	// DeployedDigest is that bundle's manifest digest.
	DeployedDigest string `json:"deployedDigest,omitempty"`
	// LastSync is when the repository was last reached.
	LastSync time.Time `json:"lastSync,omitzero"`
	// LastAttempt is when a sync was last tried.
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	// LastError is the error of the last sync ("" if it succeeded).
	LastError string `json:"lastError,omitempty"`
	// FetchFailures counts consecutive failures to reach the repository.
	FetchFailures int `json:"fetchFailures,omitempty"`
	// Failed is the last commit that failed to deploy; polls do not retry it.
	Failed string `json:"failed,omitempty"`
	// Hold is the branch head a rollback stepped back from: polls and
	// webhooks leave the rollback in place until the branch moves on.
	Hold string `json:"hold,omitempty"`
}

// Entry is one line of a source's history.
type Entry struct {
	Commit string    `json:"commit"`
	Time   time.Time `json:"time"`
	// Action is "sync" or "rollback".
	Action string `json:"action"`
	// Result is "deployed", "failed" or "refused".
	Result string `json:"result"`
	// Digest is the bundle's manifest digest ("" if none was built).
	Digest string `json:"digest,omitempty"`
	// DurationMS is how long the build and deployment took.
	DurationMS int64 `json:"durationMs"`
	// Error says why a failed or refused entry did not deploy.
	Error string `json:"error,omitempty"`
	// Subject is the commit message's first line.
	Subject string `json:"subject,omitempty"`
	// Signer is the trusted signer of a signed commit.
	Signer string `json:"signer,omitempty"`
	// Kept says the bundle is still kept for rollback.
	Kept bool `json:"kept"`
}

// maxHistory bounds history.json.
const maxHistory = 200

func (st *Store) statePath(name string) string {
	return filepath.Join(st.SourceDir(name), "state.json")
}
func (st *Store) historyPath(name string) string {
	return filepath.Join(st.SourceDir(name), "history.json")
}

// BundlesDir holds a source's kept bundles, one per commit.
func (st *Store) BundlesDir(name string) string {
	return filepath.Join(st.SourceDir(name), "bundles")
}

// BundlePath is where the bundle of commit is kept.
func (st *Store) BundlePath(name, commit string) string {
	return filepath.Join(st.BundlesDir(name), commit+".vbundle")
}

// LoadState reads a source's state (zero if none yet).
func (st *Store) LoadState(name string) (*State, error) {
	var s State
	return &s, readJSON(st.statePath(name), &s)
}

// SaveState writes a source's state atomically.
func (st *Store) SaveState(name string, s *State) error { return writeJSON(st.statePath(name), s) }

// History returns a source's history, oldest first, with Kept filled in.
func (st *Store) History(name string) ([]Entry, error) {
	var h []Entry
	if err := readJSON(st.historyPath(name), &h); err != nil {
		return nil, err
	}
	for i := range h {
		h[i].Kept = h[i].Result == ResultDeployed && fileExists(st.BundlePath(name, h[i].Commit))
	}
	return h, nil
}

func (st *Store) appendHistory(name string, e Entry) error {
	h, err := st.History(name)
	if err != nil {
		return err
	}
	h = append(h, e)
	if len(h) > maxHistory {
		h = h[len(h)-maxHistory:]
	}
	return writeJSON(st.historyPath(name), h)
}

// Phases of a source, as status and list show them.
const (
	PhasePending     = "pending"     // never synced
	PhaseSynced      = "synced"      // the branch head runs
	PhaseOutOfSync   = "out-of-sync" // a newer head is not deployed yet
	PhaseFailed      = "failed"      // the branch head failed to deploy; the previous deployment runs
	PhaseRolledBack  = "rolled-back" // a rollback holds until the branch moves on
	PhaseUnreachable = "unreachable" // the repository could not be reached (retrying)
	PhaseSuspended   = "suspended"   // polls and webhooks do not deploy
)

// Status is a source with its state and phase.
type Status struct {
	*Source
	State State  `json:"state"`
	Phase string `json:"phase"`
}

// Status returns a source's settings, state and phase.
func (st *Store) Status(name string) (*Status, error) {
	src, err := st.Get(name)
	if err != nil {
		return nil, err
	}
	s, err := st.LoadState(name)
	if err != nil {
		return nil, err
	}
	return &Status{Source: src, State: *s, Phase: phase(src, s)}, nil
}

func phase(src *Source, s *State) string {
	switch {
	case s.FetchFailures > 0:
		return PhaseUnreachable
	case s.Head == "" && s.Deployed == "":
		return PhasePending
	case s.Head == s.Deployed:
		return PhaseSynced
	case src.Suspended:
		return PhaseSuspended
	case s.Failed != "" && s.Failed == s.Head:
		return PhaseFailed
	case s.Hold != "" && s.Hold == s.Head:
		return PhaseRolledBack
	}
	return PhaseOutOfSync
}
