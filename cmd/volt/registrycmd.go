package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/volt-cli/volt/engine"
	"github.com/volt-cli/volt/engine/registry"
	"github.com/volt-cli/volt/engine/registry/server"
)

// registryFlags are the connection flags shared by push, pull and the
// registry client commands.
type registryFlags struct {
	plainHTTP   *bool
	concurrency *int
}

func addRegistryFlags(fs *pflag.FlagSet) registryFlags {
	return registryFlags{
		plainHTTP:   fs.Bool("plain-http", false, "talk HTTP, not HTTPS (loopback or trusted networks; or config registry.insecure)"),
		concurrency: fs.Int("concurrency", 4, "blobs transferred at once"),
	}
}

// options builds registry client options from flags and config.
func (f registryFlags) options(a *app, bar *progressBar) registry.Options {
	o := registry.Options{
		PlainHTTP:       *f.plainHTTP,
		Insecure:        a.eng.Config.List("registry.insecure"),
		DefaultRegistry: os.Getenv("VOLT_REGISTRY"),
		Concurrency:     *f.concurrency,
		UserAgent:       "volt/" + engine.Version,
		DigestCache:     a.eng.Path("cache", "sha256"),
	}
	if bar != nil {
		o.Progress = func(p registry.Progress) { bar.update(p.Done, p.Total) }
	}
	return o
}

// registryError adds an exit code and a hint to a registry error.
func registryError(err error, host string) error {
	if host == "" {
		host = "HOST"
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, registry.ErrUnauthorized):
		return withHint(exitFailure, err, "log in with: volt registry login "+host+" -u USER --password-stdin (for volt registry serve, the password is a token from: volt registry token)")
	case errors.Is(err, registry.ErrDenied):
		return withHint(exitFailure, err, "the credentials lack this permission (volt registry serve: volt registry token --push --repo REPO)")
	case errors.Is(err, registry.ErrUnreachable):
		return withHint(exitFailure, err, "is the registry running? A plain-HTTP registry needs --plain-http or: volt config set registry.insecure += "+host)
	case errors.Is(err, registry.ErrNotFound):
		return withHint(exitNotFound, err, "list what the registry has with: volt registry list "+host)
	case errors.Is(err, registry.ErrNotBundle):
		return withHint(exitFailure, err, "this is not a Volt bundle; use oras or skopeo for other artifacts")
	case errors.Is(err, registry.ErrReference):
		return withHint(exitUsage, err, "a reference looks like registry.example:5000/team/stack:1.0.0 (or set VOLT_REGISTRY)")
	case errors.Is(err, registry.ErrDigest):
		return withHint(exitVerify, err, "the registry served corrupt data; nothing was written")
	}
	return err
}

// hostOf returns the registry host of a reference, best effort.
func hostOf(ref string) string {
	ref = strings.TrimPrefix(ref, "oci://")
	if h, _, ok := strings.Cut(ref, "/"); ok {
		return h
	}
	return ""
}

func bundlePushCommand() *command {
	return &command{
		name:    "push",
		summary: "Push a bundle to an OCI registry",
		usage:   "FILE REF [--tag T]... [--plain-http]",
		long: `Uploads FILE as one OCI artifact (artifactType application/vnd.volt.bundle.v1): bundle.json
as its config, one layer per entry. Blobs the registry already has are not sent again, so
re-pushing an unchanged bundle sends no image bytes and a new version sends only what changed.
REF is HOST[:PORT]/REPO[:TAG]; --tag adds tags. Credentials come from the docker config
(volt registry login).`,
		examples: `volt bundle push my-stack.vbundle registry.example:5000/team/my-stack --tag v1.2.0 --tag latest
volt bundle push my-stack.vbundle 127.0.0.1:5000/team/my-stack:dev --plain-http -o json`,
		args: exactArgs(2, "FILE and REF"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			tags := fs.StringArray("tag", nil, "tag to apply (repeatable)")
			rf := addRegistryFlags(fs)
			return func(ctx context.Context, a *app, args []string) error {
				bar := a.progress("pushing")
				res, err := registry.Push(ctx, args[0], args[1], registry.PushOptions{Options: rf.options(a, bar), Tags: *tags})
				bar.done()
				if err != nil {
					return registryError(err, hostOf(args[1]))
				}
				if a.json() {
					return a.printJSON(res)
				}
				where := res.Reference + "@" + res.Digest
				if len(res.Tags) > 0 {
					where = res.Reference + ":" + strings.Join(res.Tags, ",")
				}
				a.infof("Pushed %s to %s (%s)", args[0], where, res.Digest)
				a.infof("Sent %s in %d of %d blobs; %s already in the registry", humanSize(res.BytesSent), res.BlobsSent, res.Blobs, humanSize(res.Bytes-res.BytesSent))
				if a.quiet {
					fmt.Fprintln(a.stdout, res.Digest)
				}
				return nil
			}
		},
	}
}

