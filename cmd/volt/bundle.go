package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/volt-cli/volt/engine"
	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/sign"
)

func bundleCommand() *command {
	return &command{
		name:    "bundle",
		summary: "Create, inspect, verify and sign .vbundle files",
		subs: []*command{
			bundleCreateCommand(),
			bundleInspectCommand(),
			bundleVerifyCommand(),
			bundleSignCommand(),
			bundleListCommand(),
			bundleImportCommand(),
			bundleExportCommand(),
			bundleConvertCommand(),
			bundlePushCommand(),
			bundlePullCommand(),
		},
	}
}

func bundleCreateCommand() *command {
	return &command{
		name:    "create",
		summary: "Build a bundle from a recipe (volt.star) or a Constellation",
		usage:   "[DIR] [-f RECIPE] [--set K=V]... [-o FILE] [--sign --sign-key KEY] [--platforms P,...] [--dry-run]",
		long: `Evaluates DIR/volt.star (or -f FILE); a directory without a recipe is built by the
embedded default recipe from its volt-compose.yaml / Voltfile, and so is a Constellation
or docker-compose file given with -f (-f docker-compose.yml, -f compose.yaml). Compose keys
Volt does not support are warned about, once each, with their file:line. The bundle is written
atomically to -o FILE, or into the local bundle cache ($VOLT_ROOT/bundles) without -o.
Two creates of the same inputs give byte-identical files (timestamps come from
SOURCE_DATE_EPOCH, else the newest input).`,
		examples: `cd examples/hello && volt bundle create -o hello.vbundle
volt bundle create -f recipes/web.star --set replicas=3 -o web.vbundle
volt bundle create -f docker-compose.yml -o app.vbundle
volt bundle create --sign --sign-key ~/.config/volt/signing-key --platforms linux/amd64,linux/arm64 -o x.vbundle
volt bundle create --dry-run -o json
volt bundle create --format ace --platforms android/arm64-v8a -o project.zip
volt bundle create --cas -o small.vbundle`,
		oFile: true,
		args: func(args []string) error {
			if len(args) > 1 {
				return usagef("want at most one DIR")
			}
			return nil
		},
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			file := fs.StringP("file", "f", "", "recipe (.star) or Constellation/compose file (.yaml, .yml, Voltfile), relative to DIR (default volt.star); an absolute path without DIR makes its directory the root")
			out := fs.String("out", "", "output file (same as -o FILE when -o is not a format)")
			sets := fs.StringArray("set", nil, "recipe parameter KEY=VALUE (repeatable)")
			platforms := fs.StringSlice("platforms", nil, "only these platforms, e.g. linux/amd64,linux/arm64")
			dry := fs.Bool("dry-run", false, "print what would go in, write nothing")
			doSign := fs.Bool("sign", false, "sign the bundle (key from --sign-key or config bundle.sign_key)")
			key := fs.String("sign-key", "", "OpenSSH ed25519 private key to sign with (implies --sign)")
			maxSteps := fs.Uint64("max-steps", 0, "recipe evaluation step limit (0 = config recipe.max_steps or built-in default)")
			format := fs.String("format", "vbundle", "bundle format: vbundle, or ace (an ACE zip: containers only, unsigned)")
			useCAS := fs.Bool("cas", false, "put images into the local Stellarium store; the bundle references them instead of embedding them")
			return func(ctx context.Context, a *app, args []string) error {
				// -o is both the output format and, by users' habit, the output file:
				// anything other than table/json given to -o is the file name.
				output := *out
				if a.outFile != "" {
					output = a.outFile
				}
				params, err := engine.SplitParams(*sets)
				if err != nil {
					return withHint(exitUsage, err, "")
				}
				opts := engine.CreateOptions{
					Recipe: *file, Params: params, Output: output, Platforms: *platforms,
					DryRun: *dry, MaxSteps: *maxSteps, Format: *format, CAS: *useCAS,
					Print: func(s string) { fmt.Fprintln(a.stderr, s) },
					Warn:  func(s string) { fmt.Fprintf(a.stderr, "volt: warning: %s\n", s) },
				}
				if len(args) == 1 {
					opts.Dir = args[0]
				}
				if *doSign || *key != "" {
					opts.SignKey = *key
					if opts.SignKey == "" {
						opts.SignKey = a.eng.Config.String("bundle.sign_key")
					}
					if opts.SignKey == "" {
						return withHint(exitUsage, usagef("--sign needs a key"), "give --sign-key KEY, or: volt config set bundle.sign_key KEY")
					}
					opts.Passphrase = sign.PassphraseFromEnvOrTerminal("Passphrase for " + opts.SignKey + ": ")
				}
				bar := a.progress("writing bundle")
				opts.Progress = bar.update
				res, err := a.eng.CreateBundle(ctx, opts)
				bar.done()
				if err != nil {
					return recipeError(err)
				}
				if *dry {
					return printDryRun(a, res)
				}
				if a.json() {
					return a.printJSON(map[string]any{"output": res.Output, "size": res.Size, "signed": res.Signed,
						"digest": res.Manifest.Integrity.Algorithm, "manifest": res.Manifest})
				}
				signed := ""
				if res.Signed {
					signed = ", signed"
				}
				a.infof("Created %s (%s v%s, %s, %s%s)", res.Output, res.Manifest.Name, res.Manifest.BundleVersion,
					plural(len(res.Manifest.Services), "service"), humanSize(res.Size), signed)
				if a.quiet {
					fmt.Fprintln(a.stdout, res.Output)
				}
				return nil
			}
		},
	}
}

