package sign

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseSignature feeds arbitrary bytes to the blob parser and, as armored
// text, to the armor parser: they
// must never panic, must fail only with ErrNoSignature or ErrMalformed, and
// whatever they accept must re-encode to a blob that parses to the same thing.
func FuzzParseSignature(f *testing.F) {
	s := fixedSigner(f, 1, "")
	good := mustSign(f, s, []byte("seed"))
	f.Add(good)
	f.Add(signEd25519(s.priv, s.pub, "file", nil).armor())
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.sig"))
	if len(seeds) == 0 {
		f.Fatal("no testdata/*.sig seeds")
	}
	for _, p := range seeds {
		f.Add(readFile(f, p))
	}
	f.Add([]byte(""))
	f.Add([]byte(armorBegin + "\n" + armorEnd))
	f.Add([]byte(armorBegin + "\nU1NIU0lHAAAAAQ==\n" + armorEnd))
	f.Add(good[:len(good)/2])
	f.Add(bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n")))
	if blob, err := dearmor(good); err == nil {
		f.Add(blob) // exercises the blob parser directly (see below)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if s, err := parseBlob(in); err == nil {
			again, err := parseBlob(s.marshal())
			if err != nil || *again.describe() != *s.describe() {
				t.Fatalf("blob round trip: %v", err)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("parseBlob error %v is not ErrMalformed", err)
		}
		info, err := Inspect(in)
		if err != nil {
			if !errors.Is(err, ErrNoSignature) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Inspect error %v is neither ErrNoSignature nor ErrMalformed", err)
			}
			return
		}
		sig, err := parseArmored(in)
		if err != nil {
			t.Fatalf("Inspect accepted but parseArmored failed: %v", err)
		}
		again, err := Inspect(sig.armor())
		if err != nil {
			t.Fatalf("re-armored signature does not parse: %v", err)
		}
		if *again != *info {
			t.Fatalf("round trip changed %+v into %+v", info, again)
		}
		// Verification of arbitrary accepted input must not panic either.
		if _, err := (&TrustStore{}).Verify([]byte("seed"), in); err == nil {
			t.Fatal("empty store trusted a signature")
		}
	})
}

// FuzzParseAllowedSigners feeds arbitrary files to the allowed_signers parser:
// it must never panic, errors must be *LineError with a line inside the
// input, and every accepted line must yield at most one entry.
func FuzzParseAllowedSigners(f *testing.F) {
	k := keyOnly(fixedSigner(f, 2, "").PublicKey())
	f.Add("ops@example.com " + k + "\n")
	f.Add("# comment\n\n\"Release Team,ci@x\" namespaces=\"volt-bundle\",valid-after=\"20260101Z\" " + k + " c\n")
	f.Add("a@x cert-authority " + k)
	f.Add(`a@x namespaces="a\"b",valid-before="202601011200" ` + k)
	f.Add("a@x ssh-ed25519 AAAA\n")
	f.Add(`"unterminated ` + k)
	f.Fuzz(func(t *testing.T, in string) {
		ts, err := ParseAllowedSigners(strings.NewReader(in))
		lines := strings.Count(in, "\n") + 1
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v is not a *LineError", err)
			}
			if le.Line < 1 || le.Line > lines {
				t.Fatalf("error line %d outside 1..%d", le.Line, lines)
			}
			return
		}
		if ts.Len() > lines {
			t.Fatalf("%d entries from %d lines", ts.Len(), lines)
		}
		for _, e := range ts.Entries() {
			if e.Principals == "" || e.Fingerprint == "" {
				t.Fatalf("entry without principals or key: %+v", e)
			}
		}
		// A single line must also be accepted or refused alike by AddKeyLine.
		if !strings.ContainsAny(in, "\n\r") {
			_ = (&TrustStore{}).AddKeyLine(in)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	s := fixedSigner(b, 1, "")
	data := bytes.Repeat([]byte("x"), 16<<10) // a large bundle.json
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := s.Sign(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	s := fixedSigner(b, 1, "")
	data := bytes.Repeat([]byte("x"), 16<<10)
	sig := mustSign(b, s, data)
	ts := &TrustStore{}
	if err := ts.AddKeyLine(s.PublicKey()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ts.Verify(data, sig); err != nil {
			b.Fatal(err)
		}
	}
}
