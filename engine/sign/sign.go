// Package sign holds Volt's signing keys and signatures: OpenSSH ed25519 keys
// (the files `ssh-keygen -t ed25519` writes), SSHSIG signatures (the armored
// format of `ssh-keygen -Y sign`, namespace "volt-bundle") and the set of
// trusted signers, kept in OpenSSH allowed_signers form.
//
// Everything here interoperates with ssh-keygen both ways: a signature made by
// Signer.Sign is accepted by `ssh-keygen -Y verify`, and one made by
// `ssh-keygen -Y sign` is accepted by TrustStore.Verify. The package never
// prints; hints for people are carried in error values.
package sign

import (
	"errors"
	"fmt"
)

// Namespace is the SSHSIG namespace of bundle signatures; a signature made
// for any other namespace never verifies.
const Namespace = "volt-bundle"

// EnvPassphrase names the environment variable PassphraseFromEnvOrTerminal
// reads a private key passphrase from.
const EnvPassphrase = "VOLT_SIGN_PASSPHRASE"

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrNoSignature: the signature is empty (zero bytes or only whitespace).
	ErrNoSignature = errors.New("no signature")
	// ErrMalformed: the input is not an armored SSHSIG signature Volt can read.
	ErrMalformed = errors.New("malformed signature")
	// ErrBadSignature: the signature is well formed but does not verify over
	// the given bytes in namespace Namespace.
	ErrBadSignature = errors.New("bad signature")
	// ErrUntrusted: the signature verifies but its key is not trusted for
	// Namespace; the error is an *UntrustedError naming the key.
	ErrUntrusted = errors.New("untrusted signer")
	// ErrNotEd25519: a private key file holds a key that is not ed25519.
	ErrNotEd25519 = errors.New("not an ed25519 key")
	// ErrPassphraseRequired: a private key is encrypted and no passphrase
	// source is available.
	ErrPassphraseRequired = errors.New("passphrase required")
	// ErrBadPassphrase: the passphrase does not decrypt the private key.
	ErrBadPassphrase = errors.New("incorrect passphrase")
)

// Signature describes a parsed signature: who made it and how.
type Signature struct {
	// Principal is the principals field of the trusted allowed_signers entry
	// that matched (comma-separated, as written); empty from Inspect.
	Principal string `json:"principal,omitempty"`
	// PublicKey is the signer's key in authorized_keys form, without comment.
	PublicKey string `json:"publicKey"`
	// Fingerprint is the key's SHA256 fingerprint as `ssh-keygen -l` prints it.
	Fingerprint string `json:"fingerprint"`
	// Namespace is the SSHSIG namespace the signature was made for.
	Namespace string `json:"namespace"`
	// HashAlgorithm is the message hash, "sha256" or "sha512".
	HashAlgorithm string `json:"hashAlgorithm"`
}

// UntrustedError reports a valid signature by a key that no trusted entry
// accepts for Namespace; errors.Is(err, ErrUntrusted) holds for it.
type UntrustedError struct {
	// PublicKey is the signer's key in authorized_keys form, without comment.
	PublicKey string
	// Fingerprint is the key's SHA256 fingerprint.
	Fingerprint string
	// Reason says why a listed key was not accepted; empty when it is not listed.
	Reason string
}

// Error names the key by fingerprint and, when the key is listed, why it was refused.
func (e *UntrustedError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("%v: key %s is not in the trusted signers", ErrUntrusted, e.Fingerprint)
	}
	return fmt.Sprintf("%v: key %s: %s", ErrUntrusted, e.Fingerprint, e.Reason)
}

// Is makes errors.Is(err, ErrUntrusted) true.
func (e *UntrustedError) Is(target error) bool { return target == ErrUntrusted }
