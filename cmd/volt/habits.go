package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// helpCommand is `volt help [COMMAND...]`: the same text as COMMAND --help.
func helpCommand() *command {
	return &command{
		name:     "help",
		summary:  "Show help for a command",
		usage:    "[COMMAND...]",
		examples: "volt help\nvolt help bundle create",
		local:    true,
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return func(ctx context.Context, a *app, args []string) error {
				root := rootCommand()
				_, path, rest := root.find(args)
				if len(rest) > 0 {
					msg := fmt.Sprintf("unknown command %q for %q", rest[0], strings.Join(path, " "))
					return withHint(exitUsage, usagef("%s", msg), fmt.Sprintf("see: %s --help", strings.Join(path, " ")))
				}
				fresh := &app{stdout: a.stdout, stderr: a.stderr} // help shows the flags' defaults, not this call's values
				return execute(ctx, root, fresh, append(append([]string(nil), args...), "--help"))
			}
		},
	}
}

// completionCommand prints a shell script that completes commands and flags
// by asking the CLI itself (the hidden __complete command), so completion
// never disagrees with the command tree.
func completionCommand() *command {
	return &command{
		name:    "completion",
		summary: "Print a shell completion script (bash, zsh or fish)",
		usage:   "bash|zsh|fish",
		long:    `Load it in the current shell, or install it where your shell looks for completions.`,
		examples: `source <(volt completion bash)
volt completion bash > /etc/bash_completion.d/volt
volt completion zsh > "${fpath[1]}/_volt"
volt completion fish > ~/.config/fish/completions/volt.fish`,
		args:  exactArgs(1, "bash, zsh or fish"),
		local: true,
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return func(ctx context.Context, a *app, args []string) error {
				s, ok := completionScripts[args[0]]
				if !ok {
					return withHint(exitUsage, usagef("no completion for shell %q", args[0]), "use bash, zsh or fish")
				}
				_, err := io.WriteString(a.stdout, s)
				return err
			}
		},
	}
}

var completionScripts = map[string]string{
	"bash": `# bash completion for volt (volt completion bash)
_volt() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$(volt __complete "${COMP_WORDS[@]:1:COMP_CWORD-1}" 2>/dev/null)" -- "$cur"))
}
complete -o default -F _volt volt
`,
	"zsh": `#compdef volt
# zsh completion for volt (volt completion zsh)
_volt() {
	local -a words_
	words_=("${(@f)$(volt __complete "${(@)words[2,CURRENT-1]}" 2>/dev/null)}")
	compadd -a words_
}
if [ "$funcstack[1]" = "_volt" ]; then
	_volt "$@"
else
	compdef _volt volt
fi
`,
	"fish": `# fish completion for volt (volt completion fish)
complete -c volt -f -a '(volt __complete (commandline -opc)[2..-1])'
`,
}

// completions returns the candidates after the words typed so far.
func completions(root *command, words []string) []string {
	c, _, _ := root.find(words)
	var out []string
	for _, s := range c.subs {
		if !s.hidden {
			out = append(out, s.name)
		}
	}
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	if c.setup != nil {
		c.setup(fs)
	}
	fs.AddFlagSet((&app{}).globalFlags())
	fs.VisitAll(func(f *pflag.Flag) { out = append(out, "--"+f.Name) })
	out = append(out, "--help")
	sort.Strings(out)
	return out
}

// manCommand is the hidden generator behind `make man`: one roff page per
// command, from the same tree as --help and docs/cli.md.
func manCommand() *command {
	return &command{
		name: "__man", hidden: true, local: true, usage: "DIR",
		summary: "Write man pages for every command into DIR (make man)",
		args:    exactArgs(1, "DIR"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return func(ctx context.Context, a *app, args []string) error {
				return writeManPages(args[0], rootCommand())
			}
		},
	}
}

func writeManPages(dir string, root *command) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	date := time.Now().UTC().Format("2006-01-02")
	if t := os.Getenv("SOURCE_DATE_EPOCH"); t != "" {
		var sec int64
		if _, err := fmt.Sscan(t, &sec); err == nil {
			date = time.Unix(sec, 0).UTC().Format("2006-01-02")
		}
	}
	global := (&app{}).globalFlags()
	var walk func(path []string, c *command) error
	walk = func(path []string, c *command) error {
		if c.hidden {
			return nil
		}
		var b strings.Builder
		title := strings.ToUpper(strings.Join(path, "-"))
		fmt.Fprintf(&b, ".TH %s 1 %q \"Volt\" \"Volt Manual\"\n", title, date)
		fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", strings.Join(path, "-"), roff(c.summary))
		usage := c.usage
		if len(c.subs) > 0 {
			usage = "COMMAND [flags]"
		}
		fmt.Fprintf(&b, ".SH SYNOPSIS\n.B %s\n%s\n", strings.Join(path, " "), roff(usage))
		if c.long != "" {
			fmt.Fprintf(&b, ".SH DESCRIPTION\n%s\n", roff(strings.TrimSpace(c.long)))
		}
		fs := pflag.NewFlagSet("", pflag.ContinueOnError)
		if c.setup != nil {
			c.setup(fs)
		}
		manFlags(&b, "OPTIONS", fs)
		manFlags(&b, "GLOBAL OPTIONS", global)
		if c.examples != "" {
			fmt.Fprintf(&b, ".SH EXAMPLES\n.nf\n%s\n.fi\n", roff(strings.TrimSpace(c.examples)))
		}
		var see []string
		for _, s := range c.subs {
			if !s.hidden {
				see = append(see, fmt.Sprintf(".BR %s (1)", strings.Join(append(path, s.name), "-")))
			}
		}
		if len(see) > 0 {
			sort.Strings(see)
			fmt.Fprintf(&b, ".SH SEE ALSO\n%s\n", strings.Join(see, ",\n"))
		}
		name := filepath.Join(dir, strings.Join(path, "-")+".1")
		if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
			return err
		}
		for _, s := range c.subs {
			if err := walk(append(append([]string(nil), path...), s.name), s); err != nil {
				return err
			}
		}
		return nil
	}
	return walk([]string{"volt"}, root)
}

func manFlags(b *strings.Builder, section string, fs *pflag.FlagSet) {
	if !fs.HasFlags() {
		return
	}
	fmt.Fprintf(b, ".SH %s\n", section)
	fs.VisitAll(func(f *pflag.Flag) {
		name := "\\-\\-" + f.Name
		if f.Shorthand != "" {
			name = "\\-" + f.Shorthand + ", " + name
		}
		fmt.Fprintf(b, ".TP\n.B %s\n%s\n", name, roff(f.Usage))
	})
}

// roff escapes text for a man page: backslashes, and lines that would read
// as requests.
func roff(s string) string {
	s = strings.ReplaceAll(s, "\\", "\\e")
	s = strings.ReplaceAll(s, "-", "\\-")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = "\\&" + l
		}
	}
	return strings.Join(lines, "\n")
}