func bundlePullCommand() *command {
	return &command{
		name:    "pull",
		summary: "Pull a bundle from an OCI registry",
		usage:   "REF [-o FILE] [--platform OS/ARCH] [--plain-http]",
		long: `Downloads REF into the local bundle cache ($VOLT_ROOT/bundles/NAME-VERSION.vbundle) or -o FILE,
atomically. Every blob is checked against its sha256 and every entry against its BLAKE3; the
file is byte-identical to the pushed one, so its signature still verifies.
--platform fetches only that platform's images and writes a bundle marked partial: its
bundle.json changes, so its signature no longer covers it; the original signed bundle.json
and signature travel inside as origin/bundle.json and origin/bundle.sig.`,
		examples: `volt bundle pull registry.example:5000/team/my-stack:v1.2.0
volt bundle pull registry.example:5000/team/my-stack:v1.2.0 -o my-stack.vbundle
volt bundle pull registry.example:5000/team/my-stack:latest --platform linux/amd64`,
		oFile: true,
		args:  exactArgs(1, "REF"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			platform := fs.String("platform", "", "pull only this platform's images (OS/ARCH); the bundle is marked partial")
			out := fs.String("out", "", "output file (same as -o FILE)")
			rf := addRegistryFlags(fs)
			return func(ctx context.Context, a *app, args []string) error {
				output := *out
				if a.outFile != "" {
					output = a.outFile
				}
				bar := a.progress("pulling")
				res, err := registry.Pull(ctx, args[0], registry.PullOptions{Options: rf.options(a, bar), Output: output, Dir: a.eng.BundlesDir(), Platform: *platform})
				bar.done()
				if err != nil {
					return registryError(err, hostOf(args[0]))
				}
				if a.json() {
					return a.printJSON(res)
				}
				note := ""
				if res.Partial {
					note = ", partial: " + *platform + " only"
				}
				a.infof("Pulled %s v%s to %s (%s, received %s%s)", res.Name, res.Version, res.Path, humanSize(res.Bytes), humanSize(res.BytesReceived), note)
				if a.quiet {
					fmt.Fprintln(a.stdout, res.Path)
				}
				return nil
			}
		},
	}
}

func registryCommand() *command {
	return &command{
		name:    "registry",
		summary: "Log in to OCI registries, list and check them, or serve one",
		subs: []*command{
			registryLoginCommand(),
			registryLogoutCommand(),
			registryListCommand(),
			registryStatusCommand(),
			registryServeCommand(),
			registryTokenCommand(),
		},
	}
}

func registryLoginCommand() *command {
	return &command{
		name:    "login",
		summary: "Store credentials for a registry (docker credential store)",
		usage:   "HOST -u USER --password-stdin [--plain-http]",
		long: `Checks the credentials against HOST, then stores them where docker and oras look:
the credential helper named in ~/.docker/config.json (DOCKER_CONFIG), else that file.
For volt registry serve, any user name works and the password is a token from
volt registry token.`,
		examples: `echo "$PASSWORD" | volt registry login registry.example:5000 -u ci --password-stdin
volt registry token --push | volt registry login 127.0.0.1:5000 -u token --password-stdin --plain-http`,
		args: exactArgs(1, "HOST"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			user := fs.StringP("username", "u", "", "user name")
			stdin := fs.Bool("password-stdin", false, "read the password (or token) from stdin")
			rf := addRegistryFlags(fs)
			return func(ctx context.Context, a *app, args []string) error {
				if *user == "" || !*stdin {
					return withHint(exitUsage, usagef("login needs -u USER and --password-stdin"), "echo \"$PASSWORD\" | volt registry login "+args[0]+" -u USER --password-stdin")
				}
				b, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
				if err != nil {
					return fmt.Errorf("read password from stdin: %w", err)
				}
				pw := strings.TrimRight(string(b), "\r\n")
				if pw == "" {
					return withHint(exitUsage, usagef("empty password on stdin"), "")
				}
				if err := registry.Login(ctx, args[0], *user, pw, rf.options(a, nil)); err != nil {
					return registryError(err, args[0])
				}
				if a.json() {
					return a.printJSON(map[string]any{"host": args[0], "user": *user, "loggedIn": true})
				}
				a.infof("Logged in to %s as %s", args[0], *user)
				return nil
			}
		},
	}
}

