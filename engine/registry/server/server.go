// Package server is `volt registry serve`: an OCI Distribution-spec
// registry (pull, push with monolithic and chunked uploads, cross-repository
// mount, tags list, catalog, referrers, delete) whose blobs live in
// Stellarium (engine/cas), so a blob shared by bundles, the CAS and the
// registry is stored once. Manifests and tags are small files under the
// server's root. Access is by bearer tokens signed by the server's ed25519
// key (see MintToken), scoped to pull/push per repository, with expiry;
// anonymous pull is optional. See docs/registry.md.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	godigest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/volt-cli/volt/engine/cas"
	"github.com/volt-cli/volt/engine/flock"
)

// DefaultService is the service name in challenges and tokens.
const DefaultService = "volt-registry"

// MaxManifestSize is the largest manifest accepted (4 MiB).
const MaxManifestSize = 4 << 20

// Config configures a Server.
type Config struct {
	// Root holds the server's metadata, uploads and token key
	// ($VOLT_ROOT/registry).
	Root string
	// CAS stores blob content ($VOLT_ROOT/cas).
	CAS *cas.Store
	// Key signs and checks tokens; nil loads or creates Root/token.key.
	Key ed25519.PrivateKey
	// Service is the token audience and challenge service (DefaultService).
	Service string
	// AnonymousPull lets requests without a token pull (and list).
	AnonymousPull bool
	// TokenTTL is the lifetime of tokens issued by the /token endpoint
	// (default 1h; never past the expiry of the token presented).
	TokenTTL time.Duration
	// BlobCacheBytes bounds the whole-blob cache beside the CAS that GET
	// serves from (0: DefaultBlobCacheBytes; negative: no cache, every GET
	// reassembles the blob from CAS chunks).
	BlobCacheBytes int64
	// Logf, when set, receives one line per failed request.
	Logf func(format string, args ...any)
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Server is an OCI Distribution registry; it is an http.Handler.
type Server struct {
	cfg     Config
	st      *store
	pub     ed25519.PublicKey
	lock    *flock.Lock
	mu      sync.Mutex
	uploads map[string]*upload
}

// New opens the registry state under cfg.Root (taking its lock, so one
// server uses a root at a time) and returns the server. Close releases it.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Root == "" || cfg.CAS == nil {
		return nil, errors.New("registry server: Root and CAS are required")
	}
	if cfg.Service == "" {
		cfg.Service = DefaultService
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Key == nil {
		k, err := LoadOrCreateKey(filepath.Join(cfg.Root, KeyFile))
		if err != nil {
			return nil, fmt.Errorf("registry server: %w", err)
		}
		cfg.Key = k
	}
	lk, err := flock.Acquire(ctx, filepath.Join(cfg.Root, "lock"), true, nil)
	if err != nil {
		return nil, fmt.Errorf("registry server: root %s is in use by another server: %w", cfg.Root, err)
	}
	// Uploads of a previous run are lost (sessions live in memory).
	os.RemoveAll(filepath.Join(cfg.Root, "uploads"))
	if cfg.BlobCacheBytes == 0 {
		cfg.BlobCacheBytes = DefaultBlobCacheBytes
	}
	cache, err := openBlobCache(filepath.Join(cfg.Root, "blobcache"), cfg.BlobCacheBytes)
	if err != nil {
		lk.Release()
		return nil, fmt.Errorf("registry server: blob cache: %w", err)
	}
	return &Server{
		cfg:     cfg,
		st:      &store{root: cfg.Root, cas: cfg.CAS, cache: cache},
		pub:     cfg.Key.Public().(ed25519.PublicKey),
		lock:    lk,
		uploads: map[string]*upload{},
	}, nil
}

// Close releases the root's lock and drops uploads in progress.
func (s *Server) Close() error {
	s.mu.Lock()
	for id, u := range s.uploads {
		os.Remove(u.path)
		delete(s.uploads, id)
	}
	s.mu.Unlock()
	s.st.cache.close()
	s.lock.Release()
	return nil
}

