package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/volt-cli/volt/engine/deploy"
	"github.com/volt-cli/volt/engine/gitops"
)

func gitopsCommand() *command {
	return &command{
		name:    "gitops",
		summary: "Make stacks follow a git repository (webhooks, polling, history, rollback)",
		long: `A source names a repository, a branch and the path of a recipe (volt.star) or Constellation
in it. Each new head of the branch is fetched, built from the commit's tree into a bundle,
verified and deployed in place of the previous revision (which stays if the new one fails),
and recorded in the source's history. 'volt gitops serve' runs the poll loops and takes
webhooks at /hooks/NAME. See docs/gitops.md.`,
		examples: `volt gitops add shop --repo https://git.example.com/ops/shop.git --branch main --path deploy --interval 1m --webhook-secret-file /etc/volt/shop.hook
volt gitops serve --detach
volt gitops status shop
volt gitops history shop -o json
volt gitops rollback shop`,
		subs: []*command{
			gitopsAddCommand(), gitopsListCommand(), gitopsStatusCommand(), gitopsSyncCommand(),
			gitopsHistoryCommand(), gitopsRollbackCommand(), gitopsSetCommand(), gitopsRmCommand(),
			gitopsServeCommand(),
		},
	}
}

// sourceFlags are the settings add and set share.
type sourceFlags struct {
	repo, branch, path, secret, creds, sshKey, knownHosts, stack *string
	interval                                                     *time.Duration
	signed, suspend                                              *bool
}

func addSourceFlags(fs *pflag.FlagSet, withSuspend bool) *sourceFlags {
	f := &sourceFlags{
		repo:       fs.String("repo", "", "repository URL: https://, ssh://, git:// or file://"),
		branch:     fs.String("branch", "main", "branch to follow"),
		path:       fs.String("path", ".", "directory of the recipe (volt.star) or Constellation in the repository"),
		interval:   fs.Duration("interval", time.Minute, "poll interval (0 = no polling: webhooks and sync only)"),
		secret:     fs.String("webhook-secret-file", "", "file holding the webhook secret (absolute path; none = webhooks refused)"),
		signed:     fs.Bool("require-signed-commits", false, "deploy only commits SSH-signed by a trusted key (bundle.trusted_keys, allowed_signers)"),
		creds:      fs.String("credentials-file", "", "https credentials: a file holding USER:PASSWORD or a token"),
		sshKey:     fs.String("ssh-key", "", "private key file for ssh:// repositories"),
		knownHosts: fs.String("known-hosts", "", "known_hosts file for ssh:// (default ~/.ssh/known_hosts)"),
		stack:      fs.String("stack", "", "name of the deployed stack (default: the source name)"),
	}
	if withSuspend {
		f.suspend = fs.Bool("suspend", false, "stop polls and webhooks from deploying (--suspend=false resumes)")
	}
	return f
}

// apply copies the flags given on the command line (all of them for add) into s.
func (f *sourceFlags) apply(fs *pflag.FlagSet, s *gitops.Source, all bool) {
	set := func(name string) bool { return all || fs.Changed(name) }
	if set("repo") {
		s.Repo = *f.repo
	}
	if set("branch") {
		s.Branch = *f.branch
	}
	if set("path") {
		s.Path = *f.path
	}
	if set("interval") {
		s.Interval = gitops.Duration(*f.interval)
	}
	if set("webhook-secret-file") {
		s.WebhookSecretFile = absOrEmpty(*f.secret)
	}
	if set("require-signed-commits") {
		s.RequireSignedCommits = *f.signed
	}
	if set("credentials-file") {
		s.CredentialsFile = absOrEmpty(*f.creds)
	}
	if set("ssh-key") {
		s.SSHKey = absOrEmpty(*f.sshKey)
	}
	if set("known-hosts") {
		s.KnownHosts = absOrEmpty(*f.knownHosts)
	}
	if set("stack") {
		s.Stack = *f.stack
	}
	if f.suspend != nil && fs.Changed("suspend") {
		s.Suspended = *f.suspend
	}
}

