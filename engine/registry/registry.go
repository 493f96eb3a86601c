// Package registry moves .vbundle files to and from OCI Distribution
// registries as ORAS artifacts, and holds the client side of
// `volt registry login/logout/list/status`. The server (`volt registry
// serve`) is the sub-package engine/registry/server.
//
// A bundle is one OCI image manifest (see docs/registry.md):
//
//   - artifactType MediaTypeArtifact, config = bundle.json (MediaTypeManifest);
//   - one layer per entry (bundle.json excepted): the entry's uncompressed
//     bytes, titled with the entry path (org.opencontainers.image.title) and
//     annotated with its BLAKE3, its media type by kind (image, disk, boot
//     file, config, hook, compose, signature);
//   - one untitled "skeleton" layer: every byte of the .vbundle file that is
//     not the data of a stored entry (ZIP headers, central directory,
//     deflated entries), with each stored entry's file offset annotated on
//     its layer. Pull lays the layers back at their offsets and fills the
//     gaps from the skeleton, so the pulled file is byte-identical to the
//     pushed one and its signature still verifies.
//
// An artifact without a skeleton (written by `oras push` with the same
// layout) is rebuilt with bundle.Write from bundle.json and the layers.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"

	"oras.land/oras-go/v2/errdef"
	orasreg "oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// Media types and annotation keys of a Volt bundle artifact.
const (
	// MediaTypeArtifact is the manifest's artifactType.
	MediaTypeArtifact = "application/vnd.volt.bundle.v1"
	// MediaTypeManifest is the config blob: bundle.json, byte for byte.
	MediaTypeManifest = "application/vnd.volt.bundle.manifest.v1+json"
	// MediaTypeSkeleton is the untitled layer holding the .vbundle bytes that
	// are not stored-entry data.
	MediaTypeSkeleton = "application/vnd.volt.bundle.skeleton.v1"
	// Layer media types by kind of entry.
	MediaTypeImage     = "application/vnd.volt.bundle.image.v1.tar"
	MediaTypeDiskQCOW2 = "application/vnd.volt.bundle.disk.v1.qcow2"
	MediaTypeDiskRaw   = "application/vnd.volt.bundle.disk.v1.raw"
	MediaTypeBoot      = "application/vnd.volt.bundle.boot.v1"
	MediaTypeConfig    = "application/vnd.volt.bundle.config.v1"
	MediaTypeHook      = "application/vnd.volt.bundle.hook.v1"
	MediaTypeCompose   = "application/vnd.volt.bundle.compose.v1+yaml"
	MediaTypeSignature = "application/vnd.volt.bundle.signature.v1"
	MediaTypeFile      = "application/vnd.volt.bundle.file.v1"

	// AnnotationTitle is the ORAS file name annotation: the entry path.
	AnnotationTitle = "org.opencontainers.image.title"
	// AnnotationCreated is the bundle's "created" time (manifest annotation).
	AnnotationCreated = "org.opencontainers.image.created"
	// AnnotationBLAKE3 is the entry's BLAKE3 ("blake3:<hex>"); on the config,
	// the BLAKE3 of bundle.json (the bundle's digest).
	AnnotationBLAKE3 = "io.volt.bundle.blake3"
	// AnnotationOffset is the file offset of a stored entry's data in the
	// pushed .vbundle (decimal).
	AnnotationOffset = "io.volt.bundle.offset"
	// AnnotationCompress is "deflate" on an entry deflated in the .vbundle.
	AnnotationCompress = "io.volt.bundle.compress"
	// AnnotationPlatform is the "os/arch" of an image or boot-file layer.
	AnnotationPlatform = "io.volt.bundle.platform"
	// AnnotationName, AnnotationVersion and AnnotationSize describe the
	// bundle on the manifest: name, bundleVersion and .vbundle size.
	AnnotationName    = "io.volt.bundle.name"
	AnnotationVersion = "io.volt.bundle.version"
	AnnotationSize    = "io.volt.bundle.size"
)

// MaxManifestSize bounds an OCI manifest fetched or accepted (4 MiB).
const MaxManifestSize = 4 << 20

