package cas

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// servable matches the only paths Handler serves: chunks and indexes under
// their shard directory.
var servable = regexp.MustCompile(`^/(?:chunks/([0-9a-f]{2})/([0-9a-f]{64})|objects/([0-9a-f]{2})/([0-9a-f]{64})\.idx)$`)

// Handler serves the store read-only over HTTP: GET and HEAD of
// objects/….idx and of chunks/ab/<hex> for every chunk, loose or packed (a
// packed chunk is served from its pack, so clients need no pack catalog),
// with Range support; nothing else (no listings, pins, lock, packs or
// temporary files) is served. Clients verify what they read.
func Handler(s *Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read-only store", http.StatusMethodNotAllowed)
			return
		}
		m := servable.FindStringSubmatch(r.URL.Path)
		if m == nil || (m[1] != "" && m[1] != m[2][:2]) || (m[3] != "" && m[3] != m[4][:2]) {
			http.NotFound(w, r)
			return
		}
		var body io.ReadSeeker
		if f, err := os.Open(filepath.Join(s.root, filepath.FromSlash(r.URL.Path[1:]))); err == nil {
			defer f.Close()
			body = f
		} else if m[2] != "" {
			body = s.packedChunk(m[2])
		}
		if body == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		http.ServeContent(w, r, "", time.Time{}, body)
	})
}

// packedChunk returns a reader of a packed chunk's bytes, or nil.
func (s *Store) packedChunk(h string) io.ReadSeeker {
	var id ChunkID
	if !parseHex(id[:], h) {
		return nil
	}
	l, ok := s.lookup(id)
	if !ok {
		if changed, err := s.refreshPacks(); err != nil || !changed {
			return nil
		}
		if l, ok = s.lookup(id); !ok {
			return nil
		}
	}
	f, err := l.p.file()
	if err != nil {
		return nil
	}
	return io.NewSectionReader(f, l.off, int64(l.size))
}
