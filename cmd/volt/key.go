package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/volt-cli/volt/engine/sign"
)

func keyCommand() *command {
	return &command{
		name:    "key",
		summary: "Make and show ed25519 signing keys (OpenSSH format)",
		subs: []*command{
			{
				name:    "generate",
				summary: "Write a new ed25519 key pair: FILE (private, 0600) and FILE.pub",
				usage:   "-o FILE [--comment TEXT] [--passphrase] [--force]",
				long: `The key is a standard OpenSSH key: ssh-keygen reads it, and bundles signed with it
verify with ssh-keygen -Y verify. With --passphrase the private key is encrypted with
the passphrase from VOLT_SIGN_PASSPHRASE or a terminal prompt.`,
				examples: `volt key generate -o ~/.config/volt/signing-key
volt key generate -o ops.key --comment ops@example.com --passphrase`,
				args:  exactArgs(0, "no arguments (the key path goes in -o)"),
				oFile: true,
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					comment := fs.String("comment", "", "comment (the signer principal), default USER@HOST")
					protect := fs.Bool("passphrase", false, "encrypt the private key with a passphrase")
					force := fs.Bool("force", false, "overwrite an existing key")
					return func(ctx context.Context, a *app, args []string) error {
						path := a.outFile
						if path == "" {
							return withHint(exitUsage, usagef("key generate needs -o FILE"), "e.g. volt key generate -o ~/.config/volt/signing-key")
						}
						c := *comment
						if c == "" {
							c = defaultComment()
						}
						var pass []byte
						if *protect {
							p, err := sign.PassphraseFromEnvOrTerminal("New passphrase: ")()
							if err != nil {
								return err
							}
							pass = p
						}
						if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
							return err
						}
						var kopts []sign.KeyOption
						if *force {
							kopts = append(kopts, sign.Overwrite())
						}
						pub, err := sign.GenerateKey(path, c, pass, kopts...)
						if err != nil {
							return err
						}
						a.infof("Wrote %s and %s.pub", path, path)
						fmt.Fprintln(a.stdout, strings.TrimRight(pub, "\n"))
						return nil
					}
				},
			},
			{
				name:     "show",
				summary:  "Print a key's public key and fingerprint",
				usage:    "FILE",
				examples: "volt key show ~/.config/volt/signing-key",
				args:     exactArgs(1, "FILE"),
				setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
					return func(ctx context.Context, a *app, args []string) error {
						s, err := sign.LoadSigner(args[0], sign.PassphraseFromEnvOrTerminal("Passphrase for "+args[0]+": "))
						if err != nil {
							return err
						}
						if a.json() {
							return a.printJSON(map[string]string{"publicKey": s.PublicKey(), "fingerprint": s.Fingerprint(), "comment": s.Comment()})
						}
						fmt.Fprintf(a.stdout, "%s\n%s\n", s.PublicKey(), s.Fingerprint())
						return nil
					}
				},
			},
		},
	}
}

func defaultComment() string {
	user := os.Getenv("USER")
	if user == "" {
		user = "volt"
	}
	host, _ := os.Hostname()
	if host == "" {
		return user
	}
	return user + "@" + host
}
