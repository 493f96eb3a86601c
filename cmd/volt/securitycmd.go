package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/volt-cli/volt/engine/security"
)

func securityCommand() *command {
	return &command{
		name:    "security",
		summary: "Inspect workload security profiles",
		long: `Landlock profiles confine what a container's processes may read, write, execute and which
TCP ports they may bind or connect to. Built-in: default, strict, none. Custom profiles are
YAML or JSON files NAME.yaml in /etc/volt/profiles (see docs/workload-security.md).`,
		examples: "volt security profile list\nvolt security profile show strict\nvolt security profile check ./web.yaml",
		subs:     []*command{securityProfileCommand()},
	}
}

func securityProfileCommand() *command {
	return &command{
		name:     "profile",
		summary:  "List, show and check Landlock profiles",
		examples: "volt security profile list\nvolt security profile show default -o json\nvolt security profile check web.yaml",
		subs:     []*command{securityProfileList(), securityProfileShow(), securityProfileCheck()},
	}
}

func securityProfileList() *command {
	return &command{
		name:     "list",
		summary:  "List the built-in and installed Landlock profiles",
		usage:    "[-o json]",
		examples: "volt security profile list\nvolt security profile list -o json",
		args:     exactArgs(0, "no arguments"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return func(ctx context.Context, a *app, args []string) error {
				ps, errs := security.ListProfiles(nil)
				for _, err := range errs {
					a.infof("warning: %v", err)
				}
				if a.json() {
					return a.printJSON(ps)
				}
				t := newTable(a.stdout, "NAME", "SOURCE", "DESCRIPTION")
				for _, p := range ps {
					t.row(p.Name, p.Source, p.Description)
				}
				t.flush()
				return nil
			}
		},
	}
}

func securityProfileShow() *command {
	return &command{
		name:     "show",
		summary:  "Print a Landlock profile's rules",
		usage:    "NAME [-o json]",
		examples: "volt security profile show default\nvolt security profile show web -o json",
		args:     exactArgs(1, "NAME"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return func(ctx context.Context, a *app, args []string) error {
				p, _, err := security.LoadProfile(args[0], nil)
				if err != nil {
					return withHint(exitNotFound, err, "volt security profile list shows the profiles")
				}
				if a.json() {
					return a.printJSON(p)
				}
				fmt.Fprintf(a.stdout, "# %s (%s)\n", p.Name, p.Source)
				if p.Description != "" {
					fmt.Fprintf(a.stdout, "# %s\n", p.Description)
				}
				if p.Name == "default" || p.Name == "strict" {
					fmt.Fprintln(a.stdout, "# plus, per service: volumes, tmpfs mounts, security.writable paths; strict: published container ports may be bound")
				}
				_, err = a.stdout.Write(security.MarshalProfile(p))
				return err
			}
		},
	}
}

func securityProfileCheck() *command {
	return &command{
		name:     "check",
		summary:  "Check a custom Landlock profile file",
		usage:    "FILE [-o json]",
		long:     "Parses FILE as a profile (YAML or JSON; keys fs_read, fs_write, fs_execute, net_bind, net_connect, restrict_net, description) and prints the rules it gives, or the first problem.",
		examples: "volt security profile check web.yaml\ncp web.yaml /etc/volt/profiles/ && volt security profile show web",
		args:     exactArgs(1, "FILE"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return func(ctx context.Context, a *app, args []string) error {
				data, err := os.ReadFile(args[0])
				if err != nil {
					return err
				}
				name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(filepath.Base(args[0]), ".yaml"), ".yml"), ".json")
				p, err := security.ParseProfile(name, data)
				if err != nil {
					return withHint(exitUsage, fmt.Errorf("%s: %w", args[0], err), "see docs/workload-security.md for the profile format")
				}
				p.Source = args[0]
				if a.json() {
					return a.printJSON(p)
				}
				a.infof("%s: valid profile %s", args[0], name)
				_, err = a.stdout.Write(security.MarshalProfile(p))
				return err
			}
		},
	}
}

// printSecurity prints what each container service asks for.
func printSecurity(a *app, reqs []security.Request) {
	w := a.stdout
	fmt.Fprintln(w, "\nSecurity:")
	if len(reqs) == 0 {
		fmt.Fprintln(w, "  (no container services)")
		return
	}
	for _, r := range reqs {
		fmt.Fprintf(w, "  %s:\n", r.Service)
		caps := strings.Join(r.Capabilities, ",")
		switch {
		case r.Privileged:
			caps = "ALL (privileged)"
		case len(r.CapAdd) == 0 && len(r.CapDrop) == 0:
			caps = "docker default (" + caps + ")"
		}
		fmt.Fprintf(w, "    capabilities:      %s\n", caps)
		fmt.Fprintf(w, "    seccomp:           %s\n", r.Seccomp)
		fmt.Fprintf(w, "    landlock:          %s\n", r.Landlock)
		fmt.Fprintf(w, "    no_new_privileges: %v\n", r.NoNewPrivileges)
		ro := "no"
		if r.ReadOnly {
			ro = "yes"
		}
		if len(r.Tmpfs) > 0 {
			ro += " (tmpfs: " + strings.Join(r.Tmpfs, ", ") + ")"
		}
		fmt.Fprintf(w, "    read_only root:    %s\n", ro)
		for _, p := range r.Problems {
			fmt.Fprintf(w, "    ! %s\n", p)
		}
	}
}
