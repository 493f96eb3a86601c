package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/spf13/pflag"

	"github.com/volt-cli/volt/engine"
)

func versionCommand() *command {
	return &command{
		name:     "version",
		summary:  "Print Volt's version",
		usage:    "[-o json]",
		examples: "volt version\nvolt version -o json",
		args:     exactArgs(0, "no arguments"),
		local:    true,
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return func(ctx context.Context, a *app, args []string) error { return printVersion(a) }
		},
	}
}

func printVersion(a *app) error {
	v := map[string]string{"version": engine.Version, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH}
	if a.json() {
		return a.printJSON(v)
	}
	fmt.Fprintf(a.stdout, "volt %s (%s, %s)\n", v["version"], v["go"], v["platform"])
	return nil
}