// Mint returns a token for access valid for ttl, signed by the server's key.
func (s *Server) Mint(subject string, access []Access, ttl time.Duration) (string, error) {
	now := s.cfg.Now()
	return MintToken(s.cfg.Key, Claims{Subject: subject, Service: s.cfg.Service, IssuedAt: now.Unix(), Expires: now.Add(ttl).Unix(), Access: access})
}

// OCI error codes.
const (
	codeBlobUnknown        = "BLOB_UNKNOWN"
	codeBlobUploadInvalid  = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown  = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid      = "DIGEST_INVALID"
	codeManifestBlobUnkown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid    = "MANIFEST_INVALID"
	codeManifestUnknown    = "MANIFEST_UNKNOWN"
	codeNameInvalid        = "NAME_INVALID"
	codeNameUnknown        = "NAME_UNKNOWN"
	codeSizeInvalid        = "SIZE_INVALID"
	codeUnauthorized       = "UNAUTHORIZED"
	codeDenied             = "DENIED"
	codeUnsupported        = "UNSUPPORTED"
)

// ociError writes an OCI error body.
func (s *Server) ociError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if s.cfg.Logf != nil && status >= 400 {
		s.cfg.Logf("%s %s: %d %s: %s", r.Method, r.URL.Path, status, code, msg)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// Routes (name is checked against nameRE separately).
var (
	reManifest  = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
	reUploadNew = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/?$`)
	reUpload    = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/([A-Za-z0-9-]+)$`)
	reBlob      = regexp.MustCompile(`^/v2/(.+)/blobs/([^/]+)$`)
	reTags      = regexp.MustCompile(`^/v2/(.+)/tags/list$`)
	reReferrers = regexp.MustCompile(`^/v2/(.+)/referrers/([^/]+)$`)
)

// ServeHTTP implements the Distribution API, /token and /v2/_catalog.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p := r.URL.Path
	switch {
	case p == "/token":
		s.serveToken(w, r)
		return
	case p == "/v2/" || p == "/v2":
		if _, ok := s.authorize(w, r, "", ActionPull); ok {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, "{}")
		}
		return
	case p == "/v2/_catalog":
		if c, ok := s.authorize(w, r, "*", ActionPull); ok {
			s.serveCatalog(w, r, c)
		}
		return
	}
	type route struct {
		re      *regexp.Regexp
		handler func(w http.ResponseWriter, r *http.Request, name, arg string)
	}
	for _, rt := range []route{
		{reUpload, s.serveUpload},
		{reUploadNew, s.serveUploadNew},
		{reManifest, s.serveManifest},
		{reTags, s.serveTags},
		{reReferrers, s.serveReferrers},
		{reBlob, s.serveBlob},
	} {
		m := rt.re.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		name := m[1]
		if !nameRE.MatchString(name) || len(name) > 255 {
			s.ociError(w, r, http.StatusBadRequest, codeNameInvalid, fmt.Sprintf("invalid repository name %q", name))
			return
		}
		arg := ""
		if len(m) > 2 {
			arg = m[2]
		}
		action := ActionPull
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodDelete:
			action = ActionDelete
		default:
			action = ActionPush
		}
		if _, ok := s.authorize(w, r, name, action); !ok {
			return
		}
		rt.handler(w, r, name, arg)
		return
	}
	s.ociError(w, r, http.StatusNotFound, codeUnsupported, "no such endpoint")
}

// bearer returns the token presented with r (Bearer, or Basic with the
// token as password), or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	if _, pw, ok := r.BasicAuth(); ok {
		return pw
	}
	return ""
}

