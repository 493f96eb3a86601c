package sign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixedSigner returns a deterministic test signer; seed varies the key.
func fixedSigner(t testing.TB, seed byte, comment string) *Signer {
	t.Helper()
	s, err := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)), comment)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustSign(t testing.TB, s *Signer, data []byte) []byte {
	t.Helper()
	sig, err := s.Sign(data)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// keyOnly strips the comment from an authorized_keys line.
func keyOnly(line string) string {
	f := strings.Fields(line)
	return f[0] + " " + f[1]
}

// reArmor re-encodes a modified blob with the standard armor.
func reArmor(blob []byte) []byte {
	return []byte(armorBegin + "\n" + base64.StdEncoding.EncodeToString(blob) + "\n" + armorEnd + "\n")
}

func TestVerifyErrors(t *testing.T) {
	trusted := fixedSigner(t, 1, "ops@example.com")
	stranger := fixedSigner(t, 2, "eve@example.com")
	data := []byte(`{"name":"shop"}`)
	good := mustSign(t, trusted, data)
	blob, err := dearmor(good)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(blob)
		b[i] ^= 0x01
		return reArmor(b)
	}
	otherNS := signEd25519(trusted.priv, trusted.pub, "file", data).armor()
	lines := strings.Split(string(good), "\n")

	// ssh-keygen's own signature in a wrong namespace.
	dir := t.TempDir()
	kgKey := keygenKey(t, dir, "kg", "ed25519", "", "ops@example.com")
	kgWrongNS := keygenSign(t, kgKey, "git", data)

	ts := &TrustStore{}
	for _, l := range []string{trusted.PublicKey(), readPub(t, kgKey)} {
		if err := ts.AddKeyLine(l); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		data []byte
		sig  []byte
		want error
	}{
		{"good", data, good, nil},
		{"good with CRLF and padding", data, []byte("\r\n  " + strings.ReplaceAll(string(good), "\n", "\r\n")), nil},
		{"empty", data, nil, ErrNoSignature},
		{"whitespace", data, []byte(" \n\t\n"), ErrNoSignature},
		{"other bytes", []byte(`{"name":"shop2"}`), good, ErrBadSignature},
		{"truncated data", data[:len(data)-1], good, ErrBadSignature},
		{"untrusted key", data, mustSign(t, stranger, data), ErrUntrusted},
		{"wrong namespace", data, otherNS, ErrBadSignature},
		{"ssh-keygen wrong namespace", data, kgWrongNS, ErrBadSignature},
		{"flipped signature byte", data, flip(len(blob) - 1), ErrBadSignature},
		{"flipped magic", data, flip(0), ErrMalformed},
		{"flipped version", data, flip(9), ErrMalformed},
		{"truncated armor", data, []byte(strings.Join(lines[:3], "\n")), ErrMalformed},
		{"truncated body", data, []byte(strings.Join(append(lines[:2], lines[len(lines)-2:]...), "\n")), ErrMalformed},
		{"garbled base64", data, bytes.Replace(good, []byte("U1NI"), []byte("U!NI"), 1), ErrMalformed},
		{"truncated blob", data, reArmor(blob[:len(blob)-5]), ErrMalformed},
		{"trailing blob bytes", data, reArmor(append(bytes.Clone(blob), 0)), ErrMalformed},
		{"empty armor", data, []byte(armorBegin + "\n" + armorEnd + "\n"), ErrMalformed},
		{"no armor", data, blob, ErrMalformed},
		{"pgp armor", data, []byte("-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n"), ErrMalformed},
		{"two signatures", data, append(bytes.Clone(good), good...), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ts.Verify(tt.data, tt.sig)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got.Principal != "ops@example.com" || got.Fingerprint != trusted.Fingerprint() {
					t.Fatalf("Verify = %+v", got)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify err = %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrNoSignature, ErrMalformed, ErrBadSignature, ErrUntrusted} {
				if other != tt.want && errors.Is(err, other) {
					t.Fatalf("Verify err = %v is also %v", err, other)
				}
			}
		})
	}
}

func TestUntrustedErrorNamesKey(t *testing.T) {
	s := fixedSigner(t, 3, "")
	data := []byte("m")
	_, err := (*TrustStore)(nil).Verify(data, mustSign(t, s, data))
	var ue *UntrustedError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUntrusted) {
		t.Fatalf("err = %v, want *UntrustedError", err)
	}
	if ue.Fingerprint != s.Fingerprint() || ue.PublicKey != s.PublicKey() || !strings.Contains(err.Error(), s.Fingerprint()) {
		t.Fatalf("err = %v (%+v), want key %s", err, ue, s.Fingerprint())
	}
}

