package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
)

// blockSize is the read size of the chunking pipeline: large enough that
// reads are few and the carry between blocks (under MaxChunk) is small,
// small enough that a block is still in cache when the chunk and
// whole-object hashers read it. 1 MiB chunked and hashed about 10 % faster
// than 4 MiB here.
const blockSize = 1 << 20

// PutStats describes one Put.
type PutStats struct {
	// Size is the object's size in bytes.
	Size int64 `json:"size"`
	// Chunks is the number of chunks in the object's index.
	Chunks int `json:"chunks"`
	// NewChunks is the number of chunks this Put wrote (not already stored).
	NewChunks int `json:"newChunks"`
	// NewBytes is the sum of the sizes of the new chunks: what the Put added.
	NewBytes int64 `json:"newBytes"`
	// DedupRatio is the fraction of the object's bytes that were already
	// stored: 1 - NewBytes/Size (0 for an empty object).
	DedupRatio float64 `json:"dedupRatio"`
	// RepairedIndex is set when the object's index was present but
	// unreadable (damaged, empty) and this Put rewrote it.
	RepairedIndex bool `json:"repairedIndex,omitempty"`
}

// PutOption changes what Put does.
type PutOption func(*putOptions)

type putOptions struct{ pin string }

// WithPin pins the object under name before Put releases its lock, so a
// concurrent GC can never collect it between the put and the pin.
func WithPin(name string) PutOption { return func(o *putOptions) { o.pin = name } }

// Put stores everything r yields as one object and returns its ref (the
// BLAKE3 of the bytes). New chunks go into new packs; the object's index is
// published only after the packs are, so a crash or a cancelled ctx leaves
// no visible partial object, and a Put that fails before then (a read
// error, a full disk) removes what it wrote. A damaged index of the same
// object is rewritten (PutStats.RepairedIndex). Objects neither pinned nor
// passed to GC as roots are collected by the next GC: use WithPin to keep
// one.
func (s *Store) Put(ctx context.Context, r io.Reader, opts ...PutOption) (Ref, PutStats, error) {
	var o putOptions
	for _, f := range opts {
		f(&o)
	}
	if o.pin != "" && !pinName.MatchString(o.pin) {
		return Ref{}, PutStats{}, fmt.Errorf("put: pin %q: %w", o.pin, ErrBadPin)
	}
	unlock, err := s.lock(ctx, false)
	if err != nil {
		return Ref{}, PutStats{}, fmt.Errorf("put: %w", err)
	}
	defer unlock()

	if _, err := s.refreshPacks(); err != nil {
		return Ref{}, PutStats{}, fmt.Errorf("put: %w", err)
	}
	s.removeStaleTemps()
	loose := s.hasLooseChunks()
	pw := s.newPackWriter()
	defer pw.abort()
	// split calls store from one goroutine, in the object's order.
	seen := map[ChunkID]bool{}
	var newChunks, newBytes int64
	x, err := s.split(ctx, r, func(id ChunkID, data []byte) error {
		if seen[id] || s.hasChunk(id, len(data), loose) {
			return nil
		}
		seen[id] = true
		if err := pw.add(id, data); err != nil {
			return err
		}
		newChunks++
		newBytes += int64(len(data))
		return nil
	})
	if err != nil {
		return Ref{}, PutStats{}, fmt.Errorf("put: %w", err)
	}
	if _, err := pw.finish(ctx); err != nil {
		return Ref{}, PutStats{}, fmt.Errorf("put %s: %w", x.Ref, err)
	}
	st := PutStats{Size: x.Size, Chunks: len(x.Chunks), NewChunks: int(newChunks), NewBytes: newBytes}
	if st.Size > 0 {
		st.DedupRatio = 1 - float64(st.NewBytes)/float64(st.Size)
	}
	if st.RepairedIndex, err = s.publishIndex(x); err != nil {
		return Ref{}, PutStats{}, fmt.Errorf("put %s: %w", x.Ref, err)
	}
	if o.pin != "" {
		if err := s.pinLocked(o.pin, x.Ref); err != nil {
			return Ref{}, PutStats{}, fmt.Errorf("put %s: %w", x.Ref, err)
		}
	}
	return x.Ref, st, nil
}

// PutFile stores the file at path. The ref's hex is the file's
// engine/digest digest: ref.Digest() == digest.File(path).
func (s *Store) PutFile(ctx context.Context, path string, opts ...PutOption) (Ref, PutStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Ref{}, PutStats{}, fmt.Errorf("put %s: %w", path, err)
	}
	defer f.Close()
	ref, st, err := s.Put(ctx, f, opts...)
	if err != nil {
		return Ref{}, PutStats{}, fmt.Errorf("put %s: %w", path, err)
	}
	return ref, st, nil
}

// publishIndex makes x visible (its chunks are already durable per
// s.Sync). An index already there is kept if it reads back as the same
// object; a damaged one is replaced, and repaired reports that.
func (s *Store) publishIndex(x *Index) (repaired bool, err error) {
	_, err = s.readIndex(x.Ref)
	if err == nil {
		return false, nil
	}
	repaired = !errors.Is(err, ErrMissing)
	b, err := x.MarshalBinary()
	if err != nil {
		return false, err
	}
	if err := writeAtomic(s.indexFile(x.Ref), b, s.Sync != SyncNone); err != nil {
		return false, fmt.Errorf("write index: %w", err)
	}
	return repaired, nil
}

