package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// RemoteOptions tunes how a Remote talks to its server; zero fields take
// the defaults.
type RemoteOptions struct {
	// Client is the HTTP client (default http.DefaultClient).
	Client *http.Client
	// Timeout bounds each request, body included (default 60 s).
	Timeout time.Duration
	// Retries is how many times a request is retried after a network error,
	// a timeout or a 5xx/429 status (default 3, negative for none). A 404 or
	// bytes that fail verification are not retried.
	Retries int
	// Backoff is the delay before the first retry, doubled each time
	// (default 200 ms).
	Backoff time.Duration
}

// Remote reads objects and chunks from an HTTP(S) base URL serving the
// store layout (Handler, or any static file server over a store root).
// Everything it returns is verified: it never hands out bytes that do not
// match their BLAKE3.
//
// A chunk is fetched from a pack with an HTTP Range request when the
// remote's packs/catalog and the pack's index list it (a static server over
// a packed store), else as chunks/ab/<hex> (Handler, which serves packed
// chunks under that path, or a store of loose chunks).
type Remote struct {
	base string // without trailing slash
	opts RemoteOptions

	catOnce sync.Once
	cat     map[ChunkID]remoteLoc
	catErr  error
}

// remoteLoc is where a remote's pack holds a chunk.
type remoteLoc struct {
	pack string
	off  int64
	size uint32
}

// NewRemote returns a Remote for an http:// or https:// base URL.
func NewRemote(base string, opts RemoteOptions) (*Remote, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("remote %q: not an http(s) URL: %w", base, ErrRemote)
	}
	if opts.Client == nil {
		opts.Client = http.DefaultClient
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Retries == 0 {
		opts.Retries = 3
	} else if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.Backoff == 0 {
		opts.Backoff = 200 * time.Millisecond
	}
	return &Remote{base: strings.TrimRight(base, "/"), opts: opts}, nil
}

// String returns the base URL.
func (rm *Remote) String() string { return rm.base }

// get fetches base/path, at most limit bytes, with retries.
func (rm *Remote) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	return rm.getRange(ctx, path, -1, limit)
}

// getRange fetches base/path with retries: the whole body (at most limit
// bytes) when off < 0, else exactly limit bytes from off, by a Range
// request (or by skipping to off in the body of a server that ignores
// Range).
func (rm *Remote) getRange(ctx context.Context, path string, off, limit int64) ([]byte, error) {
	u := rm.base + "/" + path
	delay := rm.opts.Backoff
	var last error
	for attempt := 0; attempt <= rm.opts.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("remote %s: GET %s: %w (last error: %v)", rm.base, path, ctx.Err(), last)
			case <-time.After(delay):
			}
			delay *= 2
		}
		b, retry, err := rm.try(ctx, u, off, limit)
		if err == nil {
			return b, nil
		}
		last = err
		if !retry || ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("remote %s: GET %s: %w", rm.base, path, last)
}

func (rm *Remote) try(ctx context.Context, u string, off, limit int64) (b []byte, retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, rm.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrRemote, err)
	}
	if off >= 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+limit-1))
	}
	resp, err := rm.opts.Client.Do(req)
	if err != nil {
		return nil, true, fmt.Errorf("%w: %v", ErrRemote, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, false, ErrMissing
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, true, fmt.Errorf("%w: status %s", ErrRemote, resp.Status)
	case resp.StatusCode == http.StatusPartialContent && off >= 0:
	case resp.StatusCode != http.StatusOK:
		return nil, false, fmt.Errorf("%w: status %s", ErrRemote, resp.Status)
	case off > 0: // the server ignored Range: skip to off
		if _, err := io.CopyN(io.Discard, resp.Body, off); err != nil {
			return nil, true, fmt.Errorf("%w: read body: %v", ErrRemote, err)
		}
	}
	b, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, true, fmt.Errorf("%w: read body: %v", ErrRemote, err)
	}
	if off >= 0 && int64(len(b)) > limit {
		b = b[:limit] // a whole body that goes on past the range
	}
	if int64(len(b)) > limit {
		return nil, false, fmt.Errorf("body over %d bytes: %w", limit, ErrCorrupt)
	}
	return b, false, nil
}

// catalog loads, once, where the remote's packs hold chunks: nil when the
// remote has no packs/catalog (Handler, or a store of loose chunks). A pack
// listed but gone is skipped; where two packs hold a chunk the later wins.
func (rm *Remote) catalog(ctx context.Context) (map[ChunkID]remoteLoc, error) {
	rm.catOnce.Do(func() {
		b, err := rm.get(ctx, CatalogPath, maxCatalogBytes)
		if errors.Is(err, ErrMissing) {
			return
		}
		if err != nil {
			rm.catErr = err
			return
		}
		names, err := ParseCatalog(b)
		if err != nil {
			rm.catErr = fmt.Errorf("remote %s: %w", rm.base, err)
			return
		}
		cat := map[ChunkID]remoteLoc{}
		for _, n := range names {
			b, err := rm.get(ctx, PackIndexPath(n), maxIndexBytes)
			if errors.Is(err, ErrMissing) {
				continue
			}
			if err != nil {
				rm.catErr = err
				return
			}
			px, err := ParsePackIndex(b)
			if err != nil {
				rm.catErr = fmt.Errorf("remote %s: pack %s: %w", rm.base, n, err)
				return
			}
			var off int64
			for _, c := range px.Chunks {
				cat[c.ID] = remoteLoc{pack: n, off: off, size: c.Size}
				off += int64(c.Size)
			}
		}
		rm.cat = cat
	})
	return rm.cat, rm.catErr
}