func registryLogoutCommand() *command {
	return &command{
		name:     "logout",
		summary:  "Remove stored credentials for a registry",
		usage:    "HOST",
		examples: "volt registry logout registry.example:5000",
		args:     exactArgs(1, "HOST"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			rf := addRegistryFlags(fs)
			return func(ctx context.Context, a *app, args []string) error {
				if err := registry.Logout(ctx, args[0], rf.options(a, nil)); err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(map[string]any{"host": args[0], "loggedIn": false})
				}
				a.infof("Logged out of %s", args[0])
				return nil
			}
		},
	}
}

func registryListCommand() *command {
	return &command{
		name:    "list",
		summary: "List a registry's repositories and their tags",
		usage:   "HOST [--prefix P] [--limit N] [--plain-http]",
		examples: `volt registry list registry.example:5000
volt registry list 127.0.0.1:5000 --prefix team/ --plain-http -o json`,
		args: exactArgs(1, "HOST"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			prefix := fs.String("prefix", "", "only repositories starting with this")
			limit := fs.Int("limit", 0, "at most this many repositories (0 = all)")
			rf := addRegistryFlags(fs)
			return func(ctx context.Context, a *app, args []string) error {
				repos, err := registry.List(ctx, args[0], *prefix, *limit, rf.options(a, nil))
				if err != nil {
					return registryError(err, args[0])
				}
				if a.json() {
					return a.printJSON(repos)
				}
				t := newTable(a.stdout, "REPOSITORY", "TAGS")
				for _, r := range repos {
					t.row(r.Name, strings.Join(r.Tags, ","))
				}
				return t.flush()
			}
		},
	}
}

func registryStatusCommand() *command {
	return &command{
		name:    "status",
		summary: "Check that a registry is reachable and the credentials work",
		usage:   "HOST [--plain-http]",
		examples: `volt registry status registry.example:5000
volt registry status 127.0.0.1:5000 --plain-http -o json`,
		args: exactArgs(1, "HOST"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			rf := addRegistryFlags(fs)
			return func(ctx context.Context, a *app, args []string) error {
				st, err := registry.Check(ctx, args[0], rf.options(a, nil))
				if err != nil {
					return registryError(err, args[0])
				}
				if a.json() {
					return a.printJSON(st)
				}
				yes := func(b bool) string {
					if b {
						return "yes"
					}
					return "no"
				}
				fmt.Fprintf(a.stdout, "Registry:      %s (%s)\n", st.Host, st.URL)
				fmt.Fprintf(a.stdout, "Reachable:     %s\n", yes(st.Reachable))
				if st.APIVersion != "" {
					fmt.Fprintf(a.stdout, "API version:   %s\n", st.APIVersion)
				}
				auth := st.Auth
				if st.Realm != "" {
					auth += " (" + st.Realm + ")"
				}
				fmt.Fprintf(a.stdout, "Auth:          %s\n", auth)
				fmt.Fprintf(a.stdout, "Credentials:   %s\n", map[bool]string{true: "stored", false: "none stored"}[st.HasCredentials])
				fmt.Fprintf(a.stdout, "Access:        %s\n", map[bool]string{true: "ok", false: "refused"}[st.Access])
				if st.Error != "" {
					return registryError(errors.New(st.Error), args[0])
				}
				return nil
			}
		},
	}
}

