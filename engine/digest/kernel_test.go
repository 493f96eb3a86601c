package digest

import (
	"math/rand/v2"
	"testing"

	"lukechampine.com/blake3/guts"
)

// checkChunks compares the chunk kernel with lukechampine.com/blake3's
// reference (one chunk at a time) on buf at counter.
func checkChunks(t *testing.T, buf *[simdBytes]byte, counter uint64) {
	t.Helper()
	var got [16][8]uint32
	chunkCVs16(&got, buf, counter)
	for j := range got {
		want := guts.ChainingValue(guts.CompressChunk(buf[j*guts.ChunkSize:(j+1)*guts.ChunkSize], &guts.IV, counter+uint64(j), 0))
		if got[j] != want {
			t.Fatalf("counter %d, chunk %d: kernel %x, reference %x", counter, j, got[j], want)
		}
	}
}

// checkParents compares the parent kernel with the reference on in.
func checkParents(t *testing.T, in *[32][8]uint32) {
	t.Helper()
	var want [16][8]uint32
	for i := range want {
		want[i] = guts.ChainingValue(guts.ParentNode(in[2*i], in[2*i+1], &guts.IV, 0))
	}
	parentCVs16((*[16][8]uint32)(in[:16]), in) // in place, as segmentCV uses it
	if got := *(*[16][8]uint32)(in[:16]); got != want {
		t.Fatalf("parents: kernel %x, reference %x", got, want)
	}
}

// TestKernelMatchesReference checks the AVX-512 kernels (transposing
// loads, chunk and parent compression) against the reference on random
// input, on input where every word differs (a lane or word mix-up shows),
// and at chunk counters around the 32-bit carry.
func TestKernelMatchesReference(t *testing.T) {
	if !haveKernel {
		t.Skip("no AVX-512 here: segmentCV uses lukechampine.com/blake3/guts")
	}
	rng := rand.New(rand.NewPCG(9, 9))
	var buf [simdBytes]byte
	for _, counter := range []uint64{0, 16, 1 << 20, 1<<32 - 8, 1<<32 - 16, 1 << 32, 1<<40 + 3*16, 1<<63 - 16} {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		checkChunks(t, &buf, counter)
	}
	for i := 0; i < len(buf); i += 4 {
		buf[i], buf[i+1], buf[i+2], buf[i+3] = byte(i), byte(i>>8), byte(i>>16), 0x5a
	}
	checkChunks(t, &buf, 0)
	var in [32][8]uint32
	for r := 0; r < 4; r++ {
		for i := range in {
			for w := range in[i] {
				in[i][w] = rng.Uint32()
				if r == 0 {
					in[i][w] = uint32(i<<8 | w)
				}
			}
		}
		checkParents(t, &in)
	}
}

// FuzzKernel compares the kernels with the reference on fuzzed content
// (repeated to fill 16 chunks, and 32 chaining values) and counters.
func FuzzKernel(f *testing.F) {
	if !haveKernel {
		f.Skip("no AVX-512 here")
	}
	f.Add([]byte("volt"), uint64(0))
	f.Add([]byte{0xff, 0, 1}, uint64(1<<32-16))
	f.Fuzz(func(t *testing.T, seed []byte, counter uint64) {
		if len(seed) == 0 {
			seed = []byte{0}
		}
		var buf [simdBytes]byte
		for i := range buf {
			buf[i] = seed[i%len(seed)] ^ byte(i/len(seed))
		}
		checkChunks(t, &buf, counter&^15)
		var in [32][8]uint32
		for i := range in {
			for w := range in[i] {
				in[i][w] = uint32(buf[i*32+w*4]) | uint32(buf[i*32+w*4+1])<<8 | uint32(buf[i*32+w*4+2])<<16 | uint32(buf[i*32+w*4+3])<<24
			}
		}
		checkParents(t, &in)
	})
}

// BenchmarkSegment measures one core hashing one segment (8 MiB, in
// memory) to its chaining value: Volt's kernels against the guts path.
func BenchmarkSegment(b *testing.B) {
	data := make([]byte, SegmentSize)
	for i := range data {
		data[i] = byte(i * 7)
	}
	src := memSource(data)
	buf := make([]byte, BufSize)
	cvs := make([][8]uint32, SegmentSize/guts.ChunkSize)
	for _, k := range []struct {
		name   string
		kernel bool
	}{{"volt", true}, {"guts", false}} {
		b.Run(k.name, func(b *testing.B) {
			if k.kernel && !haveKernel {
				b.Skip("no AVX-512")
			}
			defer func(old bool) { haveKernel = old }(haveKernel)
			haveKernel = k.kernel
			b.SetBytes(SegmentSize)
			for b.Loop() {
				segmentCV(b.Context(), src, 0, 0, 13, buf, cvs)
			}
		})
	}
}

// memSource serves a byte slice in place.
type memSource []byte

func (m memSource) at(_ []byte, off int64, n int) ([]byte, error) { return m[off : off+int64(n)], nil }