func absOrEmpty(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// gitopsError attaches exit codes and hints to GitOps errors.
func gitopsError(err error) error {
	switch {
	case errors.Is(err, gitops.ErrNoSource): // exit code: exitCode's notFound
		return &cliError{code: exitFailure, err: err, hint: "see: volt gitops list"}
	case errors.Is(err, gitops.ErrInvalid), errors.Is(err, gitops.ErrSourceExists):
		return &cliError{code: exitUsage, err: err}
	case errors.Is(err, gitops.ErrUnsigned):
		return &cliError{code: exitVerify, err: err, hint: "sign commits with git -c gpg.format=ssh -c user.signingkey=KEY commit -S, and trust the key: volt config set bundle.trusted_keys += \"ssh-ed25519 AAAA… NAME\""}
	case errors.Is(err, gitops.ErrUnreachable):
		return &cliError{code: exitFailure, err: err, hint: "check the URL, the network and the credentials; serve retries with backoff"}
	}
	return err
}

func gitopsAddCommand() *command {
	return &command{
		name:    "add",
		summary: "Add a source: a stack that follows a branch of a repository",
		usage:   "NAME --repo URL [--branch B] [--path DIR] [--interval D] [--webhook-secret-file F] [--require-signed-commits]",
		long: `Adds the source; nothing is fetched until 'volt gitops sync NAME' or the poll loop of
'volt gitops serve'. The stack deployed is named NAME unless --stack says otherwise.`,
		examples: `volt gitops add shop --repo https://git.example.com/ops/shop.git --path deploy --interval 1m
volt gitops add shop --repo ssh://git@git.example.com/ops/shop.git --ssh-key /etc/volt/deploy-key --known-hosts /etc/volt/known_hosts
volt gitops add web --repo git://127.0.0.1/web.git --interval 0 --webhook-secret-file /etc/volt/web.hook --require-signed-commits`,
		args: exactArgs(1, "NAME"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			f := addSourceFlags(fs, false)
			return func(ctx context.Context, a *app, args []string) error {
				if *f.repo == "" {
					return withHint(exitUsage, usagef("gitops add: --repo is required"), "usage: volt gitops add NAME --repo URL")
				}
				s := &gitops.Source{Name: args[0]}
				f.apply(fs, s, true)
				if err := a.eng.GitOps().Add(s); err != nil {
					return gitopsError(err)
				}
				if a.json() {
					return a.printJSON(s)
				}
				a.infof("Added source %s: %s %s:%s, %s (deploy now with: volt gitops sync %s, or run volt gitops serve)", s.Name, s.Repo, s.Branch, s.Path, pollText(s.Interval), s.Name)
				return nil
			}
		},
	}
}

func gitopsListCommand() *command {
	return &command{
		name:     "list",
		summary:  "List sources with their deployed revision and status",
		usage:    "[-o json]",
		examples: "volt gitops list\nvolt gitops list -o json",
		args:     exactArgs(0, "no arguments"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return func(ctx context.Context, a *app, args []string) error {
				m := a.eng.GitOps()
				srcs, err := m.List()
				if err != nil {
					return err
				}
				out := []*gitops.Status{}
				for _, s := range srcs {
					st, err := m.Status(s.Name)
					if err != nil {
						return err
					}
					out = append(out, st)
				}
				if a.json() {
					return a.printJSON(out)
				}
				t := newTable(a.stdout, "NAME", "REPO", "BRANCH", "REVISION", "STATUS", "LAST SYNC")
				now := time.Now()
				for _, s := range out {
					last := "never"
					if !s.State.LastSync.IsZero() {
						last = humanAge(s.State.LastSync, now)
					}
					t.row(s.Name, s.Repo, s.Branch, orDash(shortRev(s.State.Deployed)), s.Phase, last)
				}
				return t.flush()
			}
		},
	}
}

func pollText(d gitops.Duration) string {
	if d <= 0 {
		return "no polling (webhooks and sync only)"
	}
	return "polled every " + time.Duration(d).String()
}

func shortRev(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// gitopsStatusOut is the JSON of gitops status.
type gitopsStatusOut struct {
	Serve   gitops.ServeStatus `json:"serve"`
	Sources []*gitops.Status   `json:"sources"`
}

func gitopsStatusCommand() *command {
	return &command{
		name:    "status",
		summary: "Show desired and deployed revisions, the last error, and whether serve runs",
		usage:   "[NAME] [-o json]",
		examples: `volt gitops status shop
volt gitops status
volt gitops status shop -o json`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) > 1 {
					return usagef("gitops status: want at most one NAME")
				}
				m := a.eng.GitOps()
				out := gitopsStatusOut{Serve: m.ServeStatus(), Sources: []*gitops.Status{}}
				names := args
				if len(names) == 0 {
					srcs, err := m.List()
					if err != nil {
						return err
					}
					for _, s := range srcs {
						names = append(names, s.Name)
					}
				}
				for _, n := range names {
					st, err := m.Status(n)
					if err != nil {
						return gitopsError(err)
					}
					out.Sources = append(out.Sources, st)
				}
				if a.json() {
					return a.printJSON(out)
				}
				if out.Serve.Running {
					fmt.Fprintf(a.stdout, "serve:     running (pid %d, %s, since %s)\n", out.Serve.PID, out.Serve.Addr, out.Serve.Started.Format(time.RFC3339))
				} else if out.Serve.Died {
					fmt.Fprintf(a.stdout, "serve:     not running: pid %d died without stopping (see %s; restart with: volt gitops serve --detach)\n", out.Serve.PID, out.Serve.Log)
				} else {
					fmt.Fprintf(a.stdout, "serve:     not running (start it with: volt gitops serve --detach)\n")
				}
				for _, s := range out.Sources {
					fmt.Fprintf(a.stdout, "\nsource:    %s (%s)\n", s.Name, s.Phase)
					fmt.Fprintf(a.stdout, "repo:      %s %s:%s\n", s.Repo, s.Branch, s.Path)
					fmt.Fprintf(a.stdout, "stack:     %s\n", s.Stack)
					fmt.Fprintf(a.stdout, "desired:   %s\n", orDash(s.State.Head))
					fmt.Fprintf(a.stdout, "deployed:  %s\n", orDash(s.State.Deployed))
					fmt.Fprintf(a.stdout, "poll:      %s\n", pollText(s.Interval))
					if !s.State.LastSync.IsZero() {
						fmt.Fprintf(a.stdout, "last sync: %s\n", s.State.LastSync.Format(time.RFC3339))
					}
					if s.State.LastError != "" {
						fmt.Fprintf(a.stdout, "error:     %s\n", s.State.LastError)
					}
				}
				return nil
			}
		},
	}
}

