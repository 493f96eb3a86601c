package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/volt-cli/volt/sdk/atomicfile"
)

// Actions a token grants on a repository.
const (
	ActionPull = "pull"
	ActionPush = "push"
	// ActionDelete allows DELETE of manifests, tags and blobs.
	ActionDelete = "delete"
)

// tokenPrefix starts every token; it names the format version.
const tokenPrefix = "vrt1."

// Token errors, wrapped by VerifyToken.
var (
	// ErrTokenInvalid: the token is malformed or its signature is not the server's.
	ErrTokenInvalid = errors.New("invalid token")
	// ErrTokenExpired: the token's expiry has passed.
	ErrTokenExpired = errors.New("token expired")
)

// Access grants actions on repositories. Repo is a repository name, a
// prefix ending in "/*" ("team/*"), or "*" for every repository.
type Access struct {
	Repo    string   `json:"repo"`
	Actions []string `json:"actions"`
}

// Claims is a token's signed content.
type Claims struct {
	// ID is random, for logs.
	ID string `json:"jti"`
	// Subject names who the token was made for (free text).
	Subject string `json:"sub,omitempty"`
	// Service is the registry service name the token is for.
	Service string `json:"aud"`
	// IssuedAt and Expires are Unix seconds.
	IssuedAt int64    `json:"iat"`
	Expires  int64    `json:"exp"`
	Access   []Access `json:"access"`
}

// Allows reports whether c grants action on repo.
func (c *Claims) Allows(repo, action string) bool {
	for _, a := range c.Access {
		if !slices.Contains(a.Actions, action) {
			continue
		}
		switch {
		case a.Repo == "*", a.Repo == repo:
			return true
		case strings.HasSuffix(a.Repo, "/*") && strings.HasPrefix(repo, strings.TrimSuffix(a.Repo, "*")):
			return true
		}
	}
	return false
}

// MintToken signs claims with key: "vrt1.<base64url JSON>.<base64url ed25519
// signature over the first two parts>".
func MintToken(key ed25519.PrivateKey, c Claims) (string, error) {
	if c.ID == "" {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		c.ID = hex.EncodeToString(b[:])
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := tokenPrefix + base64.RawURLEncoding.EncodeToString(body)
	sig := ed25519.Sign(key, []byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// VerifyToken checks tok's signature against pub and its expiry against
// now, and returns its claims. Errors wrap ErrTokenInvalid or ErrTokenExpired.
func VerifyToken(pub ed25519.PublicKey, tok string, now time.Time) (*Claims, error) {
	if len(tok) > 16<<10 || !strings.HasPrefix(tok, tokenPrefix) {
		return nil, fmt.Errorf("%w: not a Volt registry token", ErrTokenInvalid)
	}
	i := strings.LastIndexByte(tok, '.')
	if i <= len(tokenPrefix) {
		return nil, fmt.Errorf("%w: no signature", ErrTokenInvalid)
	}
	signed, sigStr := tok[:i], tok[i+1:]
	sig, err := base64.RawURLEncoding.DecodeString(sigStr)
	if err != nil || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, []byte(signed), sig) {
		return nil, fmt.Errorf("%w: bad signature (made by another server key?)", ErrTokenInvalid)
	}
	body, err := base64.RawURLEncoding.DecodeString(signed[len(tokenPrefix):])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	var c Claims
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if now.Unix() >= c.Expires {
		return nil, fmt.Errorf("%w at %s", ErrTokenExpired, time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	}
	return &c, nil
}

// KeyFile is the name of the server's token key under its root.
const KeyFile = "token.key"

// LoadOrCreateKey reads the ed25519 key at path (PKCS#8 PEM), creating it
// (mode 0600, atomically) when missing.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("token key: %w", err)
		}
		if err := atomicfile.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("token key: %w", err)
		}
		return LoadOrCreateKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("token key %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("token key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("token key %s: not an ed25519 key", path)
	}
	return priv, nil
}

// ParseExpiry parses a token lifetime: a Go duration ("12h", "30m") or a
// number of days ("7d").
func ParseExpiry(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 3650 {
			return 0, fmt.Errorf("expiry %q: want a positive number of days, e.g. 7d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	dur, err := time.ParseDuration(s)
	if err != nil || dur <= 0 {
		return 0, fmt.Errorf("expiry %q: want a duration such as 12h or 7d", s)
	}
	return dur, nil
}

// scope is one parsed "repository:NAME:ACTIONS" item of a token request.
type scope struct {
	repo    string
	actions []string
	catalog bool // registry:catalog:*
}

// parseScopes parses docker token scopes ("repository:a/b:pull,push",
// several separated by spaces or given as several values). Unknown types
// other than registry:catalog:* are ignored.
func parseScopes(values []string) []scope {
	var out []scope
	for _, v := range values {
		for _, s := range strings.Fields(v) {
			parts := strings.Split(s, ":")
			if len(parts) < 3 {
				continue
			}
			typ, acts := parts[0], parts[len(parts)-1]
			name := strings.Join(parts[1:len(parts)-1], ":")
			switch typ {
			case "repository":
				out = append(out, scope{repo: name, actions: strings.Split(acts, ",")})
			case "registry":
				if name == "catalog" {
					out = append(out, scope{catalog: true, actions: []string{ActionPull}})
				}
			}
		}
	}
	return out
}
