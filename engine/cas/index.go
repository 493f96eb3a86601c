package cas

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Index format (version 1), all integers unsigned LEB128 varints in their
// shortest form (so an index has exactly one encoding):
//
//	"STLRIDX\n"           8-byte magic
//	version               1
//	object BLAKE3         32 bytes (the Ref)
//	total size            bytes of the object
//	chunk count           N
//	N × (size, id)        chunk size (1..MaxIndexChunk), 32-byte chunk BLAKE3
//	checksum              32 bytes: BLAKE3 of every byte before it
//
// The chunk sizes must add up to the total size; nothing may follow the
// checksum. The checksum catches a damaged index before it is trusted to name
// chunks; the object BLAKE3 is checked only when the object is reassembled.
const (
	indexMagic   = "STLRIDX\n"
	indexVersion = 1
	// MaxIndexChunk is the largest chunk an index may list: the chunker never
	// makes chunks over MaxChunk, but indexes from other writers may use up to
	// this size.
	MaxIndexChunk = 16 << 20
)

// Chunk is one entry of an object's index.
type Chunk struct {
	ID   ChunkID `json:"id"`
	Size uint32  `json:"size"`
}

// Index is an object: its ref, size, and the chunks that make it up in order.
type Index struct {
	Ref    Ref
	Size   int64
	Chunks []Chunk
}

// MarshalBinary encodes x in index format version 1.
func (x *Index) MarshalBinary() ([]byte, error) {
	return encodeList(indexMagic, &x.Ref, x.Size, x.Chunks), nil
}

// encodeList writes the shared layout of object and pack indexes: magic,
// version, the ref (object indexes only), total size, chunks, checksum.
func encodeList(magic string, ref *Ref, size int64, chunks []Chunk) []byte {
	b := make([]byte, 0, len(magic)+1+32+20+len(chunks)*(32+4)+32)
	b = append(b, magic...)
	b = binary.AppendUvarint(b, indexVersion)
	if ref != nil {
		b = append(b, ref[:]...)
	}
	b = binary.AppendUvarint(b, uint64(size))
	b = binary.AppendUvarint(b, uint64(len(chunks)))
	for _, c := range chunks {
		b = binary.AppendUvarint(b, uint64(c.Size))
		b = append(b, c.ID[:]...)
	}
	sum := sum256(b)
	return append(b, sum[:]...)
}

// ParseIndex decodes and checks an index. It never panics and allocates no
// more than the input's size justifies; errors wrap ErrBadIndex.
func ParseIndex(b []byte) (*Index, error) { return parseList(b, indexMagic, true, ErrBadIndex) }

// parseList decodes the layout encodeList writes; errors wrap sentinel.
func parseList(b []byte, magic string, withRef bool, sentinel error) (*Index, error) {
	bad := func(format string, a ...any) (*Index, error) {
		return nil, fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, a...))
	}
	if len(b) < len(magic)+32 || !bytes.HasPrefix(b, []byte(magic)) {
		return bad("no index magic")
	}
	body, sum := b[:len(b)-32], b[len(b)-32:]
	if s := sum256(body); !bytes.Equal(s[:], sum) {
		return bad("checksum mismatch")
	}
	p := body[len(magic):]
	uvarint := func(what string) (uint64, error) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, fmt.Errorf("%w: truncated %s", sentinel, what)
		}
		if n != varintLen(v) {
			return 0, fmt.Errorf("%w: non-minimal varint for %s", sentinel, what)
		}
		p = p[n:]
		return v, nil
	}
	v, err := uvarint("version")
	if err != nil {
		return nil, err
	}
	if v != indexVersion {
		return bad("unsupported version %d", v)
	}
	x := &Index{}
	if withRef {
		if len(p) < 32 {
			return bad("truncated ref")
		}
		copy(x.Ref[:], p)
		p = p[32:]
	}
	size, err := uvarint("size")
	if err != nil {
		return nil, err
	}
	if size > 1<<62 {
		return bad("size %d too large", size)
	}
	n, err := uvarint("chunk count")
	if err != nil {
		return nil, err
	}
	if n > uint64(len(p)/33) {
		return bad("chunk count %d exceeds the data", n)
	}
	x.Size = int64(size)
	x.Chunks = make([]Chunk, n)
	var total uint64
	for i := range x.Chunks {
		cs, err := uvarint("chunk size")
		if err != nil {
			return nil, err
		}
		if cs == 0 || cs > MaxIndexChunk {
			return bad("chunk %d: size %d out of range", i, cs)
		}
		if len(p) < 32 {
			return bad("chunk %d: truncated id", i)
		}
		x.Chunks[i].Size = uint32(cs)
		copy(x.Chunks[i].ID[:], p)
		p = p[32:]
		total += cs
	}
	if len(p) != 0 {
		return bad("%d bytes of trailing data", len(p))
	}
	if total != size {
		return bad("chunk sizes add up to %d, index says %d", total, size)
	}
	return x, nil
}

// varintLen is the length of v's shortest uvarint encoding.
func varintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}
