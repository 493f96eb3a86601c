package gitops

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// GitHub's published test vector ("Validating webhook deliveries").
func TestHMACGitHubVector(t *testing.T) {
	got := HMACSHA256([]byte("It's a Secret to Everybody"), []byte("Hello, World!"))
	const want = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got != want {
		t.Fatalf("HMAC = %s, want %s", got, want)
	}
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256="+want)
	h.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	h.Set("X-GitHub-Event", "push")
	d, err := Authenticate(h, []byte("Hello, World!"), []byte("It's a Secret to Everybody"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Provider != ProviderGitHub || d.ID != "72d3162e-cc78-11e3-81ab-4c9367dc0958" || d.Event != "push" {
		t.Errorf("delivery = %+v", d)
	}
}

func TestAuthenticate(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"ref":"refs/heads/main","after":"abc"}`)
	mac := HMACSHA256(secret, body)
	other := HMACSHA256([]byte("wrong"), body)
	tests := []struct {
		name     string
		headers  map[string]string
		secret   []byte
		want     error
		provider string
		id       string
	}{
		{"github", map[string]string{"X-Hub-Signature-256": "sha256=" + mac, "X-GitHub-Delivery": "d1"}, secret, nil, ProviderGitHub, "d1"},
		{"github forged", map[string]string{"X-Hub-Signature-256": "sha256=" + other}, secret, ErrBadWebhookSignature, "", ""},
		{"github no prefix", map[string]string{"X-Hub-Signature-256": mac}, secret, ErrBadWebhookSignature, "", ""},
		{"github not hex", map[string]string{"X-Hub-Signature-256": "sha256=zz"}, secret, ErrBadWebhookSignature, "", ""},
		{"github short", map[string]string{"X-Hub-Signature-256": "sha256=" + mac[:20]}, secret, ErrBadWebhookSignature, "", ""},
		{"gitlab", map[string]string{"X-Gitlab-Token": "s3cret", "X-Gitlab-Event-UUID": "u1", "X-Gitlab-Event": "Push Hook"}, secret, nil, ProviderGitLab, "u1"},
		{"gitlab wrong token", map[string]string{"X-Gitlab-Token": "s3cre"}, secret, ErrBadWebhookSignature, "", ""},
		{"gitea", map[string]string{"X-Gitea-Signature": mac, "X-Gitea-Delivery": "g1"}, secret, nil, ProviderGitea, "g1"},
		{"gitea with github header too", map[string]string{"X-Gitea-Signature": mac, "X-Hub-Signature-256": "sha256=" + mac, "X-Gitea-Delivery": "g2"}, secret, nil, ProviderGitea, "g2"},
		{"forgejo", map[string]string{"X-Forgejo-Signature": mac, "X-Forgejo-Delivery": "f1"}, secret, nil, ProviderGitea, "f1"},
		{"gitea forged", map[string]string{"X-Gitea-Signature": other}, secret, ErrBadWebhookSignature, "", ""},
		{"generic", map[string]string{"X-Volt-Signature-256": "sha256=" + mac, "X-Volt-Delivery": "v1"}, secret, nil, ProviderGeneric, "v1"},
		{"generic forged", map[string]string{"X-Volt-Signature-256": "sha256=" + other}, secret, ErrBadWebhookSignature, "", ""},
		{"no signature", map[string]string{"X-GitHub-Delivery": "d1"}, secret, ErrNoWebhookSignature, "", ""},
		{"no secret configured", map[string]string{"X-Hub-Signature-256": "sha256=" + HMACSHA256(nil, body)}, nil, ErrBadWebhookSignature, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			d, err := Authenticate(h, body, tt.secret)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if d.Provider != tt.provider || d.ID != tt.id || d.Ref != "refs/heads/main" {
				t.Errorf("delivery = %+v", d)
			}
		})
	}
}

func TestReplayCache(t *testing.T) {
	c := newReplayCache()
	now := time.Now()
	if !c.first("a", now) || c.first("a", now.Add(time.Minute)) {
		t.Fatal("a delivery id was accepted twice")
	}
	if !c.first("a", now.Add(25*time.Hour)) {
		t.Error("an id older than the window was refused")
	}
	c.max = 3
	for _, k := range []string{"b", "c", "d", "e"} {
		c.first(k, now)
	}
	if len(c.seen) > 3 {
		t.Errorf("cache holds %d ids, max 3", len(c.seen))
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		n        int
		interval time.Duration
		want     time.Duration
	}{
		{1, time.Hour, 2 * time.Second},
		{2, time.Hour, 4 * time.Second},
		{5, time.Hour, 32 * time.Second},
		{30, time.Hour, 5 * time.Minute},
		{10, 10 * time.Second, 10 * time.Second},
		{3, 0, 8 * time.Second},
	}
	for _, tt := range tests {
		if got := backoff(tt.n, tt.interval); got != tt.want {
			t.Errorf("backoff(%d, %s) = %s, want %s", tt.n, tt.interval, got, tt.want)
		}
	}
}

func TestSourceValidate(t *testing.T) {
	tests := []struct {
		name string
		src  Source
		ok   bool
	}{
		{"https", Source{Name: "shop", Repo: "https://git.example.com/x.git"}, true},
		{"git", Source{Name: "shop", Repo: "git://127.0.0.1/x.git", Path: "deploy/"}, true},
		{"file", Source{Name: "a.b-c_1", Repo: "file:///srv/x.git"}, true},
		{"bad scheme", Source{Name: "shop", Repo: "ftp://x/y"}, false},
		{"no repo", Source{Name: "shop"}, false},
		{"bad name", Source{Name: "Shop/x", Repo: "git://h/x"}, false},
		{"path escapes", Source{Name: "shop", Repo: "git://h/x", Path: "../etc"}, false},
		{"bad branch", Source{Name: "shop", Repo: "git://h/x", Branch: "a..b"}, false},
		{"interval too short", Source{Name: "shop", Repo: "git://h/x", Interval: Duration(time.Millisecond)}, false},
		{"relative secret", Source{Name: "shop", Repo: "git://h/x", WebhookSecretFile: "hook"}, false},
		{"missing secret", Source{Name: "shop", Repo: "git://h/x", WebhookSecretFile: "/nonexistent/hook"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.src.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}
