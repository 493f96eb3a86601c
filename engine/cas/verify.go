package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// VerifyOptions selects what Verify checks and repairs.
type VerifyOptions struct {
	// Refs limits the check to these objects (default: every object).
	Refs []Ref
	// Deep also reassembles every object whose chunks are all good (or
	// repaired) and checks its whole BLAKE3.
	Deep bool
	// RepairFrom lists remote base URLs from which missing or corrupt
	// chunks (and missing or bad indexes of Refs) are fetched, verified and
	// rewritten.
	RepairFrom []string
}

// Problem kinds in a VerifyReport.
const (
	ProblemMissing = "missing"
	ProblemCorrupt = "corrupt"
)

// ChunkProblem is one missing or corrupt chunk.
type ChunkProblem struct {
	Chunk ChunkID `json:"chunk"`
	// Problem is ProblemMissing or ProblemCorrupt.
	Problem string `json:"problem"`
	// Objects lists the objects that use the chunk.
	Objects []Ref `json:"objects"`
	// Repaired is set when RepairFrom supplied a good copy.
	Repaired bool `json:"repaired"`
	// RepairError says why repair failed, if it was tried.
	RepairError string `json:"repairError,omitempty"`
}

// PackProblem is a pack whose index cannot be read: its chunks read as
// missing (and are listed as such when objects use them).
type PackProblem struct {
	Pack  string `json:"pack"`
	Error string `json:"error"`
}

// ObjectProblem is an object whose index is missing or bad, or (Deep) whose
// reassembled bytes do not match its ref.
type ObjectProblem struct {
	Ref      Ref    `json:"ref"`
	Error    string `json:"error"`
	Repaired bool   `json:"repaired"`
}

// VerifyReport lists everything Verify found.
type VerifyReport struct {
	// Objects is the number of objects whose index was read.
	Objects int `json:"objects"`
	// Chunks is the number of distinct chunks checked: those the objects
	// use and, when Refs is empty, every other stored chunk too.
	Chunks int `json:"chunks"`
	// Bytes is the size of the good chunks checked.
	Bytes int64 `json:"bytes"`
	// Problems lists every missing or corrupt chunk.
	Problems []ChunkProblem `json:"problems"`
	// BadObjects lists objects with a missing or bad index, or (Deep) a
	// whole-object BLAKE3 mismatch.
	BadObjects []ObjectProblem `json:"badObjects"`
	// BadPacks lists packs whose index cannot be read.
	BadPacks []PackProblem `json:"badPacks,omitempty"`
}

// OK reports whether nothing is left broken (every problem was repaired).
func (r *VerifyReport) OK() bool {
	for _, p := range r.Problems {
		if !p.Repaired {
			return false
		}
	}
	for _, p := range r.BadObjects {
		if !p.Repaired {
			return false
		}
	}
	return len(r.BadPacks) == 0
}

