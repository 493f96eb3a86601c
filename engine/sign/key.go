package sign

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"
)

// keyHint tells people how to get a key Volt can use.
const keyHint = "make one with: volt key generate -o KEY"

// Signer signs bundle manifests with an ed25519 private key.
type Signer struct {
	priv    ed25519.PrivateKey
	pub     ssh.PublicKey
	comment string
}

// NewSigner wraps an ed25519 private key; comment is the key's label
// (conventionally user@host) and must be a single line.
func NewSigner(priv ed25519.PrivateKey, comment string) (*Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ed25519 private key: want %d bytes, got %d", ed25519.PrivateKeySize, len(priv))
	}
	if strings.ContainsAny(comment, "\r\n") {
		return nil, fmt.Errorf("key comment %q: must be a single line", comment)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("ed25519 public key: %w", err)
	}
	return &Signer{priv: priv, pub: pub, comment: comment}, nil
}

// PublicKey returns the public key as an authorized_keys line (no trailing
// newline), with the comment when there is one.
func (s *Signer) PublicKey() string { return authorizedKey(s.pub, s.comment) }

// Fingerprint returns the key's SHA256 fingerprint as `ssh-keygen -l` prints it ("SHA256:…").
func (s *Signer) Fingerprint() string { return ssh.FingerprintSHA256(s.pub) }

// Comment returns the key's comment; empty when the key file has none or it
// cannot be read without decrypting (see LoadSigner).
func (s *Signer) Comment() string { return s.comment }

// Sign returns an armored SSHSIG signature over data in namespace Namespace,
// hash sha512: the same bytes `ssh-keygen -Y sign -n volt-bundle` writes for
// this key. It never fails for a Signer made by NewSigner or LoadSigner.
func (s *Signer) Sign(data []byte) ([]byte, error) {
	return signEd25519(s.priv, s.pub, Namespace, data).armor(), nil
}

// AllowedSignersLine returns an allowed_signers line (no trailing newline)
// that trusts this key for Namespace only, under principal; an empty principal
// means the key's comment, or "*" when it has none.
func (s *Signer) AllowedSignersLine(principal string) string {
	if principal == "" {
		principal = s.comment
	}
	if principal == "" {
		principal = "*"
	}
	if strings.ContainsAny(principal, " \t\"") || strings.HasPrefix(principal, "#") {
		principal = `"` + strings.ReplaceAll(principal, `"`, "") + `"`
	}
	return principal + ` namespaces="` + Namespace + `" ` + authorizedKey(s.pub, "")
}

// KeyOption adjusts GenerateKey.
type KeyOption func(*keyOptions)

type keyOptions struct{ overwrite bool }

// Overwrite lets GenerateKey replace existing key files instead of failing.
func Overwrite() KeyOption { return func(o *keyOptions) { o.overwrite = true } }

// GenerateKey makes a new ed25519 key and writes it to path (OpenSSH private
// key, mode 0600, encrypted with passphrase when it is non-empty) and
// path+".pub" (authorized_keys line with comment, mode 0644), each published
// atomically. Unless Overwrite is given it fails with an error wrapping
// fs.ErrExist when either file exists. It returns the public key line.
func GenerateKey(path, comment string, passphrase []byte, opts ...KeyOption) (string, error) {
	var o keyOptions
	for _, opt := range opts {
		opt(&o)
	}
	pubPath := path + ".pub"
	if !o.overwrite {
		for _, p := range []string{path, pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return "", fmt.Errorf("generate key %q: %q: %w (choose another path or overwrite it)", path, p, fs.ErrExist)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("generate key %q: %w", path, err)
			}
		}
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate key %q: %w", path, err)
	}
	s, err := NewSigner(priv, comment)
	if err != nil {
		return "", fmt.Errorf("generate key %q: %w", path, err)
	}
	var block *pem.Block
	if len(passphrase) > 0 {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, comment, passphrase)
	} else {
		block, err = ssh.MarshalPrivateKey(priv, comment)
	}
	if err != nil {
		return "", fmt.Errorf("generate key %q: encode: %w", path, err)
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(block), 0o600, o.overwrite); err != nil {
		return "", fmt.Errorf("generate key %q: %w", path, err)
	}
	line := s.PublicKey()
	if err := writeFileAtomic(pubPath, []byte(line+"\n"), 0o644, o.overwrite); err != nil {
		if !o.overwrite {
			_ = os.Remove(path) // we created it just now; leave no half pair
		}
		return "", fmt.Errorf("generate key %q: %w", path, err)
	}
	return line, nil
}

