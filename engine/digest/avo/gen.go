// Command avo generates engine/digest's BLAKE3 kernel (blake3_amd64.s):
//
//	cd engine/digest/avo && go run . -out ../blake3_amd64.s -pkg digest
//
// It is lukechampine.com/blake3 v1.4.1's avo/gen.go (MIT License,
// Copyright (c) 2020 Luke Champine) with one change: compressChunksAVX512
// loads each block of the 16 chunks with 16 plain loads and a 16×16
// transpose in registers instead of 16 VPGATHERDD, which are slow on the
// CPUs measured (docs/cas.md, "Hashing"), and adds
// compressParentsAVX512, 16 parent nodes at once with the same loads, in
// place of the AVX2 one. Only these two functions are generated.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	genGlobals()
	genCompressChunksAVX512()
	genCompressParentsAVX512()

	Generate()
}

var globals struct {
	iv           Mem
	seq          Mem
	seq64        Mem // for loadCounter
	shuffleRot8  Mem
	shuffleRot16 Mem
}

func genGlobals() {
	globals.iv = GLOBL("iv", RODATA|NOPTR)
	DATA(0*4, U32(0x6A09E667))
	DATA(1*4, U32(0xBB67AE85))
	DATA(2*4, U32(0x3C6EF372))
	DATA(3*4, U32(0xA54FF53A))

	globals.seq = GLOBL("seq", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		DATA(i*4, U32(i))
	}
	globals.seq64 = GLOBL("seq64", RODATA|NOPTR)
	for i := 0; i < 8; i++ {
		DATA(i*8, U64(i))
	}
	globals.shuffleRot8 = GLOBL("shuffle_rot8", RODATA|NOPTR)
	for i := 0; i < 8; i++ {
		DATA(i*4, U32(0x00030201+0x04040404*i))
	}
	globals.shuffleRot16 = GLOBL("shuffle_rot16", RODATA|NOPTR)
	for i := 0; i < 8; i++ {
		DATA(i*4, U32(0x01000302+0x04040404*i))
	}
}

func genCompressChunksAVX512() {
	TEXT("compressChunksAVX512", NOSPLIT, "func(cvs *[16][8]uint32, buf *[16384]byte, key *[8]uint32, counter uint64, flags uint32)")
	cvs := Mem{Base: Load(Param("cvs"), GP64())}
	buf := Mem{Base: Load(Param("buf"), GP64())}
	key := Mem{Base: Load(Param("key"), GP64())}
	// Parameters go through general registers: vet's asmdecl check
	// refuses 4-byte broadcasts and half-reads straight from the frame.
	counter := Load(Param("counter"), GP64()).(GPVirtual)
	flags := Load(Param("flags"), GP32()).(GPVirtual)

	var vs, mv [16]VecVirtual
	for i := range vs {
		vs[i], mv[i] = ZMM(), ZMM()
	}

	Comment("Initialize counter")
	counterLo := AllocLocal(64)
	counterHi := AllocLocal(64)
	VPBROADCASTD(counter.As32(), vs[0])
	VPADDD(globals.seq, vs[0], vs[0])
	VPCMPUD(Imm(1), globals.seq, vs[0], K1)
	SHRQ(Imm(32), counter)
	VPBROADCASTD(counter.As32(), vs[1])
	VPADDD_BCST(globals.seq.Offset(4), vs[1], K1, vs[1])
	VMOVDQU32(vs[0], counterLo)
	VMOVDQU32(vs[1], counterHi)

	Comment("Initialize flags")
	chunkFlags := AllocLocal(16 * 4)
	VPBROADCASTD(flags, vs[0])
	VMOVDQU32(vs[0], chunkFlags)
	ORL(Imm(1), chunkFlags.Offset(0*4))
	ORL(Imm(2), chunkFlags.Offset(15*4))

	Comment("Load key")
	for i := 0; i < 8; i++ {
		VPBROADCASTD(key.Offset(i*4), vs[i])
	}

	Comment("Loop index")
	loop := GP64()
	XORQ(loop, loop)
	Label("loop")

	Comment("Load the block of each chunk and transpose")
	loadTransposed16(buf, 1024, mv)
	ADDQ(Imm(64), buf.Base)

	Comment("Reload state vectors (other than CVs)")
	for i := 0; i < 4; i++ {
		VPBROADCASTD(globals.iv.Offset(i*4), vs[8+i])
	}
	VMOVDQU32(counterLo, vs[12])
	VMOVDQU32(counterHi, vs[13])
	VPBROADCASTD(globals.seq.Offset(4), vs[14])
	VPSLLD(Imm(6), vs[14], vs[14]) // 64
	VPBROADCASTD(chunkFlags.Idx(loop, 4), vs[15])

	performRoundsAVX512(vs, mv)

	Comment("Finalize CVs")
	for i := range vs[:8] {
		VPXORD(vs[i], vs[i+8], vs[i])
	}

	Comment("Loop")
	INCQ(loop)
	CMPQ(loop, U32(16))
	JNE(LabelRef("loop"))

	Comment("Finished; transpose CVs")
	VMOVDQU32(globals.seq, vs[8])
	VPSLLD(Imm(5), vs[8], vs[8]) // stride of 32
	for i, v := range vs[:8] {
		KXNORD(K1, K1, K1) // fastest way to set all bits to 1
		VPSCATTERDD(v, K1, cvs.Offset(i*4).Idx(vs[8], 1))
	}

	RET()
}