func gitopsSyncCommand() *command {
	return &command{
		name:    "sync",
		summary: "Fetch the branch head now and deploy it if it is not running",
		usage:   "NAME [-o json]",
		long: `An explicit sync deploys the head even if it failed before, the source is suspended, or a
rollback holds; it waits if a build of the source is running.`,
		examples: "volt gitops sync shop\nvolt gitops sync shop -o json",
		args:     exactArgs(1, "NAME"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return func(ctx context.Context, a *app, args []string) error {
				res, err := a.eng.GitOps().Sync(ctx, args[0], gitops.SyncOptions{
					Manual: true,
					OnWait: func() { a.infof("waiting for another build of %s…", args[0]) },
				})
				if err != nil {
					return gitopsError(err)
				}
				if a.json() {
					return a.printJSON(res)
				}
				a.infof("%s: %s", res.Source, res.Message)
				return nil
			}
		},
	}
}

func gitopsHistoryCommand() *command {
	return &command{
		name:     "history",
		summary:  "List a source's deployments: commit, time, bundle digest, result, duration, error",
		usage:    "NAME [-o json]",
		examples: "volt gitops history shop\nvolt gitops history shop -o json",
		args:     exactArgs(1, "NAME"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return func(ctx context.Context, a *app, args []string) error {
				m := a.eng.GitOps()
				if _, err := m.Get(args[0]); err != nil {
					return gitopsError(err)
				}
				h, err := m.History(args[0])
				if err != nil {
					return err
				}
				if h == nil {
					h = []gitops.Entry{}
				}
				if a.json() {
					return a.printJSON(h)
				}
				t := newTable(a.stdout, "TIME", "COMMIT", "ACTION", "RESULT", "DURATION", "DIGEST", "ERROR")
				for i := len(h) - 1; i >= 0; i-- {
					e := h[i]
					d := "-"
					if len(e.Digest) > 19 {
						d = e.Digest[:19]
					}
					res := e.Result
					if e.Kept {
						res += " (kept)"
					}
					t.row(e.Time.Local().Format("2006-01-02 15:04:05"), shortRev(e.Commit), e.Action, res,
						(time.Duration(e.DurationMS) * time.Millisecond).String(), d, orDash(truncate(e.Error, 80)))
				}
				return t.flush()
			}
		},
	}
}

func gitopsRollbackCommand() *command {
	return &command{
		name:    "rollback",
		summary: "Deploy the previous successful revision again (or --to REV)",
		usage:   "NAME [--to REV] [-o json]",
		long: `Deploys a kept bundle (config gitops.keep, default 5) without building. Polls and webhooks
leave the rollback in place until the branch gets a new commit; 'volt gitops sync NAME'
deploys the branch head again.`,
		examples: "volt gitops rollback shop\nvolt gitops rollback shop --to 3f2a9c1",
		args:     exactArgs(1, "NAME"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			to := fs.String("to", "", "commit (at least 4 hex digits) to go back to")
			return func(ctx context.Context, a *app, args []string) error {
				e, err := a.eng.GitOps().Rollback(ctx, args[0], *to, func() { a.infof("waiting for another build of %s…", args[0]) })
				if err != nil {
					if errors.Is(err, gitops.ErrNoRollback) {
						return &cliError{code: exitNotFound, err: err, hint: "see: volt gitops history " + args[0]}
					}
					return gitopsError(err)
				}
				if a.json() {
					return a.printJSON(e)
				}
				a.infof("%s: rolled back to %s (%s)", args[0], shortRev(e.Commit), e.Subject)
				return nil
			}
		},
	}
}

