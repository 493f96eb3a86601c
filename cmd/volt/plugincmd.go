package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/volt-cli/volt/engine/digest"
	"github.com/volt-cli/volt/engine/pluginhost"
)

func pluginCommand() *command {
	return &command{
		name:    "plugin",
		summary: "List, inspect and install runtime and format plugins",
		long: `Plugins are volt-plugin-<name> executables found in --plugin-dir / VOLT_PLUGIN_PATH,
then $VOLT_ROOT/plugins (installed, checked against their recorded BLAKE3), then
the directory of the volt executable.`,
		subs: []*command{
			{
				name: "list", summary: "List plugins with their health on this host", usage: "[-o json]",
				examples: "volt plugin list\nVOLT_PLUGIN_PATH=./bin volt plugin list -o json",
				args:     exactArgs(0, "no arguments"),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					return func(ctx context.Context, a *app, args []string) error {
						list, err := a.eng.Plugins().List(ctx)
						if err != nil {
							return err
						}
						if a.json() {
							if list == nil {
								list = []pluginhost.PluginInfo{}
							}
							return a.printJSON(list)
						}
						t := newTable(a.stdout, "NAME", "KIND", "VERSION", "API", "PATH", "BLAKE3", "HEALTH")
						for _, p := range list {
							t.row(p.Name, dash(p.Kind), dash(p.Version), dash(apiString(p)), p.Path, digest.Short(p.BLAKE3), health(p))
						}
						return t.flush()
					}
				},
			},
			{
				name: "inspect", summary: "Show a plugin's formats, capabilities and config schema", usage: "NAME [-o json]",
				examples: "volt plugin inspect format-oci\nvolt plugin inspect runtime-nspawn -o json",
				args:     exactArgs(1, "NAME"),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					return func(ctx context.Context, a *app, args []string) error {
						p, err := a.eng.Plugins().Inspect(ctx, args[0])
						if err != nil {
							return withHint(exitNotFound, err, "see: volt plugin list")
						}
						if a.json() {
							return a.printJSON(p)
						}
						w := a.stdout
						fmt.Fprintf(w, "Name: %s\nKind: %s\nVersion: %s\nAPI: %s\nPath: %s\nBLAKE3: %s\nInstalled: %v\nHealth: %s\n",
							p.Name, dash(p.Kind), dash(p.Version), dash(apiString(p)), p.Path, p.BLAKE3, p.Installed, health(p))
						if len(p.Formats) > 0 {
							fmt.Fprintf(w, "Formats: %s\n", strings.Join(p.Formats, ", "))
						}
						if len(p.MediaTypes) > 0 {
							fmt.Fprintf(w, "Media types: %s\n", strings.Join(p.MediaTypes, ", "))
						}
						if len(p.Capabilities) > 0 {
							fmt.Fprintf(w, "Capabilities: %s\n", strings.Join(p.Capabilities, ", "))
						}
						for k, v := range p.Attributes {
							fmt.Fprintf(w, "  %s: %s\n", k, v)
						}
						if p.ConfigSchema != "" {
							fmt.Fprintf(w, "Config schema:\n%s\n", p.ConfigSchema)
						}
						return nil
					}
				},
			},
			{
				name: "install", summary: "Copy a plugin into $VOLT_ROOT/plugins and record its BLAKE3 in the lock", usage: "PATH",
				examples: "volt plugin install ./volt-plugin-foo",
				args:     exactArgs(1, "PATH"),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					return func(ctx context.Context, a *app, args []string) error {
						inst, err := a.eng.Plugins().Install(args[0])
						if err != nil {
							return err
						}
						if a.json() {
							return a.printJSON(inst)
						}
						a.infof("Installed %s", inst.Name)
						return nil
					}
				},
			},
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func apiString(p pluginhost.PluginInfo) string {
	if p.API > 0 {
		return fmt.Sprint(p.API)
	}
	if len(p.APIVersions) > 0 {
		return fmt.Sprint(p.APIVersions)
	}
	return ""
}

func health(p pluginhost.PluginInfo) string {
	switch {
	case p.Error != "":
		return "error: " + p.Error
	case p.Healthy:
		return dash(p.Health)
	}
	return "unhealthy: " + p.Health
}