// hasChunk reports whether a chunk of this size is stored: packed, or (if
// loose is set, the store has loose chunks) as a loose file. Put trusts
// what it finds; Verify is what finds damage.
func (s *Store) hasChunk(id ChunkID, size int, loose bool) bool {
	if l, ok := s.lookup(id); ok && int(l.size) == size {
		return true
	}
	if !loose {
		return false
	}
	fi, err := os.Lstat(s.chunkFile(id))
	return err == nil && fi.Size() == int64(size)
}

// hasLooseChunks reports whether chunks/ holds any shard directory (a store
// written before packs, or by a writer that stores loose chunks).
func (s *Store) hasLooseChunks() bool {
	d, err := os.Open(filepath.Join(s.root, "chunks"))
	if err != nil {
		return false
	}
	defer d.Close()
	names, _ := d.Readdirnames(1)
	return len(names) > 0
}

// Scan chunks and hashes r as Put would, without storing anything, and
// returns the index Put would write.
func (s *Store) Scan(ctx context.Context, r io.Reader) (*Index, error) {
	return s.split(ctx, r, nil)
}

// block is a read buffer shared by the chunks cut from it; it returns to
// the free list when the last of them is done.
type block struct {
	buf  []byte
	refs atomic.Int32
	free chan *block
}

func (b *block) release() {
	if b.refs.Add(-1) == 0 {
		b.free <- b
	}
}

type chunkTask struct {
	data   []byte
	c      *Chunk
	b      *block
	hashed chan struct{} // closed once c.ID is set (when storing)
}

func (s *Store) workers() int {
	if s.Workers > 0 {
		return s.Workers
	}
	return max(2, runtime.GOMAXPROCS(0))
}

// split is the chunking pipeline: this goroutine reads blocks and cuts
// chunks, one goroutine hashes the whole object, workers hash each chunk in
// parallel, and (if store is not nil) one goroutine passes the hashed
// chunks to store in the object's order, so a pack holds a new object's
// chunks in order (sequential reads for get, one Range for a run of them).
func (s *Store) split(ctx context.Context, r io.Reader, store func(ChunkID, []byte) error) (*Index, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workers := s.workers()
	nblocks := workers + 3
	if store != nil {
		nblocks += 2 // the storing goroutine holds blocks a little longer
	}
	free := make(chan *block, nblocks)
	for range nblocks {
		free <- &block{buf: make([]byte, blockSize), free: free}
	}
	tasks := make(chan chunkTask, 4*workers)
	wholeq := make(chan chunkTask, nblocks)
	var wg sync.WaitGroup
	var whole hasher
	wg.Go(func() {
		for t := range wholeq {
			whole.Write(t.data)
			t.b.release()
		}
	})
	for range workers {
		wg.Go(func() {
			for t := range tasks {
				if ctx.Err() == nil {
					t.c.ID = ChunkID(sum256(t.data))
				}
				if t.hashed != nil {
					close(t.hashed)
				}
				t.b.release()
			}
		})
	}
	var storeq chan chunkTask
	if store != nil {
		storeq = make(chan chunkTask, 4*workers)
		wg.Go(func() {
			for t := range storeq {
				<-t.hashed
				if ctx.Err() == nil {
					if err := store(t.c.ID, t.data); err != nil {
						cancel(err)
					}
				}
				t.b.release()
			}
		})
	}

	var chunks []*Chunk
	var size int64
	var carry []byte
	var prev *block
	var readErr error
	for eof := false; !eof && ctx.Err() == nil; {
		var b *block
		select {
		case b = <-free:
		case <-ctx.Done():
			continue
		}
		b.refs.Store(1)
		n := copy(b.buf, carry)
		if prev != nil {
			prev.release()
			prev = nil
		}
		m, err := io.ReadFull(r, b.buf[n:])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			eof = true
		} else if err != nil {
			readErr = fmt.Errorf("read: %w", err)
			cancel(readErr)
		}
		size += int64(m)
		if m > 0 {
			b.refs.Add(1)
			wholeq <- chunkTask{data: b.buf[n : n+m], b: b}
		}
		data := b.buf[:n+m]
		for len(data) > 0 && (eof || len(data) >= MaxChunk) {
			c := cut(data)
			e := &Chunk{Size: uint32(c)}
			chunks = append(chunks, e)
			t := chunkTask{data: data[:c], c: e, b: b}
			if storeq != nil {
				t.hashed = make(chan struct{})
				b.refs.Add(1)
				storeq <- t
			}
			b.refs.Add(1)
			tasks <- t
			data = data[c:]
		}
		carry, prev = data, b
	}
	if prev != nil {
		prev.release()
	}
	close(tasks)
	close(wholeq)
	if storeq != nil {
		close(storeq)
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	x := &Index{Ref: whole.sum(), Size: size, Chunks: make([]Chunk, len(chunks))}
	for i, c := range chunks {
		x.Chunks[i] = *c
	}
	return x, nil
}
