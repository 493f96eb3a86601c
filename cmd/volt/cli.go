package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/volt-cli/volt/engine"
	"github.com/volt-cli/volt/engine/cas"
	"github.com/volt-cli/volt/engine/deploy"
	"github.com/volt-cli/volt/engine/gitops"
	"github.com/volt-cli/volt/engine/pluginhost"
	"github.com/volt-cli/volt/engine/registry"
	"github.com/volt-cli/volt/engine/suggest"
	"github.com/volt-cli/volt/sdk"
)

// Exit codes (documented in docs/cli.md).
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitVerify   = 3
	exitNotFound = 4
)

// command is one node of the CLI tree. A node has either run or subs.
type command struct {
	name     string
	summary  string
	usage    string // arguments after the command path, e.g. "[flags] FILE"
	long     string
	examples string
	// flags declares the command's own flags; it returns the run function
	// bound to them.
	setup func(fs *pflag.FlagSet) func(ctx context.Context, a *app, args []string) error
	subs  []*command
	// args validates the positional arguments (nil = any).
	args func(args []string) error
	// oFile means -o takes a file name as well as a format: any value other
	// than table/json is the output file (app.outFile).
	oFile bool
	// local commands run without opening the engine (help, completion).
	local bool
	// hidden commands are left out of help, docs and completion.
	hidden bool
}

// usageError is a mistake in how the CLI was called (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// cliError carries an exit code and a hint line for the user.
type cliError struct {
	code int
	err  error
	hint string
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

func withHint(code int, err error, hint string) error {
	if err == nil {
		return nil
	}
	return &cliError{code: code, err: err, hint: hint}
}

func exactArgs(n int, what string) func([]string) error {
	return func(args []string) error {
		if len(args) != n {
			return usagef("want %s, got %d argument(s)", what, len(args))
		}
		return nil
	}
}

func minArgs(n int, what string) func([]string) error {
	return func(args []string) error {
		if len(args) < n {
			return usagef("want %s", what)
		}
		return nil
	}
}

// find walks args down the tree and returns the deepest command and the rest.
// Global flags may come before the command, as in docker and podman
// (volt --root X -o json ps): they are skipped on the walk and handed on
// with the rest, where the command's flag set parses them.
func (c *command) find(args []string) (*command, []string, []string) {
	path := []string{c.name}
	cur := c
	var globals []string
	global := (&app{}).globalFlags()
	for len(args) > 0 && len(cur.subs) > 0 {
		a := args[0]
		if strings.HasPrefix(a, "-") {
			n := globalFlagArgs(global, a)
			if n == 0 || n > len(args) {
				break
			}
			globals, args = append(globals, args[:n]...), args[n:]
			continue
		}
		var next *command
		for _, s := range cur.subs {
			if s.name == a {
				next = s
			}
		}
		if next == nil {
			break
		}
		cur, path, args = next, append(path, a), args[1:]
	}
	return cur, path, append(globals, args...)
}

// globalFlagArgs says how many arguments the global flag arg takes up (1, or
// 2 when its value is the next argument), or 0 when arg is not a global flag.
func globalFlagArgs(global *pflag.FlagSet, arg string) int {
	name, _, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	var f *pflag.Flag
	switch {
	case strings.HasPrefix(arg, "--"):
		f = global.Lookup(name)
	case len(name) == 1:
		f = global.ShorthandLookup(name)
	case len(name) > 1:
		// -ojson: a shorthand with its value attached.
		if f = global.ShorthandLookup(name[:1]); f != nil && f.NoOptDefVal == "" {
			return 1
		}
		return 0
	}
	if f == nil {
		return 0
	}
	if hasValue || f.NoOptDefVal != "" {
		return 1
	}
	return 2
}

func (c *command) subNames() []string {
	out := make([]string, len(c.subs))
	for i, s := range c.subs {
		out[i] = s.name
	}
	return out
}

// printHelp writes the command's help to w.
func printHelp(w io.Writer, c *command, path []string, fs *pflag.FlagSet, global *pflag.FlagSet) {
	full := strings.Join(path, " ")
	if c.summary != "" {
		fmt.Fprintf(w, "%s\n\n", c.summary)
	}
	if c.long != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(c.long))
	}
	if len(c.subs) > 0 {
		fmt.Fprintf(w, "Usage:\n  %s COMMAND [flags]\n\nCommands:\n", full)
		subs := append([]*command(nil), c.subs...)
		sort.Slice(subs, func(i, j int) bool { return subs[i].name < subs[j].name })
		for _, s := range subs {
			if !s.hidden {
				fmt.Fprintf(w, "  %-12s %s\n", s.name, s.summary)
			}
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "Usage:\n  %s %s\n\n", full, c.usage)
	}
	if c.examples != "" {
		fmt.Fprintf(w, "Examples:\n")
		for _, l := range strings.Split(strings.TrimSpace(c.examples), "\n") {
			fmt.Fprintf(w, "  %s\n", strings.TrimSpace(l))
		}
		fmt.Fprintln(w)
	}
	if fs != nil && fs.HasFlags() {
		fmt.Fprintf(w, "Flags:\n%s\n", fs.FlagUsages())
	}
	fmt.Fprintf(w, "Global flags:\n%s", global.FlagUsages())
	if len(c.subs) > 0 {
		fmt.Fprintf(w, "\nRun '%s COMMAND --help' for more about a command.\n", full)
	}
}

