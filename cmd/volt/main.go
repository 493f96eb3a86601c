// Command volt is Volt's CLI: it parses flags, calls the engine and prints
// results (tables for people, JSON with -o json). It holds no logic of its own.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

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
	fs.StringVarP(&a.output, "output", "o", a.output, "output format: table, json or yaml")
	fs.BoolVarP(&a.quiet, "quiet", "q", a.quiet, "print only errors and requested data")
	fs.BoolVar(&a.noColor, "no-color", a.noColor, "no colour or symbols styling (env NO_COLOR)")
	fs.StringSliceVar(&a.pluginDirs, "plugin-dir", a.pluginDirs, "directory searched first for volt-plugin-* binaries (env VOLT_PLUGIN_PATH)")
	fs.BoolVar(&a.debug, "debug", a.debug, "log engine and plugin details to stderr")
	return fs
}

// checkOutput validates -o and NO_COLOR.
func (a *app) checkOutput() error {
	switch a.output {
	case "", "table", "text":
		a.output = "table"
	case "json", "yaml":
	default:
		return withHint(exitUsage, usagef("unknown output format %q", a.output), "use -o table, -o json or -o yaml")
	}
	if os.Getenv("NO_COLOR") != "" {
		a.noColor = true
	}
	return nil
}

// init opens the engine.
func (a *app) init() error {
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

// json reports whether output is data (-o json or -o yaml) rather than a table.
func (a *app) json() bool { return a.output == "json" || a.output == "yaml" }

// printJSON writes v on stdout as indented JSON, or with -o yaml as YAML of
// the same shape (the JSON field names, so both formats document one another).
func (a *app) printJSON(v any) error {
	if a.output == "yaml" {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			return err
		}
		enc := yaml.NewEncoder(a.stdout)
		enc.SetIndent(2)
		if err := enc.Encode(yamlNumbers(doc)); err != nil {
			return err
		}
		return enc.Close()
	}
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// yamlNumbers turns the json.Numbers of a decoded document into int64 or
// float64, so YAML prints 1048576, not 1.048576e+06 or a quoted string.
func yamlNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = yamlNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = yamlNumbers(e)
		}
	}
	return v
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
			gitopsCommand(),
			pluginCommand(),
			recipeCommand(),
			casCommand(),
			registryCommand(),
			keyCommand(),
			configCommand(),
			securityCommand(),
			versionCommand(),
			helpCommand(),
			completionCommand(),
			manCommand(),
		},
	}
}