// authorize checks that r may do action on repo ("" = just be a client,
// "*" = the catalog). On failure it writes 401 (no, bad or expired token;
// with a Bearer challenge) or 403 (valid token without the grant).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, repo, action string) (*Claims, bool) {
	tok := bearer(r)
	if tok == "" {
		if action == ActionPull && s.cfg.AnonymousPull {
			return nil, true
		}
		s.challenge(w, r, repo, action, "")
		s.ociError(w, r, http.StatusUnauthorized, codeUnauthorized, "authentication required: get a token with `volt registry token`")
		return nil, false
	}
	c, err := VerifyToken(s.pub, tok, s.cfg.Now())
	if err == nil && c.Service != s.cfg.Service {
		err = fmt.Errorf("%w: token is for service %q, not %q", ErrTokenInvalid, c.Service, s.cfg.Service)
	}
	if err != nil {
		s.challenge(w, r, repo, action, "invalid_token")
		s.ociError(w, r, http.StatusUnauthorized, codeUnauthorized, err.Error())
		return nil, false
	}
	// The catalog is open to any valid token; it lists what the token may pull.
	if repo == "" || repo == "*" && action == ActionPull || c.Allows(repo, action) || (action == ActionPull && s.cfg.AnonymousPull) {
		return c, true
	}
	// A push grant implies pull; so does delete.
	if action == ActionPull && (c.Allows(repo, ActionPush) || c.Allows(repo, ActionDelete)) {
		return c, true
	}
	what := repo
	if repo == "*" {
		what = "the catalog"
	}
	s.ociError(w, r, http.StatusForbidden, codeDenied, fmt.Sprintf("token does not grant %s on %s", action, what))
	return nil, false
}

// challenge sets a Bearer WWW-Authenticate header for the token endpoint.
func (s *Server) challenge(w http.ResponseWriter, r *http.Request, repo, action, errCode string) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	c := fmt.Sprintf(`Bearer realm="%s://%s/token",service="%s"`, scheme, r.Host, s.cfg.Service)
	switch {
	case repo == "*":
		c += `,scope="registry:catalog:*"`
	case repo != "":
		acts := action
		if action == ActionPush {
			acts = "pull,push"
		}
		c += fmt.Sprintf(`,scope="repository:%s:%s"`, repo, acts)
	}
	if errCode != "" {
		c += fmt.Sprintf(`,error="%s"`, errCode)
	}
	w.Header().Set("WWW-Authenticate", c)
}

// serveToken is the docker token endpoint: the caller proves itself with a
// Volt token (as Basic password or Bearer) and gets a short-lived token for
// the requested scopes it is granted. Without credentials, only pull scopes
// and only with anonymous pull.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		s.ociError(w, r, http.StatusMethodNotAllowed, codeUnsupported, "use GET")
		return
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err == nil {
			q = r.Form
		}
	}
	now := s.cfg.Now()
	var parent *Claims
	tok := bearer(r)
	if tok == "" {
		tok = q.Get("password") // OAuth2 password grant
	}
	if tok != "" {
		c, err := VerifyToken(s.pub, tok, now)
		if err != nil {
			s.ociError(w, r, http.StatusUnauthorized, codeUnauthorized, err.Error())
			return
		}
		parent = c
	} else if !s.cfg.AnonymousPull {
		s.ociError(w, r, http.StatusUnauthorized, codeUnauthorized, "credentials required: use a token from `volt registry token` as the password")
		return
	}
	var grant []Access
	for _, sc := range parseScopes(q["scope"]) {
		if sc.catalog {
			// Listing: the new token may see what the presented one may pull.
			if parent != nil {
				for _, a := range parent.Access {
					grant = append(grant, Access{Repo: a.Repo, Actions: []string{ActionPull}})
				}
			}
			continue
		}
		var acts []string
		for _, a := range sc.actions {
			ok := false
			if parent != nil {
				ok = parent.Allows(sc.repo, a) || (a == ActionPull && (parent.Allows(sc.repo, ActionPush) || parent.Allows(sc.repo, ActionDelete)))
			}
			if a == ActionPull && s.cfg.AnonymousPull {
				ok = true
			}
			if ok {
				acts = append(acts, a)
			}
		}
		if len(acts) > 0 {
			grant = append(grant, Access{Repo: sc.repo, Actions: acts})
		}
	}
	exp := now.Add(s.cfg.TokenTTL)
	if parent != nil && time.Unix(parent.Expires, 0).Before(exp) {
		exp = time.Unix(parent.Expires, 0)
	}
	sub := "anonymous"
	if parent != nil {
		sub = parent.Subject
	}
	t, err := MintToken(s.cfg.Key, Claims{Subject: sub, Service: s.cfg.Service, IssuedAt: now.Unix(), Expires: exp.Unix(), Access: grant})
	if err != nil {
		s.ociError(w, r, http.StatusInternalServerError, codeUnsupported, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"token": t, "access_token": t, "expires_in": int64(exp.Sub(now).Seconds()), "issued_at": now.UTC().Format(time.RFC3339),
	})
}

