package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/volt-cli/volt/engine"
	"github.com/volt-cli/volt/engine/deploy"
	"github.com/volt-cli/volt/engine/security"
	"github.com/volt-cli/volt/engine/sign"
	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/console"
)

func bundleImportCommand() *command {
	return &command{
		name:    "import",
		summary: "Verify a bundle and deploy it as a stack",
		usage:   "BUNDLE [--verify] [--run-hooks] [--set K=V]... [--no-start] [--force] [--name STACK] [--allow-privileged] [--security MODE]",
		long: `Checks the bundle's structure and every entry's BLAKE3 (and its signature with --verify or
config bundle.require_signature), unpacks each service's image for this host's platform,
applies config overlays with ${VAR} expansion, and starts the services in dependency order.
BUNDLE is a file, an oci:// reference, or NAME[:VERSION] of a bundle in the local
cache (volt bundle list). Importing the same bundle again does nothing; --force replaces a
deployed stack. A failed import leaves the previous deployment running. Device nodes in images
are never created (each skipped with a warning). With -o json the stack is printed with
"checks": the checks that ran (zip, structure, signature, integrity, tar). Each container's security
settings are checked first (capability names, seccomp profiles, Landlock on this kernel):
privileged services need --allow-privileged; --security=best-effort turns "cannot be enforced
on this host" into a warning naming what will not be enforced.`,
		examples: `volt bundle import my-stack.vbundle
volt bundle import --verify --run-hooks prod.vbundle
volt bundle import --set DB_PASSWORD=secret --set APP_ENV=staging my-stack.vbundle
volt bundle import --no-start my-stack.vbundle
volt bundle import --force my-stack.vbundle
volt bundle import my-stack        # the newest my-stack in the local cache (volt bundle list)
volt bundle import my-stack:1.2.0
volt bundle import --allow-privileged --security=best-effort tools.vbundle
volt bundle import oci://registry.example:5000/team/my-stack:v1.2.0`,
		args: exactArgs(1, "BUNDLE"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			verify := fs.Bool("verify", false, "require a trusted signature")
			hooks := fs.Bool("run-hooks", false, "run the bundle's lifecycle hooks (validate, pre-deploy, post-deploy)")
			sets := fs.StringArray("set", nil, "variable KEY=VALUE for ${KEY} in environments and config overlays (repeatable)")
			noStart := fs.Bool("no-start", false, "prepare the stack but start nothing")
			force := fs.Bool("force", false, "replace a deployed stack of the same name")
			name := fs.String("name", "", "stack name (default: the bundle's name)")
			allowPriv := fs.Bool("allow-privileged", false, "accept services with privileged: true (every capability, no seccomp)")
			secMode := fs.String("security", "strict", "strict: refuse policies this host cannot enforce; best-effort: warn and run without them")
			return func(ctx context.Context, a *app, args []string) error {
				if *secMode != "strict" && *secMode != "best-effort" {
					return withHint(exitUsage, fmt.Errorf("--security %q: want strict or best-effort", *secMode), "")
				}
				vars, err := engine.SplitParams(*sets)
				if err != nil {
					return withHint(exitUsage, err, "")
				}
				src, err := a.bundleArg(args[0])
				if err != nil {
					return err
				}
				var checks []engine.Check
				verifying, unpacking := a.progress("verifying"), a.progress("unpacking")
				st, err := a.eng.Import(ctx, engine.ImportOptions{
					ImportOptions: deploy.ImportOptions{Bundle: src, Vars: vars, RunHooks: *hooks, NoStart: *noStart, Force: *force, Name: *name,
						Security: security.Options{AllowPrivileged: *allowPriv, BestEffort: *secMode == "best-effort"},
						Progress: func(done, total int64) { verifying.done(); unpacking.update(done, total) }},
					Verify:         *verify,
					Notify:         func(s string) { a.infof("%s", s) },
					OnWait:         func() { a.infof("waiting for another volt process to finish…") },
					VerifyProgress: verifying.update,
					Checks:         func(c []engine.Check) { checks = c },
				})
				verifying.done()
				unpacking.done()
				if errors.Is(err, deploy.ErrUnchanged) {
					a.infof("%s: nothing to do (use --force to redeploy)", err)
					return nil
				}
				if err != nil {
					return importError(err)
				}
				if a.json() {
					return a.printJSON(struct {
						*deploy.Stack
						Checks []engine.Check `json:"checks"`
					}{st, checks})
				}
				a.infof("Deployed stack %s (%s v%s, %s)", st.Name, st.Bundle.Name, st.Bundle.Version, plural(len(st.Workloads), "workload"))
				return nil
			}
		},
	}
}