func registryServeCommand() *command {
	return &command{
		name:    "serve",
		summary: "Run an OCI registry whose blobs live in the Stellarium CAS",
		usage:   "[--port 5000] [--addr ADDR] [--tls-cert C --tls-key K] [--anonymous-pull]",
		long: `Serves the OCI Distribution API (pull, push, chunked uploads, cross-repository mount,
tags, catalog, referrers, delete) from $VOLT_ROOT/registry, with blob content in the CAS
($VOLT_ROOT/cas), so a blob shared with bundles and the CAS is stored once. Clients need a
bearer token from volt registry token (as the password of docker/oras/skopeo logins, or
directly as "Authorization: Bearer"); --anonymous-pull lets anyone pull. Stops on Ctrl-C.`,
		examples: `volt registry serve --port 5000
volt registry serve --addr 0.0.0.0:443 --tls-cert cert.pem --tls-key key.pem --anonymous-pull`,
		args: exactArgs(0, "no arguments"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			port := fs.Int("port", 5000, "TCP port")
			addr := fs.String("addr", "", "listen address HOST:PORT (overrides --port; default all interfaces)")
			cert := fs.String("tls-cert", "", "TLS certificate (PEM)")
			key := fs.String("tls-key", "", "TLS private key (PEM)")
			anon := fs.Bool("anonymous-pull", false, "allow pulls without a token")
			ttl := fs.String("token-ttl", "1h", "lifetime of tokens the /token endpoint issues")
			return func(ctx context.Context, a *app, args []string) error {
				if (*cert == "") != (*key == "") {
					return withHint(exitUsage, usagef("--tls-cert and --tls-key go together"), "")
				}
				tokenTTL, err := server.ParseExpiry(*ttl)
				if err != nil {
					return withHint(exitUsage, err, "")
				}
				listen := *addr
				if listen == "" {
					listen = ":" + strconv.Itoa(*port)
				}
				cs, err := a.eng.CAS()
				if err != nil {
					return err
				}
				srv, err := server.New(ctx, server.Config{
					Root: a.eng.Path("registry"), CAS: cs, AnonymousPull: *anon, TokenTTL: tokenTTL,
					Logf: func(f string, args ...any) { a.eng.Logger.Info(fmt.Sprintf(f, args...)) },
				})
				if err != nil {
					return err
				}
				defer srv.Close()
				ln, err := net.Listen("tcp", listen)
				if err != nil {
					return withHint(exitFailure, fmt.Errorf("listen on %s: %w", listen, err), "choose another --port or --addr")
				}
				hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
				scheme := "http"
				if *cert != "" {
					c, err := tls.LoadX509KeyPair(*cert, *key)
					if err != nil {
						ln.Close()
						return fmt.Errorf("load TLS key pair: %w", err)
					}
					hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
					scheme = "https"
				}
				a.infof("Serving an OCI registry on %s://%s (blobs in %s)", scheme, ln.Addr(), cs.Root())
				if !*anon {
					a.infof("Clients need a token: volt registry token [--push] (pull is open with --anonymous-pull)")
				}
				errc := make(chan error, 1)
				go func() {
					if scheme == "https" {
						errc <- hs.ServeTLS(ln, "", "")
					} else {
						errc <- hs.Serve(ln)
					}
				}()
				select {
				case err := <-errc:
					return err
				case <-ctx.Done():
					sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					hs.Shutdown(sctx)
					a.infof("Stopped")
					return nil
				}
			}
		},
	}
}

func registryTokenCommand() *command {
	return &command{
		name:    "token",
		summary: "Mint a bearer token for volt registry serve",
		usage:   "[--push] [--delete] [--expiry 7d] [--repo R]...",
		long: `Signs a token with this host's registry key ($VOLT_ROOT/registry/token.key, made on first
use; volt registry serve uses the same key). The token grants pull (and push/delete when
asked) on the given repositories ("team/*" for a prefix; all by default) until it expires.
Use it as the password of volt/oras/docker/skopeo logins, or as "Authorization: Bearer".`,
		examples: `volt registry token --push --expiry 7d --repo team/my-stack
volt registry token | volt registry login 127.0.0.1:5000 -u token --password-stdin --plain-http`,
		args: exactArgs(0, "no arguments"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			push := fs.Bool("push", false, "grant push as well as pull")
			del := fs.Bool("delete", false, "grant delete as well")
			expiry := fs.String("expiry", "24h", "lifetime: a duration (12h) or days (7d)")
			repos := fs.StringArray("repo", nil, `repository or prefix ("team/*") the token is for (repeatable; default all)`)
			subject := fs.String("subject", "", "who the token is for (recorded in it)")
			return func(ctx context.Context, a *app, args []string) error {
				ttl, err := server.ParseExpiry(*expiry)
				if err != nil {
					return withHint(exitUsage, err, "")
				}
				acts := []string{server.ActionPull}
				if *push {
					acts = append(acts, server.ActionPush)
				}
				if *del {
					acts = append(acts, server.ActionDelete)
				}
				list := *repos
				if len(list) == 0 {
					list = []string{"*"}
				}
				var access []server.Access
				for _, r := range list {
					access = append(access, server.Access{Repo: r, Actions: acts})
				}
				key, err := server.LoadOrCreateKey(a.eng.Path("registry", server.KeyFile))
				if err != nil {
					return err
				}
				now := time.Now()
				tok, err := server.MintToken(key, server.Claims{Subject: *subject, Service: server.DefaultService, IssuedAt: now.Unix(), Expires: now.Add(ttl).Unix(), Access: access})
				if err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(map[string]any{"token": tok, "expires": now.Add(ttl).UTC().Format(time.RFC3339), "access": access})
				}
				fmt.Fprintln(a.stdout, tok)
				a.infof("Token for %s (%s) until %s", strings.Join(list, ","), strings.Join(acts, ","), now.Add(ttl).UTC().Format(time.RFC3339))
				return nil
			}
		},
	}
}
