// Command volt is Volt's CLI: it parses flags, calls the engine and prints
// results (tables for people, JSON with -o json). It holds no logic of its own.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/volt-cli/volt/engine"
	"github.com/volt-cli/volt/engine/sandbox"
)

// app is the state shared by every command of one invocation.
type app struct {
	stdout, stderr io.Writer

	root       string
	configPath string
	output     string
	outFile    string // -o FILE for commands that write a file (command.oFile)
	quiet      bool
	noColor    bool
	pluginDirs []string
	debug      bool

	eng *engine.Engine
}

func (a *app) globalFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("global", pflag.ContinueOnError)
	fs.StringVar(&a.root, "root", a.root, "state root (env VOLT_ROOT; default /var/lib/volt as root, else $XDG_DATA_HOME/volt)")
	fs.StringVar(&a.configPath, "config", a.configPath, "configuration file (env VOLT_CONFIG)")
	fs.StringVarP(&a.output, "output", "o", a.output, "output format: table or json")
	fs.BoolVarP(&a.quiet, "quiet", "q", a.quiet, "print only errors and requested data")
	fs.BoolVar(&a.noColor, "no-color", a.noColor, "no colour or symbols styling (env NO_COLOR)")
	fs.StringSliceVar(&a.pluginDirs, "plugin-dir", a.pluginDirs, "directory searched first for volt-plugin-* binaries (env VOLT_PLUGIN_PATH)")
	fs.BoolVar(&a.debug, "debug", a.debug, "log engine and plugin details to stderr")
	return fs
}

// init validates global flags and opens the engine.
func (a *app) init() error {
	switch a.output {
	case "", "table", "text":
		a.output = "table"
	case "json":
	default:
		return withHint(exitUsage, usagef("unknown output format %q", a.output), "use -o table or -o json")
	}
	if os.Getenv("NO_COLOR") != "" {
		a.noColor = true
	}
	level := slog.LevelWarn
	if a.debug {
		level = slog.LevelDebug
	}
	eng, err := engine.New(engine.Options{
		Root:       a.root,
		ConfigPath: a.configPath,
		PluginDirs: a.pluginDirs,
		Logger:     slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		return err
	}
	a.eng = eng
	return nil
}

func (a *app) json() bool { return a.output == "json" }

// printJSON writes v as indented JSON on stdout.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// infof prints a message for people on stderr unless --quiet.
func (a *app) infof(format string, args ...any) {
	if !a.quiet {
		fmt.Fprintf(a.stderr, format+"\n", args...)
	}
}

func main() {
	sandbox.Main()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer func() {
		if a.eng != nil {
			a.eng.Close()
		}
	}()
	err := execute(ctx, rootCommand(), a, args)
	if err == nil {
		return exitOK
	}
	reportError(stderr, err)
	return exitCode(err)
}

func rootCommand() *command {
	return &command{
		name:    "volt",
		summary: "Volt runs whole stacks from one signed bundle: containers, VMs, config and hooks.",
		long: `Build a bundle from a recipe (volt.star) or a Constellation (volt-compose.yaml),
sign and verify it, ship it as a file or through an OCI registry, and deploy it offline.`,
		examples: `volt key generate -o ~/.config/volt/signing-key
volt bundle create -o hello.vbundle
volt bundle verify hello.vbundle
volt bundle inspect hello.vbundle`,
		subs: []*command{
			bundleCommand(),
			psCommand(),
			logsCommand(),
			workloadCommand("container"),
			workloadCommand("vm"),
			stackCommand(),
			pluginCommand(),
			recipeCommand(),
			casCommand(),
			registryCommand(),
			keyCommand(),
			configCommand(),
			securityCommand(),
			versionCommand(),
		},
	}
}
