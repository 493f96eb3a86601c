package bundle

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkWrite measures writing a bundle with one 64 MiB stored image:
// the copy pipeline's hot loop (4 MiB reads and writes, BLAKE3 and CRC-32
// workers on the same buffers), the small deflated entries, the fsync.
func BenchmarkWrite(b *testing.B) {
	dir := b.TempDir()
	entries := testEntries(b, dir, 64<<20)
	path := filepath.Join(dir, "b.vbundle")
	b.SetBytes(64 << 20)
	for b.Loop() {
		if _, err := Write(context.Background(), path, testManifest(), entries, WriteOptions{Created: testTime}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify measures Verify of a bundle whose image is one 512 MiB
// stored entry (hashed as parallel subtrees on GOMAXPROCS workers).
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	entries := testEntries(b, dir, 512<<20)
	path := filepath.Join(dir, "b.vbundle")
	writeTest(b, path, entries, WriteOptions{})
	os.Remove(entries[1].Path)
	r, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.SetBytes(512 << 20)
	for b.Loop() {
		if _, err := r.Verify(context.Background(), VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures Open (central directory and bundle.json only).
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "b.vbundle")
	writeTest(b, path, testEntries(b, dir, 1<<20), WriteOptions{})
	for b.Loop() {
		r, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