func TestVerifyTrustRestrictions(t *testing.T) {
	s := fixedSigner(t, 4, "")
	data := []byte("manifest")
	sig := mustSign(t, s, data)
	key := s.PublicKey()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		file      string
		principal string // "" = untrusted
		reason    string
	}{
		{"any namespace", "a@x " + key, "a@x", ""},
		{"namespace listed", `a@x namespaces="git,volt-bundle" ` + key, "a@x", ""},
		{"namespace pattern", `a@x namespaces="volt-*" ` + key, "a@x", ""},
		{"option name case", `a@x NameSpaces="volt-bundle" ` + key, "a@x", ""},
		{"namespace not listed", `a@x namespaces="git" ` + key, "", `namespaces "git"`},
		{"namespace negated", `a@x namespaces="*,!volt-bundle" ` + key, "", "namespaces"},
		{"valid window", `a@x valid-after="20260101",valid-before="20270101Z" ` + key, "a@x", ""},
		{"not yet valid", `a@x valid-after="202607010000Z" ` + key, "", "only from 2026-07-01T00:00:00Z"},
		{"expired", `a@x valid-before="20260531235959Z" ` + key, "", "only until"},
		{"second entry trusts", "a@x namespaces=\"git\" " + key + "\nb@x " + key, "b@x", ""},
		{"other key", "a@x " + fixedSigner(t, 5, "").PublicKey(), "", ""},
		{"wildcard principal", `"*" ` + key, "*", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, err := ParseAllowedSigners(strings.NewReader(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			ts.now = func() time.Time { return now }
			got, err := ts.Verify(data, sig)
			if tt.principal != "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got.Principal != tt.principal {
					t.Fatalf("Principal = %q, want %q", got.Principal, tt.principal)
				}
				return
			}
			var ue *UntrustedError
			if !errors.As(err, &ue) {
				t.Fatalf("Verify err = %v, want *UntrustedError", err)
			}
			if !strings.Contains(ue.Reason, tt.reason) || (tt.reason == "") != (ue.Reason == "") {
				t.Fatalf("Reason = %q, want it to contain %q", ue.Reason, tt.reason)
			}
		})
	}
}

