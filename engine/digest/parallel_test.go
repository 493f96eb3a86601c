package digest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestReaderAtMatchesBytes checks the segment-parallel hasher against the
// streaming hasher at sizes around chunk, SIMD-buffer and segment boundaries.
func TestReaderAtMatchesBytes(t *testing.T) {
	max := 3*SegmentSize + 5*1024 + 7
	data := make([]byte, max)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	sizes := []int{0, 1, 1024, 1025, 2*SegmentSize + 1, 2*SegmentSize + 1024, 3 * SegmentSize, 3*SegmentSize + 1, 3*SegmentSize + 1024, 3*SegmentSize + 1025, 3*SegmentSize + 16*1024, max}
	// Both subtree paths: Volt's kernels (where the CPU has AVX-512) and guts.
	defer func(old bool) { haveKernel = old }(haveKernel)
	for _, kernel := range []bool{haveKernel, false} {
		haveKernel = kernel
		readerAtSizes(t, data, sizes)
	}
}

func readerAtSizes(t *testing.T, data []byte, sizes []int) {
	for _, n := range sizes {
		for _, off := range []int64{0, 7} {
			if int(off)+n > len(data) {
				continue
			}
			want := Bytes(data[off : int(off)+n])
			got, err := ReaderAt(context.Background(), bytes.NewReader(data), off, int64(n), 4, nil)
			if err != nil {
				t.Fatalf("n=%d off=%d: %v", n, off, err)
			}
			if got != want {
				t.Errorf("n=%d off=%d: got %s, want %s", n, off, got, want)
			}
		}
	}
}

func TestReaderAtShortInput(t *testing.T) {
	data := make([]byte, 3*SegmentSize)
	for _, workers := range []int{1, 2} {
		_, err := ReaderAt(context.Background(), bytes.NewReader(data), 0, int64(len(data))+1, workers, nil)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("workers=%d: err = %v, want io.ErrUnexpectedEOF", workers, err)
		}
	}
}

func TestReaderAtCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := make([]byte, 3*SegmentSize)
	if _, err := ReaderAt(ctx, bytes.NewReader(data), 0, int64(len(data)), 2, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// TestReaderAtMatchesB3sum checks the parallel hasher against the real b3sum.
func TestReaderAtMatchesB3sum(t *testing.T) {
	b3, err := exec.LookPath("b3sum")
	if err != nil {
		t.Skip("b3sum not installed")
	}
	path := filepath.Join(t.TempDir(), "f")
	data := make([]byte, 2*SegmentSize+3*1024*1024+123)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(b3, "--no-names", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ReaderAt(context.Background(), f, 0, int64(len(data)), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := Prefix + strings.TrimSpace(string(out)); got != want {
		t.Errorf("got %s, b3sum says %s", got, want)
	}
}

func BenchmarkReaderAt(b *testing.B) {
	data := make([]byte, 256<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ReaderAt(context.Background(), bytes.NewReader(data), 0, int64(len(data)), 2, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFile hashes the file named by $VOLT_BENCH_FILE on GOMAXPROCS
// workers, to compare with `b3sum --num-threads N` on the same bytes.
func BenchmarkFile(b *testing.B) {
	path := os.Getenv("VOLT_BENCH_FILE")
	if path == "" {
		b.Skip("set VOLT_BENCH_FILE to a large file")
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	b.SetBytes(fi.Size())
	for b.Loop() {
		if _, err := ReaderAt(context.Background(), f, 0, fi.Size(), runtime.GOMAXPROCS(0), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFileLarge checks File's parallel path (files over two segments) and
// its stream path give the plain BLAKE3 of the bytes.
func TestFileLarge(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{100, 2 * SegmentSize, 2*SegmentSize + 4097} {
		data := make([]byte, n)
		rng := rand.New(rand.NewPCG(uint64(n), 5))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		d, size, err := File(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := Bytes(data); d != want || size != int64(n) {
			t.Errorf("n=%d: File = %s %d, want %s %d", n, d, size, want, n)
		}
	}
}
