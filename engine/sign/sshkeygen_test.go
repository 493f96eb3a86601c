package sign

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sshKeygen locates the real ssh-keygen or skips the test.
func sshKeygen(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed")
	}
	return p
}

// runKeygen runs ssh-keygen with stdin and returns stdout; it fails the test
// on a non-zero exit.
func runKeygen(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	out, err := tryKeygen(t, stdin, args...)
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// tryKeygen runs ssh-keygen and returns combined output and its error.
func tryKeygen(t testing.TB, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(sshKeygen(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// keygenKey makes a key with ssh-keygen and returns its private key path.
func keygenKey(t testing.TB, dir, name, typ, passphrase, comment string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	args := []string{"-q", "-t", typ, "-N", passphrase, "-C", comment, "-f", path}
	if typ == "rsa" {
		args = append(args, "-b", "1024") // smallest ssh-keygen makes; fast
	}
	if passphrase != "" {
		args = append(args, "-a", "2") // few KDF rounds: tests need not be slow
	}
	runKeygen(t, nil, args...)
	return path
}

// keygenSign signs data with ssh-keygen -Y sign and returns the armored signature.
func keygenSign(t testing.TB, key, namespace string, data []byte, extra ...string) []byte {
	t.Helper()
	args := append([]string{"-Y", "sign", "-f", key, "-n", namespace}, extra...)
	return runKeygen(t, data, append(args, "-q")...)
}

// keygenFingerprint returns the SHA256 fingerprint ssh-keygen -l prints for a public key file.
func keygenFingerprint(t testing.TB, pubPath string) string {
	t.Helper()
	f := strings.Fields(string(runKeygen(t, nil, "-l", "-E", "sha256", "-f", pubPath)))
	if len(f) < 2 {
		t.Fatalf("ssh-keygen -l: unexpected output %q", f)
	}
	return f[1]
}

func readPub(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestVoltSignatureAcceptedBySSHKeygen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "volt_ed25519")
	pub, err := GenerateKey(key, "ops@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(`{"schemaVersion":1,"name":"shop"}` + "\n")
	sig, err := s.Sign(data)
	if err != nil {
		t.Fatal(err)
	}
	sigPath := filepath.Join(dir, "bundle.sig")
	if err := os.WriteFile(sigPath, sig, 0o644); err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(dir, "allowed_signers")
	line := s.AllowedSignersLine("") + "\n"
	if want := `ops@example.com namespaces="volt-bundle" ` + keyOnly(pub) + "\n"; line != want {
		t.Fatalf("AllowedSignersLine = %q, want %q", line, want)
	}
	if err := os.WriteFile(allowed, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	verify := func(data []byte, principal, ns string) error {
		out, err := tryKeygen(t, data, "-Y", "verify", "-f", allowed, "-I", principal, "-n", ns, "-s", sigPath)
		if err != nil {
			return errors.New(string(out))
		}
		return nil
	}
	if err := verify(data, "ops@example.com", Namespace); err != nil {
		t.Fatalf("ssh-keygen -Y verify rejected Volt's signature: %v", err)
	}
	// The same check must be able to fail.
	if err := verify(append([]byte("x"), data...), "ops@example.com", Namespace); err == nil {
		t.Fatal("ssh-keygen accepted the signature over other bytes")
	}
	if err := verify(data, "ops@example.com", "file"); err == nil {
		t.Fatal("ssh-keygen accepted the signature in another namespace")
	}
	// And Volt accepts its own signature through the same file.
	f, err := os.Open(allowed)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ts, err := ParseAllowedSigners(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ts.Verify(data, sig)
	if err != nil {
		t.Fatal(err)
	}
	if got.Principal != "ops@example.com" || got.Fingerprint != keygenFingerprint(t, key+".pub") {
		t.Fatalf("Verify = %+v", got)
	}
}

func TestSSHKeygenSignatureVerifiedByVolt(t *testing.T) {
	dir := t.TempDir()
	data := []byte("bundle.json bytes\n")
	tests := []struct {
		name, typ string
		extra     []string
		hash      string
	}{
		{"ed25519 sha512", "ed25519", nil, "sha512"},
		{"ed25519 sha256", "ed25519", []string{"-O", "hashalg=sha256"}, "sha256"},
		{"ecdsa", "ecdsa", nil, "sha512"},
		{"rsa", "rsa", nil, "sha512"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := keygenKey(t, dir, "k"+string(rune('a'+i)), tt.typ, "", "ci@example.com")
			sig := keygenSign(t, key, Namespace, data, tt.extra...)
			ts := &TrustStore{}
			if err := ts.AddAllowedSigners(strings.NewReader("ci@example.com,release@example.com "+readPub(t, key)+"\n"), "test"); err != nil {
				t.Fatal(err)
			}
			got, err := ts.Verify(data, sig)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := keygenFingerprint(t, key+".pub")
			if got.Principal != "ci@example.com,release@example.com" || got.Fingerprint != want ||
				got.HashAlgorithm != tt.hash || got.Namespace != Namespace {
				t.Fatalf("Verify = %+v, want fingerprint %s hash %s", got, want, tt.hash)
			}
			if _, err := ts.Verify(append(data, '!'), sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify over other bytes: %v, want ErrBadSignature", err)
			}
		})
	}
}

// Ed25519 signatures are deterministic, so Volt must write the very bytes
// ssh-keygen writes for the same key and data.
func TestSignByteIdenticalToSSHKeygen(t *testing.T) {
	dir := t.TempDir()
	key := keygenKey(t, dir, "id", "ed25519", "", "ops@example.com")
	s, err := LoadSigner(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("bundle "), 1000)} {
		want := keygenSign(t, key, Namespace, data)
		got, err := s.Sign(data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Sign(%d bytes) differs from ssh-keygen:\n got %q\nwant %q", len(data), got, want)
		}
	}
}

func TestLoadSignerSSHKeygenKeys(t *testing.T) {
	dir := t.TempDir()
	plain := keygenKey(t, dir, "plain", "ed25519", "", "plain@example.com")
	enc := keygenKey(t, dir, "enc", "ed25519", "correct horse", "enc@example.com")
	rsaKey := keygenKey(t, dir, "rsa", "rsa", "", "rsa@example.com")
	ecdsaKey := keygenKey(t, dir, "ecdsa", "ecdsa", "", "ecdsa@example.com")
	rsaEnc := keygenKey(t, dir, "rsaenc", "rsa", "pw", "rsa@example.com")
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pass := func(pw string) func() ([]byte, error) {
		return func() ([]byte, error) { return []byte(pw), nil }
	}
	failing := func() ([]byte, error) { return nil, errors.New("must not be asked") }
	tests := []struct {
		name       string
		path       string
		passphrase func() ([]byte, error)
		comment    string
		wantErr    error
		errText    string
	}{
		{name: "unencrypted", path: plain, comment: "plain@example.com"},
		{name: "unencrypted ignores passphrase func", path: plain, passphrase: failing, comment: "plain@example.com"},
		{name: "encrypted", path: enc, passphrase: pass("correct horse"), comment: "enc@example.com"},
		{name: "encrypted no source", path: enc, wantErr: ErrPassphraseRequired},
		{name: "encrypted wrong passphrase", path: enc, passphrase: pass("wrong"), wantErr: ErrBadPassphrase},
		{name: "passphrase source fails", path: enc, passphrase: failing, errText: "must not be asked"},
		{name: "rsa", path: rsaKey, wantErr: ErrNotEd25519, errText: "volt key generate"},
		{name: "ecdsa", path: ecdsaKey, wantErr: ErrNotEd25519, errText: "volt key generate"},
		{name: "encrypted rsa refused before asking", path: rsaEnc, passphrase: failing, wantErr: ErrNotEd25519},
		{name: "public key file", path: plain + ".pub", errText: "public key"},
		{name: "garbage", path: garbage, errText: "garbage"},
		{name: "missing", path: filepath.Join(dir, "nope"), wantErr: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadSigner(tt.path, tt.passphrase)
			if tt.wantErr != nil || tt.errText != "" {
				if err == nil {
					t.Fatal("LoadSigner succeeded, want error")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Comment() != tt.comment {
				t.Errorf("Comment = %q, want %q", s.Comment(), tt.comment)
			}
			if want := readPub(t, tt.path); s.PublicKey() != want {
				t.Errorf("PublicKey = %q, want %q", s.PublicKey(), want)
			}
			if want := keygenFingerprint(t, tt.path+".pub"); s.Fingerprint() != want {
				t.Errorf("Fingerprint = %q, want %q", s.Fingerprint(), want)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	for _, pw := range []string{"", "s3cret pass"} {
		t.Run("passphrase="+pw, func(t *testing.T) {
			dir := t.TempDir()
			key := filepath.Join(dir, "id_volt")
			pub, err := GenerateKey(key, "dev@example.com", []byte(pw))
			if err != nil {
				t.Fatal(err)
			}
			for path, mode := range map[string]os.FileMode{key: 0o600, key + ".pub": 0o644} {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != mode {
					t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), mode)
				}
			}
			if got := readPub(t, key); got != pub || !strings.HasSuffix(pub, " dev@example.com") {
				t.Fatalf(".pub = %q, returned %q", got, pub)
			}
			pem, _ := os.ReadFile(key)
			if !strings.HasPrefix(string(pem), "-----BEGIN OPENSSH PRIVATE KEY-----\n") {
				t.Fatalf("private key is not OpenSSH PEM: %q", pem[:40])
			}
			// ssh-keygen reads the private key back (with the passphrase).
			derived := strings.TrimSpace(string(runKeygen(t, nil, "-y", "-P", pw, "-f", key)))
			if fields := strings.Fields(pub); !strings.HasPrefix(derived, fields[0]+" "+fields[1]) {
				t.Fatalf("ssh-keygen -y = %q, want %q", derived, pub)
			}
			if pw != "" {
				if _, err := tryKeygen(t, nil, "-y", "-P", "", "-f", key); err == nil {
					t.Fatal("ssh-keygen read the encrypted key without a passphrase")
				}
			}
			s, err := LoadSigner(key, func() ([]byte, error) { return []byte(pw), nil })
			if err != nil {
				t.Fatal(err)
			}
			if s.PublicKey() != pub || s.Comment() != "dev@example.com" {
				t.Fatalf("loaded %q comment %q, want %q", s.PublicKey(), s.Comment(), pub)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 2 {
				t.Fatalf("dir holds %d entries, want the key pair only", len(entries))
			}
		})
	}
}

func TestGenerateKeyRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	first, err := GenerateKey(key, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(key)
	if _, err := GenerateKey(key, "b", nil); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second GenerateKey: %v, want ErrExist", err)
	}
	after, _ := os.ReadFile(key)
	if !bytes.Equal(before, after) || readPub(t, key) != first {
		t.Fatal("refused GenerateKey changed the existing key")
	}
	// A lone .pub also blocks, and nothing is created.
	lone := filepath.Join(dir, "lone")
	if err := os.WriteFile(lone+".pub", []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKey(lone, "c", nil); !errors.Is(err, os.ErrExist) {
		t.Fatalf("GenerateKey over lone .pub: %v, want ErrExist", err)
	}
	if _, err := os.Stat(lone); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("private key written despite refusal: %v", err)
	}
	second, err := GenerateKey(key, "b", nil, Overwrite())
	if err != nil {
		t.Fatal(err)
	}
	if second == first || readPub(t, key) != second {
		t.Fatalf("Overwrite did not replace the key: %q", second)
	}
	if _, err := GenerateKey(filepath.Join(dir, "nl"), "two\nlines", nil); err == nil {
		t.Fatal("GenerateKey accepted a multi-line comment")
	}
	if _, err := GenerateKey(filepath.Join(dir, "missing", "k"), "x", nil); err == nil {
		t.Fatal("GenerateKey into a missing directory succeeded")
	}
}
