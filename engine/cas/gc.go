package cas

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	// ChunksRemoved counts the chunks removed: loose files, and chunks
	// dropped from packs (with their pack, or by repacking).
	ChunksRemoved int `json:"chunksRemoved"`
	// PacksRemoved counts packs removed because none of their chunks was
	// live; PacksRepacked counts packs whose live chunks were copied into a
	// new pack so that their dead ones could be dropped.
	PacksRemoved  int `json:"packsRemoved"`
	PacksRepacked int `json:"packsRepacked"`
	// BytesFreed is the size of what was removed: index files, chunks
	// (loose files, and the bytes of dead chunks in packs), and leftover
	// temporary files and packs.
	BytesFreed int64 `json:"bytesFreed"`
	// TempRemoved counts temporary files left by interrupted writers
	// (packs without an index included).
	TempRemoved int `json:"tempRemoved"`
}

// GC removes every object that is neither pinned nor in roots, every chunk
// no remaining object uses, and temporary files of interrupted writers. A
// pack none of whose chunks is live is removed; a pack holding some dead
// chunks is repacked: its live chunks are copied into a new pack, which is
// published before the old pack goes, so a crash in between leaves two
// copies (the newer is read, the next gc drops the older) and never none. It
// holds the store's lock exclusively, so it waits for running puts, fetches
// and pins, and they wait for it: a put never loses a chunk it counted as
// already stored. A root whose index is unreadable aborts GC (its chunks
// cannot be known). With dryRun nothing is removed.
func (s *Store) GC(ctx context.Context, roots []Ref, dryRun bool) (GCReport, error) {
	rep := GCReport{DryRun: dryRun, ObjectsRemoved: []Ref{}}
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
	if _, err := s.refreshPacks(); err != nil {
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
		if _, packed := s.lookup(id); liveChunks[id] && !packed {
			rep.ChunksKept++
			return nil
		}
		rep.ChunksRemoved++
		return remove(path)
	})
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	if err := s.gcPacks(ctx, liveChunks, &rep, remove); err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	if !dryRun {
		// Emptied shard directories of loose chunks go too, so a store
		// whose loose chunks are all collected is seen as packs only.
		shards, _ := os.ReadDir(filepath.Join(s.root, "chunks"))
		for _, sh := range shards {
			if sh.IsDir() {
				os.Remove(filepath.Join(s.root, "chunks", sh.Name())) // fails unless empty
			}
		}
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

// gcPacks drops dead chunks from packs: whole packs when nothing in them
// is live, else by repacking their live chunks into new packs. A chunk in a
// pack is live when an object uses it and the pack map reads it from that
// pack (an older copy of it elsewhere is dead). It also removes temporary
// packs, packs without an index and indexes without a pack.
func (s *Store) gcPacks(ctx context.Context, liveChunks map[ChunkID]bool, rep *GCReport, remove func(string) error) error {
	s.ps.mu.RLock()
	packs := make([]*pack, 0, len(s.ps.packs))
	for _, n := range s.ps.names {
		if p := s.ps.packs[n]; p != nil {
			packs = append(packs, p)
		}
	}
	s.ps.mu.RUnlock()
	type move struct {
		p    *pack
		live []int
	}
	var drop []*pack
	var moves []move
	for _, p := range packs {
		var live []int
		var dead int64
		for i, c := range p.chunks {
			if l, _ := s.lookup(c.ID); liveChunks[c.ID] && l.p == p {
				live = append(live, i)
			} else {
				dead += int64(c.Size)
			}
		}
		rep.ChunksKept += len(live)
		rep.ChunksRemoved += len(p.chunks) - len(live)
		switch {
		case len(live) == 0:
			drop = append(drop, p)
			rep.PacksRemoved++
		case len(live) < len(p.chunks):
			moves = append(moves, move{p, live})
			rep.PacksRepacked++
			rep.BytesFreed += dead
			drop = append(drop, p)
		}
	}
	if len(moves) > 0 && !rep.DryRun {
		pw := s.newPackWriter()
		defer pw.abort()
		for _, m := range moves {
			for _, i := range m.live {
				if err := ctx.Err(); err != nil {
					return err
				}
				c := m.p.chunks[i]
				b, err := s.readPacked(loc{p: m.p, off: m.p.offs[i], size: c.Size}, c)
				if err != nil {
					return fmt.Errorf("repack: %w", err)
				}
				err = pw.add(c.ID, *b)
				putBuf(b)
				if err != nil {
					return fmt.Errorf("repack: %w", err)
				}
			}
		}
		if _, err := pw.finish(ctx); err != nil {
			return fmt.Errorf("repack: %w", err)
		}
	}
	for _, p := range drop {
		idx := s.packIndexFile(p.name)
		if !slices.ContainsFunc(moves, func(m move) bool { return m.p == p }) {
			if fi, err := os.Lstat(p.path); err == nil {
				rep.BytesFreed += fi.Size() // remove counts the index
			}
		}
		// The index goes first: a pack without one is a leftover.
		if err := remove(idx); err != nil {
			return err
		}
		if !rep.DryRun {
			if err := removeQuiet(p.path); err != nil {
				return err
			}
		}
	}
	// Leftovers: temporary packs, packs without an index, indexes without a pack.
	ents, err := os.ReadDir(s.packsDir())
	if err != nil {
		return err
	}
	for _, e := range ents {
		name, path := e.Name(), filepath.Join(s.packsDir(), e.Name())
		var orphan bool
		switch n, ext := strings.CutSuffix(name, ".pack"); {
		case strings.HasPrefix(name, ".tmp-"):
			orphan = true
		case ext && validPackName(n):
			orphan = s.fileGone(s.packIndexFile(n)) && !slices.ContainsFunc(drop, func(p *pack) bool { return p.name == n })
		default:
			if n, ok := strings.CutSuffix(name, ".idx"); ok && validPackName(n) {
				orphan = s.fileGone(s.packFile(n))
			}
		}
		if orphan {
			rep.TempRemoved++
			if err := remove(path); err != nil {
				return err
			}
		}
	}
	if !rep.DryRun && (len(drop) > 0 || rep.TempRemoved > 0) {
		if err := s.writeCatalog(ctx); err != nil {
			return err
		}
		if _, err := s.refreshPacks(); err != nil {
			return err
		}
	}
	return nil
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