func TestParseAllowedSigners(t *testing.T) {
	a := keyOnly(fixedSigner(t, 6, "").PublicKey())
	b := keyOnly(fixedSigner(t, 7, "").PublicKey())
	file := strings.Join([]string{
		"# trusted release keys",
		"",
		"   ",
		"ops@example.com " + a + " laptop key",
		`"Release Team,ci@example.com" namespaces="volt-bundle,git" ` + b,
		"\t# indented comment",
		"ci@example.com,ops@example.com " + b + "\r",
	}, "\n")
	ts, err := ParseAllowedSigners(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	got := ts.Entries()
	want := []Entry{
		{Principals: "ops@example.com", PublicKey: a, Fingerprint: fixedSigner(t, 6, "").Fingerprint(), Source: "allowed_signers:4"},
		{Principals: "Release Team,ci@example.com", PublicKey: b, Fingerprint: fixedSigner(t, 7, "").Fingerprint(), Namespaces: "volt-bundle,git", Source: "allowed_signers:5"},
		{Principals: "ci@example.com,ops@example.com", PublicKey: b, Fingerprint: fixedSigner(t, 7, "").Fingerprint(), Source: "allowed_signers:7"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || ts.Len() != 3 {
		t.Fatalf("Entries =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseAllowedSignersErrors(t *testing.T) {
	k := keyOnly(fixedSigner(t, 8, "").PublicKey())
	typ, b64, _ := strings.Cut(k, " ")
	rsaLike := "ssh-rsa " + b64
	tests := []struct {
		name   string
		file   string
		line   int
		reason string
	}{
		{"principal only", "# c\nops@example.com\n", 2, "missing key"},
		{"missing key after options", `a@x namespaces="volt-bundle"`, 1, "missing key"},
		{"bad base64", "\n\na@x " + typ + " AAAA!!!!", 3, "bad base64"},
		{"missing key data", "a@x " + typ, 1, "missing key data"},
		{"type mismatch", "a@x " + rsaLike, 1, "does not match"},
		{"not a key", "a@x ssh-ed25519 AAAAAAAA", 1, "ssh-ed25519"},
		{"cert-authority", "a@x cert-authority " + k, 1, "cert-authority is not supported"},
		{"unknown option", "a@x no-touch-required " + k, 1, `unsupported option "no-touch-required"`},
		{"unquoted value", "a@x namespaces=volt-bundle " + k, 1, "double-quoted"},
		{"unterminated value", `a@x namespaces="volt-bundle ` + k, 1, "unterminated"},
		{"empty namespaces", `a@x namespaces="" ` + k, 1, "lists no namespace"},
		{"bad time", `a@x valid-after="2026" ` + k, 1, "invalid time"},
		{"bad date", `a@x valid-after="20261399" ` + k, 1, "invalid time"},
		{"trailing comma", `a@x namespaces="x", ` + k, 1, "empty option"},
		{"junk after option", `a@x namespaces="x"y ` + k, 1, "unexpected"},
		{"unterminated principals", `"a@x ` + k, 1, "unterminated quoted principals"},
		{"empty principals", `"" ` + k, 1, "empty principals"},
		{"quoted principals run on", `"a@x"` + k, 1, "missing space"},
		{"long line", "a@x " + k + " " + strings.Repeat("c", maxLine), 1, "longer than"},
		{"good then bad", "a@x " + k + "\nb@x " + k + "\n\nc@x junk " + k, 4, "unsupported option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, err := ParseAllowedSigners(strings.NewReader(tt.file))
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v (store %v), want *LineError", err, ts)
			}
			if le.Line != tt.line || !strings.Contains(le.Reason, tt.reason) {
				t.Fatalf("err = %v, want line %d reason containing %q", err, tt.line, tt.reason)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("allowed_signers:%d: ", tt.line)) {
				t.Fatalf("err = %q, want allowed_signers:%d: prefix", err, tt.line)
			}
		})
	}
}

// ssh-keygen accepts the allowed_signers lines Volt accepts.
func TestAllowedSignersAgreesWithSSHKeygen(t *testing.T) {
	dir := t.TempDir()
	key := keygenKey(t, dir, "id", "ed25519", "", "x")
	data := []byte("data")
	sigPath := filepath.Join(dir, "sig")
	writeFile(t, sigPath, keygenSign(t, key, Namespace, data))
	k := keyOnly(readPub(t, key))
	for _, tc := range []struct{ line, principal string }{
		{`"Release Team,ci@example.com" namespaces="volt-bundle,git" ` + k + " comment", "Release Team"},
		{`ci@*.example.com Namespaces="volt-*",valid-after="20200101" ` + k, "ci@build.example.com"},
	} {
		ts, err := ParseAllowedSigners(strings.NewReader(tc.line))
		if err != nil {
			t.Fatalf("Volt rejects %q: %v", tc.line, err)
		}
		sig := readFile(t, sigPath)
		if _, err := ts.Verify(data, sig); err != nil {
			t.Fatalf("Volt Verify with %q: %v", tc.line, err)
		}
		allowed := filepath.Join(dir, "allowed")
		writeFile(t, allowed, []byte(tc.line+"\n"))
		if out, err := tryKeygen(t, data, "-Y", "verify", "-f", allowed, "-I", tc.principal, "-n", Namespace, "-s", sigPath); err != nil {
			t.Fatalf("ssh-keygen rejects %q: %s", tc.line, out)
		}
	}
}

func TestAddKeyLine(t *testing.T) {
	s := fixedSigner(t, 9, "ops@example.com")
	k := keyOnly(s.PublicKey())
	data := []byte("d")
	sig := mustSign(t, s, data)
	tests := []struct {
		name, line, principal, errText string
	}{
		{name: "authorized_keys with comment", line: s.PublicKey(), principal: "ops@example.com"},
		{name: "comment with spaces", line: "  " + k + " Ops Team laptop \n", principal: "Ops Team laptop"},
		{name: "no comment", line: k, principal: "*"},
		{name: "allowed_signers form", line: `ops@example.com namespaces="volt-bundle" ` + k, principal: "ops@example.com"},
		{name: "empty", line: "  ", errText: "empty"},
		{name: "comment", line: "# " + k, errText: "comment"},
		{name: "garbage key", line: "ssh-ed25519 AAAAC3Nza", errText: "bad base64"},
		{name: "authorized_keys options", line: `from="10.0.0.1" ` + k, errText: "options"},
		{name: "certificate type", line: "ssh-ed25519-cert-v01@openssh.com AAAA", errText: "ssh-ed25519-cert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := &TrustStore{}
			err := ts.AddKeyLine(tt.line)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) || ts.Len() != 0 {
					t.Fatalf("AddKeyLine err = %v, want one containing %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := ts.Verify(data, sig)
			if err != nil {
				t.Fatal(err)
			}
			if got.Principal != tt.principal || ts.Entries()[0].Source != "config" {
				t.Fatalf("Principal = %q, want %q", got.Principal, tt.principal)
			}
		})
	}
}

func TestAllowedSignersLine(t *testing.T) {
	data := []byte("d")
	for _, tc := range []struct{ comment, principal, want string }{
		{"ops@example.com", "", "ops@example.com"},
		{"", "", "*"},
		{"ops@example.com", "Release Team", "Release Team"},
		{"", "#odd", "#odd"},
	} {
		s := fixedSigner(t, 13, tc.comment)
		ts, err := ParseAllowedSigners(strings.NewReader(s.AllowedSignersLine(tc.principal)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ts.Verify(data, mustSign(t, s, data))
		if err != nil || got.Principal != tc.want {
			t.Fatalf("line %q: principal %+v, %v; want %q", s.AllowedSignersLine(tc.principal), got, err, tc.want)
		}
	}
}

func TestLoadTrustStore(t *testing.T) {
	dir := t.TempDir()
	a, b := fixedSigner(t, 10, "a@x"), fixedSigner(t, 11, "b@x")
	file := filepath.Join(dir, "allowed_signers")
	writeFile(t, file, []byte("a@x "+keyOnly(a.PublicKey())+"\n"))
	ts, err := LoadTrustStore([]string{file, filepath.Join(dir, "missing")}, []string{b.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Signer{a, b} {
		got, err := ts.Verify([]byte("x"), mustSign(t, s, []byte("x")))
		if err != nil || got.Principal != s.Comment() {
			t.Fatalf("Verify by %s: %+v, %v", s.Comment(), got, err)
		}
	}
	writeFile(t, file, []byte("# ok\nbroken\n"))
	if _, err := LoadTrustStore([]string{file}, nil); err == nil || !strings.Contains(err.Error(), file+":2:") {
		t.Fatalf("LoadTrustStore err = %v, want %s:2:", err, file)
	}
	if _, err := LoadTrustStore(nil, []string{"nonsense"}); err == nil {
		t.Fatal("LoadTrustStore accepted a bad key line")
	}
}

func TestInspect(t *testing.T) {
	s := fixedSigner(t, 12, "ops@example.com")
	got, err := Inspect(mustSign(t, s, []byte("anything")))
	if err != nil {
		t.Fatal(err)
	}
	want := Signature{PublicKey: keyOnly(s.PublicKey()), Fingerprint: s.Fingerprint(), Namespace: Namespace, HashAlgorithm: "sha512"}
	if *got != want {
		t.Fatalf("Inspect = %+v, want %+v", *got, want)
	}
	if _, err := Inspect(nil); !errors.Is(err, ErrNoSignature) {
		t.Fatalf("Inspect(nil) = %v", err)
	}
	if _, err := Inspect([]byte("junk")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Inspect(junk) = %v", err)
	}
}

func TestDefaultAllowedSignersPaths(t *testing.T) {
	tests := []struct {
		dir  string
		want []string
	}{
		{"/home/u/.config/volt", []string{"/home/u/.config/volt/allowed_signers", "/etc/volt/allowed_signers"}},
		{"/etc/volt", []string{"/etc/volt/allowed_signers"}},
		{"/etc/volt/", []string{"/etc/volt/allowed_signers"}},
		{"", []string{"/etc/volt/allowed_signers"}},
	}
	for _, tt := range tests {
		if got := DefaultAllowedSignersPaths(tt.dir); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("DefaultAllowedSignersPaths(%q) = %v, want %v", tt.dir, got, tt.want)
		}
	}
}

func TestMatchPatternList(t *testing.T) {
	tests := []struct {
		s, list string
		want    int
	}{
		{"volt-bundle", "volt-bundle", 1},
		{"volt-bundle", "git, volt-bundle", 1},
		{"volt-bundle", "volt-*", 1},
		{"volt-bundle", "volt-bundl?", 1},
		{"volt-bundle", "*", 1},
		{"volt-bundle", "volt", 0},
		{"volt-bundle", "*-bundlex", 0},
		{"volt-bundle", "*,!volt-*", -1},
		{"volt-bundle", "!git", 0},
		{"", "*", 1},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "*a*a*a*a*a*a*a*a*a*b", 0},
	}
	for _, tt := range tests {
		if got := matchPatternList(tt.s, tt.list); got != tt.want {
			t.Errorf("matchPatternList(%q, %q) = %d, want %d", tt.s, tt.list, got, tt.want)
		}
	}
}