func performRoundsAVX512(vs, mv [16]VecVirtual) {
	g := func(a, b, c, d, mx, my VecVirtual) {
		VPADDD(a, b, a)
		VPADDD(mx, a, a)
		VPXORD(d, a, d)
		VPRORD(Imm(16), d, d)
		VPADDD(c, d, c)
		VPXORD(b, c, b)
		VPRORD(Imm(12), b, b)
		VPADDD(a, b, a)
		VPADDD(my, a, a)
		VPXORD(d, a, d)
		VPRORD(Imm(8), d, d)
		VPADDD(c, d, c)
		VPXORD(b, c, b)
		VPRORD(Imm(7), b, b)
	}

	for i := 0; i < 7; i++ {
		Comment(fmt.Sprintf("Round %v", i+1))
		g(vs[0], vs[4], vs[8], vs[12], mv[0], mv[1])
		g(vs[1], vs[5], vs[9], vs[13], mv[2], mv[3])
		g(vs[2], vs[6], vs[10], vs[14], mv[4], mv[5])
		g(vs[3], vs[7], vs[11], vs[15], mv[6], mv[7])
		g(vs[0], vs[5], vs[10], vs[15], mv[8], mv[9])
		g(vs[1], vs[6], vs[11], vs[12], mv[10], mv[11])
		g(vs[2], vs[7], vs[8], vs[13], mv[12], mv[13])
		g(vs[3], vs[4], vs[9], vs[14], mv[14], mv[15])

		// permute
		mv = [16]VecVirtual{
			mv[2], mv[6], mv[3], mv[10],
			mv[7], mv[0], mv[4], mv[13],
			mv[1], mv[11], mv[12], mv[5],
			mv[9], mv[14], mv[15], mv[8],
		}
	}
}

