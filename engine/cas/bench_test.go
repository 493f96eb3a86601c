package cas

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/jotfs/fastcdc-go"
	"lukechampine.com/blake3"
)

// BenchmarkJotfsFastCDC is the maintained Go FastCDC with the same sizes,
// for comparison with BenchmarkCut (see docs/cas.md).
func BenchmarkJotfsFastCDC(b *testing.B) {
	data := randBytes(1, 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c, err := fastcdc.NewChunker(bytes.NewReader(data), fastcdc.Options{MinSize: MinChunk, AverageSize: AvgChunk, MaxSize: MaxChunk})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := c.Next(); err != nil {
				break
			}
		}
	}
}

func BenchmarkSum256Chunk(b *testing.B) {
	data := randBytes(1, AvgChunk)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sum256(data)
	}
}

func BenchmarkBlake3LibSum256Chunk(b *testing.B) {
	data := randBytes(1, AvgChunk)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		blake3.Sum256(data)
	}
}

// BenchmarkScan is the chunk + hash pipeline without storing.
func BenchmarkScan(b *testing.B) {
	s := newStore(b)
	data := randBytes(2, 128<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := s.Scan(context.Background(), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutNew stores fresh data (SyncNone) each iteration.
func BenchmarkPutNew(b *testing.B) {
	data := randBytes(3, 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		b.StopTimer()
		s := newStore(b)
		b.StartTimer()
		put(b, s, data)
	}
}

// BenchmarkPutNewSynced is BenchmarkPutNew with the default durability
// (SyncBatch: each pack fdatasynced, indexes fsynced) into a store on the
// test's temporary directory: what `volt cas put` does.
func BenchmarkPutNewSynced(b *testing.B) {
	data := randBytes(3, 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		b.StopTimer()
		s := newStore(b)
		s.Sync = SyncBatch
		b.StartTimer()
		put(b, s, data)
	}
}

func BenchmarkGet(b *testing.B) {
	s := newStore(b)
	data := randBytes(4, 64<<20)
	ref, _ := put(b, s, data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := s.Get(context.Background(), ref, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