// paginate applies ?n= and ?last= to a sorted list and sets the Link header.
func paginate(w http.ResponseWriter, r *http.Request, all []string) []string {
	q := r.URL.Query()
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(all, last)
		if i < len(all) && all[i] == last {
			i++
		}
		all = all[i:]
	}
	if n, err := strconv.Atoi(q.Get("n")); err == nil && n >= 0 && n < len(all) {
		all = all[:n]
		if n > 0 {
			u := url.URL{Path: r.URL.Path, RawQuery: url.Values{"n": {strconv.Itoa(n)}, "last": {all[n-1]}}.Encode()}
			w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, u.String()))
		}
	}
	if all == nil {
		all = []string{}
	}
	return all
}

// canList reports whether c (nil: no token) may see repo in the catalog.
func (s *Server) canList(c *Claims, repo string) bool {
	return s.cfg.AnonymousPull || c != nil && (c.Allows(repo, ActionPull) || c.Allows(repo, ActionPush) || c.Allows(repo, ActionDelete))
}

func (s *Server) serveCatalog(w http.ResponseWriter, r *http.Request, c *Claims) {
	all, err := s.st.repositories()
	if err != nil {
		s.ociError(w, r, http.StatusInternalServerError, codeUnsupported, err.Error())
		return
	}
	repos := []string{}
	for _, repo := range all {
		if s.canList(c, repo) {
			repos = append(repos, repo)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"repositories": paginate(w, r, repos)})
}

func (s *Server) serveTags(w http.ResponseWriter, r *http.Request, name, _ string) {
	if r.Method != http.MethodGet {
		s.ociError(w, r, http.StatusMethodNotAllowed, codeUnsupported, "use GET")
		return
	}
	tags, err := s.st.tags(name)
	if err != nil && !s.st.repoExists(name) {
		s.ociError(w, r, http.StatusNotFound, codeNameUnknown, fmt.Sprintf("repository %q not known", name))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"name": name, "tags": paginate(w, r, tags)})
}

// parseDigest accepts sha256 and sha512 digests.
func parseDigest(s string) (godigest.Digest, error) {
	d, err := godigest.Parse(s)
	if err != nil {
		return "", err
	}
	if a := d.Algorithm(); a != godigest.SHA256 && a != godigest.SHA512 {
		return "", fmt.Errorf("digest algorithm %s not supported (sha256 or sha512)", a)
	}
	return d, nil
}

