package server

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	godigest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/volt-cli/volt/engine/cas"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// DefaultBlobCacheBytes bounds the whole-blob cache when Config.BlobCacheBytes is 0.
const DefaultBlobCacheBytes = 4 << 30

// cleanMarker exists in the cache directory only while no server runs
// and the last one stopped cleanly (after syncing the cache).
const cleanMarker = ".clean"

// blobCache keeps whole blobs as plain files under dir (blobcache/<alg>/<hex>)
// so GET serves them with sendfile and byte ranges instead of reassembling
// CAS chunks per request. The CAS stays the source of truth: a blob pushed
// whole is adopted from its upload file (a rename, no copy); any other is
// written from the CAS on its first GET. Files are evicted, least recently
// served first, when the total passes max. A cache left by a server that
// did not stop cleanly is dropped on start, so a torn file is never served.
type blobCache struct {
	dir   string
	max   int64
	mu    sync.Mutex
	total int64
}

// openBlobCache prepares the cache at dir holding at most max bytes (max < 0:
// no cache).
func openBlobCache(dir string, max int64) (*blobCache, error) {
	c := &blobCache{dir: dir, max: max}
	if max < 0 {
		return c, nil
	}
	if _, err := os.Stat(filepath.Join(dir, cleanMarker)); err != nil {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(dir, cleanMarker))
	for _, e := range c.entries() {
		c.total += e.size
	}
	c.evict()
	return c, nil
}

// close syncs the cache's files and marks it clean for the next start.
func (c *blobCache) close() {
	if c.max < 0 {
		return
	}
	if d, err := os.Open(c.dir); err == nil {
		unix.Syncfs(int(d.Fd()))
		d.Close()
	}
	atomicfile.WriteFile(filepath.Join(c.dir, cleanMarker), nil, 0o644)
}

func (c *blobCache) path(d godigest.Digest) string {
	return filepath.Join(c.dir, d.Algorithm().String(), d.Encoded())
}

// fits reports whether a blob of size bytes is kept in the cache.
func (c *blobCache) fits(size int64) bool { return c.max >= 0 && size <= c.max }

// adopt moves the verified file at path (blob d, size bytes) into the cache.
func (c *blobCache) adopt(d godigest.Digest, path string, size int64) {
	if !c.fits(size) {
		return
	}
	p := c.path(d)
	if os.MkdirAll(filepath.Dir(p), 0o755) != nil || os.Rename(path, p) != nil {
		return
	}
	c.added(size)
}

func (c *blobCache) added(size int64) {
	c.mu.Lock()
	c.total += size
	over := c.total > c.max
	c.mu.Unlock()
	if over {
		c.evict()
	}
}

// open returns blob d as a cached file, writing it from the CAS first when
// it is not cached; nil (and no error) when the blob is too large to cache.
func (c *blobCache) open(ctx context.Context, st *cas.Store, d godigest.Digest, rec *blobRecord) (*os.File, error) {
	if !c.fits(rec.Size) {
		return nil, nil
	}
	p := c.path(d)
	if f, err := os.Open(p); err == nil {
		if fi, err := f.Stat(); err == nil && fi.Size() == rec.Size {
			now := time.Now()
			os.Chtimes(p, now, now) // recently served: evicted last
			return f, nil
		}
		f.Close()
		os.Remove(p)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	// Written and renamed into place without fsync: a crash before a clean
	// stop drops the whole cache on the next start (see openBlobCache).
	tmp, err := os.CreateTemp(filepath.Dir(p), ".fill-*")
	if err != nil {
		return nil, err
	}
	if err = st.Get(ctx, rec.Ref, tmp); err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, err
	}
	c.added(rec.Size)
	return os.Open(p)
}

// remove drops blob d from the cache.
func (c *blobCache) remove(d godigest.Digest) {
	if c.max < 0 {
		return
	}
	if fi, err := os.Stat(c.path(d)); err == nil && os.Remove(c.path(d)) == nil {
		c.mu.Lock()
		c.total -= fi.Size()
		c.mu.Unlock()
	}
}

type cacheEntry struct {
	path  string
	size  int64
	mtime time.Time
}

func (c *blobCache) entries() []cacheEntry {
	var out []cacheEntry
	filepath.WalkDir(c.dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || filepath.Dir(p) == c.dir || strings.HasPrefix(de.Name(), ".") {
			return nil
		}
		if fi, err := de.Info(); err == nil {
			out = append(out, cacheEntry{p, fi.Size(), fi.ModTime()})
		}
		return nil
	})
	return out
}

// evict removes the least recently served files until the total fits.
// Files open for a GET in progress stay readable until closed.
func (c *blobCache) evict() {
	ents := c.entries()
	sort.Slice(ents, func(i, j int) bool { return ents[i].mtime.Before(ents[j].mtime) })
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total = 0
	for _, e := range ents {
		c.total += e.size
	}
	for _, e := range ents {
		if c.total <= c.max {
			break
		}
		if err := os.Remove(e.path); err == nil || errors.Is(err, fs.ErrNotExist) {
			c.total -= e.size
		}
	}
}