// importError attaches exit codes and hints to deploy failures.
func importError(err error) error {
	switch {
	case errors.Is(err, engine.ErrVerifyFailed):
		return &cliError{code: exitVerify, err: err, hint: "see: volt bundle verify BUNDLE"}
	case errors.Is(err, deploy.ErrStackExists):
		return &cliError{code: exitFailure, err: err, hint: "volt bundle import --force BUNDLE replaces it; volt stack destroy NAME removes it"}
	case errors.Is(err, security.ErrPolicy):
		return &cliError{code: exitUsage, err: err, hint: "see: volt bundle inspect --show-security BUNDLE, docs/workload-security.md"}
	case errors.Is(err, deploy.ErrUndefinedVar):
		return &cliError{code: exitUsage, err: err}
	case errors.Is(err, deploy.ErrNoPlatform):
		return &cliError{code: exitFailure, err: err, hint: "rebuild the bundle with this host's platform: volt bundle create --platforms " + deploy.HostPlatform() + ",…"}
	}
	return err
}

func psCommand() *command {
	return &command{
		name:    "ps",
		summary: "List workloads (running ones; -a for all)",
		usage:   "[-a] [-q] [-o json|yaml]",
		long: `NAME is STACK/SERVICE, the form every workload command takes (a service name alone
works too when only one stack has it). -q prints only the names, one a line.`,
		examples: "volt ps\nvolt ps -a -o json\nvolt ps -q | xargs -n1 volt container stop",
		args:     exactArgs(0, "no arguments"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			all := fs.BoolP("all", "a", false, "include stopped and failed workloads")
			return func(ctx context.Context, a *app, args []string) error {
				return printPS(ctx, a, *all, "")
			}
		},
	}
}

// printPS prints workloads, all or running ones, of one type or ("") all types.
func printPS(ctx context.Context, a *app, all bool, kind string) error {
	rows, errs := a.eng.PS(ctx, all)
	for _, err := range errs {
		fmt.Fprintf(a.stderr, "volt: %v\n", err)
	}
	shown := []deploy.WorkloadStatus{}
	for _, r := range rows {
		if kind == "" || r.Type == kind {
			shown = append(shown, r)
		}
	}
	if a.json() {
		return a.printJSON(shown)
	}
	if a.quiet {
		for _, r := range shown {
			fmt.Fprintln(a.stdout, r.Stack+"/"+r.Service)
		}
		return nil
	}
	// NAME is the STACK/SERVICE form every workload command takes.
	t := newTable(a.stdout, "NAME", "TYPE", "STATUS", "UPTIME")
	now := time.Now()
	for _, r := range shown {
		up := "-"
		if r.Status == sdk.StatusRunning && !r.Started.IsZero() {
			up = uptime(now.Sub(r.Started))
		}
		status := r.Status
		if r.Status == sdk.StatusFailed && r.Reason != "" {
			status += " (" + truncate(r.Reason, 60) + ")"
		}
		t.row(r.Stack+"/"+r.Service, r.Type, status, up)
	}
	return t.flush()
}

