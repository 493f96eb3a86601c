package sign

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// SystemConfigDir is the system-wide configuration directory; its
// allowed_signers file is trusted by every user.
const SystemConfigDir = "/etc/volt"

// AllowedSignersFile is the name of the allowed_signers file in a config directory.
const AllowedSignersFile = "allowed_signers"

// DefaultAllowedSignersPaths lists the allowed_signers files Volt reads, most
// specific first: configDir/allowed_signers (configDir being the directory of
// $VOLT_CONFIG), then SystemConfigDir/allowed_signers when that differs.
// Files that do not exist are skipped by LoadTrustStore.
func DefaultAllowedSignersPaths(configDir string) []string {
	sys := filepath.Join(SystemConfigDir, AllowedSignersFile)
	if configDir == "" {
		return []string{sys}
	}
	p := filepath.Join(configDir, AllowedSignersFile)
	if filepath.Clean(p) == sys {
		return []string{sys}
	}
	return []string{p, sys}
}

// TrustStore is a set of trusted signers, each a public key with principals
// and optional restrictions (namespaces, validity window). The zero value and
// nil are empty stores. Not safe for concurrent mutation.
type TrustStore struct {
	entries []*trustEntry
	now     func() time.Time // nil: time.Now; set by tests
}

type trustEntry struct {
	principals  string
	key         ssh.PublicKey
	namespaces  string // pattern list; "" means every namespace
	validAfter  time.Time
	validBefore time.Time
	source      string
}

// Entry describes one trusted signer, for listing.
type Entry struct {
	// Principals is the principals field, comma-separated as written.
	Principals string `json:"principals"`
	// PublicKey is the key in authorized_keys form, without comment.
	PublicKey string `json:"publicKey"`
	// Fingerprint is the key's SHA256 fingerprint.
	Fingerprint string `json:"fingerprint"`
	// Namespaces is the namespaces="…" pattern list; empty means any.
	Namespaces string `json:"namespaces,omitempty"`
	// Source says where the entry came from ("FILE:LINE" or "config").
	Source string `json:"source"`
}

// LineError reports a line of an allowed_signers file that cannot be used.
type LineError struct {
	// Source names the file ("allowed_signers" when read from a bare reader).
	Source string
	// Line is the 1-based line number.
	Line int
	// Reason says what is wrong.
	Reason string
}

// Error renders "SOURCE:LINE: REASON", like ssh-keygen.
func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.Source, e.Line, e.Reason) }

// maxLine bounds one allowed_signers line (an RSA-16384 key is ~2.8 KiB).
const maxLine = 64 << 10

// ParseAllowedSigners reads an OpenSSH allowed_signers file (see ssh-keygen(1),
// ALLOWED SIGNERS). Errors are *LineError naming the line.
func ParseAllowedSigners(r io.Reader) (*TrustStore, error) {
	t := &TrustStore{}
	if err := t.AddAllowedSigners(r, AllowedSignersFile); err != nil {
		return nil, err
	}
	return t, nil
}

// AddAllowedSigners adds the entries of an allowed_signers stream to t;
// source names it in errors. On error t is unchanged.
func (t *TrustStore) AddAllowedSigners(r io.Reader, source string) error {
	var added []*trustEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		e, err := parseAllowedSignersLine(sc.Text())
		if err != nil {
			return &LineError{Source: source, Line: n, Reason: err.Error()}
		}
		if e != nil {
			e.source = fmt.Sprintf("%s:%d", source, n)
			added = append(added, e)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &LineError{Source: source, Line: n + 1, Reason: fmt.Sprintf("line longer than %d bytes", maxLine)}
		}
		return fmt.Errorf("read %s: %w", source, err)
	}
	t.entries = append(t.entries, added...)
	return nil
}

// AddKeyLine trusts one key given as a config value: an authorized_keys line
// ("ssh-ed25519 AAAA… ops@example.com", principal = the comment, or "*" when
// there is none) or an allowed_signers line ("ops@example.com ssh-ed25519 AAAA…").
func (t *TrustStore) AddKeyLine(line string) error {
	s := strings.TrimSpace(line)
	if s == "" {
		return errors.New("trusted key: empty")
	}
	var e *trustEntry
	var err error
	if looksLikeKeyType(firstField(s)) {
		var comment string
		e = &trustEntry{}
		e.key, comment, err = parseKey(s)
		e.principals = comment
		if e.principals == "" {
			e.principals = "*"
		}
	} else if strings.Contains(firstField(s), "=") {
		err = errors.New("authorized_keys options are not supported; give the key alone or an allowed_signers line")
	} else {
		e, err = parseAllowedSignersLine(s)
		if e == nil && err == nil {
			err = errors.New("a comment, not a key")
		}
	}
	if err != nil {
		return fmt.Errorf("trusted key %q: %w", abbreviate(s), err)
	}
	e.source = "config"
	t.entries = append(t.entries, e)
	return nil
}