// loadTransposed16 sets mv[w] to word w of the 64-byte block at buf of
// each of 16 chunks stride bytes apart (lane j from chunk j): 16 loads and a
// 16×16 transpose of 32-bit words in four interleaving stages, as the
// BLAKE3 reference's AVX-512 code does (transpose_vecs_512). Pairs are
// combined as soon as they are loaded to keep few registers live.
func loadTransposed16(buf Mem, stride int, mv [16]VecVirtual) {
	row := func(j int) Mem { return buf.Offset(j * stride) }
	// Interleave 32-bit lanes of rows 2k and 2k+1.
	var s1 [16]VecVirtual // s1[2k] = lo(r2k, r2k+1), s1[2k+1] = hi(...)
	for k := 0; k < 8; k++ {
		a := ZMM()
		VMOVDQU32(row(2*k), a)
		s1[2*k], s1[2*k+1] = ZMM(), ZMM()
		VPUNPCKLDQ(row(2*k+1), a, s1[2*k])
		VPUNPCKHDQ(row(2*k+1), a, s1[2*k+1])
	}
	// Interleave 64-bit lanes: pairs (ab, cd), (ef, gh), ...; for each
	// group of four rows g, s2[4g+0..3] = lo(ab0,cd0), hi(ab0,cd0), lo(ab2,cd2), hi(ab2,cd2).
	var s2 [16]VecVirtual
	for g := 0; g < 4; g++ {
		ab0, ab2, cd0, cd2 := s1[4*g], s1[4*g+1], s1[4*g+2], s1[4*g+3]
		for i := 0; i < 4; i++ {
			s2[4*g+i] = ZMM()
		}
		VPUNPCKLQDQ(cd0, ab0, s2[4*g+0])
		VPUNPCKHQDQ(cd0, ab0, s2[4*g+1])
		VPUNPCKLQDQ(cd2, ab2, s2[4*g+2])
		VPUNPCKHQDQ(cd2, ab2, s2[4*g+3])
	}
	// Interleave 128-bit lanes: (abcd, efgh) and (ijkl, mnop).
	// s3[8h+i] = lo128(x_i, y_i) for i < 4, hi128(x_{i-4}, y_{i-4}) for i >= 4.
	var s3 [16]VecVirtual
	for h := 0; h < 2; h++ {
		for i := 0; i < 4; i++ {
			x, y := s2[8*h+i], s2[8*h+4+i]
			s3[8*h+i], s3[8*h+4+i] = ZMM(), ZMM()
			VSHUFI32X4(Imm(0x88), y, x, s3[8*h+i])
			VSHUFI32X4(Imm(0xdd), y, x, s3[8*h+4+i])
		}
	}
	// Interleave again with 256-bit granularity.
	for i := 0; i < 8; i++ {
		VSHUFI32X4(Imm(0x88), s3[8+i], s3[i], mv[i])
		VSHUFI32X4(Imm(0xdd), s3[8+i], s3[i], mv[8+i])
	}
}

// genCompressParentsAVX512 compresses 16 parent nodes at once: the 32
// chaining values at cvs, pairwise, to the 16 chaining values at out
// (out may be cvs: every input is loaded before any output is stored).
func genCompressParentsAVX512() {
	TEXT("compressParentsAVX512", NOSPLIT, "func(out *[16][8]uint32, cvs *[32][8]uint32, key *[8]uint32, flags uint32)")
	out := Mem{Base: Load(Param("out"), GP64())}
	cvs := Mem{Base: Load(Param("cvs"), GP64())}
	key := Mem{Base: Load(Param("key"), GP64())}
	flags := Load(Param("flags"), GP32()).(GPVirtual)

	var vs, mv [16]VecVirtual
	for i := range vs {
		vs[i], mv[i] = ZMM(), ZMM()
	}
	Comment("Load the 16 parent blocks (two chaining values each) and transpose")
	loadTransposed16(cvs, 64, mv)

	Comment("Initialize state vectors")
	for i := 0; i < 8; i++ {
		VPBROADCASTD(key.Offset(i*4), vs[i])
	}
	for i := 0; i < 4; i++ {
		VPBROADCASTD(globals.iv.Offset(i*4), vs[8+i])
	}
	VPXORD(vs[12], vs[12], vs[12]) // counter 0
	VPXORD(vs[13], vs[13], vs[13])
	VPBROADCASTD(globals.seq.Offset(4), vs[14])
	VPSLLD(Imm(6), vs[14], vs[14]) // blockLen 64
	ORL(Imm(4), flags)             // flagParent
	VPBROADCASTD(flags, vs[15])

	performRoundsAVX512(vs, mv)

	Comment("Finalize CVs")
	for i := range vs[:8] {
		VPXORD(vs[i], vs[i+8], vs[i])
	}
	Comment("Store: lane j to out[j]")
	VMOVDQU32(globals.seq, vs[8])
	VPSLLD(Imm(5), vs[8], vs[8]) // stride of 32
	for i, v := range vs[:8] {
		KXNORD(K1, K1, K1)
		VPSCATTERDD(v, K1, out.Offset(i*4).Idx(vs[8], 1))
	}
	RET()
}
