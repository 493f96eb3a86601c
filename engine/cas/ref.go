package cas

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/volt-cli/volt/engine/digest"
)

// Scheme starts every object reference string.
const Scheme = "stellarium://"

// Ref names an object: the BLAKE3-256 of the object's whole bytes.
type Ref [32]byte

// ChunkID names a chunk: the BLAKE3-256 of the chunk's bytes.
type ChunkID [32]byte

// ParseRef parses "stellarium://<64 lowercase hex>". It also accepts a bare
// "blake3:<hex>" digest, which names the same object.
func ParseRef(s string) (Ref, error) {
	var r Ref
	h, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		h, ok = strings.CutPrefix(s, digest.Prefix)
	}
	if !ok || !parseHex(r[:], h) {
		return Ref{}, fmt.Errorf("parse ref %q: %w", s, ErrBadRef)
	}
	return r, nil
}

// RefFromDigest converts an engine/digest string ("blake3:<hex>") of a whole
// file to the ref the file has in the store.
func RefFromDigest(d string) (Ref, error) {
	if !digest.Valid(d) {
		return Ref{}, fmt.Errorf("parse digest %q: %w", d, ErrBadRef)
	}
	return ParseRef(d)
}

// parseHex decodes 64 lowercase hex digits into dst.
func parseHex(dst []byte, h string) bool {
	if len(h) != 2*len(dst) || strings.ToLower(h) != h {
		return false
	}
	_, err := hex.Decode(dst, []byte(h))
	return err == nil
}

// String returns "stellarium://<hex>".
func (r Ref) String() string { return Scheme + hex.EncodeToString(r[:]) }

// Hex returns the 64 hex digits of r.
func (r Ref) Hex() string { return hex.EncodeToString(r[:]) }

// Digest returns r as an engine/digest string, "blake3:<hex>": the digest of
// the object's bytes.
func (r Ref) Digest() string { return digest.Format(r[:]) }

// MarshalText encodes r as its String form (for JSON).
func (r Ref) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses the String form (for JSON).
func (r *Ref) UnmarshalText(b []byte) error {
	p, err := ParseRef(string(b))
	if err != nil {
		return err
	}
	*r = p
	return nil
}

// String returns the chunk's 64 hex digits.
func (c ChunkID) String() string { return hex.EncodeToString(c[:]) }

// MarshalText encodes c as hex (for JSON).
func (c ChunkID) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// ParseChunkID parses 64 lowercase hex digits.
func ParseChunkID(s string) (ChunkID, error) {
	var c ChunkID
	if !parseHex(c[:], s) {
		return ChunkID{}, fmt.Errorf("parse chunk id %q: %w", s, ErrBadRef)
	}
	return c, nil
}