// LoadTrustStore builds a store from allowed_signers files (those that do not
// exist are skipped) and config key lines (see AddKeyLine).
func LoadTrustStore(paths []string, keyLines []string) (*TrustStore, error) {
	t := &TrustStore{}
	for _, p := range paths {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("load trusted signers: %w", err)
		}
		err = t.AddAllowedSigners(f, p)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("load trusted signers: %w", err)
		}
	}
	for _, l := range keyLines {
		if err := t.AddKeyLine(l); err != nil {
			return nil, fmt.Errorf("load trusted signers: %w", err)
		}
	}
	return t, nil
}

// Len returns the number of trusted entries.
func (t *TrustStore) Len() int {
	if t == nil {
		return 0
	}
	return len(t.entries)
}

// Entries lists the trusted entries in the order they were added.
func (t *TrustStore) Entries() []Entry {
	if t == nil {
		return nil
	}
	out := make([]Entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, Entry{
			Principals:  e.principals,
			PublicKey:   authorizedKey(e.key, ""),
			Fingerprint: ssh.FingerprintSHA256(e.key),
			Namespaces:  e.namespaces,
			Source:      e.source,
		})
	}
	return out
}

// Verify checks armoredSig, an SSHSIG signature, over exactly data in
// namespace Namespace, and that its key is trusted for Namespace now. It
// returns the signer's principal and fingerprint. Errors wrap ErrNoSignature
// (empty), ErrMalformed (not an armored SSHSIG), ErrBadSignature (wrong
// namespace, or does not verify over data) or ErrUntrusted (valid signature,
// key not trusted; an *UntrustedError naming the key).
func (t *TrustStore) Verify(data, armoredSig []byte) (*Signature, error) {
	return t.VerifyNamespace(data, armoredSig, Namespace)
}

// VerifyNamespace is Verify for another SSHSIG namespace (git's commit
// signatures use "git"): the signature must be made for namespace and its
// key trusted for namespace now.
func (t *TrustStore) VerifyNamespace(data, armoredSig []byte, namespace string) (*Signature, error) {
	s, err := parseArmored(armoredSig)
	if err != nil {
		return nil, err
	}
	if s.namespace != namespace {
		return nil, fmt.Errorf("%w: made for namespace %q, want %q", ErrBadSignature, s.namespace, namespace)
	}
	if err := s.verify(data); err != nil {
		return nil, err
	}
	out := s.describe()
	e, reason := t.lookup(s.pub, namespace)
	if e == nil {
		return nil, &UntrustedError{PublicKey: out.PublicKey, Fingerprint: out.Fingerprint, Reason: reason}
	}
	out.Principal = e.principals
	return out, nil
}

// lookup finds the first entry trusting key for namespace now; when none does
// but the key is listed, reason says why.
func (t *TrustStore) lookup(key ssh.PublicKey, namespace string) (*trustEntry, string) {
	if t == nil {
		return nil, ""
	}
	now := time.Now()
	if t.now != nil {
		now = t.now()
	}
	want := key.Marshal()
	reason := ""
	for _, e := range t.entries {
		if !bytes.Equal(e.key.Marshal(), want) {
			continue
		}
		switch {
		case e.namespaces != "" && matchPatternList(namespace, e.namespaces) != 1:
			reason = fmt.Sprintf("%s trusts it only for namespaces %q", e.source, e.namespaces)
		case !e.validAfter.IsZero() && now.Before(e.validAfter):
			reason = fmt.Sprintf("%s trusts it only from %s", e.source, e.validAfter.Format(time.RFC3339))
		case !e.validBefore.IsZero() && now.After(e.validBefore):
			reason = fmt.Sprintf("%s trusted it only until %s", e.source, e.validBefore.Format(time.RFC3339))
		default:
			return e, ""
		}
	}
	return nil, reason
}

// parseAllowedSignersLine parses one line: principals [options] keytype base64 [comment].
// Blank and comment lines yield nil, nil.
func parseAllowedSignersLine(line string) (*trustEntry, error) {
	s := strings.TrimLeft(line, " \t\r")
	s = strings.TrimRight(s, "\r")
	if s == "" || s[0] == '#' {
		return nil, nil
	}
	principals, s, err := nextPrincipals(s)
	if err != nil {
		return nil, err
	}
	s = strings.TrimLeft(s, " \t")
	if s == "" {
		return nil, errors.New("missing key")
	}
	e := &trustEntry{principals: principals}
	if !looksLikeKeyType(firstField(s)) {
		if s, err = e.parseOptions(s); err != nil {
			return nil, err
		}
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, errors.New("missing key after options")
		}
	}
	if e.key, _, err = parseKey(s); err != nil {
		return nil, err
	}
	return e, nil
}

// nextPrincipals splits off the principals field, which may be double-quoted.
func nextPrincipals(s string) (principals, rest string, err error) {
	if s[0] == '"' {
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return "", "", errors.New("unterminated quoted principals")
		}
		principals, rest = s[1:1+end], s[2+end:]
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			return "", "", errors.New("missing space after quoted principals")
		}
	} else {
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			return "", "", errors.New("missing key")
		}
		principals, rest = s[:i], s[i:]
	}
	if strings.TrimSpace(principals) == "" {
		return "", "", errors.New("empty principals")
	}
	return principals, rest, nil
}