func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, name, ref string) {
	d, err := parseDigest(ref)
	if err != nil {
		s.ociError(w, r, http.StatusBadRequest, codeDigestInvalid, err.Error())
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodDelete:
		if err := s.st.deleteBlob(r.Context(), name, d); err != nil {
			s.ociError(w, r, http.StatusNotFound, codeBlobUnknown, fmt.Sprintf("blob %s not in %s", d, name))
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	default:
		s.ociError(w, r, http.StatusMethodNotAllowed, codeUnsupported, "method not allowed")
		return
	}
	rec, err := s.st.blob(d)
	if err != nil || !s.st.repoHasBlob(name, d) {
		s.ociError(w, r, http.StatusNotFound, codeBlobUnknown, fmt.Sprintf("blob %s not in %s", d, name))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	if r.Method == http.MethodHead {
		h.Set("Content-Length", strconv.FormatInt(rec.Size, 10))
		if s.st.cache.fits(rec.Size) {
			h.Set("Accept-Ranges", "bytes")
		}
		return
	}
	// The cached whole file: sendfile, byte ranges, conditional GETs.
	f, err := s.st.cache.open(r.Context(), s.cfg.CAS, d, rec)
	if err != nil && s.cfg.Logf != nil {
		s.cfg.Logf("%s %s: blob cache: %v", r.Method, r.URL.Path, err)
	}
	if f != nil {
		defer f.Close()
		http.ServeContent(w, r, "", time.Time{}, f)
		return
	}
	// Not cacheable (larger than the cache): stream from the CAS.
	h.Set("Content-Length", strconv.FormatInt(rec.Size, 10))
	h.Set("Accept-Ranges", "none")
	if err := s.cfg.CAS.Get(r.Context(), rec.Ref, w); err != nil && s.cfg.Logf != nil {
		s.cfg.Logf("GET %s: %v", r.URL.Path, err)
	}
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) uploadDir() string { return filepath.Join(s.cfg.Root, "uploads") }

// serveUploadNew starts an upload: POST, optionally monolithic (?digest=)
// or a cross-repository mount (?mount=&from=).
func (s *Server) serveUploadNew(w http.ResponseWriter, r *http.Request, name, _ string) {
	if r.Method != http.MethodPost {
		s.ociError(w, r, http.StatusMethodNotAllowed, codeUnsupported, "use POST")
		return
	}
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigest(m)
		from := q.Get("from")
		if err == nil && nameRE.MatchString(from) && s.st.repoHasBlob(from, d) && s.canPull(r, from) {
			if _, err := s.st.blob(d); err == nil {
				if err := s.st.link(name, d); err != nil {
					s.ociError(w, r, http.StatusInternalServerError, codeUnsupported, err.Error())
					return
				}
				s.blobCreated(w, name, d)
				return
			}
		}
		// Not mountable: fall through to a normal upload session.
	}
	u, err := newUpload(s.uploadDir(), newID(), name)
	if err != nil {
		s.ociError(w, r, http.StatusInternalServerError, codeUnsupported, err.Error())
		return
	}
	if dg := q.Get("digest"); dg != "" {
		s.finish(w, r, u, dg)
		return
	}
	s.mu.Lock()
	s.uploads[u.id] = u
	s.mu.Unlock()
	s.uploadAccepted(w, u)
}

// canPull reports whether r's token (or anonymous pull) allows pulling repo.
func (s *Server) canPull(r *http.Request, repo string) bool {
	if s.cfg.AnonymousPull {
		return true
	}
	c, err := VerifyToken(s.pub, bearer(r), s.cfg.Now())
	return err == nil && (c.Allows(repo, ActionPull) || c.Allows(repo, ActionPush))
}

// uploadHeaders sets the headers that tell a client where upload u stands:
// its URL, id and the range received so far.
func uploadHeaders(w http.ResponseWriter, u *upload) {
	h := w.Header()
	h.Set("Location", "/v2/"+u.repo+"/blobs/uploads/"+u.id)
	h.Set("Docker-Upload-UUID", u.id)
	end := u.size - 1
	if end < 0 {
		end = 0
	}
	h.Set("Range", fmt.Sprintf("0-%d", end))
}

func (s *Server) uploadAccepted(w http.ResponseWriter, u *upload) {
	uploadHeaders(w, u)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) blobCreated(w http.ResponseWriter, name string, d godigest.Digest) {
	w.Header().Set("Location", "/v2/"+name+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// serveUpload continues (PATCH), completes (PUT), reports (GET) or cancels
// (DELETE) an upload session.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request, name, id string) {
	s.mu.Lock()
	u := s.uploads[id]
	s.mu.Unlock()
	if u == nil || u.repo != name {
		s.ociError(w, r, http.StatusNotFound, codeBlobUploadUnknown, fmt.Sprintf("upload %s not known (uploads do not survive a server restart)", id))
		return
	}
	switch r.Method {
	case http.MethodGet:
		u.mu.Lock()
		s.uploadAccepted204(w, u)
		u.mu.Unlock()
	case http.MethodDelete:
		s.drop(u)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPatch:
		u.mu.Lock()
		defer u.mu.Unlock()
		if !s.rangeContinues(w, r, u) {
			return
		}
		if _, err := u.appendFrom(r.Body); err != nil {
			s.drop(u)
			s.ociError(w, r, http.StatusBadRequest, codeBlobUploadInvalid, "upload interrupted: "+err.Error())
			return
		}
		s.uploadAccepted(w, u)
	case http.MethodPut:
		u.mu.Lock()
		// A final chunk that does not continue the upload leaves it open.
		if !s.rangeContinues(w, r, u) {
			u.mu.Unlock()
			return
		}
		s.mu.Lock()
		delete(s.uploads, id)
		s.mu.Unlock()
		s.finish(w, r, u, r.URL.Query().Get("digest"))
		u.mu.Unlock()
	default:
		s.ociError(w, r, http.StatusMethodNotAllowed, codeUnsupported, "method not allowed")
	}
}

// rangeContinues checks the Content-Range of a chunk (PATCH or the final
// PUT) against the upload's size; on a mismatch it answers 416 with the
// range received so far, keeping the session, and returns false.
func (s *Server) rangeContinues(w http.ResponseWriter, r *http.Request, u *upload) bool {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return true
	}
	start, _, _ := strings.Cut(strings.TrimPrefix(cr, "bytes="), "-")
	if n, err := strconv.ParseInt(start, 10, 64); err == nil && n == u.size {
		return true
	}
	uploadHeaders(w, u)
	s.ociError(w, r, http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid, fmt.Sprintf("Content-Range %q does not continue the upload at byte %d", cr, u.size))
	return false
}

func (s *Server) uploadAccepted204(w http.ResponseWriter, u *upload) {
	uploadHeaders(w, u)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) drop(u *upload) {
	s.mu.Lock()
	delete(s.uploads, u.id)
	s.mu.Unlock()
	os.Remove(u.path)
}

// finish appends r's body to u, checks the digest and stores the blob. On
// any failure the upload's data is removed: nothing is kept.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, u *upload, dg string) {
	d, err := parseDigest(dg)
	if err != nil {
		os.Remove(u.path)
		s.ociError(w, r, http.StatusBadRequest, codeDigestInvalid, fmt.Sprintf("digest %q: %v", dg, err))
		return
	}
	if _, err := u.appendFrom(r.Body); err != nil {
		os.Remove(u.path)
		s.ociError(w, r, http.StatusBadRequest, codeBlobUploadInvalid, "upload interrupted: "+err.Error())
		return
	}
	got, err := u.digest(d.Algorithm())
	if err != nil {
		os.Remove(u.path)
		s.ociError(w, r, http.StatusInternalServerError, codeBlobUploadInvalid, err.Error())
		return
	}
	if got != d {
		os.Remove(u.path)
		s.ociError(w, r, http.StatusBadRequest, codeDigestInvalid, fmt.Sprintf("content has digest %s, not %s", got, d))
		return
	}
	if err := s.st.ingest(r.Context(), u.repo, d, u.path, u.size); err != nil {
		s.ociError(w, r, http.StatusInternalServerError, codeBlobUploadInvalid, err.Error())
		return
	}
	s.blobCreated(w, u.repo, d)
}

