package main

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/volt-cli/volt/engine"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

func recipeCommand() *command {
	return &command{
		name:    "recipe",
		summary: "Test, check, format and document Starlark recipes",
		subs: []*command{
			{
				name: "test", summary: "Run test_* functions in *_test.star files", usage: "[DIR] [--run REGEX]",
				examples: "volt recipe test\nvolt recipe test examples/shared-lib --run services",
				args:     func(a []string) error { return maxArgs(a, 1, "at most one DIR") },
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					run := fs.String("run", "", "only tests whose name matches this regular expression")
					return func(ctx context.Context, a *app, args []string) error {
						dir := "."
						if len(args) == 1 {
							dir = args[0]
						}
						passed, failed, err := a.eng.RecipeTest(ctx, dir, *run, a.stdout)
						if err != nil {
							return recipeError(err)
						}
						fmt.Fprintf(a.stdout, "%d passed, %d failed\n", passed, failed)
						if failed > 0 {
							return &cliError{code: exitFailure, err: fmt.Errorf("%d recipe test(s) failed", failed)}
						}
						return nil
					}
				},
			},
			{
				name: "check", summary: "Evaluate a recipe and report problems, building nothing", usage: "[DIR] [-f FILE] [--set K=V]...",
				examples: "volt recipe check\nvolt recipe check examples/multi --set api_port=9000",
				args:     func(a []string) error { return maxArgs(a, 1, "at most one DIR") },
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					file := fs.StringP("file", "f", "", "recipe file, relative to DIR (default volt.star); an absolute path without DIR makes its directory the root")
					sets := fs.StringArray("set", nil, "recipe parameter KEY=VALUE (repeatable)")
					maxSteps := fs.Uint64("max-steps", 0, "evaluation step limit")
					return func(ctx context.Context, a *app, args []string) error {
						params, err := engine.SplitParams(*sets)
						if err != nil {
							return withHint(exitUsage, err, "")
						}
						opts := engine.CreateOptions{Recipe: *file, Params: params, MaxSteps: *maxSteps, Print: func(s string) { fmt.Fprintln(a.stderr, s) },
							Warn: func(s string) { fmt.Fprintf(a.stderr, "volt: warning: %s\n", s) }}
						if len(args) == 1 {
							opts.Dir = args[0]
						}
						if err := a.eng.RecipeCheck(ctx, opts); err != nil {
							return recipeError(err)
						}
						a.infof("recipe OK")
						return nil
					}
				},
			},
			{
				name: "fmt", summary: "Format recipe files (print, --write in place, or --check)", usage: "FILE... [-w | --check]",
				examples: "volt recipe fmt volt.star\nvolt recipe fmt -w volt.star lib/*.star\nvolt recipe fmt --check volt.star",
				args:     minArgs(1, "FILE..."),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					write := fs.BoolP("write", "w", false, "rewrite the files in place")
					check := fs.Bool("check", false, "list files that are not formatted; exit 1 if any")
					return func(ctx context.Context, a *app, args []string) error {
						unformatted := 0
						for _, f := range args {
							src, err := os.ReadFile(f)
							if err != nil {
								return err
							}
							out, err := a.eng.RecipeFormat(f, src)
							if err != nil {
								return recipeError(err)
							}
							switch {
							case *check:
								if !bytes.Equal(src, out) {
									fmt.Fprintln(a.stdout, f)
									unformatted++
								}
							case *write:
								if !bytes.Equal(src, out) {
									fi, err := os.Stat(f)
									if err != nil {
										return err
									}
									if err := atomicfile.WriteFile(f, out, fi.Mode().Perm()); err != nil {
										return err
									}
								}
							default:
								a.stdout.Write(out)
							}
						}
						if unformatted > 0 {
							return &cliError{code: exitFailure, err: fmt.Errorf("%d file(s) need formatting", unformatted), hint: "run: volt recipe fmt -w FILE..."}
						}
						return nil
					}
				},
			},
			{
				name: "docs", summary: "Print the reference of the recipe builtins (from their own doc strings)", usage: "[BUILTIN]",
				examples: "volt recipe docs\nvolt recipe docs container",
				args:     func(a []string) error { return maxArgs(a, 1, "at most one BUILTIN") },
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					return func(ctx context.Context, a *app, args []string) error {
						name := ""
						if len(args) == 1 {
							name = args[0]
						}
						if err := a.eng.RecipeDocs(a.stdout, name); err != nil {
							return withHint(exitUsage, err, "")
						}
						return nil
					}
				},
			},
		},
	}
}

func maxArgs(args []string, n int, what string) error {
	if len(args) > n {
		return usagef("want %s", what)
	}
	return nil
}
