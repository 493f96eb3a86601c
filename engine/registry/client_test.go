package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/volt-cli/volt/engine/cas"
	"github.com/volt-cli/volt/engine/registry/server"
)

func TestLoginListStatusLogout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: defaultImages(t)})
	vs := startServe(t, false)
	tok := vs.token(t, time.Hour, server.Access{Repo: "*", Actions: all})
	store, err := credentials.NewStore(filepath.Join(dir, "docker", "config.json"), credentials.StoreOptions{AllowPlaintextPut: true})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{PlainHTTP: true, Credentials: store}

	st, err := Check(ctx, vs.host, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Reachable || st.Auth != "bearer" || st.Realm != vs.url+"/token" || st.APIVersion != "registry/2.0" || st.Access || st.HasCredentials {
		t.Errorf("status before login: %+v", st)
	}
	if err := Login(ctx, vs.host, "me", "wrong", opts); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("login with a bad token: %v", err)
	}
	if err := Login(ctx, vs.host, "me", tok, opts); err != nil {
		t.Fatal(err)
	}
	if st, _ = Check(ctx, vs.host, opts); !st.Access || !st.HasCredentials || st.Error != "" {
		t.Errorf("status after login: %+v", st)
	}
	for _, repo := range []string{"team/a", "team/b", "other/c"} {
		if _, err := Push(ctx, src, vs.host+"/"+repo+":1.0.0", PushOptions{Options: opts, Tags: []string{"latest"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		prefix string
		limit  int
		want   string
	}{{"", 0, "[{other/c [1.0.0 latest]} {team/a [1.0.0 latest]} {team/b [1.0.0 latest]}]"}, {"team/", 0, "[{team/a [1.0.0 latest]} {team/b [1.0.0 latest]}]"}, {"", 1, "[{other/c [1.0.0 latest]}]"}} {
		repos, err := List(ctx, vs.host, c.prefix, c.limit, opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(repos); got != c.want {
			t.Errorf("list prefix %q limit %d: %s, want %s", c.prefix, c.limit, got, c.want)
		}
	}
	if err := Logout(ctx, vs.host, opts); err != nil {
		t.Fatal(err)
	}
	if st, _ = Check(ctx, vs.host, opts); st.Access || st.HasCredentials || st.Error == "" {
		t.Errorf("status after logout: %+v", st)
	}
	if _, err := List(ctx, vs.host, "", 0, opts); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("list after logout: %v", err)
	}
	// An open registry: access without credentials.
	dr := startDockerRegistry(t)
	if st, _ = Check(ctx, dr, opts); !st.Reachable || st.Auth != "none" || !st.Access {
		t.Errorf("docker-registry status: %+v", st)
	}
	down := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	if st, _ = Check(ctx, down, opts); st.Reachable || st.Error == "" {
		t.Errorf("down registry status: %+v", st)
	}
}

// TestServeOverTLS: push and pull through `serve` behind TLS; the token
// realm in the challenge is https.
func TestServeOverTLS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := writeBundle(t, dir, bundleSpec{name: "stack", version: "1.0.0", images: defaultImages(t)})
	cs, err := cas.Open(filepath.Join(dir, "cas"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, server.Config{Root: filepath.Join(dir, "reg"), CAS: cs})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewTLSServer(srv)
	defer func() { hs.Close(); srv.Close() }()
	host := strings.TrimPrefix(hs.URL, "https://")
	tok, _ := srv.Mint("tls", []server.Access{{Repo: "*", Actions: all}}, time.Hour)
	opts := optsFor(t, host, tok)
	opts.PlainHTTP = false
	opts.HTTPClient = hs.Client()
	st, err := Check(ctx, host, opts)
	if err != nil || !strings.HasPrefix(st.Realm, "https://") || !st.Access {
		t.Fatalf("status %+v %v", st, err)
	}
	if _, err := Push(ctx, src, host+"/tls/stack:1", PushOptions{Options: opts}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "b.vbundle")
	if _, err := Pull(ctx, host+"/tls/stack:1", PullOptions{Options: opts, Output: out}); err != nil {
		t.Fatal(err)
	}
	verifySigned(t, out)
	// Without trusting the certificate: an unreachable-class error.
	opts.HTTPClient = nil
	if _, err := Pull(ctx, host+"/tls/stack:1", PullOptions{Options: opts, Output: out}); !errors.Is(err, ErrUnreachable) {
		t.Errorf("untrusted certificate: %v", err)
	}
}
