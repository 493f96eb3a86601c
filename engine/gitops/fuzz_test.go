package gitops

import (
	"errors"
	"net/http"
	"testing"
)

// FuzzAuthenticate feeds arbitrary headers and bodies to the webhook
// parser: it must never panic, and must never accept a request whose
// signature was not made with the secret.
func FuzzAuthenticate(f *testing.F) {
	secret := []byte("It's a Secret to Everybody")
	body := []byte(`{"ref":"refs/heads/main"}`)
	f.Add("X-Hub-Signature-256", "sha256="+HMACSHA256(secret, body), "X-GitHub-Delivery", "d1", body)
	f.Add("X-Gitlab-Token", string(secret), "X-Gitlab-Event-UUID", "u", body)
	f.Add("X-Gitea-Signature", HMACSHA256(secret, body), "X-Gitea-Delivery", "g", []byte("{"))
	f.Add("X-Volt-Signature-256", "sha256=", "X-Volt-Delivery", "", []byte(`{"ref":1}`))
	f.Add("X-Hub-Signature-256", "sha256=zz", "", "", []byte{0xff})
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string, b []byte) {
		h := http.Header{}
		h.Set(k1, v1)
		h.Set(k2, v2)
		d, err := Authenticate(h, b, secret)
		if err != nil {
			if !errors.Is(err, ErrNoWebhookSignature) && !errors.Is(err, ErrBadWebhookSignature) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// Accepted: the header must carry the real MAC or token.
		mac := HMACSHA256(secret, b)
		switch d.Provider {
		case ProviderGitLab:
			if h.Get("X-Gitlab-Token") != string(secret) {
				t.Fatalf("accepted a wrong GitLab token %q", h.Get("X-Gitlab-Token"))
			}
		case ProviderGitea:
			if got := firstHeader(h, "X-Forgejo-Signature", "X-Gitea-Signature"); !equalFoldHex(got, mac) {
				t.Fatalf("accepted a wrong Gitea signature %q", got)
			}
		case ProviderGitHub, ProviderGeneric:
			got := h.Get("X-Hub-Signature-256")
			if d.Provider == ProviderGeneric {
				got = h.Get("X-Volt-Signature-256")
			}
			if !equalFoldHex(got, "sha256="+mac) {
				t.Fatalf("accepted a wrong signature %q", got)
			}
		}
		if len(d.ID) > 128 || len(d.Ref) > 1024 {
			t.Fatalf("unbounded fields: %d %d", len(d.ID), len(d.Ref))
		}
	})
}

func equalFoldHex(a, b string) bool {
	if len(a) != len(b) {
		// surrounding spaces are trimmed by the parser
		for len(a) > 0 && (a[0] == ' ' || a[0] == '\t') {
			a = a[1:]
		}
		for len(a) > 0 && (a[len(a)-1] == ' ' || a[len(a)-1] == '\t') {
			a = a[:len(a)-1]
		}
	}
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x >= 'A' && x <= 'F' {
			x += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// FuzzPushedRef checks the payload reader never panics and bounds its output.
func FuzzPushedRef(f *testing.F) {
	f.Add([]byte(`{"ref":"refs/heads/main"}`))
	f.Add([]byte(`{"ref":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r := pushedRef(b); len(r) > 1024 {
			t.Fatalf("ref of %d bytes", len(r))
		}
	})
}