// manifestRefs is what the server reads from a manifest it accepts.
type manifestRefs struct {
	MediaType    string               `json:"mediaType"`
	ArtifactType string               `json:"artifactType"`
	Config       *ocispec.Descriptor  `json:"config"`
	Layers       []ocispec.Descriptor `json:"layers"`
	Manifests    []ocispec.Descriptor `json:"manifests"`
	Subject      *ocispec.Descriptor  `json:"subject"`
	Annotations  map[string]string    `json:"annotations"`
}

func (s *Server) serveManifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	isDigest := strings.Contains(ref, ":")
	if !isDigest && !tagRE.MatchString(ref) {
		s.ociError(w, r, http.StatusBadRequest, codeManifestInvalid, fmt.Sprintf("invalid tag %q", ref))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		d, err := s.st.resolve(name, ref)
		if err != nil {
			s.ociError(w, r, http.StatusNotFound, codeManifestUnknown, fmt.Sprintf("manifest %s not in %s", ref, name))
			return
		}
		raw, mt, err := s.st.manifest(name, d)
		if err != nil {
			s.ociError(w, r, http.StatusNotFound, codeManifestUnknown, fmt.Sprintf("manifest %s not in %s", ref, name))
			return
		}
		w.Header().Set("Content-Type", mt)
		w.Header().Set("Docker-Content-Digest", d.String())
		w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
		w.Header().Set("Etag", `"`+d.String()+`"`)
		if r.Method == http.MethodGet {
			w.Write(raw)
		}
	case http.MethodPut:
		s.putManifest(w, r, name, ref, isDigest)
	case http.MethodDelete:
		var err error
		if isDigest {
			var d godigest.Digest
			if d, err = parseDigest(ref); err == nil {
				err = s.st.deleteManifest(name, d)
			}
		} else {
			err = s.st.deleteTag(name, ref)
		}
		if err != nil {
			s.ociError(w, r, http.StatusNotFound, codeManifestUnknown, fmt.Sprintf("manifest %s not in %s", ref, name))
			return
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		s.ociError(w, r, http.StatusMethodNotAllowed, codeUnsupported, "method not allowed")
	}
}