func gitopsSetCommand() *command {
	return &command{
		name:    "set",
		summary: "Change a source's settings",
		usage:   "NAME [--interval D] [--branch B] [--path DIR] [--suspend] …",
		long:    `Only the flags given change. A running serve picks the change up within seconds.`,
		examples: `volt gitops set shop --interval 1h
volt gitops set shop --suspend
volt gitops set shop --suspend=false --require-signed-commits`,
		args: exactArgs(1, "NAME"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			f := addSourceFlags(fs, true)
			return func(ctx context.Context, a *app, args []string) error {
				m := a.eng.GitOps()
				s, err := m.Get(args[0])
				if err != nil {
					return gitopsError(err)
				}
				f.apply(fs, s, false)
				if err := s.Validate(); err != nil {
					return gitopsError(err)
				}
				if err := m.Put(s); err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(s)
				}
				a.infof("Updated source %s", s.Name)
				return nil
			}
		},
	}
}

func gitopsRmCommand() *command {
	return &command{
		name:     "rm",
		summary:  "Remove a source (its history and kept bundles); --destroy also removes its stack",
		usage:    "NAME [--destroy]",
		examples: "volt gitops rm shop\nvolt gitops rm shop --destroy",
		args:     exactArgs(1, "NAME"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			destroy := fs.Bool("destroy", false, "also stop and remove the stack the source deployed")
			return func(ctx context.Context, a *app, args []string) error {
				m := a.eng.GitOps()
				s, err := m.Get(args[0])
				if err != nil {
					return gitopsError(err)
				}
				if *destroy {
					err := a.eng.GitOpsDestroy(ctx, s.Stack, func(msg string) { a.infof("%s", msg) })
					if err != nil && !errors.Is(err, deploy.ErrNoStack) {
						return err
					}
				}
				if err := m.Remove(s.Name); err != nil {
					return err
				}
				a.infof("Removed source %s", s.Name)
				return nil
			}
		},
	}
}

func gitopsServeCommand() *command {
	return &command{
		name:    "serve",
		summary: "Take webhooks at /hooks/NAME and run the poll loops (foreground, or --detach)",
		usage:   "[--addr HOST:PORT] [--detach | --stop]",
		long: `In the foreground it logs to stderr until interrupted. With --detach it starts itself as a
detached process (own session, pidfile $VOLT_ROOT/gitops/serve.json, log
$VOLT_ROOT/gitops/serve.log) and returns once it listens; --stop stops that process.
Where systemd is PID 1, run the foreground form as a unit (docs/gitops.md).`,
		examples: `volt gitops serve
volt gitops serve --addr 127.0.0.1:9090 --detach
volt gitops serve --stop`,
		args: exactArgs(0, "no arguments"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			addr := fs.String("addr", gitops.DefaultAddr, "listen address for webhooks")
			detach := fs.Bool("detach", false, "run in the background as a detached process")
			stop := fs.Bool("stop", false, "stop the detached serve process")
			return func(ctx context.Context, a *app, args []string) error {
				m := a.eng.GitOps()
				switch {
				case *stop:
					was, err := m.StopServe(ctx)
					if err != nil {
						return err
					}
					if !was {
						a.infof("serve is not running")
						return nil
					}
					a.infof("serve stopped")
					return nil
				case *detach:
					exe, err := os.Executable()
					if err != nil {
						return err
					}
					cargs := []string{"gitops", "serve", "--addr", *addr, "--root", a.eng.Root, "--config", a.eng.Config.Path}
					for _, d := range a.pluginDirs {
						cargs = append(cargs, "--plugin-dir", absOrEmpty(d))
					}
					st, err := m.Detach(exe, cargs, os.Environ())
					if err != nil {
						return err
					}
					if a.json() {
						return a.printJSON(st)
					}
					a.infof("serve running (pid %d) on %s; log: %s", st.PID, st.Addr, st.Log)
					return nil
				}
				srv := a.eng.GitOpsServer(*addr)
				level := slog.LevelInfo
				if a.debug {
					level = slog.LevelDebug
				}
				srv.Logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
				return srv.Run(ctx, func(addr string) { a.infof("volt gitops serve: webhooks at http://%s/hooks/NAME", addr) })
			}
		},
	}
}
