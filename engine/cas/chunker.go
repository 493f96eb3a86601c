package cas

// Chunking parameters. They match desync/casync defaults (16/64/256 KiB) and,
// together with the gear table, define where cut points fall: changing any of
// them changes every chunk id and defeats deduplication against existing
// stores, so they are part of the storage format.
const (
	// MinChunk is the smallest chunk the chunker emits (except an object's last chunk).
	MinChunk = 16 << 10
	// AvgChunk is the mean chunk size on random data (see normalChunk).
	AvgChunk = 64 << 10
	// MaxChunk is the largest chunk the chunker emits.
	MaxChunk = 256 << 10

	// normalChunk is where normalized chunking switches from the hard mask
	// to the easy one. FastCDC puts it at the average size, which makes the
	// mean chunk about 74 KiB with these masks; at 52 KiB the mean is
	// 64 KiB: min + (1-e^-a)·2^18 + e^-a·2^14 with a = (52-16) KiB / 2^18.
	normalChunk = 52 << 10

	// maskS is used before normalChunk (harder to match: 18 bits), maskL after
	// it (easier: 14 bits): FastCDC normalized chunking, level 2. The masks
	// take high bits of the gear hash (bit k depends on the last k+1 bytes)
	// but not the top bit, so that the two-bytes-a-step loop can test the
	// odd position as (fp<<1)&(mask<<1).
	maskS = uint64(1<<18-1) << (63 - 18)
	maskL = uint64(1<<14-1) << (63 - 14)
)

// gear is FastCDC's table of 256 random 64-bit values, generated with
// splitmix64 from a fixed seed. It must never change (see MinChunk).
var gear = func() (t [256]uint64) {
	x := uint64(0x5374656c6c617269) // "Stellari"
	for i := range t {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		t[i] = z ^ (z >> 31)
	}
	return t
}()

// gearLS is gear shifted left by one, for the two-bytes-a-step loop.
var gearLS = func() (t [256]uint64) {
	for i, g := range gear {
		t[i] = g << 1
	}
	return t
}()

// cut returns the length of the next chunk at the start of data: a FastCDC
// cut point (gear rolling hash, normalized chunking). The caller must pass at
// least MaxChunk bytes unless data is the end of the object.
//
// The loops roll two bytes a step (FastCDC 2020): with t = fp<<2 +
// gear[b0]<<1, the hash after b0 is t>>1 (its mask test is t&(mask<<1)) and
// the hash after b1 is t + gear[b1]. Cut points are the same as rolling one
// byte at a time.
func cut(data []byte) int {
	if len(data) <= MinChunk {
		return len(data)
	}
	d := data[:min(len(data), MaxChunk)]
	fp, n := roll(d[MinChunk:min(len(d), normalChunk)], 0, maskS)
	if n >= 0 {
		return MinChunk + n
	}
	if len(d) <= normalChunk {
		return len(d)
	}
	if _, n = roll(d[normalChunk:], fp, maskL); n >= 0 {
		return normalChunk + n
	}
	return len(d)
}

// roll continues the gear hash fp over s and returns the length of the
// prefix of s after which fp&mask == 0, or -1 with the final hash. The main
// loop takes four bytes a step, indexing rather than reslicing, with the
// tables and shifted mask in registers: about 1.5x the two-bytes-a-step
// loop with reslicing.
func roll(s []byte, fp, mask uint64) (uint64, int) {
	g, gl := &gear, &gearLS
	m2 := mask << 1
	i := 0
	for ; i+4 <= len(s); i += 4 {
		b := s[i : i+4 : i+4]
		t := fp<<2 + gl[b[0]]
		if t&m2 == 0 {
			return 0, i + 1
		}
		fp = t + g[b[1]]
		if fp&mask == 0 {
			return 0, i + 2
		}
		t = fp<<2 + gl[b[2]]
		if t&m2 == 0 {
			return 0, i + 3
		}
		fp = t + g[b[3]]
		if fp&mask == 0 {
			return 0, i + 4
		}
	}
	for ; i < len(s); i++ {
		fp = fp<<1 + g[s[i]]
		if fp&mask == 0 {
			return 0, i + 1
		}
	}
	return fp, -1
}

// cutSlow is cut rolling one byte at a time: the reference the tests
// compare cut against.
func cutSlow(data []byte) int {
	n := len(data)
	if n <= MinChunk {
		return n
	}
	n = min(n, MaxChunk)
	normal := min(normalChunk, n)
	var fp uint64
	for i := MinChunk; i < n; i++ {
		fp = fp<<1 + gear[data[i]]
		mask := maskL
		if i < normal {
			mask = maskS
		}
		if fp&mask == 0 {
			return i + 1
		}
	}
	return n
}