// parseOptions consumes a comma-separated option list (cert-authority,
// namespaces="…", valid-after="…", valid-before="…"; names are
// case-insensitive) and returns what follows it.
func (e *trustEntry) parseOptions(s string) (string, error) {
	for {
		i := strings.IndexAny(s, "=, \t")
		if i < 0 {
			i = len(s)
		}
		name := strings.ToLower(s[:i])
		s = s[i:]
		var value string
		hasValue := strings.HasPrefix(s, "=")
		if hasValue {
			var err error
			if value, s, err = dequote(s[1:]); err != nil {
				return "", fmt.Errorf("option %q: %v", name, err)
			}
		}
		var err error
		switch {
		case name == "cert-authority" && !hasValue:
			return "", errors.New("cert-authority is not supported: list the signer's own key")
		case name == "namespaces" && hasValue:
			if strings.TrimSpace(value) == "" {
				return "", errors.New(`namespaces="" lists no namespace`)
			}
			e.namespaces = value
		case name == "valid-after" && hasValue:
			e.validAfter, err = parseKeyTime(value)
		case name == "valid-before" && hasValue:
			e.validBefore, err = parseKeyTime(value)
		case name == "":
			return "", errors.New("empty option")
		default:
			return "", fmt.Errorf("unsupported option %q", name)
		}
		if err != nil {
			return "", fmt.Errorf("option %s: %v", name, err)
		}
		if s == "" || s[0] == ' ' || s[0] == '\t' {
			return s, nil
		}
		if s[0] != ',' {
			return "", fmt.Errorf("unexpected %q after option %s", s[0], name)
		}
		s = s[1:]
	}
}

// dequote reads a double-quoted option value (\" escapes a quote).
func dequote(s string) (value, rest string, err error) {
	if s == "" || s[0] != '"' {
		return "", "", errors.New("value must be double-quoted")
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '"':
			b.WriteByte('"')
			i++
		case s[i] == '"':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", errors.New("unterminated quoted value")
}

// parseKeyTime parses an allowed_signers timestamp: YYYYMMDD, YYYYMMDDHHMM or
// YYYYMMDDHHMMSS, in UTC with a trailing "Z", else in local time.
func parseKeyTime(v string) (time.Time, error) {
	loc := time.Local
	if strings.HasSuffix(v, "Z") || strings.HasSuffix(v, "z") {
		v, loc = v[:len(v)-1], time.UTC
	}
	var layout string
	switch len(v) {
	case 8:
		layout = "20060102"
	case 12:
		layout = "200601021504"
	case 14:
		layout = "20060102150405"
	default:
		return time.Time{}, fmt.Errorf("invalid time %q (want YYYYMMDD[HHMM[SS]][Z])", v)
	}
	tm, err := time.ParseInLocation(layout, v, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time %q (want YYYYMMDD[HHMM[SS]][Z])", v)
	}
	return tm, nil
}

// parseKey parses "keytype base64 [comment]".
func parseKey(s string) (ssh.PublicKey, string, error) {
	typ, rest := cutField(s)
	b64, rest := cutField(rest)
	if b64 == "" {
		return nil, "", fmt.Errorf("key %q: missing key data", typ)
	}
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, "", fmt.Errorf("key %q: bad base64: %v", typ, err)
	}
	key, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, "", fmt.Errorf("key %q: %v", typ, err)
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return nil, "", fmt.Errorf("key %q: certificates are not supported", typ)
	}
	if key.Type() != typ {
		return nil, "", fmt.Errorf("key type %q does not match key data (%s)", typ, key.Type())
	}
	return key, strings.TrimSpace(rest), nil
}

// cutField splits off the first space/tab-separated field.
func cutField(s string) (field, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

func firstField(s string) string { f, _ := cutField(s); return f }

// looksLikeKeyType reports whether tok names an SSH key type rather than options.
func looksLikeKeyType(tok string) bool {
	if strings.ContainsAny(tok, `=,"`) {
		return false
	}
	for _, p := range []string{"ssh-", "ecdsa-", "sk-", "rsa-"} {
		if strings.HasPrefix(tok, p) {
			return true
		}
	}
	return strings.HasSuffix(tok, "@openssh.com")
}

// abbreviate shortens long key lines in error messages.
func abbreviate(s string) string {
	const n = 48
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// matchPatternList matches s against an OpenSSH pattern list ("a*,!b?"):
// -1 when a negated pattern matches, 1 when a plain one does, else 0.
func matchPatternList(s, list string) int {
	got := 0
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if !matchPattern(s, p) {
			continue
		}
		if neg {
			return -1
		}
		got = 1
	}
	return got
}

// matchPattern matches s against a glob with * and ? in linear-ish time.
func matchPattern(s, p string) bool {
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			si++
			pi++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
