package cas

import (
	"bytes"
	"testing"
)

func TestCutMatchesReference(t *testing.T) {
	data := randBytes(1, 8<<20)
	for p := 0; p < len(data); {
		got, want := cut(data[p:]), cutSlow(data[p:])
		if got != want {
			t.Fatalf("offset %d: cut %d, one-byte reference %d", p, got, want)
		}
		p += got
	}
	// Short tails and odd lengths around the thresholds.
	for _, n := range []int{0, 1, MinChunk - 1, MinChunk, MinChunk + 1, MinChunk + 2, normalChunk - 1, normalChunk, normalChunk + 1, normalChunk + 2, MaxChunk - 1, MaxChunk, MaxChunk + 1} {
		if got, want := cut(data[:n]), cutSlow(data[:n]); got != want {
			t.Errorf("len %d: cut %d, reference %d", n, got, want)
		}
	}
}

func TestChunkSizes(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"random", randBytes(2, 32<<20)},
		{"zeros", make([]byte, 3<<20)},
		{"short", randBytes(3, 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := chunksOf(tt.data)
			var total int
			for i, c := range cs {
				total += len(c)
				if len(c) > MaxChunk || (len(c) < MinChunk && i != len(cs)-1) {
					t.Fatalf("chunk %d of %d has size %d", i, len(cs), len(c))
				}
			}
			if total != len(tt.data) {
				t.Fatalf("chunks add up to %d, want %d", total, len(tt.data))
			}
			if tt.name == "random" {
				avg := len(tt.data) / len(cs)
				if avg < AvgChunk*9/10 || avg > AvgChunk*11/10 {
					t.Fatalf("average chunk %d, want about %d", avg, AvgChunk)
				}
			}
		})
	}
}

// TestShiftResistance inserts bytes at the front: all but the first few
// chunks must be unchanged.
func TestShiftResistance(t *testing.T) {
	data := randBytes(4, 16<<20)
	before := map[string]bool{}
	for _, c := range chunksOf(data) {
		before[string(c)] = true
	}
	for _, prefix := range []string{"x", "hello", string(randBytes(5, 3000))} {
		after := chunksOf(append([]byte(prefix), data...))
		same := 0
		for _, c := range after {
			if before[string(c)] {
				same++
			}
		}
		if same < len(after)-2 {
			t.Errorf("prefix of %d bytes: only %d of %d chunks survive", len(prefix), same, len(after))
		}
	}
	if !bytes.Equal(chunksOf(data)[5], chunksOf(data)[5]) {
		t.Fatal("chunking is not deterministic")
	}
}

func BenchmarkCut(b *testing.B) {
	data := randBytes(1, 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for p := 0; p < len(data); {
			p += cut(data[p:])
		}
	}
}
