package gitops

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestServeWebhooksAndPolls(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	secretFile := filepath.Join(t.TempDir(), "hook")
	os.WriteFile(secretFile, []byte("s3cret\n"), 0o600)
	m, fd := newManager(t, r, func(s *Source) { s.WebhookSecretFile = secretFile })
	r.commit("v1")
	srv := &Server{Manager: m, Addr: "127.0.0.1:0", Rescan: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, func(a string) { ready <- a }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if st := m.ServeStatus(); st.Running {
			t.Errorf("serve.json still says running after Run returned")
		}
	}()
	addr := <-ready
	if st := m.ServeStatus(); !st.Running || st.Addr != addr {
		t.Fatalf("ServeStatus = %+v", st)
	}
	// A second serve on the same state root is refused.
	if err := (&Server{Manager: m, Addr: "127.0.0.1:0"}).Run(ctx, nil); err == nil {
		t.Fatal("a second serve started")
	}
	waitUntil(t, func() bool { return fd.last() == "v1" }, "the first poll to deploy v1")

	r.commit("v2")
	body := []byte(`{"ref":"refs/heads/main"}`)
	post := func(path string, h map[string]string) int {
		req, _ := http.NewRequest("POST", "http://"+addr+path, bytes.NewReader(body))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := "sha256=" + HMACSHA256([]byte("s3cret"), body)
	forged := "sha256=" + HMACSHA256([]byte("guess"), body)
	for _, c := range []struct {
		path string
		h    map[string]string
		want int
	}{
		{"/hooks/shop", map[string]string{"X-Hub-Signature-256": forged, "X-GitHub-Delivery": "x1"}, http.StatusForbidden},
		{"/hooks/shop", map[string]string{"X-GitHub-Delivery": "x2"}, http.StatusUnauthorized},
		{"/hooks/nope", map[string]string{"X-Hub-Signature-256": good}, http.StatusNotFound},
	} {
		if got := post(c.path, c.h); got != c.want {
			t.Errorf("POST %s %v: %d, want %d", c.path, c.h, got, c.want)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if fd.last() != "v1" {
		t.Fatalf("a refused webhook deployed %q", fd.last())
	}
	if got := post("/hooks/shop", map[string]string{"X-Hub-Signature-256": good, "X-GitHub-Delivery": "d1", "X-GitHub-Event": "push"}); got != http.StatusAccepted {
		t.Fatalf("signed webhook: %d", got)
	}
	waitUntil(t, func() bool { return fd.last() == "v2" }, "the webhook to deploy v2")
	if got := post("/hooks/shop", map[string]string{"X-Hub-Signature-256": good, "X-GitHub-Delivery": "d1"}); got != http.StatusConflict {
		t.Errorf("replayed delivery: %d, want 409", got)
	}
	// A changed interval reaches the running loop: polls find v3.
	src, _ := m.Get("shop")
	src.Interval = Duration(time.Second)
	if err := m.Put(src); err != nil {
		t.Fatal(err)
	}
	r.commit("v3")
	waitUntil(t, func() bool { return fd.last() == "v3" }, "a poll at the new interval to deploy v3")

	big := bytes.Repeat([]byte("x"), MaxWebhookBody+1)
	resp, err := http.Post("http://"+addr+"/hooks/shop", "application/json", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", resp.StatusCode)
	}
	resp, err = http.Get("http://" + addr + "/hooks/shop")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