// Errors callers branch on (errors.Is); returned errors wrap one of them
// with the reference and the cause, in one line.
var (
	// ErrUnreachable: the registry could not be reached (down, DNS, TLS).
	ErrUnreachable = errors.New("registry unreachable")
	// ErrUnauthorized: the registry answered 401 (no or bad credentials).
	ErrUnauthorized = errors.New("registry refused credentials (401 unauthorized)")
	// ErrDenied: the registry answered 403 (credentials lack the permission).
	ErrDenied = errors.New("registry denied access (403 forbidden)")
	// ErrNotFound: the repository, tag or blob does not exist (404).
	ErrNotFound = errors.New("not found in registry (404)")
	// ErrServer: the registry failed (5xx) or answered something unexpected.
	ErrServer = errors.New("registry error")
	// ErrNotBundle: the manifest is not a Volt bundle artifact.
	ErrNotBundle = errors.New("not a Volt bundle artifact")
	// ErrDigest: downloaded bytes do not match their sha256 or BLAKE3.
	ErrDigest = errors.New("digest mismatch")
	// ErrTooLarge: a manifest or config is larger than allowed.
	ErrTooLarge = errors.New("too large")
	// ErrPlatform: the requested platform is not in the bundle.
	ErrPlatform = errors.New("platform not in bundle")
	// ErrNotReproducible: a bundle rebuilt from a skeleton-less artifact does
	// not reproduce the signed bundle.json, so its signature would not verify.
	ErrNotReproducible = errors.New("cannot rebuild the signed bundle.json")
	// ErrReference: a reference does not parse.
	ErrReference = errors.New("invalid reference")
)

// Progress reports a transfer: Done of Total bytes. For "push" each blob
// byte counts twice (hashed, then uploaded or found present), so Total is
// twice the blobs' size; for "download" it is the bytes to fetch.
type Progress struct {
	// Phase is "push" or "download".
	Phase string
	Done  int64
	Total int64
}

// Options are common to every client call. The zero value uses the docker
// credential store and HTTPS.
type Options struct {
	// PlainHTTP talks HTTP instead of HTTPS to every registry.
	PlainHTTP bool
	// Insecure lists registries ("host:port", or "host") reached over plain
	// HTTP (the config key registry.insecure).
	Insecure []string
	// Credentials resolves credentials; nil means the docker config
	// (DOCKER_CONFIG or ~/.docker/config.json) and its credential helpers.
	Credentials credentials.Store
	// DefaultRegistry is prepended to a reference without a registry host
	// ("my-stack:latest"); empty makes such a reference an error.
	DefaultRegistry string
	// Concurrency is the number of blobs transferred at once (default 4).
	Concurrency int
	// Progress, when set, is called as bytes move; it may be called from
	// several goroutines, but never concurrently with itself.
	Progress func(Progress)
	// HTTPClient replaces the default (retrying) HTTP client.
	HTTPClient *http.Client
	// UserAgent is sent with every request ("volt/<version>").
	UserAgent string
	// DigestCache, when set, is a directory remembering the sha256 of
	// entries by their BLAKE3 (from bundle.json), so pushing an entry
	// pushed before skips hashing it (the registry still checks the sha256
	// of anything uploaded, and pull checks the BLAKE3).
	DigestCache string
}

func (o Options) concurrency() int {
	if o.Concurrency > 0 {
		return o.Concurrency
	}
	return 4
}

// CredentialStore returns the docker-style credential store Volt uses: the
// docker config file (DOCKER_CONFIG or ~/.docker/config.json) and the
// credential helpers it names; new credentials go to the configured helper,
// else to the file in plain text (as docker does without a helper).
func CredentialStore() (credentials.Store, error) {
	s, err := credentials.NewStoreFromDocker(credentials.StoreOptions{AllowPlaintextPut: true, DetectDefaultNativeStore: true})
	if err != nil {
		return nil, fmt.Errorf("open docker credential store: %w", err)
	}
	return s, nil
}

// credentialStore returns o.Credentials, or the docker credential store
// when it is nil.
func (o Options) credentialStore() (credentials.Store, error) {
	if o.Credentials != nil {
		return o.Credentials, nil
	}
	return CredentialStore()
}

// plainHTTP reports whether host is reached over HTTP.
func (o Options) plainHTTP(host string) bool {
	if o.PlainHTTP {
		return true
	}
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	return slices.Contains(o.Insecure, host) || slices.Contains(o.Insecure, h)
}

