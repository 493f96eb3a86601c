package sign

// SSHSIG, as specified by PROTOCOL.sshsig in OpenSSH:
//
//	signature blob:  byte[6] "SSHSIG" | uint32 1 | string publickey |
//	                 string namespace | string reserved | string hash_algorithm |
//	                 string signature
//	signed data:     byte[6] "SSHSIG" | string namespace | string reserved |
//	                 string hash_algorithm | string H(message)
//
// armored as "-----BEGIN SSH SIGNATURE-----", base64 wrapped at 70 columns,
// "-----END SSH SIGNATURE-----".

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

const (
	armorBegin  = "-----BEGIN SSH SIGNATURE-----"
	armorEnd    = "-----END SSH SIGNATURE-----"
	armorWidth  = 70
	sigMagic    = "SSHSIG"
	sigVersion  = 1
	hashSHA256  = "sha256"
	hashSHA512  = "sha512"
	maxSigField = 1 << 16 // no field of a real signature comes near this
)

// sshSig is a decoded SSHSIG signature blob.
type sshSig struct {
	pub       ssh.PublicKey
	namespace string
	reserved  []byte
	hashAlg   string
	sig       *ssh.Signature
}

// supportedKeyTypes are the key types whose SSHSIG signatures Volt verifies.
// Security-key (sk-*) and certificate signatures are refused as unsupported.
var supportedKeyTypes = map[string]bool{
	ssh.KeyAlgoED25519:  true,
	ssh.KeyAlgoRSA:      true,
	ssh.KeyAlgoECDSA256: true,
	ssh.KeyAlgoECDSA384: true,
	ssh.KeyAlgoECDSA521: true,
}

// hashMessage hashes data with the named SSHSIG hash algorithm.
func hashMessage(alg string, data []byte) ([]byte, error) {
	switch alg {
	case hashSHA512:
		h := sha512.Sum512(data)
		return h[:], nil
	case hashSHA256:
		h := sha256.Sum256(data)
		return h[:], nil
	}
	return nil, fmt.Errorf("unsupported hash algorithm %q", alg)
}

// putString appends an SSH wire string (uint32 length + bytes).
func putString(b []byte, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// signedData returns the bytes an SSHSIG signature is computed over. The
// reserved field is always signed empty, as ssh-keygen does.
func signedData(namespace, hashAlg string, msgHash []byte) []byte {
	b := []byte(sigMagic)
	b = putString(b, []byte(namespace))
	b = putString(b, nil)
	b = putString(b, []byte(hashAlg))
	return putString(b, msgHash)
}

// signEd25519 makes an SSHSIG signature over data with an ed25519 key, hash sha512.
func signEd25519(priv ed25519.PrivateKey, pub ssh.PublicKey, namespace string, data []byte) *sshSig {
	h := sha512.Sum512(data)
	blob := ed25519.Sign(priv, signedData(namespace, hashSHA512, h[:]))
	return &sshSig{
		pub:       pub,
		namespace: namespace,
		hashAlg:   hashSHA512,
		sig:       &ssh.Signature{Format: ssh.KeyAlgoED25519, Blob: blob},
	}
}

// marshal encodes the signature blob.
func (s *sshSig) marshal() []byte {
	b := []byte(sigMagic)
	b = binary.BigEndian.AppendUint32(b, sigVersion)
	b = putString(b, s.pub.Marshal())
	b = putString(b, []byte(s.namespace))
	b = putString(b, s.reserved)
	b = putString(b, []byte(s.hashAlg))
	return putString(b, ssh.Marshal(s.sig))
}

// armor encodes the signature exactly as ssh-keygen -Y sign writes it.
func (s *sshSig) armor() []byte {
	enc := base64.StdEncoding.EncodeToString(s.marshal())
	var b bytes.Buffer
	b.WriteString(armorBegin + "\n")
	for len(enc) > armorWidth {
		b.WriteString(enc[:armorWidth] + "\n")
		enc = enc[armorWidth:]
	}
	b.WriteString(enc + "\n")
	b.WriteString(armorEnd + "\n")
	return b.Bytes()
}

// verify checks the signature over data; failures wrap ErrBadSignature.
func (s *sshSig) verify(data []byte) error {
	h, err := hashMessage(s.hashAlg, data)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if s.sig.Format == ssh.KeyAlgoRSA {
		return fmt.Errorf("%w: RSA signature uses SHA-1", ErrBadSignature)
	}
	if err := s.pub.Verify(signedData(s.namespace, s.hashAlg, h), s.sig); err != nil {
		return fmt.Errorf("%w: does not verify over these bytes", ErrBadSignature)
	}
	return nil
}

// describe returns the trust-independent description of the signature.
func (s *sshSig) describe() *Signature {
	return &Signature{
		PublicKey:     authorizedKey(s.pub, ""),
		Fingerprint:   ssh.FingerprintSHA256(s.pub),
		Namespace:     s.namespace,
		HashAlgorithm: s.hashAlg,
	}
}

// wireReader decodes SSH wire-format fields; the first failure sticks.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated %s", what)
	}
}

