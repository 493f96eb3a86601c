package gitops

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Webhook providers, told apart by their headers.
const (
	ProviderGitHub  = "github"  // X-Hub-Signature-256: sha256=HMAC
	ProviderGitLab  = "gitlab"  // X-Gitlab-Token: the secret itself
	ProviderGitea   = "gitea"   // X-Gitea-Signature / X-Forgejo-Signature: HMAC hex
	ProviderGeneric = "generic" // X-Volt-Signature-256: sha256=HMAC
)

// MaxWebhookBody bounds a webhook request body.
const MaxWebhookBody = 5 << 20

// Webhook authentication errors: ErrNoWebhookSignature maps to 401,
// ErrBadWebhookSignature to 403.
var (
	ErrNoWebhookSignature  = errors.New("webhook carries no signature header")
	ErrBadWebhookSignature = errors.New("webhook signature does not match the secret")
)

// Delivery is an authenticated webhook request.
type Delivery struct {
	Provider string `json:"provider"`
	// ID is the provider's delivery id ("" if it sends none).
	ID string `json:"id,omitempty"`
	// Event is the provider's event name (push, ping, Push Hook, …).
	Event string `json:"event,omitempty"`
	// Ref is the pushed ref from the body ("" if the body does not say).
	Ref string `json:"ref,omitempty"`
}

// Ping reports a provider's test delivery, which triggers nothing.
func (d *Delivery) Ping() bool { return d.Event == "ping" }

// HMACSHA256 returns hex(HMAC-SHA256(secret, body)), the value GitHub,
// Gitea and Volt's generic webhook send.
func HMACSHA256(secret, body []byte) string {
	h := hmac.New(sha256.New, secret)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// checkHMAC compares a hex HMAC (with an optional "sha256=" prefix when
// prefixed is set) in constant time.
func checkHMAC(secret, body []byte, got string, prefixed bool) error {
	got = strings.TrimSpace(got)
	if prefixed {
		v, ok := strings.CutPrefix(got, "sha256=")
		if !ok {
			return ErrBadWebhookSignature
		}
		got = v
	}
	sig, err := hex.DecodeString(got)
	if err != nil || len(sig) != sha256.Size {
		return ErrBadWebhookSignature
	}
	h := hmac.New(sha256.New, secret)
	h.Write(body)
	if !hmac.Equal(sig, h.Sum(nil)) {
		return ErrBadWebhookSignature
	}
	return nil
}

// Authenticate checks a webhook request's signature against secret and
// returns what it says. A request without a signature header wraps
// ErrNoWebhookSignature; a wrong one ErrBadWebhookSignature. The body is
// read for its pushed ref only after it is authenticated.
func Authenticate(h http.Header, body, secret []byte) (*Delivery, error) {
	if len(secret) == 0 {
		return nil, ErrBadWebhookSignature
	}
	d := &Delivery{}
	var err error
	switch {
	case h.Get("X-Gitlab-Token") != "":
		d.Provider = ProviderGitLab
		a, b := sha256.Sum256([]byte(h.Get("X-Gitlab-Token"))), sha256.Sum256(secret)
		if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
			err = ErrBadWebhookSignature
		}
		d.ID = firstHeader(h, "X-Gitlab-Event-UUID", "Idempotency-Key", "X-Gitlab-Webhook-UUID")
		d.Event = h.Get("X-Gitlab-Event")
	case h.Get("X-Gitea-Signature") != "" || h.Get("X-Forgejo-Signature") != "":
		d.Provider = ProviderGitea
		err = checkHMAC(secret, body, firstHeader(h, "X-Forgejo-Signature", "X-Gitea-Signature"), false)
		d.ID = firstHeader(h, "X-Forgejo-Delivery", "X-Gitea-Delivery")
		d.Event = firstHeader(h, "X-Forgejo-Event", "X-Gitea-Event")
	case h.Get("X-Hub-Signature-256") != "":
		d.Provider = ProviderGitHub
		err = checkHMAC(secret, body, h.Get("X-Hub-Signature-256"), true)
		d.ID = h.Get("X-GitHub-Delivery")
		d.Event = h.Get("X-GitHub-Event")
	case h.Get("X-Volt-Signature-256") != "":
		d.Provider = ProviderGeneric
		err = checkHMAC(secret, body, h.Get("X-Volt-Signature-256"), true)
		d.ID = h.Get("X-Volt-Delivery")
		d.Event = h.Get("X-Volt-Event")
	default:
		return nil, ErrNoWebhookSignature
	}
	if err != nil {
		return nil, err
	}
	if len(d.ID) > 128 {
		d.ID = d.ID[:128]
	}
	d.Ref = pushedRef(body)
	return d, nil
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// pushedRef reads "ref" from a push payload (GitHub, GitLab, Gitea and
// Forgejo all send it); anything else yields "".
func pushedRef(body []byte) string {
	var p struct {
		Ref string `json:"ref"`
	}
	if json.Unmarshal(body, &p) != nil || len(p.Ref) > 1024 {
		return ""
	}
	return p.Ref
}

// replayCache remembers delivery ids so a replayed request is refused.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time
	ttl  time.Duration
	max  int
}

func newReplayCache() *replayCache {
	return &replayCache{seen: map[string]time.Time{}, ttl: 24 * time.Hour, max: 100000}
}

// first records key and reports whether it was new.
func (c *replayCache) first(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.seen[key]; ok && now.Sub(t) < c.ttl {
		return false
	}
	if len(c.seen) >= c.max {
		for k, t := range c.seen {
			if now.Sub(t) >= c.ttl || len(c.seen) >= c.max {
				delete(c.seen, k)
			}
		}
	}
	c.seen[key] = now
	return true
}
