package sign

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair and returns the master and the slave's path.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	return master, fmt.Sprintf("/dev/pts/%d", n)
}

func TestPassphraseSource(t *testing.T) {
	env := func(v string, set bool) func(string) (string, bool) {
		return func(k string) (string, bool) {
			if k != EnvPassphrase {
				t.Errorf("looked up %q", k)
			}
			return v, set
		}
	}
	notTTY := filepath.Join(t.TempDir(), "file")
	writeFile(t, notTTY, nil)
	tests := []struct {
		name    string
		env     func(string) (string, bool)
		tty     string
		want    string
		wantErr error
	}{
		{"env", env("from env", true), "/nonexistent/tty", "from env", nil},
		{"env wins over terminal", env("from env", true), notTTY, "from env", nil},
		{"no env no tty", env("", false), "/nonexistent/tty", "", ErrPassphraseRequired},
		{"empty env no tty", env("", true), "/nonexistent/tty", "", ErrPassphraseRequired},
		{"tty path not a terminal", env("", false), notTTY, "", ErrPassphraseRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := passphraseSource(tt.env, tt.tty, "Passphrase: ")()
			if !errors.Is(err, tt.wantErr) || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), EnvPassphrase) {
				t.Fatalf("error %q does not name %s", err, EnvPassphrase)
			}
		})
	}
}

func TestPassphraseFromTerminal(t *testing.T) {
	master, slave := openPTY(t)
	type result struct {
		pw  []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		pw, err := passphraseSource(func(string) (string, bool) { return "", false }, slave, "Key passphrase: ")()
		done <- result{pw, err}
	}()
	// Wait for the prompt, then type the passphrase.
	var seen bytes.Buffer
	buf := make([]byte, 256)
	for !strings.Contains(seen.String(), "Key passphrase: ") {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatalf("read prompt: %v (saw %q)", err, seen.String())
		}
		seen.Write(buf[:n])
	}
	if _, err := master.WriteString("tty secret\n"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || string(r.pw) != "tty secret" {
		t.Fatalf("got %q, %v; want %q", r.pw, r.err, "tty secret")
	}
}

func TestLoadSignerWithEnvPassphrase(t *testing.T) {
	key := keygenKey(t, t.TempDir(), "k", "ed25519", "env pass", "env@example.com")
	t.Setenv(EnvPassphrase, "env pass")
	s, err := LoadSigner(key, PassphraseFromEnvOrTerminal("Passphrase: "))
	if err != nil {
		t.Fatal(err)
	}
	if s.Comment() != "env@example.com" {
		t.Fatalf("Comment = %q", s.Comment())
	}
	// Without the .pub file the comment of an encrypted key is unknown.
	if err := os.Remove(key + ".pub"); err != nil {
		t.Fatal(err)
	}
	if s, err = LoadSigner(key, PassphraseFromEnvOrTerminal("")); err != nil || s.Comment() != "" {
		t.Fatalf("LoadSigner without .pub: comment %q, %v", s.Comment(), err)
	}
}

// The checked-in ssh-keygen signatures keep verifying without ssh-keygen.
func TestTestdataSignatures(t *testing.T) {
	data := readFile(t, filepath.Join("testdata", "seed.txt"))
	f, err := os.Open(filepath.Join("testdata", "allowed_signers"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ts, err := ParseAllowedSigners(f)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ file, principal, hash string }{
		{"ssh-keygen-rsa.sig", "rsa", "sha512"},
		{"ssh-keygen-ecdsa.sig", "ec", "sha512"},
		{"ssh-keygen-ed25519-sha256.sig", "ops@example.com", "sha256"},
	}
	for _, tt := range tests {
		sig := readFile(t, filepath.Join("testdata", tt.file))
		got, err := ts.Verify(data, sig)
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if got.Principal != tt.principal || got.HashAlgorithm != tt.hash {
			t.Fatalf("%s: %+v", tt.file, got)
		}
		if _, err := ts.Verify(append(bytes.Clone(data), 'x'), sig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%s over other bytes: %v", tt.file, err)
		}
	}
}