func (r *wireReader) raw(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail(what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *wireReader) uint32(what string) uint32 {
	v := r.raw(4, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (r *wireReader) string(what string) []byte {
	n := r.uint32(what)
	if r.err != nil {
		return nil
	}
	if n > maxSigField {
		r.err = fmt.Errorf("%s too long (%d bytes)", what, n)
		return nil
	}
	return r.raw(int(n), what)
}

// dearmor extracts the signature blob from armored text. Surrounding
// whitespace and CRLF line ends are accepted.
func dearmor(in []byte) ([]byte, error) {
	s := strings.TrimSpace(string(in))
	if s == "" {
		return nil, ErrNoSignature
	}
	if !strings.HasPrefix(s, armorBegin) {
		return nil, fmt.Errorf("%w: missing %q line", ErrMalformed, armorBegin)
	}
	if !strings.HasSuffix(s, armorEnd) {
		return nil, fmt.Errorf("%w: missing %q line", ErrMalformed, armorEnd)
	}
	body := strings.TrimSuffix(strings.TrimPrefix(s, armorBegin), armorEnd)
	body = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, body)
	if body == "" {
		return nil, fmt.Errorf("%w: empty armor", ErrMalformed)
	}
	blob, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: armor: %v", ErrMalformed, err)
	}
	return blob, nil
}

// parseBlob decodes an SSHSIG signature blob; failures wrap ErrMalformed.
func parseBlob(blob []byte) (*sshSig, error) {
	s, err := decodeBlob(blob)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return s, nil
}

func decodeBlob(blob []byte) (*sshSig, error) {
	r := &wireReader{b: blob}
	if magic := r.raw(len(sigMagic), "magic"); r.err == nil && string(magic) != sigMagic {
		return nil, errors.New("not an SSHSIG blob")
	}
	version := r.uint32("version")
	if r.err == nil && version != sigVersion {
		return nil, fmt.Errorf("unsupported SSHSIG version %d", version)
	}
	pubBlob := r.string("public key")
	namespace := r.string("namespace")
	reserved := r.string("reserved")
	hashAlg := r.string("hash algorithm")
	sigBlob := r.string("signature")
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d bytes of trailing data", len(r.b))
	}
	if len(namespace) == 0 {
		return nil, errors.New("empty namespace")
	}
	if _, err := hashMessage(string(hashAlg), nil); err != nil {
		return nil, err
	}
	pub, err := ssh.ParsePublicKey(pubBlob)
	if err != nil {
		return nil, fmt.Errorf("public key: %v", err)
	}
	if !supportedKeyTypes[pub.Type()] {
		return nil, fmt.Errorf("unsupported key type %q", pub.Type())
	}
	sr := &wireReader{b: sigBlob}
	format := sr.string("signature format")
	sigBytes := sr.string("signature value")
	if sr.err != nil {
		return nil, sr.err
	}
	if len(sr.b) != 0 {
		return nil, fmt.Errorf("%d bytes of trailing data in signature", len(sr.b))
	}
	return &sshSig{
		pub:       pub,
		namespace: string(namespace),
		reserved:  reserved,
		hashAlg:   string(hashAlg),
		sig:       &ssh.Signature{Format: string(format), Blob: sigBytes},
	}, nil
}

// parseArmored dearmors and decodes a signature; failures wrap ErrNoSignature
// or ErrMalformed.
func parseArmored(in []byte) (*sshSig, error) {
	blob, err := dearmor(in)
	if err != nil {
		return nil, err
	}
	return parseBlob(blob)
}

// Inspect reads an armored signature without checking it or trusting its key,
// returning its key, fingerprint, namespace and hash algorithm (Principal is
// empty). Errors wrap ErrNoSignature or ErrMalformed.
func Inspect(armoredSig []byte) (*Signature, error) {
	s, err := parseArmored(armoredSig)
	if err != nil {
		return nil, err
	}
	return s.describe(), nil
}

// authorizedKey renders pub in authorized_keys form, with comment when non-empty.
func authorizedKey(pub ssh.PublicKey, comment string) string {
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n")
	if comment != "" {
		line += " " + comment
	}
	return line
}
