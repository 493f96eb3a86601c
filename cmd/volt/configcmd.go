package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/volt-cli/volt/engine/config"
)

func configCommand() *command {
	return &command{
		name:    "config",
		summary: "Read and change Volt's configuration",
		long:    "The configuration file is $VOLT_CONFIG, else /etc/volt/config.yaml as root, else ~/.config/volt/config.yaml.",
		subs: []*command{
			{
				name: "get", summary: "Print one key's value", usage: "KEY",
				examples: "volt config get bundle.trusted_keys",
				args:     exactArgs(1, "KEY"),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					return func(ctx context.Context, a *app, args []string) error {
						v, err := a.eng.Config.Get(args[0])
						if err != nil {
							return withHint(exitUsage, err, "see: volt config list --all")
						}
						if a.json() {
							return a.printJSON(map[string]any{"key": args[0], "value": v})
						}
						switch t := v.(type) {
						case nil:
						case []string:
							for _, s := range t {
								fmt.Fprintln(a.stdout, s)
							}
						default:
							fmt.Fprintln(a.stdout, t)
						}
						return nil
					}
				},
			},
			{
				name: "set", summary: "Set a key (=), or add to (+=) or remove from (-=) a list", usage: "KEY [=|+=|-=] VALUE",
				examples: `volt config set bundle.require_signature true
volt config set bundle.trusted_keys += "ssh-ed25519 AAAA… ops@example.com"
volt config set cas.remotes -= http://old-peer:7070`,
				args: func(args []string) error {
					if len(args) != 2 && len(args) != 3 {
						return usagef("want KEY VALUE or KEY OP VALUE")
					}
					return nil
				},
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					return func(ctx context.Context, a *app, args []string) error {
						key, op, val := args[0], "=", args[len(args)-1]
						if len(args) == 3 {
							op = args[1]
						}
						if err := a.eng.Config.Set(key, op, val); err != nil {
							return withHint(exitUsage, err, "see: volt config list --all")
						}
						if err := a.eng.Config.Save(); err != nil {
							return err
						}
						a.infof("%s updated in %s", key, a.eng.Config.Path)
						return nil
					}
				},
			},
			{
				name: "unset", summary: "Remove a key", usage: "KEY", examples: "volt config unset cas.remotes",
				args: exactArgs(1, "KEY"),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					return func(ctx context.Context, a *app, args []string) error {
						if err := a.eng.Config.Unset(args[0]); err != nil {
							return withHint(exitUsage, err, "see: volt config list --all")
						}
						return a.eng.Config.Save()
					}
				},
			},
			{
				name: "list", summary: "Print the keys that are set (--all: every known key)", usage: "[--all] [-o json]",
				examples: "volt config list\nvolt config list --all -o json",
				args:     exactArgs(0, "no arguments"),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					all := fs.Bool("all", false, "list every known key with its type and meaning")
					return func(ctx context.Context, a *app, args []string) error {
						if *all {
							return listKnownKeys(a)
						}
						kvs := a.eng.Config.All()
						if a.json() {
							return a.printJSON(kvs)
						}
						t := newTable(a.stdout, "KEY", "VALUE")
						for _, kv := range kvs {
							v := fmt.Sprint(kv.Value)
							if l, ok := kv.Value.([]string); ok {
								v = strings.Join(l, ", ")
							}
							t.row(kv.Key, v)
						}
						return t.flush()
					}
				},
			},
		},
	}
}

func listKnownKeys(a *app) error {
	type row struct {
		Key  string `json:"key"`
		Type string `json:"type"`
		Doc  string `json:"doc"`
	}
	var rows []row
	for _, k := range config.Keys {
		rows = append(rows, row{k.Name, k.Kind.String(), k.Doc})
	}
	if a.json() {
		return a.printJSON(rows)
	}
	t := newTable(a.stdout, "KEY", "TYPE", "MEANING")
	for _, r := range rows {
		t.row(r.Key, r.Type, r.Doc)
	}
	return t.flush()
}
