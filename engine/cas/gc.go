package cas

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GCReport describes one GC.
type GCReport struct {
	// DryRun is set when nothing was removed: the report says what would be.
	DryRun bool `json:"dryRun"`
	// Roots is the number of distinct roots (pins + refs passed in).
	Roots int `json:"roots"`
	// MissingRoots are roots whose object is not in the store.
	MissingRoots []Ref `json:"missingRoots,omitempty"`
	// ObjectsKept and ChunksKept count what stays.
	ObjectsKept int `json:"objectsKept"`
	ChunksKept  int `json:"chunksKept"`
	// ObjectsRemoved lists the objects (indexes) removed.
	ObjectsRemoved []Ref `json:"objectsRemoved"`
	// ChunksRemoved counts the chunk files removed.
	ChunksRemoved int `json:"chunksRemoved"`
	// BytesFreed is the size of every file removed (indexes, chunks,
	// leftover temporary files).
	BytesFreed int64 `json:"bytesFreed"`
	// TempRemoved counts temporary files left by interrupted writers.
	TempRemoved int `json:"tempRemoved"`
}

// GC removes every object that is neither pinned nor in roots, every chunk
// no remaining object uses, and temporary files of interrupted writers. It
// holds the store's lock exclusively, so it waits for running puts, fetches
// and pins, and they wait for it: a put never loses a chunk it counted as
// already stored. A root whose index is unreadable aborts GC (its chunks
// cannot be known). With dryRun nothing is removed.
func (s *Store) GC(ctx context.Context, roots []Ref, dryRun bool) (GCReport, error) {
	rep := GCReport{DryRun: dryRun}
	unlock, err := s.lock(ctx, true)
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	defer unlock()
	pins, err := s.Pins()
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	live := map[Ref]bool{}
	for _, r := range roots {
		live[r] = true
	}
	for _, r := range pins {
		live[r] = true
	}
	rep.Roots = len(live)
	liveChunks := map[ChunkID]bool{}
	for r := range live {
		if !s.Has(r) {
			rep.MissingRoots = append(rep.MissingRoots, r)
			continue
		}
		x, err := s.readIndex(r)
		if err != nil {
			return rep, fmt.Errorf("gc: root %w (repair it with verify, or unpin it)", err)
		}
		for _, c := range x.Chunks {
			liveChunks[c.ID] = true
		}
	}

	remove := func(path string) error {
		fi, err := os.Lstat(path)
		if err != nil {
			return nil // gone already
		}
		rep.BytesFreed += fi.Size()
		if dryRun {
			return nil
		}
		return removeQuiet(path)
	}
	err = walkShards(ctx, filepath.Join(s.root, "objects"), func(path, name string) error {
		if strings.HasPrefix(name, ".tmp-") {
			rep.TempRemoved++
			return remove(path)
		}
		var r Ref
		h, ok := strings.CutSuffix(name, ".idx")
		if !ok || !parseHex(r[:], h) {
			return nil // not ours: leave it
		}
		if live[r] {
			rep.ObjectsKept++
			return nil
		}
		rep.ObjectsRemoved = append(rep.ObjectsRemoved, r)
		return remove(path)
	})
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	err = walkShards(ctx, filepath.Join(s.root, "chunks"), func(path, name string) error {
		if strings.HasPrefix(name, ".tmp-") {
			rep.TempRemoved++
			return remove(path)
		}
		var id ChunkID
		if !parseHex(id[:], name) {
			return nil
		}
		if liveChunks[id] {
			rep.ChunksKept++
			return nil
		}
		rep.ChunksRemoved++
		return remove(path)
	})
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	ents, err := os.ReadDir(filepath.Join(s.root, "pins"))
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			rep.TempRemoved++
			if err := remove(filepath.Join(s.root, "pins", e.Name())); err != nil {
				return rep, fmt.Errorf("gc: %w", err)
			}
		}
	}
	return rep, nil
}

// walkShards calls fn for every file in dir's shard directories.
func walkShards(ctx context.Context, dir string, fn func(path, name string) error) error {
	shards, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, sh := range shards {
		if !sh.IsDir() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		sub := filepath.Join(dir, sh.Name())
		ents, err := os.ReadDir(sub)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := fn(filepath.Join(sub, e.Name()), e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}