// maxIndexBytes bounds an index download: 64 GiB of 16 KiB chunks.
const maxIndexBytes = 200 << 20

// FetchIndex downloads and checks the index of r (ErrMissing if the remote
// does not have it, ErrBadIndex if it does not parse or names another
// object). It returns the parsed index and its bytes.
func (rm *Remote) FetchIndex(ctx context.Context, r Ref) (*Index, []byte, error) {
	b, err := rm.get(ctx, IndexPath(r), maxIndexBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("object %s: %w", r, err)
	}
	x, err := ParseIndex(b)
	if err != nil {
		return nil, nil, fmt.Errorf("object %s: from remote %s: %w", r, rm.base, err)
	}
	if x.Ref != r {
		return nil, nil, fmt.Errorf("object %s: remote %s serves the index of %s: %w", r, rm.base, x.Ref, ErrBadIndex)
	}
	return x, b, nil
}

// FetchChunk downloads a chunk and checks its size and BLAKE3 (ErrCorrupt
// if they do not match: the bytes are refused).
func (rm *Remote) FetchChunk(ctx context.Context, c Chunk) ([]byte, error) {
	cat, err := rm.catalog(ctx)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", c.ID, err)
	}
	var b []byte
	if l, ok := cat[c.ID]; ok && l.size == c.Size {
		b, err = rm.getRange(ctx, PackPath(l.pack), l.off, int64(c.Size))
	} else {
		b, err = rm.get(ctx, ChunkPath(c.ID), int64(c.Size))
	}
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", c.ID, err)
	}
	if len(b) != int(c.Size) || sum256(b) != c.ID {
		return nil, fmt.Errorf("chunk %s: from remote %s: %w", c.ID, rm.base, ErrCorrupt)
	}
	return b, nil
}

// parseRemotes turns base URLs into Remotes with the store's options.
func (s *Store) parseRemotes(urls []string) ([]*Remote, error) {
	out := make([]*Remote, 0, len(urls))
	for _, u := range urls {
		rm, err := NewRemote(u, s.Remote)
		if err != nil {
			return nil, err
		}
		out = append(out, rm)
	}
	return out, nil
}

// FetchStats describes one Fetch.
type FetchStats struct {
	// Chunks is the number of distinct chunks in the object.
	Chunks int `json:"chunks"`
	// Fetched is how many of them were downloaded (the rest were local).
	Fetched int `json:"fetched"`
	// Bytes is the number of chunk bytes downloaded.
	Bytes int64 `json:"bytes"`
}

// FetchConcurrency is how many chunks Fetch and Verify download at once.
const FetchConcurrency = 8

// Fetch makes the object r whole in the local store: it takes the index from
// the store or the first remote that has it, downloads only the chunks the
// store lacks or holds damaged (several at once, each verified, each remote tried in order),
// checks the reassembled object's BLAKE3 and only then publishes the index.
// If some chunk is on no remote the error wraps ErrMissing and names it.
func (s *Store) Fetch(ctx context.Context, r Ref, remotes []string) (FetchStats, error) {
	rms, err := s.parseRemotes(remotes)
	if err != nil {
		return FetchStats{}, fmt.Errorf("fetch %s: %w", r, err)
	}
	unlock, err := s.lock(ctx, false)
	if err != nil {
		return FetchStats{}, fmt.Errorf("fetch %s: %w", r, err)
	}
	defer unlock()
	return s.fetchLocked(ctx, r, rms)
}

func (s *Store) fetchLocked(ctx context.Context, r Ref, rms []*Remote) (FetchStats, error) {
	x, err := s.readIndex(r)
	haveIndex := err == nil
	if !haveIndex {
		errs := []error{err}
		for _, rm := range rms {
			var rx *Index
			if rx, _, err = rm.FetchIndex(ctx, r); err == nil {
				x = rx
				break
			}
			errs = append(errs, err)
		}
		if x == nil {
			if len(rms) == 0 {
				errs = append(errs, errors.New("no remotes configured"))
			}
			return FetchStats{}, fmt.Errorf("fetch %s: %w", r, errors.Join(errs...))
		}
	}
	var st FetchStats
	var distinct []Chunk
	seen := map[ChunkID]bool{}
	for _, c := range x.Chunks {
		if !seen[c.ID] {
			seen[c.ID] = true
			distinct = append(distinct, c)
		}
	}
	need, err := s.unusable(ctx, distinct)
	if err != nil {
		return st, fmt.Errorf("fetch %s: %w", r, err)
	}
	st.Chunks = len(seen)
	var mu sync.Mutex
	if err := s.download(ctx, need, rms, func(c Chunk) {
		mu.Lock()
		st.Fetched++
		st.Bytes += int64(c.Size)
		mu.Unlock()
	}); err != nil {
		return st, fmt.Errorf("fetch %s: %w", r, err)
	}
	if err := s.assemble(ctx, x, io.Discard); err != nil {
		return st, fmt.Errorf("fetch %s: %w", r, err)
	}
	if !haveIndex {
		if _, err := s.publishIndex(x); err != nil {
			return st, fmt.Errorf("fetch %s: %w", r, err)
		}
	}
	return st, nil
}

