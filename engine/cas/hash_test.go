package cas

import (
	"testing"

	"lukechampine.com/blake3"
)

func TestSum256MatchesBlake3(t *testing.T) {
	data := randBytes(7, 300<<10)
	lengths := []int{0, 1, 63, 64, 65, 1023, 1024, 1025, 2047, 2048, 2049, 3 * 1024, 15*1024 + 1, 16 * 1024, 16*1024 + 1, 17 * 1024, 31*1024 + 7, 32 * 1024, 64 * 1024, 65*1024 + 3, 100000, 256 << 10, 300 << 10}
	for l := 0; l < 5000; l += 37 {
		lengths = append(lengths, l)
	}
	for _, l := range lengths {
		want := blake3.Sum256(data[:l])
		if got := sum256(data[:l]); got != want {
			t.Fatalf("len %d: sum256 %x, blake3 %x", l, got, want)
		}
		// Streaming in odd pieces gives the same result.
		var h hasher
		for p := data[:l]; len(p) > 0; {
			n := min(len(p), 1+len(p)%9000)
			h.Write(p[:n])
			p = p[n:]
		}
		if got := h.sum(); got != want {
			t.Fatalf("len %d streamed: %x, blake3 %x", l, got, want)
		}
	}
}
