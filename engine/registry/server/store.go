package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	godigest "github.com/opencontainers/go-digest"

	"github.com/volt-cli/volt/engine/cas"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// Name and tag grammars of the OCI Distribution spec. Both are safe as
// file names: no "..", no leading dot, no component starting with "_".
var (
	nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// store is the registry's on-disk state under root:
//
//	blobs/<alg>/<hex>                  {"ref":"stellarium://…","size":N}: where the blob lives in the CAS
//	blobcache/<alg>/<hex>              the whole blob as one file (a bounded cache, see blobcache.go)
//	repos/<name>/_layers/<hex>         empty: the blob is part of the repository
//	repos/<name>/_manifests/<hex>      manifest bytes; <hex>.type its media type
//	repos/<name>/_tags/<tag>           "sha256:<hex>"
//	repos/<name>/_referrers/<subject hex>/<hex>   the referrer's descriptor (JSON)
//	uploads/<id>                       upload in progress
//
// <alg> is sha256 or sha512; <hex> alone is unambiguous within a
// repository because the two algorithms' hex lengths differ (64, 128).
// Every file is published atomically. Blob content is in the CAS, pinned
// as "registry-<alg>-<hex>" so a CAS gc keeps it.
type store struct {
	root  string
	cas   *cas.Store
	cache *blobCache
	mu    sync.Mutex // serialises metadata changes within the process
}

// blobRecord is blobs/sha256/<hex>.
type blobRecord struct {
	Ref  cas.Ref `json:"ref"`
	Size int64   `json:"size"`
}

// pinFor names the CAS pin of blob d. Pin names stop at 128 characters,
// so a sha512 pin holds the first 256 bits of the digest (as strong as
// sha256 against collisions).
func pinFor(d godigest.Digest) string {
	enc := d.Encoded()
	if len(enc) > 64 {
		enc = enc[:64]
	}
	return "registry-" + d.Algorithm().String() + "-" + enc
}

func (s *store) repoDir(name string) string {
	return filepath.Join(s.root, "repos", filepath.FromSlash(name))
}

func (s *store) blobRecordPath(d godigest.Digest) string {
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded())
}

// blob returns the record of digest d, or os.ErrNotExist.
func (s *store) blob(d godigest.Digest) (*blobRecord, error) {
	b, err := os.ReadFile(s.blobRecordPath(d))
	if err != nil {
		return nil, err
	}
	var r blobRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("blob record %s: %w", d, err)
	}
	if !s.cas.Has(r.Ref) {
		return nil, fmt.Errorf("blob %s: %w (%s missing from the CAS)", d, os.ErrNotExist, r.Ref)
	}
	return &r, nil
}

// repoHasBlob reports whether blob d is linked into repository name.
func (s *store) repoHasBlob(name string, d godigest.Digest) bool {
	_, err := os.Stat(filepath.Join(s.repoDir(name), "_layers", d.Encoded()))
	return err == nil
}

func (s *store) link(name string, d godigest.Digest) error {
	p := filepath.Join(s.repoDir(name), "_layers", d.Encoded())
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, nil, 0o644)
}

// ingest moves the verified file at path (digest d, size bytes) into the
// CAS, records it and links it into repository name. The file itself
// becomes the blob's cache entry (or is removed).
func (s *store) ingest(ctx context.Context, name string, d godigest.Digest, path string, size int64) error {
	defer os.Remove(path)
	if _, err := s.blob(d); err != nil {
		ref, _, err := s.cas.PutFile(ctx, path, cas.WithPin(pinFor(d)))
		if err != nil {
			return err
		}
		s.cache.adopt(d, path, size)
		rec, _ := json.Marshal(blobRecord{Ref: ref, Size: size})
		if err := os.MkdirAll(filepath.Dir(s.blobRecordPath(d)), 0o755); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(s.blobRecordPath(d), rec, 0o644); err != nil {
			return err
		}
	}
	return s.link(name, d)
}

// deleteBlob unlinks d from name and, when no repository links it any more,
// drops its record and CAS pin (the next CAS gc frees the bytes).
func (s *store) deleteBlob(ctx context.Context, name string, d godigest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(filepath.Join(s.repoDir(name), "_layers", d.Encoded())); err != nil {
		return err
	}
	repos, err := s.repositories()
	if err != nil {
		return err
	}
	for _, r := range repos {
		if s.repoHasBlob(r, d) {
			return nil
		}
	}
	os.Remove(s.blobRecordPath(d))
	s.cache.remove(d)
	if err := s.cas.Unpin(ctx, pinFor(d)); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, cas.ErrMissing) {
		return err
	}
	return nil
}

// manifest returns the bytes and media type of manifest d in name.
func (s *store) manifest(name string, d godigest.Digest) ([]byte, string, error) {
	p := filepath.Join(s.repoDir(name), "_manifests", d.Encoded())
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, "", err
	}
	mt, err := os.ReadFile(p + ".type")
	if err != nil {
		return nil, "", err
	}
	return b, string(mt), nil
}

