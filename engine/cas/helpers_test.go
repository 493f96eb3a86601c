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