// client returns the authenticating HTTP client for opts.
func (o Options) client() (*auth.Client, error) {
	store, err := o.credentialStore()
	if err != nil {
		return nil, err
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = retry.DefaultClient
	}
	c := &auth.Client{Client: hc, Cache: auth.NewCache(), Credential: credentials.Credential(store)}
	ua := o.UserAgent
	if ua == "" {
		ua = "volt"
	}
	c.SetUserAgent(ua)
	return c, nil
}

// ParseReference parses "host[:port]/repo[:tag|@digest]", prefixing
// opts.DefaultRegistry when the first component is not a host.
func ParseReference(ref string, opts Options) (orasreg.Reference, error) {
	s := strings.TrimPrefix(ref, "oci://")
	first, _, _ := strings.Cut(s, "/")
	if !strings.Contains(s, "/") || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		if opts.DefaultRegistry == "" {
			return orasreg.Reference{}, fmt.Errorf("%w %q: name a registry, e.g. registry.example:5000/%s", ErrReference, ref, s)
		}
		s = strings.TrimSuffix(opts.DefaultRegistry, "/") + "/" + s
	}
	r, err := orasreg.ParseReference(s)
	if err != nil {
		return orasreg.Reference{}, fmt.Errorf("%w %q: %v", ErrReference, ref, err)
	}
	return r, nil
}

// repository returns an oras repository for ref.
func (o Options) repository(ref orasreg.Reference) (*remote.Repository, error) {
	c, err := o.client()
	if err != nil {
		return nil, err
	}
	return &remote.Repository{
		Client:           c,
		Reference:        ref,
		PlainHTTP:        o.plainHTTP(ref.Registry),
		MaxMetadataBytes: MaxManifestSize,
	}, nil
}

// registryClient returns an oras registry client for host.
func (o Options) registryClient(host string) (*remote.Registry, error) {
	reg, err := remote.NewRegistry(host)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrReference, host, err)
	}
	c, err := o.client()
	if err != nil {
		return nil, err
	}
	reg.Client = c
	reg.PlainHTTP = o.plainHTTP(host)
	return reg, nil
}

// classify turns an oras/http error into one line wrapping a sentinel.
func classify(err error, host string) error {
	if err == nil {
		return nil
	}
	var re *errcode.ErrorResponse
	if errors.As(err, &re) {
		detail := ""
		if len(re.Errors) > 0 {
			detail = ": " + re.Errors[0].Message
			if re.Errors[0].Message == "" {
				detail = ": " + re.Errors[0].Code
			}
		}
		switch {
		case re.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("%w from %s%s", ErrUnauthorized, host, detail)
		case re.StatusCode == http.StatusForbidden:
			return fmt.Errorf("%w from %s%s", ErrDenied, host, detail)
		case re.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: %s%s", ErrNotFound, host, detail)
		default:
			return fmt.Errorf("%w: %s answered %d %s%s", ErrServer, host, re.StatusCode, http.StatusText(re.StatusCode), detail)
		}
	}
	if errors.Is(err, errdef.ErrNotFound) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	if errors.Is(err, errdef.ErrSizeExceedsLimit) {
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ne net.Error
	var ue *url.Error
	if errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &ne) || errors.As(err, &ue) {
		cause := err
		var oe *net.OpError
		if errors.As(err, &oe) {
			cause = oe
		}
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, host, cause)
	}
	if strings.Contains(err.Error(), "unauthorized") || strings.Contains(err.Error(), "401") {
		return fmt.Errorf("%w from %s: %v", ErrUnauthorized, host, err)
	}
	return err
}

// isSentinel reports whether err already wraps one of this package's sentinels.
func isSentinel(err error) bool {
	for _, s := range []error{ErrUnreachable, ErrUnauthorized, ErrDenied, ErrNotFound, ErrServer, ErrNotBundle, ErrDigest, ErrTooLarge, ErrPlatform, ErrNotReproducible, ErrReference} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// wrapErr classifies err unless it is already classified.
func wrapErr(err error, host string) error {
	if err == nil || isSentinel(err) {
		return err
	}
	return classify(err, host)
}

// removeStale removes temporary files left in dir by pulls of processes
// that no longer run (".volt-pull-<pid>-*").
func removeStale(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), tempPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		var pid int
		if _, err := fmt.Sscan(pidStr, &pid); err != nil || pid <= 0 {
			continue
		}
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		os.RemoveAll(dir + "/" + e.Name())
	}
}

// tempPrefix starts every temporary name a pull creates.
const tempPrefix = ".volt-pull-"