// putManifest stores a manifest, tags it with each of tags and records it
// as a referrer of subject (when not nil).
func (s *store) putManifest(name string, d godigest.Digest, raw []byte, mediaType string, tags []string, subject *godigest.Digest, referrer []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := filepath.Join(s.repoDir(name), "_manifests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(dir, d.Encoded())
	if err := atomicfile.WriteFile(p+".type", []byte(mediaType), 0o644); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p, raw, 0o644); err != nil {
		return err
	}
	if subject != nil {
		rp := filepath.Join(s.repoDir(name), "_referrers", subject.Encoded(), d.Encoded())
		if err := os.MkdirAll(filepath.Dir(rp), 0o755); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(rp, referrer, 0o644); err != nil {
			return err
		}
	}
	for _, tag := range tags {
		tp := filepath.Join(s.repoDir(name), "_tags", tag)
		if err := os.MkdirAll(filepath.Dir(tp), 0o755); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(tp, []byte(d.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// resolve returns the digest a tag or digest reference names in name.
func (s *store) resolve(name, ref string) (godigest.Digest, error) {
	if d, err := godigest.Parse(ref); err == nil {
		if _, err := os.Stat(filepath.Join(s.repoDir(name), "_manifests", d.Encoded())); err != nil {
			return "", err
		}
		return d, nil
	}
	b, err := os.ReadFile(filepath.Join(s.repoDir(name), "_tags", ref))
	if err != nil {
		return "", err
	}
	return godigest.Parse(strings.TrimSpace(string(b)))
}

// deleteManifest removes manifest d of name, every tag naming it and its
// referrer records.
func (s *store) deleteManifest(name string, d godigest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := filepath.Join(s.repoDir(name), "_manifests", d.Encoded())
	if err := os.Remove(p); err != nil {
		return err
	}
	os.Remove(p + ".type")
	tags, _ := s.tagsLocked(name)
	for _, t := range tags {
		if td, err := s.resolve(name, t); err == nil && td == d {
			os.Remove(filepath.Join(s.repoDir(name), "_tags", t))
		}
	}
	subjects, _ := os.ReadDir(filepath.Join(s.repoDir(name), "_referrers"))
	for _, sub := range subjects {
		os.Remove(filepath.Join(s.repoDir(name), "_referrers", sub.Name(), d.Encoded()))
	}
	return nil
}

// deleteTag removes one tag.
func (s *store) deleteTag(name, tag string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return os.Remove(filepath.Join(s.repoDir(name), "_tags", tag))
}

func (s *store) tags(name string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tagsLocked(name)
}

func (s *store) tagsLocked(name string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.repoDir(name), "_tags"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if tagRE.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// repoExists reports whether name has any manifest, tag or blob.
func (s *store) repoExists(name string) bool {
	fi, err := os.Stat(s.repoDir(name))
	return err == nil && fi.IsDir()
}

// repositories lists every repository (a directory under repos/ holding
// "_manifests" or "_layers"), sorted. WalkDir visits a directory's
// entries in lexical order, so "_layers" and "_manifests" of one
// repository come one after the other.
func (s *store) repositories() ([]string, error) {
	base := filepath.Join(s.root, "repos")
	var out []string
	err := filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), "_") {
			if d.Name() == "_manifests" || d.Name() == "_layers" {
				rel, _ := filepath.Rel(base, filepath.Dir(p))
				if rel := filepath.ToSlash(rel); len(out) == 0 || out[len(out)-1] != rel {
					out = append(out, rel)
				}
			}
			return filepath.SkipDir
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// referrers returns the descriptors (raw JSON) of manifests in name whose
// subject is d.
func (s *store) referrers(name string, d godigest.Digest) ([]json.RawMessage, error) {
	dir := filepath.Join(s.repoDir(name), "_referrers", d.Encoded())
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []json.RawMessage
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		out = append(out, b)
	}
	return out, nil
}

// upload is a blob upload session; its data is uploads/<id>.
type upload struct {
	mu   sync.Mutex
	id   string
	repo string
	path string
	size int64
	h    interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func newUpload(dir, id, repo string) (*upload, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, id)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	f.Close()
	return &upload{id: id, repo: repo, path: p, h: sha256.New()}, nil
}

// appendFrom appends r to the upload, hashing it.
func (u *upload) appendFrom(r io.Reader) (int64, error) {
	f, err := os.OpenFile(u.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(io.MultiWriter(f, u.h), r, make([]byte, 1<<20))
	u.size += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// digest returns the upload's digest in algorithm alg: sha256 is hashed
// as the data arrives; another algorithm (sha512, rare) reads the file.
func (u *upload) digest(alg godigest.Algorithm) (godigest.Digest, error) {
	if alg == godigest.SHA256 {
		return godigest.NewDigestFromEncoded(godigest.SHA256, hex.EncodeToString(u.h.Sum(nil))), nil
	}
	f, err := os.Open(u.path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return alg.FromReader(f)
}