// LoadSigner reads an ed25519 private key (OpenSSH format, as written by
// GenerateKey or `ssh-keygen -t ed25519`; PKCS#8 PEM also works). When the key
// is passphrase-protected it calls passphrase once; a nil passphrase func
// yields ErrPassphraseRequired and a wrong passphrase ErrBadPassphrase. Other
// key types fail with ErrNotEd25519. The comment comes from the key file when
// it is not encrypted, else from path+".pub" when that holds the same key.
func LoadSigner(path string, passphrase func() ([]byte, error)) (*Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	var missing *ssh.PassphraseMissingError
	encrypted := errors.As(err, &missing)
	if encrypted {
		if missing.PublicKey != nil && missing.PublicKey.Type() != ssh.KeyAlgoED25519 {
			return nil, notEd25519(path, missing.PublicKey.Type())
		}
		if passphrase == nil {
			return nil, fmt.Errorf("load key %q: key is encrypted: %w", path, ErrPassphraseRequired)
		}
		pw, perr := passphrase()
		if perr != nil {
			return nil, fmt.Errorf("load key %q: %w", path, perr)
		}
		raw, err = ssh.ParseRawPrivateKeyWithPassphrase(data, pw)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, fmt.Errorf("load key %q: %w", path, ErrBadPassphrase)
		}
	}
	if err != nil {
		if _, _, _, _, perr := ssh.ParseAuthorizedKey(data); perr == nil {
			return nil, fmt.Errorf("load key %q: this is a public key; pass the private key file", path)
		}
		return nil, fmt.Errorf("load key %q: %w", path, err)
	}
	var priv ed25519.PrivateKey
	switch k := raw.(type) {
	case *ed25519.PrivateKey:
		priv = *k
	case ed25519.PrivateKey:
		priv = k
	case *rsa.PrivateKey:
		return nil, notEd25519(path, ssh.KeyAlgoRSA)
	case *ecdsa.PrivateKey:
		return nil, notEd25519(path, "ecdsa")
	default:
		return nil, notEd25519(path, fmt.Sprintf("%T", raw))
	}
	s, err := NewSigner(priv, "")
	if err != nil {
		return nil, fmt.Errorf("load key %q: %w", path, err)
	}
	if !encrypted {
		s.comment = openSSHComment(data)
	}
	if s.comment == "" {
		s.comment = pubFileComment(path+".pub", s.pub)
	}
	return s, nil
}

func notEd25519(path, keyType string) error {
	return fmt.Errorf("load key %q: %s key: %w (%s)", path, keyType, ErrNotEd25519, keyHint)
}

// openSSHComment returns the comment of an unencrypted OpenSSH private key
// (PROTOCOL.key), or "" when data is anything else.
func openSSHComment(data []byte) string {
	const magic = "openssh-key-v1\x00"
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "OPENSSH PRIVATE KEY" || !bytes.HasPrefix(block.Bytes, []byte(magic)) {
		return ""
	}
	var outer struct {
		CipherName, KdfName, KdfOpts string
		NumKeys                      uint32
		PubKey, PrivKeyBlock         []byte
		Rest                         []byte `ssh:"rest"`
	}
	if ssh.Unmarshal(block.Bytes[len(magic):], &outer) != nil || outer.CipherName != "none" {
		return ""
	}
	var inner struct {
		Check1, Check2 uint32
		Keytype        string
		Rest           []byte `ssh:"rest"`
	}
	if ssh.Unmarshal(outer.PrivKeyBlock, &inner) != nil || inner.Keytype != ssh.KeyAlgoED25519 {
		return ""
	}
	var key struct {
		Pub, Priv []byte
		Comment   string
		Pad       []byte `ssh:"rest"`
	}
	if ssh.Unmarshal(inner.Rest, &key) != nil {
		return ""
	}
	return key.Comment
}

// pubFileComment returns the comment of the authorized_keys line in path when
// it holds pub, else "".
func pubFileComment(path string, pub ssh.PublicKey) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	k, comment, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil || !bytes.Equal(k.Marshal(), pub.Marshal()) || strings.ContainsAny(comment, "\r\n") {
		return ""
	}
	return comment
}

// PassphraseFromEnvOrTerminal returns a passphrase source for LoadSigner: the
// value of $VOLT_SIGN_PASSPHRASE when set and non-empty, else a line read
// without echo from the controlling terminal after writing prompt to it.
// With neither available it fails with ErrPassphraseRequired.
func PassphraseFromEnvOrTerminal(prompt string) func() ([]byte, error) {
	return passphraseSource(os.LookupEnv, "/dev/tty", prompt)
}

func passphraseSource(lookupEnv func(string) (string, bool), ttyPath, prompt string) func() ([]byte, error) {
	return func() ([]byte, error) {
		if v, ok := lookupEnv(EnvPassphrase); ok && v != "" {
			return []byte(v), nil
		}
		noTTY := fmt.Errorf("%w: set %s or run on a terminal", ErrPassphraseRequired, EnvPassphrase)
		tty, err := os.OpenFile(ttyPath, os.O_RDWR, 0)
		if err != nil {
			return nil, noTTY
		}
		defer tty.Close()
		fd := int(tty.Fd())
		if !term.IsTerminal(fd) {
			return nil, noTTY
		}
		if _, err := tty.WriteString(prompt); err != nil {
			return nil, fmt.Errorf("passphrase prompt: %w", err)
		}
		pw, err := term.ReadPassword(fd)
		_, _ = tty.WriteString("\n")
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		return pw, nil
	}
}