// unusable returns the chunks that are missing locally or do not match
// their id (read and hashed in parallel), in their original order.
func (s *Store) unusable(ctx context.Context, cs []Chunk) ([]Chunk, error) {
	bad := make([]bool, len(cs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.workers())
	for i, c := range cs {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			p, err := s.readChunk(c)
			switch {
			case err == nil:
				putBuf(p)
			case errors.Is(err, ErrMissing) || errors.Is(err, ErrCorrupt):
				bad[i] = true
			default:
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []Chunk
	for i, c := range cs {
		if bad[i] {
			out = append(out, c)
		}
	}
	return out, nil
}

// maxRun bounds the bytes of one Range request for a run of chunks.
const maxRun = 4 << 20

// runs groups need into runs of chunks that lie back to back in one pack
// of the remote (at most maxRun bytes each), keeping their order; a chunk
// the catalog does not list is a run of its own.
func runs(cat map[ChunkID]remoteLoc, need []Chunk) [][]Chunk {
	var out [][]Chunk
	var pack string
	var start, end int64 = 0, -1
	for _, c := range need {
		l, ok := cat[c.ID]
		ok = ok && l.size == c.Size
		if n := len(out); n > 0 && ok && l.pack == pack && l.off == end && end+int64(l.size)-start <= maxRun {
			out[n-1] = append(out[n-1], c)
			end += int64(l.size)
			continue
		}
		out = append(out, []Chunk{c})
		pack, start, end = "", 0, -1
		if ok {
			pack, start, end = l.pack, l.off, l.off+int64(l.size)
		}
	}
	return out
}

// fetchRun downloads a run of chunks (see runs) with one Range request and
// returns the bytes of each chunk that verifies (nil for the others, and
// for all of them if the request fails).
func (rm *Remote) fetchRun(ctx context.Context, cat map[ChunkID]remoteLoc, run []Chunk) [][]byte {
	out := make([][]byte, len(run))
	var total int64
	for _, c := range run {
		total += int64(c.Size)
	}
	first := cat[run[0].ID]
	b, err := rm.getRange(ctx, PackPath(first.pack), first.off, total)
	if err != nil || int64(len(b)) != total {
		return out
	}
	for i, c := range run {
		if p := b[:c.Size]; sum256(p) == c.ID {
			out[i] = p
		}
		b = b[c.Size:]
	}
	return out
}

// download fetches chunks from the first remote that serves them intact,
// FetchConcurrency requests at a time, into new packs (which, being newer,
// win over damaged copies already stored), and publishes the packs. Runs of
// chunks that lie back to back in a pack of the first remote come in one
// Range request; what that misses is fetched chunk by chunk from every
// remote. It stops at the first chunk no remote can supply, leaving nothing
// behind.
func (s *Store) download(ctx context.Context, need []Chunk, rms []*Remote, done func(Chunk)) error {
	if len(need) == 0 {
		return nil
	}
	pw := s.newPackWriter()
	defer pw.abort()
	var cat map[ChunkID]remoteLoc
	if len(rms) > 0 {
		cat, _ = rms[0].catalog(ctx) // an error shows again chunk by chunk
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(FetchConcurrency)
	for _, run := range runs(cat, need) {
		g.Go(func() error {
			var got [][]byte
			if len(run) > 1 {
				got = rms[0].fetchRun(gctx, cat, run)
			}
			for i, c := range run {
				var err error
				if i < len(got) && got[i] != nil {
					err = pw.add(c.ID, got[i])
				} else {
					err = s.downloadChunk(gctx, c, rms, pw)
				}
				if err != nil {
					return err
				}
				done(c)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	_, err := pw.finish(ctx)
	return err
}

func (s *Store) downloadChunk(ctx context.Context, c Chunk, rms []*Remote, pw *packWriter) error {
	var errs []error
	for _, rm := range rms {
		b, err := rm.FetchChunk(ctx, c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return pw.add(c.ID, b)
	}
	if len(errs) == 0 {
		return fmt.Errorf("chunk %s: no remotes configured: %w", c.ID, ErrMissing)
	}
	return errors.Join(errs...)
}