func uptime(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func logsCommand() *command {
	return &command{
		name:     "logs",
		summary:  "Print a workload's log",
		usage:    "[-f] [-n N] STACK/SERVICE (or NAME as volt ps shows it)",
		examples: "volt logs hello/hello\nvolt logs -f -n 20 shop/web",
		args:     exactArgs(1, "STACK/SERVICE"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			follow := fs.BoolP("follow", "f", false, "keep printing new lines until the workload ends (or Ctrl-C)")
			tail := fs.IntP("tail", "n", 0, "print only the last N lines (0 = all)")
			return func(ctx context.Context, a *app, args []string) error {
				err := a.eng.Logs(ctx, args[0], *follow, *tail, a.stdout)
				// Ctrl-C ends -f early: the call reports a cancellation
				// (ctx, or plugins stopped by the signal), not an error.
				if *follow && errors.Is(err, context.Canceled) {
					return nil
				}
				return err
			}
		},
	}
}

// workloadCommand is the command group for one kind of workload
// ("container" or "vm"); both share lifecycle verbs.
func workloadCommand(kind string) *command {
	example := map[string]string{"container": "hello/hello", "vm": "lab/db"}[kind]
	action := func(verb, summary string) *command {
		return &command{
			name: verb, summary: summary, usage: "STACK/SERVICE",
			examples: fmt.Sprintf("volt %s %s %s", kind, verb, example),
			args:     exactArgs(1, "STACK/SERVICE"),
			setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
				return func(ctx context.Context, a *app, args []string) error {
					if err := a.eng.WorkloadAction(ctx, verb, args[0]); err != nil {
						return err
					}
					a.infof("%s: %s", args[0], map[string]string{"start": "started", "stop": "stopped", "restart": "restarted", "rm": "removed"}[verb])
					return nil
				}
			},
		}
	}
	c := &command{
		name:    kind,
		summary: fmt.Sprintf("Manage one %s of a deployed stack", kind),
		subs: []*command{
			{
				name: "list", summary: fmt.Sprintf("List %ss (running ones; -a for all)", kind), usage: "[-a] [-o json]",
				examples: fmt.Sprintf("volt %s list -a", kind),
				args:     exactArgs(0, "no arguments"),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					all := fs.BoolP("all", "a", false, "include stopped and failed ones")
					return func(ctx context.Context, a *app, args []string) error {
						return printPS(ctx, a, *all, kind)
					}
				},
			},
			action("start", fmt.Sprintf("Start a stopped %s", kind)),
			action("stop", fmt.Sprintf("Stop a %s gracefully, forcing it after the timeout", kind)),
			action("restart", fmt.Sprintf("Stop then start a %s", kind)),
			action("rm", fmt.Sprintf("Stop a %s and remove it from its stack", kind)),
			{
				name: "inspect", summary: fmt.Sprintf("Show a %s's spec, handle and live status", kind), usage: "STACK/SERVICE [-o json]",
				examples: fmt.Sprintf("volt %s inspect %s -o json", kind, example),
				args:     exactArgs(1, "STACK/SERVICE"),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					return func(ctx context.Context, a *app, args []string) error {
						return printWorkload(ctx, a, args[0])
					}
				},
			},
		},
	}
	if kind == "vm" {
		c.subs = append(c.subs, &command{
			name: "console", summary: "Attach to a VM's serial console (Ctrl-] detaches)", usage: "STACK/SERVICE",
			long:     "Everything the guest prints is also kept in its log (volt logs STACK/SERVICE), attached or not.",
			examples: "volt vm console lab/vm",
			args:     exactArgs(1, "STACK/SERVICE"),
			setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
				return func(ctx context.Context, a *app, args []string) error {
					sock, err := a.eng.ConsolePath(ctx, args[0])
					if err != nil {
						return err
					}
					if isTerminal(os.Stdin) {
						old, err := term.MakeRaw(int(os.Stdin.Fd()))
						if err == nil {
							defer term.Restore(int(os.Stdin.Fd()), old)
						}
					}
					a.infof("Connected to %s's serial console; Ctrl-] to detach\r", args[0])
					err = console.Attach(ctx, sock, os.Stdin, a.stdout)
					if errors.Is(err, console.ErrClosed) {
						a.infof("\r\nthe VM closed its console\r")
						return nil
					}
					return err
				}
			},
		})
	}
	if kind == "container" {
		c.subs = append(c.subs,
			&command{
				name: "exec", summary: "Run a command inside a running container", usage: "[-i] [-t] STACK/SERVICE -- COMMAND [ARG...]",
				long: `-i passes stdin to the command (it is passed anyway when stdin is a pipe or file);
-t runs it on a pseudo-terminal: the local terminal is put in raw mode, its window size
follows, and Ctrl-C goes to the command, not to volt. The command's exit code is volt's.`,
				examples: "volt container exec hello/hello -- cat /etc/hello.conf\nvolt container exec -it hello/hello -- /bin/sh\necho data | volt container exec -i shop/db -- tee /data/x",
				args:     minArgs(2, "STACK/SERVICE COMMAND..."),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					interactive := fs.BoolP("interactive", "i", false, "pass stdin to the command")
					tty := fs.BoolP("tty", "t", false, "run the command on a pseudo-terminal")
					return func(ctx context.Context, a *app, args []string) error {
						return execIn(ctx, a, args[0], args[1:], *interactive, *tty)
					}
				},
			},
			&command{
				name: "shell", summary: "Open /bin/sh inside a running container", usage: "STACK/SERVICE",
				long:     "The same as volt container exec -it STACK/SERVICE -- /bin/sh (a pseudo-terminal when stdin is a terminal).",
				examples: "volt container shell hello/hello",
				args:     exactArgs(1, "STACK/SERVICE"),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					return func(ctx context.Context, a *app, args []string) error {
						return execIn(ctx, a, args[0], []string{"/bin/sh"}, true, isTerminal(os.Stdin))
					}
				},
			})
	}
	return c
}

