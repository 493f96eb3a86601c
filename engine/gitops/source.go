// Package gitops makes stacks follow a git repository. A source names a
// repository, a branch and a path; each new head of the branch is fetched
// (go-git, shallow), built hermetically from the commit's tree into a bundle,
// verified and deployed in place of the previous revision, and recorded in
// the source's history. Webhooks (GitHub, GitLab, Gitea/Forgejo, generic)
// and poll loops only trigger fetches: what is deployed is always what the
// repository says.
//
// State lives under $VOLT_ROOT/gitops/<name>/: source.json (settings),
// state.json (desired and deployed revisions), history.json, mirror/ (a bare
// local mirror), bundles/ (the last gitops.keep bundles, for rollback) and a
// lock file that lets one build run at a time per source.
package gitops

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/volt-cli/volt/sdk/atomicfile"
)

// Errors callers branch on.
var (
	// ErrNoSource means no source of that name exists.
	ErrNoSource = errors.New("no such gitops source")
	// ErrSourceExists means a source of that name exists already.
	ErrSourceExists = errors.New("gitops source already exists")
	// ErrInvalid means a setting is invalid.
	ErrInvalid = errors.New("invalid gitops setting")
)

// Source is one repository a stack follows (source.json).
type Source struct {
	Name string `json:"name"`
	// Repo is the repository URL: https://, http://, ssh://, git:// or file://.
	Repo string `json:"repo"`
	// Branch is the branch followed (default "main").
	Branch string `json:"branch"`
	// Path is the directory of the recipe (volt.star) or Constellation in the tree.
	Path string `json:"path"`
	// Interval is the poll interval (0 = no polling, webhooks and sync only).
	Interval Duration `json:"interval"`
	// WebhookSecretFile holds the webhook secret ("" = webhooks refused).
	WebhookSecretFile string `json:"webhookSecretFile,omitempty"`
	// RequireSignedCommits deploys only commits SSH-signed by a trusted key.
	RequireSignedCommits bool `json:"requireSignedCommits,omitempty"`
	// CredentialsFile holds https credentials: "USER:PASSWORD" or a token.
	CredentialsFile string `json:"credentialsFile,omitempty"`
	// SSHKey is the private key file for ssh:// repositories.
	SSHKey string `json:"sshKey,omitempty"`
	// KnownHosts is the known_hosts file for ssh:// (default ~/.ssh/known_hosts).
	KnownHosts string `json:"knownHosts,omitempty"`
	// Stack is the stack name deployed (default: the source name).
	Stack string `json:"stack"`
	// Suspended stops polls and webhooks from deploying (sync still works).
	Suspended bool `json:"suspended,omitempty"`
	// Created is when the source was added.
	Created time.Time `json:"created"`
}

// Duration is a time.Duration stored as Go duration text ("1m0s").
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads duration text.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,47}$`)

// MinInterval is the shortest poll interval accepted.
const MinInterval = time.Second

// Validate checks the source's settings and fills defaults.
func (s *Source) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("%w: name %q: want 1-48 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", ErrInvalid, s.Name)
	}
	if s.Branch == "" {
		s.Branch = "main"
	}
	if s.Stack == "" {
		s.Stack = s.Name
	}
	if strings.ContainsAny(s.Branch, " \t\n~^:?*[\\") || strings.HasPrefix(s.Branch, "-") || strings.Contains(s.Branch, "..") {
		return fmt.Errorf("%w: branch %q is not a valid branch name", ErrInvalid, s.Branch)
	}
	p := filepath.ToSlash(filepath.Clean(strings.TrimPrefix(s.Path, "/")))
	if p == "" {
		p = "."
	}
	if !filepath.IsLocal(p) && p != "." {
		return fmt.Errorf("%w: --path %q leaves the repository", ErrInvalid, s.Path)
	}
	s.Path = p
	if d := time.Duration(s.Interval); d != 0 && d < MinInterval {
		return fmt.Errorf("%w: --interval %s is shorter than %s", ErrInvalid, d, MinInterval)
	}
	if time.Duration(s.Interval) < 0 {
		return fmt.Errorf("%w: --interval must not be negative", ErrInvalid)
	}
	u, err := url.Parse(s.Repo)
	if err != nil || s.Repo == "" {
		return fmt.Errorf("%w: --repo %q is not a URL (want https://, ssh://, git:// or file://)", ErrInvalid, s.Repo)
	}
	switch u.Scheme {
	case "https", "http", "git", "file":
	case "ssh":
		if s.KnownHosts == "" {
			if home, err := os.UserHomeDir(); err == nil {
				s.KnownHosts = filepath.Join(home, ".ssh", "known_hosts")
			}
		}
	default:
		return fmt.Errorf("%w: --repo %q: scheme %q is not supported (want https://, ssh://, git:// or file://)", ErrInvalid, s.Repo, u.Scheme)
	}
	for flag, f := range map[string]string{"--webhook-secret-file": s.WebhookSecretFile, "--credentials-file": s.CredentialsFile, "--ssh-key": s.SSHKey} {
		if f == "" {
			continue
		}
		if !filepath.IsAbs(f) {
			return fmt.Errorf("%w: %s %q must be an absolute path", ErrInvalid, flag, f)
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalid, flag, err)
		}
	}
	return nil
}

// Store is the gitops state under one state root.
type Store struct {
	// Dir is $VOLT_ROOT/gitops.
	Dir string
}

// SourceDir is the directory of source name.
func (st *Store) SourceDir(name string) string { return filepath.Join(st.Dir, name) }

func (st *Store) sourceFile(name string) string {
	return filepath.Join(st.SourceDir(name), "source.json")
}

// Get loads a source.
func (st *Store) Get(name string) (*Source, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("gitops source %q: %w", name, ErrNoSource)
	}
	b, err := os.ReadFile(st.sourceFile(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("gitops source %q: %w", name, ErrNoSource)
	}
	if err != nil {
		return nil, err
	}
	var s Source
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", st.sourceFile(name), err)
	}
	return &s, nil
}

// Put writes a source's settings atomically (0600: they name secret files).
func (st *Store) Put(s *Source) error {
	if err := os.MkdirAll(st.SourceDir(s.Name), 0o700); err != nil {
		return err
	}
	return writeJSON(st.sourceFile(s.Name), s)
}

// Add creates a new source.
func (st *Store) Add(s *Source) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if _, err := st.Get(s.Name); err == nil {
		return fmt.Errorf("%q: %w (change it with: volt gitops set %s …)", s.Name, ErrSourceExists, s.Name)
	}
	if s.Created.IsZero() {
		s.Created = time.Now().UTC().Truncate(time.Second)
	}
	return st.Put(s)
}

// List returns every source, sorted by name.
func (st *Store) List() ([]*Source, error) {
	ents, err := os.ReadDir(st.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Source
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		s, err := st.Get(e.Name())
		if errors.Is(err, ErrNoSource) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a source and everything kept for it.
func (st *Store) Remove(name string) error {
	if _, err := st.Get(name); err != nil {
		return err
	}
	return os.RemoveAll(st.SourceDir(name))
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