func printDryRun(a *app, res *engine.CreateResult) error {
	if a.json() {
		return a.printJSON(map[string]any{"plan": res.Plan, "entries": res.Entries})
	}
	p := res.Plan
	// One write at the end: a recipe of 1,000 services prints ~3,000 lines.
	out := bufio.NewWriter(a.stdout)
	defer out.Flush()
	fmt.Fprintf(out, "Bundle: %s v%s (dry run: nothing written)\n", p.Name, p.Version)
	fmt.Fprintf(out, "Platforms: %s\n", strings.Join(p.Platforms, ", "))
	if p.Recipe != "" {
		fmt.Fprintf(out, "Recipe: %s\n", p.Recipe)
	}
	fmt.Fprintln(out)
	t := newTable(out, "SERVICE", "TYPE", "PLATFORM", "SOURCE", "KIND")
	for _, s := range p.Services {
		keys := make([]string, 0, len(s.Images))
		for k := range s.Images {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			src := s.Images[k]
			where := src.Path
			if src.Kind == "build" {
				where = "build step"
			}
			t.row(s.Name, s.Type, k, where, string(src.Kind))
		}
	}
	t.flush()
	if len(p.Hooks) > 0 {
		fmt.Fprintln(out, "\nHooks:")
		for _, h := range p.Hooks {
			fmt.Fprintf(out, "  %-13s %s\n", h.Kind, h.Path)
		}
	}
	if len(p.Inputs) > 0 {
		fmt.Fprintln(out, "\nInputs:")
		for _, in := range p.Inputs {
			fmt.Fprintf(out, "  %s  %s\n", in.Digest, in.Path)
		}
	}
	fmt.Fprintln(out, "\nEntries:")
	for _, e := range res.Entries {
		fmt.Fprintf(out, "  %s\n", e)
	}
	return out.Flush()
}

// recipeError maps recipe diagnostics and plan errors to exit code 2 with their hints.
func recipeError(err error) error {
	var d interface{ Render() string }
	if errors.As(err, &d) {
		return &cliError{code: exitUsage, err: errors.New(strings.TrimRight(d.Render(), "\n"))}
	}
	var pe interface{ PlanHint() string }
	if errors.As(err, &pe) {
		return &cliError{code: exitUsage, err: err, hint: pe.PlanHint()}
	}
	return err
}