func printWorkload(ctx context.Context, a *app, ref string) error {
	w, st, err := a.eng.Inspect(ctx, ref)
	if err != nil {
		return err
	}
	if a.json() {
		return a.printJSON(map[string]any{"workload": w, "status": st})
	}
	fmt.Fprintf(a.stdout, "Name: %s\nService: %s\nType: %s\nRuntime: %s\nRoot: %s\n", w.Name, w.Service, w.Type, w.Runtime, w.Spec.Root)
	if len(w.Spec.Command) > 0 {
		fmt.Fprintf(a.stdout, "Command: %s\n", strings.Join(w.Spec.Command, " "))
	}
	if w.Spec.Kernel != "" {
		fmt.Fprintf(a.stdout, "Kernel: %s\nCmdline: %s\n", w.Spec.Kernel, w.Spec.Cmdline)
	}
	if st != nil {
		fmt.Fprintf(a.stdout, "Status: %s\n", st.Status)
		if st.PID > 0 {
			fmt.Fprintf(a.stdout, "PID: %d\n", st.PID)
		}
		if st.Reason != "" {
			fmt.Fprintf(a.stdout, "Reason: %s\n", st.Reason)
		}
		keys := make([]string, 0, len(st.Security))
		for k := range st.Security {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(a.stdout, "Security %s: %s\n", k, st.Security[k])
		}
	}
	for _, c := range w.Config {
		fmt.Fprintf(a.stdout, "Config: %s -> %s\n", c.Source, c.Target)
	}
	return nil
}

// execIn runs argv in a container. With tty the local terminal (if stdin
// is one) goes raw for the session, so Ctrl-C reaches the command, and its
// window size follows along.
func execIn(ctx context.Context, a *app, ref string, argv []string, interactive, tty bool) error {
	req := sdk.ExecRequest{Command: argv, Stdout: a.stdout, Stderr: a.stderr, TTY: tty}
	if interactive || !isTerminal(os.Stdin) {
		req.Stdin = os.Stdin
	}
	if tty {
		term := os.Getenv("TERM")
		if term == "" {
			term = "xterm"
		}
		req.Env = map[string]string{"TERM": term}
		if restore, resize := rawTerminal(ctx); restore != nil {
			defer restore()
			req.Size, req.Resize = <-resize, resize
		}
	}
	code, err := a.eng.Exec(ctx, ref, req)
	if err != nil {
		return err
	}
	if code != 0 {
		return &cliError{code: code, err: fmt.Errorf("command exited with code %d", code)}
	}
	return nil
}