// execute parses args against the tree and runs the selected command.
func execute(ctx context.Context, root *command, a *app, args []string) error {
	if len(args) > 0 && args[0] == "__complete" {
		// The completion scripts' helper: the words typed so far may hold
		// any flags, so nothing is parsed.
		for _, c := range completions(root, args[1:]) {
			fmt.Fprintln(a.stdout, c)
		}
		return nil
	}
	cmd, path, rest := root.find(args)
	fs := pflag.NewFlagSet(strings.Join(path, " "), pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = true
	global := a.globalFlags()
	var run func(context.Context, *app, []string) error
	if cmd.setup != nil {
		run = cmd.setup(fs)
	}
	fs.AddFlagSet(global)
	help := fs.BoolP("help", "h", false, "show help for this command")
	var version *bool
	if cmd == root {
		version = fs.Bool("version", false, "print Volt's version (as volt version)")
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			*help = true
		} else {
			return withHint(exitUsage, usagef("%s: %v", strings.Join(path, " "), err),
				fmt.Sprintf("see: %s --help", strings.Join(path, " ")))
		}
	}
	if *help {
		own := pflag.NewFlagSet("", pflag.ContinueOnError)
		fs.VisitAll(func(f *pflag.Flag) {
			if global.Lookup(f.Name) == nil && f.Name != "help" {
				own.AddFlag(f)
			}
		})
		printHelp(a.stdout, cmd, path, own, global)
		return nil
	}
	if version != nil && *version {
		if err := a.checkOutput(); err != nil {
			return err
		}
		return printVersion(a)
	}
	if run == nil {
		pos := fs.Args()
		if len(pos) > 0 {
			msg := fmt.Sprintf("unknown command %q for %q", pos[0], strings.Join(path, " "))
			if s := suggest.Closest(pos[0], cmd.subNames()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return withHint(exitUsage, usagef("%s", msg), fmt.Sprintf("see: %s --help", strings.Join(path, " ")))
		}
		printHelp(a.stderr, cmd, path, nil, global)
		return withHint(exitUsage, usagef("%s needs a command", strings.Join(path, " ")), "")
	}
	if cmd.oFile && a.output != "" && a.output != "table" && a.output != "json" && a.output != "yaml" && a.output != "text" {
		a.outFile, a.output = a.output, "table"
	}
	if err := a.checkOutput(); err != nil {
		return err
	}
	if !cmd.local {
		if err := a.init(); err != nil {
			return err
		}
	}
	if cmd.args != nil {
		if err := cmd.args(fs.Args()); err != nil {
			return withHint(exitUsage, fmt.Errorf("%s: %w", strings.Join(path, " "), err),
				fmt.Sprintf("usage: %s %s", strings.Join(path, " "), cmd.usage))
		}
	}
	return run(ctx, a, fs.Args())
}

// notFound are the packages' sentinels for "no such thing": every command
// that meets one exits exitNotFound, whichever package reported it.
var notFound = []error{
	deploy.ErrNoStack,            // stack or workload
	sdk.ErrNotFound,              // a runtime's workload, a format's entry
	pluginhost.ErrPluginNotFound, // plugin
	registry.ErrNotFound,         // registry repository, tag or blob
	cas.ErrMissing,               // CAS object
	engine.ErrNoBundle,           // bundle in the local cache
	gitops.ErrNoSource,           // GitOps source
}

// exitCode maps an error to the process exit code: the one place where the
// engine's errors become the documented codes (docs/cli.md).
func exitCode(err error) int {
	var ce *cliError
	if errors.As(err, &ce) && ce.code != exitFailure {
		return ce.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	for _, s := range notFound {
		if errors.Is(err, s) {
			return exitNotFound
		}
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	return exitFailure
}

// reportError prints err as one line (plus a hint line) on stderr.
func reportError(w io.Writer, err error) {
	msg := err.Error()
	fmt.Fprintf(w, "volt: %s\n", msg)
	var ce *cliError
	switch {
	case errors.As(err, &ce) && ce.hint != "":
		fmt.Fprintf(w, "hint: %s\n", ce.hint)
	case errors.Is(err, deploy.ErrNoStack) && !strings.Contains(msg, "see: "):
		fmt.Fprintf(w, "hint: see: volt stack list, volt ps -a\n")
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