func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, name, ref string, isDigest bool) {
	if r.ContentLength > MaxManifestSize {
		s.ociError(w, r, http.StatusRequestEntityTooLarge, codeSizeInvalid, fmt.Sprintf("manifest is %d bytes; the limit is %d", r.ContentLength, MaxManifestSize))
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, MaxManifestSize+1))
	if err != nil {
		s.ociError(w, r, http.StatusBadRequest, codeManifestInvalid, err.Error())
		return
	}
	if len(raw) > MaxManifestSize {
		s.ociError(w, r, http.StatusRequestEntityTooLarge, codeSizeInvalid, fmt.Sprintf("manifest is over the %d-byte limit", MaxManifestSize))
		return
	}
	// Pushed by digest: that digest's algorithm names the manifest, with
	// optional ?tag= parameters; pushed by tag: sha256.
	d := godigest.FromBytes(raw)
	var tags []string
	if isDigest {
		want, err := parseDigest(ref)
		if err != nil {
			s.ociError(w, r, http.StatusBadRequest, codeDigestInvalid, fmt.Sprintf("manifest reference %q: %v", ref, err))
			return
		}
		if d = want.Algorithm().FromBytes(raw); d != want {
			s.ociError(w, r, http.StatusBadRequest, codeDigestInvalid, fmt.Sprintf("manifest has digest %s, not %s", d, ref))
			return
		}
		for _, t := range r.URL.Query()["tag"] {
			if !tagRE.MatchString(t) {
				s.ociError(w, r, http.StatusBadRequest, codeManifestInvalid, fmt.Sprintf("invalid tag parameter %q", t))
				return
			}
			tags = append(tags, t)
		}
	} else {
		tags = []string{ref}
	}
	var m manifestRefs
	if err := json.Unmarshal(raw, &m); err != nil {
		s.ociError(w, r, http.StatusBadRequest, codeManifestInvalid, "manifest is not JSON: "+err.Error())
		return
	}
	mt := r.Header.Get("Content-Type")
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = strings.TrimSpace(mt[:i])
	}
	if mt == "" {
		mt = m.MediaType
	}
	if m.MediaType != "" && mt != m.MediaType {
		s.ociError(w, r, http.StatusBadRequest, codeManifestInvalid, fmt.Sprintf("Content-Type %q differs from the manifest's mediaType %q", mt, m.MediaType))
		return
	}
	switch mt {
	case ocispec.MediaTypeImageManifest, "application/vnd.docker.distribution.manifest.v2+json":
		if m.Config == nil {
			s.ociError(w, r, http.StatusBadRequest, codeManifestInvalid, "image manifest without config")
			return
		}
		for i, desc := range append([]ocispec.Descriptor{*m.Config}, m.Layers...) {
			if i > 0 && nonDistributable(desc.MediaType) && desc.Digest.Validate() == nil {
				continue // fetched from its URLs, never pushed
			}
			if desc.Digest.Validate() != nil || !s.st.repoHasBlob(name, desc.Digest) {
				s.ociError(w, r, http.StatusBadRequest, codeManifestBlobUnkown, fmt.Sprintf("blob %s is not in %s: push it first", desc.Digest, name))
				return
			}
		}
	case ocispec.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
		for _, desc := range m.Manifests {
			if desc.Digest.Validate() != nil {
				s.ociError(w, r, http.StatusBadRequest, codeManifestInvalid, fmt.Sprintf("bad digest %q", desc.Digest))
				return
			}
			if _, err := s.st.resolve(name, desc.Digest.String()); err != nil {
				s.ociError(w, r, http.StatusBadRequest, codeManifestBlobUnkown, fmt.Sprintf("manifest %s is not in %s: push it first", desc.Digest, name))
				return
			}
		}
	default:
		s.ociError(w, r, http.StatusBadRequest, codeManifestInvalid, fmt.Sprintf("unsupported manifest media type %q", mt))
		return
	}
	var subject *godigest.Digest
	var refDesc []byte
	if m.Subject != nil && m.Subject.Digest.Validate() == nil {
		sd := m.Subject.Digest
		subject = &sd
		at := m.ArtifactType
		if at == "" && m.Config != nil {
			at = m.Config.MediaType
		}
		refDesc, _ = json.Marshal(ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw)), ArtifactType: at, Annotations: m.Annotations})
	}
	if err := s.st.putManifest(name, d, raw, mt, tags, subject, refDesc); err != nil {
		s.ociError(w, r, http.StatusInternalServerError, codeManifestInvalid, err.Error())
		return
	}
	if subject != nil {
		w.Header().Set("OCI-Subject", subject.String())
	}
	if isDigest && len(tags) > 0 {
		w.Header().Set("OCI-Tag", strings.Join(tags, ", "))
	}
	w.Header().Set("Location", "/v2/"+name+"/manifests/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.WriteHeader(http.StatusCreated)
}