func stackCommand() *command {
	return &command{
		name:    "stack",
		summary: "List and destroy deployed stacks",
		subs: []*command{
			{
				name: "list", summary: "List deployed stacks", usage: "[-o json]",
				examples: "volt stack list",
				args:     exactArgs(0, "no arguments"),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					return func(ctx context.Context, a *app, args []string) error {
						stacks, errs := a.eng.Stacks()
						for _, err := range errs {
							fmt.Fprintf(a.stderr, "volt: %v\n", err)
						}
						for _, s := range stacks {
							if s.Problem != "" {
								fmt.Fprintf(a.stderr, "volt: %s\n", s.Problem)
							}
						}
						if a.json() {
							if stacks == nil {
								stacks = []*deploy.Stack{}
							}
							return a.printJSON(stacks)
						}
						t := newTable(a.stdout, "NAME", "BUNDLE", "VERSION", "WORKLOADS", "DEPLOYED", "PHASE")
						now := time.Now()
						for _, s := range stacks {
							t.row(s.Name, s.Bundle.Name, s.Bundle.Version, fmt.Sprint(len(s.Workloads)), humanAge(s.DeployedAt, now), s.Phase)
						}
						return t.flush()
					}
				},
			},
			{
				name: "destroy", summary: "Stop and remove a stack, its workloads and (unless --keep-volumes) its volumes", usage: "NAME [--run-hooks] [--keep-volumes] [--force]",
				long: `A stack whose state (stack.json) is corrupt or lost is refused unless --force: then the
workloads recorded for it are stopped through their runtimes and removed, without hooks.`,
				examples: "volt stack destroy hello\nvolt stack destroy shop --run-hooks\nvolt stack destroy --force broken",
				args:     exactArgs(1, "NAME"),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					hooks := fs.Bool("run-hooks", false, "run the stack's pre-destroy and post-destroy hooks")
					keep := fs.Bool("keep-volumes", false, "keep the stack's named volumes")
					force := fs.Bool("force", false, "remove a stack whose state is corrupt, through its workloads' records")
					return func(ctx context.Context, a *app, args []string) error {
						err := a.eng.DestroyStack(ctx, args[0], deploy.DestroyOptions{RunHooks: *hooks, KeepVolumes: *keep, Force: *force}, func(s string) { a.infof("%s", s) })
						if err != nil {
							return err
						}
						a.infof("Destroyed stack %s", args[0])
						return nil
					}
				},
			},
		},
	}
}

func bundleExportCommand() *command {
	return &command{
		name:    "export",
		summary: "Turn a deployed stack back into a bundle",
		usage:   "STACK -o FILE [--include-volumes] [--sign-key KEY]",
		long: `Each container's current root tree (config overlays applied) becomes its image; VMs
carry their disk and boot files. The bundle imports elsewhere like any other.`,
		examples: `volt bundle export my-stack -o snapshot.vbundle
volt bundle export my-stack --include-volumes -o snapshot.vbundle`,
		oFile: true,
		args:  exactArgs(1, "STACK"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			vols := fs.Bool("include-volumes", false, "carry the stack's named volumes")
			key := fs.String("sign-key", "", "sign the exported bundle with this key")
			return func(ctx context.Context, a *app, args []string) error {
				if a.outFile == "" {
					return withHint(exitUsage, usagef("bundle export needs -o FILE"), "e.g. volt bundle export "+args[0]+" -o snapshot.vbundle")
				}
				opts := engine.ExportOptions{Stack: args[0], Output: a.outFile, IncludeVolumes: *vols, SignKey: *key}
				if *key != "" {
					opts.Passphrase = sign.PassphraseFromEnvOrTerminal("Passphrase for " + *key + ": ")
				}
				bar := a.progress("exporting")
				opts.Progress = bar.update
				m, err := a.eng.Export(ctx, opts)
				bar.done()
				if err != nil {
					return err
				}
				a.infof("Exported stack %s to %s (%s)", args[0], a.outFile, plural(len(m.Services), "service"))
				return nil
			}
		},
	}
}

// bundleArg resolves a BUNDLE argument: an oci:// reference or an existing
// file as given, else NAME[:VERSION] of a bundle in the local cache.
func (a *app) bundleArg(arg string) (string, error) {
	if strings.HasPrefix(arg, "oci://") {
		return arg, nil
	}
	_, err := os.Stat(arg)
	if err == nil || strings.ContainsRune(arg, os.PathSeparator) || strings.HasSuffix(arg, ".vbundle") {
		return arg, err
	}
	return a.eng.CachedBundle(arg)
}

// rawTerminal puts a terminal stdin in raw mode and reports its window size
// now and on every SIGWINCH on the channel; restore undoes both. It returns
// nils when stdin is not a terminal.
func rawTerminal(ctx context.Context) (restore func(), sizes chan sdk.TermSize) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, nil
	}
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, nil
	}
	sizes = make(chan sdk.TermSize, 1)
	size := func() sdk.TermSize {
		w, h, err := term.GetSize(fd)
		if err != nil {
			return sdk.TermSize{}
		}
		return sdk.TermSize{Rows: uint16(h), Cols: uint16(w)}
	}
	sizes <- size()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				select {
				case sizes <- size():
				default:
				}
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(done)
		term.Restore(fd, old)
	}, sizes
}
