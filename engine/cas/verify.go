package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
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
	// Chunks is the number of distinct chunks checked.
	Chunks int `json:"chunks"`
	// Bytes is the size of the good chunks checked.
	Bytes int64 `json:"bytes"`
	// Problems lists every missing or corrupt chunk.
	Problems []ChunkProblem `json:"problems"`
	// BadObjects lists objects with a missing or bad index, or (Deep) a
	// whole-object BLAKE3 mismatch.
	BadObjects []ObjectProblem `json:"badObjects"`
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
	return true
}

// Verify checks objects: each index parses, each chunk is present with the
// bytes its id names (each distinct chunk read once), and with Deep each
// object reassembles to its ref. It lists every problem rather than
// stopping at the first; an error is returned only when the check itself
// cannot run. With RepairFrom, bad chunks are replaced from remotes.
func (s *Store) Verify(ctx context.Context, opts VerifyOptions) (VerifyReport, error) {
	var rep VerifyReport
	rms, err := s.parseRemotes(opts.RepairFrom)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	unlock, err := s.lock(ctx, false)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	defer unlock()
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
	for _, id := range order {
		kind, ok := bad[id]
		if !ok {
			continue
		}
		p := ChunkProblem{Chunk: id, Problem: kind, Objects: users[id]}
		if len(rms) > 0 {
			if err := s.downloadChunk(ctx, Chunk{ID: id, Size: sizes[id]}, rms); err != nil {
				p.RepairError = err.Error()
			} else {
				p.Repaired = true
				delete(bad, id)
			}
		}
		rep.Problems = append(rep.Problems, p)
	}
	if s.Sync == SyncBatch && len(rep.Problems) > 0 {
		if err := s.syncfs(); err != nil {
			return rep, fmt.Errorf("verify: sync: %w", err)
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

// removeQuiet removes a file, ignoring its absence.
func removeQuiet(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
