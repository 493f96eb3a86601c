package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
)

// Login checks user/password (or a token as password) against host and
// stores them in opts.Credentials (default: the docker credential store).
func Login(ctx context.Context, host, user, password string, opts Options) error {
	store, err := opts.credentialStore()
	if err != nil {
		return err
	}
	reg, err := opts.registryClient(host)
	if err != nil {
		return fmt.Errorf("login %s: %w", host, err)
	}
	if err := credentials.Login(ctx, store, reg, auth.Credential{Username: user, Password: password}); err != nil {
		return fmt.Errorf("login %s: %w", host, wrapErr(err, host))
	}
	return nil
}

// Logout removes host's credentials from opts.Credentials (default: the
// docker credential store). Removing absent credentials is not an error.
func Logout(ctx context.Context, host string, opts Options) error {
	store, err := opts.credentialStore()
	if err != nil {
		return err
	}
	if err := credentials.Logout(ctx, store, host); err != nil {
		return fmt.Errorf("logout %s: %w", host, err)
	}
	return nil
}

// Repository is one repository of a registry and its tags.
type Repository struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// List returns the repositories of host (the catalog API) with their tags,
// at most limit repositories (0 = all). A repository filter prefix may be
// given to list only repositories under it.
func List(ctx context.Context, host, prefix string, limit int, opts Options) ([]Repository, error) {
	reg, err := opts.registryClient(host)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", host, err)
	}
	var names []string
	errStop := errors.New("stop")
	err = reg.Repositories(ctx, "", func(repos []string) error {
		for _, r := range repos {
			if prefix != "" && !strings.HasPrefix(r, prefix) {
				continue
			}
			names = append(names, r)
			if limit > 0 && len(names) >= limit {
				return errStop
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("list %s: %w", host, wrapErr(err, host))
	}
	out := make([]Repository, 0, len(names))
	for _, n := range names {
		repo, err := reg.Repository(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("list %s/%s: %w", host, n, err)
		}
		r := Repository{Name: n, Tags: []string{}}
		err = repo.Tags(ctx, "", func(tags []string) error { r.Tags = append(r.Tags, tags...); return nil })
		if err != nil {
			return nil, fmt.Errorf("list %s/%s: %w", host, n, wrapErr(err, host))
		}
		out = append(out, r)
	}
	return out, nil
}

// Status is what Check learns about a registry.
type Status struct {
	Host string `json:"host"`
	// URL is the base URL used.
	URL string `json:"url"`
	// Reachable: the registry answered /v2/ at all.
	Reachable bool `json:"reachable"`
	// APIVersion is the Docker-Distribution-API-Version header ("registry/2.0").
	APIVersion string `json:"apiVersion,omitempty"`
	// Auth is "none" (open), "bearer" or "basic": the challenge of an
	// anonymous request, if any.
	Auth string `json:"auth"`
	// Realm is the bearer token endpoint, when Auth is "bearer".
	Realm string `json:"realm,omitempty"`
	// Access: a request with the stored credentials (or none, when none
	// are stored) succeeded.
	Access bool `json:"access"`
	// HasCredentials: credentials are stored for host.
	HasCredentials bool `json:"hasCredentials"`
	// Error explains why the registry is unreachable or refuses the
	// credentials ("" when all is well).
	Error string `json:"error,omitempty"`
}

// Check probes host: an anonymous GET /v2/ for reachability, API version
// and auth scheme, then a ping with the stored credentials.
func Check(ctx context.Context, host string, opts Options) (*Status, error) {
	scheme := "https"
	if opts.plainHTTP(host) {
		scheme = "http"
	}
	st := &Status{Host: host, URL: scheme + "://" + host + "/v2/", Auth: "none"}
	hc := opts.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("status %s: %w", host, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		st.Error = classify(err, host).Error()
		return st, nil
	}
	resp.Body.Close()
	st.Reachable = true
	st.APIVersion = resp.Header.Get("Docker-Distribution-API-Version")
	if ch := resp.Header.Get("WWW-Authenticate"); ch != "" {
		scheme, params, _ := strings.Cut(ch, " ")
		st.Auth = strings.ToLower(scheme)
		for _, p := range strings.Split(params, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "realm="); ok {
				st.Realm = strings.Trim(v, `"`)
				if u, err := url.Parse(st.Realm); err == nil {
					st.Realm = u.String()
				}
			}
		}
	}
	if store, err := opts.credentialStore(); err == nil {
		if c, err := store.Get(ctx, credentials.ServerAddressFromHostname(host)); err == nil && c != auth.EmptyCredential {
			st.HasCredentials = true
		}
	}
	reg, err := opts.registryClient(host)
	if err != nil {
		return nil, fmt.Errorf("status %s: %w", host, err)
	}
	if err := reg.Ping(ctx); err != nil {
		st.Error = wrapErr(err, host).Error()
	} else {
		st.Access = true
	}
	return st, nil
}
