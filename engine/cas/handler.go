package cas

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// servable matches the only paths Handler serves: chunks and indexes under
// their shard directory.
var servable = regexp.MustCompile(`^/(?:chunks/([0-9a-f]{2})/([0-9a-f]{64})|objects/([0-9a-f]{2})/([0-9a-f]{64})\.idx)$`)

// Handler serves the store's layout read-only over HTTP (GET and HEAD of
// chunks/… and objects/….idx, with Range support), exactly as a static file
// server over the root would; nothing else (no listings, pins, lock or
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
		f, err := os.Open(filepath.Join(s.root, filepath.FromSlash(r.URL.Path[1:])))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		http.ServeContent(w, r, "", time.Time{}, f)
	})
}
