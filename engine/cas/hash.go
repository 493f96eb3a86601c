package cas

import (
	"math/bits"

	"lukechampine.com/blake3/guts"
)

// batch is the number of bytes guts.CompressBuffer hashes in one SIMD pass.
const batch = guts.MaxSIMD * guts.ChunkSize

// hasher is a single-goroutine BLAKE3-256 hasher built on the guts package.
// lukechampine.com/blake3's Hasher starts goroutines on every large Write,
// which costs more than it saves on 64 KiB chunks when other goroutines
// already keep every core busy; this one hashes 16 KiB batches with AVX-512
// (or AVX2) in the calling goroutine. Its output equals blake3.Sum256.
type hasher struct {
	stack   [64][8]uint32
	counter uint64 // 1 KiB chunks pushed onto stack (a bit vector of occupied heights)
	buf     [batch]byte
	buflen  int
}

func (h *hasher) pushSubtree(cv [8]uint32, height int) {
	i := height
	for h.counter&(1<<i) != 0 {
		cv = guts.ChainingValue(guts.ParentNode(h.stack[i], cv, &guts.IV, 0))
		i++
	}
	h.stack[i] = cv
	h.counter += 1 << height
}

// Write adds p to the hash; it never fails.
func (h *hasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if h.buflen == 0 && len(p) > batch {
			h.pushSubtree(guts.ChainingValue(guts.CompressBuffer((*[batch]byte)(p[:batch]), batch, &guts.IV, h.counter, 0)), 4)
			p = p[batch:]
			continue
		}
		if h.buflen == batch {
			h.pushSubtree(guts.ChainingValue(guts.CompressBuffer(&h.buf, batch, &guts.IV, h.counter, 0)), 4)
			h.buflen = 0
		}
		c := copy(h.buf[h.buflen:], p)
		h.buflen += c
		p = p[c:]
	}
	return n, nil
}

// sum returns the BLAKE3-256 of everything written. It does not change the
// state (except scratch), so it must be called once, after the last Write.
func (h *hasher) sum() (out [32]byte) {
	// All full 1 KiB chunks of the buffer but the last chunk go into the
	// stack as eigentrees (largest first; counter is a multiple of 16 here).
	full := 0
	if h.buflen > 0 {
		full = (h.buflen - 1) / guts.ChunkSize
	}
	var scratch [batch]byte
	off := 0
	for full > 0 {
		height := bits.Len(uint(full)) - 1
		size := (1 << height) * guts.ChunkSize
		var n guts.Node
		if height == 0 {
			n = guts.CompressChunk(h.buf[off:off+size], &guts.IV, h.counter, 0)
		} else {
			copy(scratch[:], h.buf[off:off+size])
			n = guts.CompressBuffer(&scratch, size, &guts.IV, h.counter, 0)
		}
		h.pushSubtree(guts.ChainingValue(n), height)
		off += size
		full -= 1 << height
	}
	n := guts.CompressChunk(h.buf[off:h.buflen], &guts.IV, h.counter, 0)
	for i := bits.TrailingZeros64(h.counter); i < bits.Len64(h.counter); i++ {
		if h.counter&(1<<i) != 0 {
			n = guts.ParentNode(h.stack[i], guts.ChainingValue(n), &guts.IV, 0)
		}
	}
	n.Flags |= guts.FlagRoot
	words := guts.WordsToBytes(guts.CompressNode(n))
	copy(out[:], words[:32])
	return out
}

// sum256 returns the BLAKE3-256 of b in the calling goroutine.
func sum256(b []byte) [32]byte {
	var h hasher
	h.Write(b)
	return h.sum()
}
