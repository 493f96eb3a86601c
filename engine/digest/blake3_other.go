//go:build !amd64

package digest

// haveKernel: no assembly kernels off amd64 (segmentCV uses guts).
var haveKernel = false

// SubtreeKernel reports whether ReaderAt hashes its segments with Volt's
// AVX-512 kernels: never off amd64.
func SubtreeKernel() bool { return false }

func chunkCVs16(*[16][8]uint32, *[simdBytes]byte, uint64) { panic("no BLAKE3 kernel") }

func parentCVs16(*[16][8]uint32, *[32][8]uint32) { panic("no BLAKE3 kernel") }