func bundleInspectCommand() *command {
	return &command{
		name:    "inspect",
		summary: "Show what a bundle holds (reads only its manifest)",
		usage:   "BUNDLE [--show-manifest] [--show-hooks] [--show-security] [-o json]",
		examples: `volt bundle inspect hello.vbundle
volt bundle inspect hello.vbundle --show-manifest
volt bundle inspect shop.vbundle --show-security
volt bundle inspect hello.vbundle -o json`,
		args: exactArgs(1, "BUNDLE"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			showManifest := fs.Bool("show-manifest", false, "print bundle.json")
			showHooks := fs.Bool("show-hooks", false, "print the lifecycle hook scripts")
			showSecurity := fs.Bool("show-security", false, "print what each container asks for: capabilities, seccomp, Landlock, read-only root")
			return func(ctx context.Context, a *app, args []string) error {
				s, err := a.eng.InspectBundle(args[0])
				if err != nil {
					return err
				}
				if *showManifest {
					if a.json() {
						return a.printJSON(s.Manifest)
					}
					r, err := bundle.Open(args[0])
					if err != nil {
						return err
					}
					defer r.Close()
					_, err = a.stdout.Write(r.ManifestBytes())
					fmt.Fprintln(a.stdout)
					return err
				}
				if a.json() {
					return a.printJSON(s)
				}
				printInspect(a, s)
				if *showSecurity {
					printSecurity(a, s.Security)
				}
				if *showHooks {
					return printHooks(a, args[0], s)
				}
				return nil
			}
		},
	}
}