// Verify checks objects: each index parses, each chunk is present with the
// bytes its id names (each distinct chunk read once), and with Deep each
// object reassembles to its ref. Without Refs it also checks every stored
// chunk no object uses (packed or loose) against its id. It lists every
// problem rather than stopping at the first; an error is returned only when
// the check itself cannot run. With RepairFrom, bad chunks are replaced
// from remotes.
func (s *Store) Verify(ctx context.Context, opts VerifyOptions) (VerifyReport, error) {
	rep := VerifyReport{Problems: []ChunkProblem{}, BadObjects: []ObjectProblem{}}
	rms, err := s.parseRemotes(opts.RepairFrom)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	unlock, err := s.lock(ctx, false)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	defer unlock()
	if _, err := s.refreshPacks(); err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	s.ps.mu.RLock()
	for n, err := range s.ps.bad {
		rep.BadPacks = append(rep.BadPacks, PackProblem{Pack: n, Error: err.Error()})
	}
	s.ps.mu.RUnlock()
	slices.SortFunc(rep.BadPacks, func(a, b PackProblem) int { return strings.Compare(a.Pack, b.Pack) })
	refs := opts.Refs
	if len(refs) == 0 {
		if refs, err = s.refs(ctx); err != nil {
			return rep, fmt.Errorf("verify: %w", err)
		}
	}
	users := map[ChunkID][]Ref{}
	sizes := map[ChunkID]uint32{}
	var order []ChunkID
	indexes := map[Ref]*Index{}
	for _, r := range refs {
		x, err := s.readIndex(r)
		if err != nil && len(rms) > 0 {
			var rerr error
			for _, rm := range rms {
				var b []byte
				if x, b, rerr = rm.FetchIndex(ctx, r); rerr == nil {
					rerr = writeAtomic(s.indexFile(r), b, s.Sync != SyncNone)
					break
				}
			}
			rep.BadObjects = append(rep.BadObjects, ObjectProblem{Ref: r, Error: err.Error(), Repaired: rerr == nil})
			if rerr != nil {
				continue
			}
		} else if err != nil {
			rep.BadObjects = append(rep.BadObjects, ObjectProblem{Ref: r, Error: err.Error()})
			continue
		}
		rep.Objects++
		indexes[r] = x
		for _, c := range x.Chunks {
			if _, ok := users[c.ID]; !ok {
				order = append(order, c.ID)
				sizes[c.ID] = c.Size
			}
			if u := users[c.ID]; len(u) == 0 || u[len(u)-1] != r {
				users[c.ID] = append(u, r)
			}
		}
	}

	if len(opts.Refs) == 0 {
		stored, err := s.storedChunks(ctx)
		if err != nil {
			return rep, fmt.Errorf("verify: %w", err)
		}
		for _, c := range stored {
			if _, ok := users[c.ID]; !ok {
				users[c.ID] = nil
				order = append(order, c.ID)
				sizes[c.ID] = c.Size
			}
		}
	}

	// Check every distinct chunk, in parallel.
	var mu sync.Mutex
	bad := map[ChunkID]string{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.workers())
	for _, id := range order {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			c := Chunk{ID: id, Size: sizes[id]}
			p, err := s.readChunk(c)
			mu.Lock()
			defer mu.Unlock()
			rep.Chunks++
			switch {
			case err == nil:
				rep.Bytes += int64(c.Size)
				putBuf(p)
			case errors.Is(err, ErrMissing):
				bad[id] = ProblemMissing
			case errors.Is(err, ErrCorrupt):
				bad[id] = ProblemCorrupt
			default:
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	pw := s.newPackWriter()
	defer pw.abort()
	var repaired []ChunkID
	for _, id := range order {
		kind, ok := bad[id]
		if !ok {
			continue
		}
		p := ChunkProblem{Chunk: id, Problem: kind, Objects: users[id]}
		if p.Objects == nil {
			p.Objects = []Ref{}
		}
		if len(rms) > 0 && len(users[id]) > 0 {
			if err := s.downloadChunk(ctx, Chunk{ID: id, Size: sizes[id]}, rms, pw); err != nil {
				p.RepairError = err.Error()
			} else {
				p.Repaired = true
				repaired = append(repaired, id)
			}
		}
		rep.Problems = append(rep.Problems, p)
	}
	if len(repaired) > 0 {
		if _, err := pw.finish(ctx); err != nil {
			return rep, fmt.Errorf("verify: store repaired chunks: %w", err)
		}
		for _, id := range repaired {
			delete(bad, id)
		}
	}
	if opts.Deep {
		for _, r := range refs {
			x := indexes[r]
			if x == nil || slices.ContainsFunc(x.Chunks, func(c Chunk) bool { _, b := bad[c.ID]; return b }) {
				continue
			}
			if err := s.assemble(ctx, x, io.Discard); err != nil {
				if ctx.Err() != nil {
					return rep, fmt.Errorf("verify: %w", ctx.Err())
				}
				rep.BadObjects = append(rep.BadObjects, ObjectProblem{Ref: r, Error: err.Error()})
			}
		}
	}
	return rep, nil
}

// storedChunks lists every chunk the store holds, packed (as the pack map
// has it) or loose (sized by its file), each id once.
func (s *Store) storedChunks(ctx context.Context) ([]Chunk, error) {
	var out []Chunk
	seen := map[ChunkID]bool{}
	s.ps.mu.RLock()
	for id, l := range s.ps.locs {
		seen[id] = true
		out = append(out, Chunk{ID: id, Size: l.size})
	}
	s.ps.mu.RUnlock()
	err := walkShards(ctx, filepath.Join(s.root, "chunks"), func(path, name string) error {
		var id ChunkID
		if !parseHex(id[:], name) || seen[id] {
			return nil
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return nil // removed meanwhile
		}
		seen[id] = true
		size := fi.Size()
		if size < 1 || size > MaxIndexChunk {
			size = MaxIndexChunk + 1 // cannot be the chunk: reads as corrupt
		}
		out = append(out, Chunk{ID: id, Size: uint32(size)})
		return nil
	})
	return out, err
}

// removeQuiet removes a file, ignoring its absence.
func removeQuiet(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
