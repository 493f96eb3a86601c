package cas

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// randBytes returns n deterministic pseudo-random (incompressible) bytes.
func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	rand.NewChaCha8(key).Read(b)
	return b
}

// newStore opens a fresh store in a test directory, without fsync.
func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Sync = SyncNone
	s.Remote = RemoteOptions{Retries: 1, Backoff: 10e6, Timeout: 5e9}
	return s
}

func put(t testing.TB, s *Store, data []byte, opts ...PutOption) (Ref, PutStats) {
	t.Helper()
	ref, st, err := s.Put(context.Background(), bytes.NewReader(data), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ref, st
}

func get(t testing.TB, s *Store, ref Ref) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Get(context.Background(), ref, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// chunksOf returns the boundaries cut makes in data.
func chunksOf(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		n := cut(data)
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

// getFile gets ref into a regular file and returns its contents.
func getFile(t testing.TB, s *Store, ref Ref) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.Get(context.Background(), ref, f); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putLoose stores data the way stores written before packs hold it: one
// file per chunk under chunks/, then the index.
func putLoose(t testing.TB, s *Store, data []byte) Ref {
	t.Helper()
	x := &Index{Ref: Ref(sum256(data)), Size: int64(len(data))}
	for _, c := range chunksOf(data) {
		id := ChunkID(sum256(c))
		x.Chunks = append(x.Chunks, Chunk{ID: id, Size: uint32(len(c))})
		if err := writeAtomic(s.chunkFile(id), c, false); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := x.MarshalBinary()
	if err := writeAtomic(s.indexFile(x.Ref), b, false); err != nil {
		t.Fatal(err)
	}
	return x.Ref
}

// chunkAt returns the file that holds a chunk and its offset there (a
// pack, or a loose chunk file at 0).
func chunkAt(t testing.TB, s *Store, id ChunkID) (string, int64) {
	t.Helper()
	if _, err := s.refreshPacks(); err != nil {
		t.Fatal(err)
	}
	if l, ok := s.lookup(id); ok {
		return l.p.path, l.off
	}
	return s.chunkFile(id), 0
}

// overwriteChunk writes b over a stored chunk, where it lies.
func overwriteChunk(t testing.TB, s *Store, id ChunkID, b []byte) {
	t.Helper()
	path, off := chunkAt(t, s, id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// corruptChunk flips a byte of a stored chunk in place.
func corruptChunk(t testing.TB, s *Store, c Chunk) {
	t.Helper()
	path, off := chunkAt(t, s, c.ID)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	at := off + int64(c.Size)/2
	f.ReadAt(b, at)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// dropChunk makes a chunk missing: it removes a loose chunk file, or
// rewrites the chunk's pack without it.
func dropChunk(t testing.TB, s *Store, id ChunkID) {
	t.Helper()
	if _, err := s.refreshPacks(); err != nil {
		t.Fatal(err)
	}
	l, ok := s.lookup(id)
	if !ok {
		if err := os.Remove(s.chunkFile(id)); err != nil {
			t.Fatal(err)
		}
		return
	}
	pw := s.newPackWriter()
	for i, c := range l.p.chunks {
		if c.ID == id {
			continue
		}
		b, err := s.readPacked(loc{p: l.p, off: l.p.offs[i], size: c.Size}, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := pw.add(c.ID, *b); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(s.packIndexFile(l.p.name))
	os.Remove(l.p.path)
	if _, err := pw.finish(context.Background()); err != nil {
		t.Fatal(err)
	}
}