func printInspect(a *app, s *engine.BundleSummary) {
	w := a.stdout
	fmt.Fprintf(w, "Bundle: %s v%s\n", s.Name, s.Version)
	if t := engine.ParseCreated(s.Created); !t.IsZero() {
		fmt.Fprintf(w, "Created: %s\n", t.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	fmt.Fprintf(w, "Platforms: %s\n", strings.Join(s.Platforms, ", "))
	switch {
	case s.Signer != nil:
		fmt.Fprintf(w, "Signed: Yes (ed25519, %s)\n", s.Signer.Fingerprint)
	case s.Signed:
		fmt.Fprintf(w, "Signed: Yes (unreadable signature)\n")
	default:
		fmt.Fprintf(w, "Signed: No\n")
	}
	if s.Partial {
		fmt.Fprintf(w, "Partial: Yes (holds only some platforms' images)\n")
	}
	fmt.Fprintf(w, "Size: %s\n\n", humanSize(s.Size))
	t := newTable(w, "NAME", "TYPE", "IMAGES", "CONFIG FILES", "SIZE")
	for _, svc := range s.Services {
		arches := make([]string, len(svc.Platforms))
		for i, p := range svc.Platforms {
			_, arch, _ := strings.Cut(p, "/")
			arches[i] = arch
		}
		images := fmt.Sprintf("%d (%s)", len(svc.Platforms), strings.Join(arches, ", "))
		if len(svc.Platforms) == 0 {
			images = "0"
		}
		if svc.KernelBoot {
			images += " kernel"
		}
		if svc.CASRefs > 0 {
			images += fmt.Sprintf(" [%d in CAS]", svc.CASRefs)
		}
		t.row(svc.Name, svc.Type, images, fmt.Sprint(svc.ConfigFiles), humanSize(svc.Size))
	}
	t.flush()
	if len(s.Hooks) > 0 {
		kinds := make([]string, 0, len(s.Hooks))
		for k := range s.Hooks {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		fmt.Fprintf(w, "\nHooks: %s\n", strings.Join(kinds, ", "))
	}
	for _, r := range s.Security {
		if r.Privileged {
			fmt.Fprintf(w, "\nPRIVILEGED: %s asks for every capability and no seccomp filter (import needs --allow-privileged)\n", r.Service)
		}
	}
}

func printHooks(a *app, path string, s *engine.BundleSummary) error {
	r, err := bundle.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	kinds := make([]string, 0, len(s.Hooks))
	for k := range s.Hooks {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		rc, err := r.OpenEntry(s.Hooks[k])
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "\n--- %s (%s)\n", k, s.Hooks[k])
		_, err = copyAll(a.stdout, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("hook %s: %w", k, err)
		}
	}
	return nil
}

func bundleVerifyCommand() *command {
	return &command{
		name:    "verify",
		summary: "Check a bundle's structure, every entry's BLAKE3 and its signature",
		usage:   "BUNDLE [--require-signature] [--trusted-key KEY]... [--allowed-signers FILE]",
		long: `Checks, in order (each a line, and an entry of "checks" with -o json): zip (the archive
is the canonical ZIP Volt writes: local headers agree with the central directory, no gap,
overlap or byte outside the entries), structure (bundle.json and entry names), signature,
integrity (every entry's BLAKE3), cas (with --deep).
Exit codes: 0 passed, 3 verification failed, 1 other errors (file unreadable…).
Signatures are checked against config bundle.trusted_keys and bundle.allowed_signers.`,
		examples: `volt bundle verify hello.vbundle
volt bundle verify --require-signature prod.vbundle
volt bundle verify --deep small.vbundle
volt bundle verify --trusted-key "$(cat ~/.config/volt/signing-key.pub)" prod.vbundle`,
		args: exactArgs(1, "BUNDLE"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			require := fs.Bool("require-signature", false, "fail when the bundle is not signed by a trusted key")
			keys := fs.StringArray("trusted-key", nil, "trust this public key (authorized_keys form) for this run")
			allowed := fs.String("allowed-signers", "", "OpenSSH allowed_signers file to trust for this run")
			deep := fs.Bool("deep", false, "also check that every CAS object the bundle references is stored and whole")
			return func(ctx context.Context, a *app, args []string) error {
				if _, err := os.Stat(args[0]); err != nil {
					return err
				}
				bar := a.progress("verifying")
				rep, err := a.eng.VerifyBundle(ctx, args[0], engine.VerifyOptions{
					RequireSignature: *require, TrustedKeys: *keys, AllowedSigners: *allowed, Progress: bar.update, Deep: *deep,
				})
				bar.done()
				if rep == nil {
					return err
				}
				if a.json() {
					if perr := a.printJSON(rep); perr != nil {
						return perr
					}
				} else {
					printVerify(a, rep)
				}
				if err != nil {
					if errors.Is(err, engine.ErrVerifyFailed) {
						hint := ""
						for _, c := range rep.Checks {
							if !c.OK && c.Hint != "" {
								hint = c.Hint
							}
						}
						return &cliError{code: exitVerify, err: err, hint: hint}
					}
					return err
				}
				return nil
			}
		},
	}
}

func printVerify(a *app, rep *engine.VerifyReport) {
	ok, bad := a.marks()
	titles := map[string]string{"zip": "Canonical ZIP", "structure": "Structure", "signature": "Signature", "integrity": "Manifest integrity", "cas": "CAS objects"}
	for _, c := range rep.Checks {
		mark := ok
		if !c.OK {
			mark = bad
		} else if c.Skip {
			mark = "-"
		}
		title := titles[c.Name]
		if title == "" {
			title = c.Name
		}
		fmt.Fprintf(a.stdout, "%s %s: %s\n", mark, title, c.Detail)
	}
	if rep.Passed {
		fmt.Fprintln(a.stdout, "Bundle verification: PASSED")
	} else {
		fmt.Fprintln(a.stdout, "Bundle verification: FAILED")
	}
}

func bundleSignCommand() *command {
	return &command{
		name:    "sign",
		summary: "Add or replace a bundle's signature (signatures/bundle.sig)",
		usage:   "BUNDLE --sign-key KEY",
		long: `Signs the exact bytes of bundle.json with an OpenSSH ed25519 key (SSHSIG, namespace
volt-bundle). An encrypted key's passphrase comes from VOLT_SIGN_PASSPHRASE or a prompt.`,
		examples: "volt bundle sign hello.vbundle --sign-key ~/.config/volt/signing-key",
		args:     exactArgs(1, "BUNDLE"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			key := fs.String("sign-key", "", "OpenSSH ed25519 private key (default: config bundle.sign_key)")
			return func(ctx context.Context, a *app, args []string) error {
				k := *key
				if k == "" {
					k = a.eng.Config.String("bundle.sign_key")
				}
				if k == "" {
					return withHint(exitUsage, usagef("bundle sign needs --sign-key KEY"), "make a key with: volt key generate -o KEY")
				}
				who, err := a.eng.SignBundle(ctx, args[0], k, sign.PassphraseFromEnvOrTerminal("Passphrase for "+k+": "))
				if err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(who)
				}
				a.infof("Signed %s with %s (%s)", args[0], who.Fingerprint, who.Principal)
				return nil
			}
		},
	}
}

func bundleListCommand() *command {
	return &command{
		name:     "list",
		summary:  "List bundles in the local cache ($VOLT_ROOT/bundles)",
		usage:    "[-o json]",
		examples: "volt bundle list\nvolt bundle list -o json",
		args:     exactArgs(0, "no arguments"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return func(ctx context.Context, a *app, args []string) error {
				list, errs := a.eng.ListBundles()
				for _, err := range errs {
					fmt.Fprintf(a.stderr, "volt: skipping %v\n", err)
				}
				if a.json() {
					if list == nil {
						list = []*engine.BundleSummary{}
					}
					return a.printJSON(list)
				}
				t := newTable(a.stdout, "NAME", "VERSION", "PLATFORMS", "SIZE", "CREATED", "SIGNED")
				now := time.Now()
				for _, b := range list {
					signed := "no"
					if b.Signed {
						signed = "yes"
					}
					t.row(b.Name, b.Version, strings.Join(b.Platforms, ","), humanSize(b.Size), humanAge(engine.ParseCreated(b.Created), now), signed)
				}
				return t.flush()
			}
		},
	}
}

func bundleConvertCommand() *command {
	return &command{
		name:    "convert",
		summary: "Convert between ACE bundles (.zip) and .vbundle",
		usage:   "SRC -o OUT [--sign-key KEY]",
		long: `An ACE bundle (a ZIP with compose.json) becomes a .vbundle: the format-ace plugin maps
its structure and Volt computes every hash (and signs with --sign-key). A .vbundle
becomes an ACE zip when OUT ends in .zip (containers only).`,
		examples: `volt bundle convert legacy.zip -o legacy.vbundle
volt bundle convert app.vbundle -o app.zip`,
		oFile: true,
		args:  exactArgs(1, "SRC"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			key := fs.String("sign-key", "", "sign the resulting .vbundle with this key")
			return func(ctx context.Context, a *app, args []string) error {
				if a.outFile == "" {
					return withHint(exitUsage, usagef("bundle convert needs -o OUT"), "e.g. volt bundle convert legacy.zip -o legacy.vbundle")
				}
				src, out := args[0], a.outFile
				if _, err := os.Stat(src); err != nil {
					return err
				}
				if engine.IsACE(src) {
					var pass func() ([]byte, error)
					if *key != "" {
						pass = sign.PassphraseFromEnvOrTerminal("Passphrase for " + *key + ": ")
					}
					m, err := a.eng.ConvertACE(ctx, src, out, *key, pass)
					if err != nil {
						return err
					}
					a.infof("Converted ACE bundle %s to %s (%s v%s, %s)", src, out, m.Name, m.BundleVersion, plural(len(m.Services), "service"))
					return nil
				}
				if !strings.HasSuffix(strings.ToLower(out), ".zip") {
					return withHint(exitUsage, usagef("%s is not an ACE bundle, and %s does not end in .zip", src, out), "to write an ACE zip from a .vbundle, name the output *.zip")
				}
				if err := a.eng.WriteACE(ctx, src, out); err != nil {
					return err
				}
				a.infof("Wrote ACE bundle %s", out)
				return nil
			}
		},
	}
}