// nonDistributable reports whether a layer media type is one registries
// need not hold (OCI non-distributable layers, Docker foreign layers):
// clients fetch such layers from the descriptor's URLs.
func nonDistributable(mediaType string) bool {
	return strings.HasPrefix(mediaType, "application/vnd.oci.image.layer.nondistributable.") ||
		mediaType == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" ||
		mediaType == "application/vnd.docker.image.rootfs.foreign.diff.tar"
}

func (s *Server) serveReferrers(w http.ResponseWriter, r *http.Request, name, ref string) {
	d, err := parseDigest(ref)
	if err != nil {
		s.ociError(w, r, http.StatusBadRequest, codeDigestInvalid, err.Error())
		return
	}
	raws, err := s.st.referrers(name, d)
	if err != nil {
		s.ociError(w, r, http.StatusInternalServerError, codeUnsupported, err.Error())
		return
	}
	filter := r.URL.Query().Get("artifactType")
	descs := []ocispec.Descriptor{}
	for _, raw := range raws {
		var desc ocispec.Descriptor
		if json.Unmarshal(raw, &desc) != nil {
			continue
		}
		if filter != "" && desc.ArtifactType != filter {
			continue
		}
		descs = append(descs, desc)
	}
	sort.Slice(descs, func(i, j int) bool { return descs[i].Digest < descs[j].Digest })
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	json.NewEncoder(w).Encode(ocispec.Index{Versioned: specVersion, MediaType: ocispec.MediaTypeImageIndex, Manifests: descs})
}

var specVersion = specs.Versioned{SchemaVersion: 2}
