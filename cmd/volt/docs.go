package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// cliDocsIntro opens docs/cli.md; the rest is generated from the command
// tree by writeCLIDocs, so help text and the reference never disagree.
const cliDocsIntro = `# Volt CLI reference

Generated from the commands' own help (` + "`go test ./cmd/volt -run TestCLIDocs -update`" + `);
do not edit by hand below this introduction.

## Conventions

- Global flags (` + "`--root`" + `, ` + "`-o`" + `, ` + "`-q`" + ` …) go anywhere: before the command, as in
  ` + "`volt -o json ps`" + `, or after it. ` + "`volt help COMMAND`" + ` is ` + "`volt COMMAND --help`" + `;
  ` + "`volt completion bash|zsh|fish`" + ` prints a completion script; ` + "`make man`" + ` writes man pages.
- Data goes to stdout, messages and errors to stderr. ` + "`-o json`" + ` prints data as JSON and
  ` + "`-o yaml`" + ` as YAML of the same shape (stable: the field names are part of the interface).
- Workloads are named STACK/SERVICE, as ` + "`volt ps`" + ` shows them; the host-unique name
  (STACK-SERVICE) and a service name that only one stack has work too.
- Errors are one line (` + "`volt: …`" + `), followed by a ` + "`hint: …`" + ` line when there is a likely fix.
- Progress bars appear on stderr only when stderr is a terminal and neither ` + "`-q`" + ` nor
  ` + "`-o json`" + ` is given (create, verify, import's verify and unpack, export, push, pull). ` + "`NO_COLOR`" + ` (or ` + "`--no-color`" + `) turns off colour and symbols.
- ` + "`-o FILE`" + ` names the output file for commands that write one (` + "`bundle create`" + `,
  ` + "`key generate`" + `); ` + "`-o table`" + ` and ` + "`-o json`" + ` are formats everywhere.

## Exit codes

| code | meaning |
|---|---|
| 0 | success |
| 1 | failure (I/O, a plugin, a workload…) |
| 2 | usage error: bad flag or argument, a recipe or Constellation error, an undefined variable |
| 3 | verification failed: integrity, structure or signature |
| 4 | not found (stack, workload, plugin, cached bundle, registry artifact, CAS object) |
| 130 | interrupted (Ctrl-C); nothing is left half-written |

## Environment

| variable | meaning |
|---|---|
| ` + "`VOLT_ROOT`" + ` | state root (default ` + "`/var/lib/volt`" + ` as root, else ` + "`$XDG_DATA_HOME/volt`" + `); ` + "`--root`" + ` overrides |
| ` + "`VOLT_CONFIG`" + ` | configuration file (default ` + "`/etc/volt/config.yaml`" + ` as root, else ` + "`~/.config/volt/config.yaml`" + `) |
| ` + "`VOLT_PLUGIN_PATH`" + ` | colon-separated directories searched first for ` + "`volt-plugin-*`" + ` |
| ` + "`VOLT_SIGN_PASSPHRASE`" + ` | passphrase of an encrypted signing key (else a terminal prompt) |
| ` + "`SOURCE_DATE_EPOCH`" + ` | fixed bundle timestamp for reproducible builds |
| ` + "`NO_COLOR`" + ` | no colour or symbols |

## Commands
`

// writeCLIDocs writes the reference of every command under root.
func writeCLIDocs(w io.Writer, root *command) {
	fmt.Fprint(w, cliDocsIntro)
	global := (&app{}).globalFlags()
	var walk func(path []string, c *command)
	walk = func(path []string, c *command) {
		if c.hidden {
			return
		}
		if c.setup != nil {
			fs := pflag.NewFlagSet("", pflag.ContinueOnError)
			c.setup(fs)
			fmt.Fprintf(w, "\n### `%s`\n\n%s\n", strings.Join(path, " "), c.summary)
			if c.long != "" {
				fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.long))
			}
			fmt.Fprintf(w, "\n```\n%s %s\n```\n", strings.Join(path, " "), c.usage)
			if fs.HasFlags() {
				fmt.Fprintf(w, "\nFlags:\n\n```\n%s```\n", fs.FlagUsages())
			}
			if c.examples != "" {
				fmt.Fprintf(w, "\nExamples:\n\n```\n%s\n```\n", strings.TrimSpace(c.examples))
			}
		}
		subs := append([]*command(nil), c.subs...)
		sort.Slice(subs, func(i, j int) bool { return subs[i].name < subs[j].name })
		for _, s := range subs {
			walk(append(path, s.name), s)
		}
	}
	walk([]string{"volt"}, root)
	fmt.Fprintf(w, "\n## Global flags\n\n```\n%s```\n", global.FlagUsages())
}
