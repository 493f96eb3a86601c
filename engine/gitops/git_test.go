package gitops

import (
	"context"
	"errors"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// TestSyncOverHTTPWithCredentials serves the repository with git's own
// smart-HTTP backend behind basic auth: the credentials file opens it,
// wrong credentials leave the source unreachable and nothing deployed.
func TestSyncOverHTTPWithCredentials(t *testing.T) {
	t.Parallel()
	const backend = "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Skip("needs git-http-backend")
	}
	r := newRepo(t)
	h := &cgi.Handler{Path: backend, Root: "/git", Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(r.bare), "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != "deploy" || p != "t0ken" {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, req)
	}))
	defer srv.Close()
	creds := filepath.Join(t.TempDir(), "creds")
	os.WriteFile(creds, []byte("deploy:wrong\n"), 0o600)
	m, fd := newManager(t, r, func(s *Source) {
		s.Repo = srv.URL + "/git/" + filepath.Base(r.bare)
		s.CredentialsFile = creds
	})
	c1 := r.commit("v1")
	if _, err := m.Sync(context.Background(), "shop", SyncOptions{}); !errors.Is(err, ErrUnreachable) || len(fd.deployed) != 0 {
		t.Fatalf("wrong credentials: %v, deployed %v", err, fd.deployed)
	}
	os.WriteFile(creds, []byte("deploy:t0ken\n"), 0o600)
	res, err := m.Sync(context.Background(), "shop", SyncOptions{})
	if err != nil || res.Head != c1 || fd.last() != "v1" {
		t.Fatalf("sync over http: %+v %v", res, err)
	}
}

func TestAuth(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	tests := []struct {
		name     string
		src      Source
		user     string // basic auth user wanted ("" = no basic auth)
		pass     string
		errorHas string
	}{
		{"https none", Source{Repo: "https://h/x.git"}, "", "", ""},
		{"user:password", Source{Repo: "https://h/x.git", CredentialsFile: write("a", "bob:pw:with:colons\n")}, "bob", "pw:with:colons", ""},
		{"token", Source{Repo: "https://h/x.git", CredentialsFile: write("b", "ghp_abc\n")}, "x-access-token", "ghp_abc", ""},
		{"empty file", Source{Repo: "https://h/x.git", CredentialsFile: write("c", "\n")}, "", "", "is empty"},
		{"ssh no known_hosts", Source{Repo: "ssh://git@h/x.git", SSHKey: write("k", "x")}, "", "", "known_hosts"},
		{"ssh missing known_hosts", Source{Repo: "ssh://git@h/x.git", SSHKey: write("k2", "x"), KnownHosts: filepath.Join(dir, "none")}, "", "", "known_hosts"},
		{"ssh no key", Source{Repo: "ssh://git@h/x.git", KnownHosts: write("kh", "")}, "", "", "--ssh-key"},
		{"git none", Source{Repo: "git://h/x.git"}, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := tt.src.auth()
			if tt.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
					t.Fatalf("err = %v, want one saying %q", err, tt.errorHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.user == "" {
				if a != nil {
					t.Fatalf("auth = %v, want none", a)
				}
				return
			}
			b, ok := a.(*githttp.BasicAuth)
			if !ok || b.Username != tt.user || b.Password != tt.pass {
				t.Fatalf("auth = %#v", a)
			}
		})
	}
}

// TestSSHHostKeyChecked: with a key and a known_hosts file, the host key
// callback is the known_hosts check, never one that accepts any key.
func TestSSHHostKeyChecked(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	if err := runSSHKeygen(key); err != nil {
		t.Skip(err)
	}
	kh := filepath.Join(dir, "known_hosts")
	pub, _ := os.ReadFile(key + ".pub")
	os.WriteFile(kh, []byte("git.example.com "+string(pub)), 0o600)
	a, err := (&Source{Repo: "ssh://git@git.example.com/x.git", SSHKey: key, KnownHosts: kh}).auth()
	if err != nil {
		t.Fatal(err)
	}
	pk := a.(*gitssh.PublicKeys)
	if pk.HostKeyCallback == nil {
		t.Fatal("no host key callback")
	}
	// A host whose key is not in known_hosts is refused.
	other := filepath.Join(dir, "other")
	if err := runSSHKeygen(other); err != nil {
		t.Fatal(err)
	}
	otherPub, _ := os.ReadFile(other + ".pub")
	pubKey, err := parseAuthorizedKey(otherPub)
	if err != nil {
		t.Fatal(err)
	}
	if err := pk.HostKeyCallback("git.example.com:22", fakeAddr("192.0.2.1:22"), pubKey); err == nil {
		t.Fatal("an unknown host key was accepted")
	}
	known, _ := parseAuthorizedKey(pub)
	if err := pk.HostKeyCallback("git.example.com:22", fakeAddr("192.0.2.1:22"), known); err != nil {
		t.Fatalf("the known host key was refused: %v", err)
	}
}
