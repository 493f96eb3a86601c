package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/pflag"

	"github.com/volt-cli/volt/engine/cas"
	"github.com/volt-cli/volt/sdk/atomicfile"
)

// casCommand is `volt cas`; each subcommand has its own constructor below.
func casCommand() *command {
	return &command{
		name:    "cas",
		summary: "Stellarium: the content-addressed store of images ($VOLT_ROOT/cas)",
		long: `Objects are split into content-defined chunks stored once under their BLAKE3, so a new
version of an image costs only its changed chunks. References look like
stellarium://<64 hex>, the BLAKE3 of the whole object.`,
		subs: []*command{
			casPutCommand(),
			casGetCommand(),
			casLsCommand(),
			casStatCommand(),
			casVerifyCommand(),
			casGCCommand(),
			casServeCommand(),
			casPinCommand(),
		},
	}
}

func casPutCommand() *command {
	return &command{
		name: "put", summary: "Store files; print their references, new bytes and dedup ratio", usage: "FILE... [--pin NAME] [-o json]",
		examples: "volt cas put disk.qcow2\nvolt cas put -o json images/*.tar",
		args:     minArgs(1, "FILE..."),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			pin := fs.String("pin", "", "pin the object under this name (with one FILE) so gc keeps it")
			return casRun(func(ctx context.Context, a *app, s *cas.Store, args []string) error {
				if *pin != "" && len(args) != 1 {
					return withHint(exitUsage, usagef("--pin takes exactly one FILE"), "")
				}
				type row struct {
					File string `json:"file"`
					Ref  string `json:"ref"`
					cas.PutStats
				}
				var rows []row
				for _, f := range args {
					var opts []cas.PutOption
					if *pin != "" {
						opts = append(opts, cas.WithPin(*pin))
					}
					ref, st, err := s.PutFile(ctx, f, opts...)
					if err != nil {
						return err
					}
					if st.RepairedIndex {
						a.infof("Rewrote the damaged index of %s", ref)
					}
					rows = append(rows, row{f, ref.String(), st})
				}
				if a.json() {
					return a.printJSON(rows)
				}
				t := newTable(a.stdout, "FILE", "REF", "SIZE", "NEW", "DEDUP")
				for _, r := range rows {
					t.row(r.File, r.Ref, humanSize(r.Size), humanSize(r.NewBytes), fmt.Sprintf("%.1f%%", 100*r.DedupRatio))
				}
				return t.flush()
			})
		},
	}
}

func casGetCommand() *command {
	return &command{
		name: "get", summary: "Reassemble an object, verify it, and write it to a file", usage: "REF -o FILE|-",
		long: `Writes the object to FILE atomically: the file appears only once the whole object
matched its BLAKE3. With -o - the bytes stream to standard output as they are reassembled;
the check ends with the stream, so a non-zero exit means the output must not be used.`,
		examples: "volt cas get stellarium://3f2a… -o disk.qcow2\nvolt cas get stellarium://3f2a… -o - | tar -x",
		oFile:    true,
		args:     exactArgs(1, "REF"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			fetch := fs.Bool("fetch", true, "fetch missing chunks from config cas.remotes")
			return casRun(func(ctx context.Context, a *app, s *cas.Store, args []string) error {
				if a.outFile == "" {
					return withHint(exitUsage, usagef("cas get needs -o FILE"), "give -o FILE, or -o - to write to standard output")
				}
				ref, err := cas.ParseRef(args[0])
				if err != nil {
					return withHint(exitUsage, err, "a reference looks like stellarium://<64 hex>")
				}
				if *fetch {
					if err := a.eng.CASFetchMissing(ctx, ref); err != nil {
						return err
					}
				}
				if a.outFile == "-" {
					return casError(s.Get(ctx, ref, a.stdout))
				}
				f, err := atomicfile.Create(a.outFile, 0o644)
				if err != nil {
					return err
				}
				if err := s.Get(ctx, ref, f); err != nil {
					f.Abort()
					return casError(err)
				}
				return f.Commit()
			})
		},
	}
}

func casLsCommand() *command {
	return &command{
		name: "ls", summary: "List stored objects", usage: "[-o json]",
		examples: "volt cas ls",
		args:     exactArgs(0, "no arguments"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return casRun(func(ctx context.Context, a *app, s *cas.Store, args []string) error {
				list, skipped, err := s.ListAll(ctx)
				if err != nil {
					return err
				}
				for _, p := range skipped {
					fmt.Fprintf(a.stderr, "volt: skipping %s (put the file again to rewrite its index, or repair it: volt cas verify --repair-from URL)\n", p.Error)
				}
				if a.json() {
					if list == nil {
						list = []cas.ObjectInfo{}
					}
					return a.printJSON(list)
				}
				t := newTable(a.stdout, "REF", "SIZE", "CHUNKS", "PINS")
				for _, o := range list {
					t.row(o.Ref.String(), humanSize(o.Size), fmt.Sprint(o.Chunks), fmt.Sprint(o.Pins))
				}
				return t.flush()
			})
		},
	}
}

func casStatCommand() *command {
	return &command{
		name: "stat", summary: "Show one object's size, chunks and pins", usage: "REF [-o json]",
		examples: "volt cas stat stellarium://3f2a…",
		args:     exactArgs(1, "REF"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			return casRun(func(ctx context.Context, a *app, s *cas.Store, args []string) error {
				ref, err := cas.ParseRef(args[0])
				if err != nil {
					return withHint(exitUsage, err, "a reference looks like stellarium://<64 hex>")
				}
				info, err := s.Stat(ref)
				if err != nil {
					return casError(err)
				}
				if a.json() {
					return a.printJSON(info)
				}
				fmt.Fprintf(a.stdout, "Ref: %s\nSize: %s (%d bytes)\nChunks: %d\nPins: %v\n", info.Ref, humanSize(info.Size), info.Size, info.Chunks, info.Pins)
				return nil
			})
		},
	}
}

func casVerifyCommand() *command {
	return &command{
		name: "verify", summary: "Check every chunk (and with --deep every object); repair from a remote", usage: "[REF...] [--deep] [--repair-from URL]...",
		examples: "volt cas verify\nvolt cas verify --deep --repair-from http://peer:7070",
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			deep := fs.Bool("deep", false, "also reassemble each object and check its whole BLAKE3")
			repair := fs.StringArray("repair-from", nil, "fetch missing or corrupt chunks from this remote (repeatable)")
			return casRun(func(ctx context.Context, a *app, s *cas.Store, args []string) error {
				opts := cas.VerifyOptions{Deep: *deep, RepairFrom: *repair}
				for _, arg := range args {
					r, err := cas.ParseRef(arg)
					if err != nil {
						return withHint(exitUsage, err, "")
					}
					opts.Refs = append(opts.Refs, r)
				}
				rep, err := s.Verify(ctx, opts)
				if err != nil {
					return err
				}
				if a.json() {
					if err := a.printJSON(rep); err != nil {
						return err
					}
				} else {
					ok, bad := a.marks()
					for _, p := range rep.Problems {
						mark := bad
						if p.Repaired {
							mark = ok + " repaired"
						}
						fmt.Fprintf(a.stdout, "%s chunk %s %s (used by %d object(s)) %s\n", mark, p.Chunk, p.Problem, len(p.Objects), p.RepairError)
					}
					for _, p := range rep.BadObjects {
						mark := bad
						if p.Repaired {
							mark = ok + " repaired"
						}
						fmt.Fprintf(a.stdout, "%s object %s: %s\n", mark, p.Ref, p.Error)
					}
					for _, p := range rep.BadPacks {
						fmt.Fprintf(a.stdout, "%s pack %s: %s\n", bad, p.Pack, p.Error)
					}
					fmt.Fprintf(a.stdout, "%d objects, %d chunks, %s checked\n", rep.Objects, rep.Chunks, humanSize(rep.Bytes))
				}
				if !rep.OK() {
					return &cliError{code: exitVerify, err: errors.New("the store has missing or corrupt data"), hint: "repair with: volt cas verify --repair-from URL"}
				}
				return nil
			})
		},
	}
}

func casGCCommand() *command {
	return &command{
		name: "gc", summary: "Remove objects and chunks nothing references (bundles, stacks, pins)", usage: "[--dry-run] [-o json]",
		examples: "volt cas gc --dry-run\nvolt cas gc",
		args:     exactArgs(0, "no arguments"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			dry := fs.Bool("dry-run", false, "show what would be freed, remove nothing")
			return casRun(func(ctx context.Context, a *app, s *cas.Store, args []string) error {
				roots, err := a.eng.CASRoots()
				if err != nil {
					return err
				}
				rep, err := s.GC(ctx, roots, *dry)
				if err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(rep)
				}
				verb := "Freed"
				if *dry {
					verb = "Would free"
				}
				fmt.Fprintf(a.stdout, "%s %s: %d objects, %d chunks (%d objects, %d chunks kept)\n", verb, humanSize(rep.BytesFreed),
					len(rep.ObjectsRemoved), rep.ChunksRemoved, rep.ObjectsKept, rep.ChunksKept)
				return nil
			})
		},
	}
}

func casServeCommand() *command {
	return &command{
		name: "serve", summary: "Serve the store read-only over HTTP (the layout a static server could serve)", usage: "[--listen ADDR]",
		long:     "Other hosts add the URL to config cas.remotes; they fetch only the chunks they lack and verify each.",
		examples: "volt cas serve --listen 127.0.0.1:7070",
		args:     exactArgs(0, "no arguments"),
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			listen := fs.String("listen", "127.0.0.1:7070", "address to listen on")
			return casRun(func(ctx context.Context, a *app, s *cas.Store, args []string) error {
				ln, err := net.Listen("tcp", *listen)
				if err != nil {
					return err
				}
				srv := &http.Server{Handler: cas.Handler(s), ReadHeaderTimeout: 10 * time.Second}
				go func() {
					<-ctx.Done()
					sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					srv.Shutdown(sctx)
				}()
				a.infof("Serving %s on http://%s (Ctrl-C to stop)", s.Root(), ln.Addr())
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					return err
				}
				return nil
			})
		},
	}
}

func casPinCommand() *command {
	return &command{
		name: "pin", summary: "Pin an object under a name so gc keeps it (unpin with --remove)", usage: "NAME [REF] [--remove]",
		examples: "volt cas pin base-image stellarium://3f2a…\nvolt cas pin base-image --remove",
		args: func(args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("want NAME [REF]")
			}
			return nil
		},
		setup: func(fs *pflag.FlagSet) func(context.Context, *app, []string) error {
			remove := fs.Bool("remove", false, "remove the pin")
			return casRun(func(ctx context.Context, a *app, s *cas.Store, args []string) error {
				if *remove {
					return s.Unpin(ctx, args[0])
				}
				if len(args) != 2 {
					return withHint(exitUsage, usagef("cas pin needs NAME and REF"), "")
				}
				ref, err := cas.ParseRef(args[1])
				if err != nil {
					return withHint(exitUsage, err, "")
				}
				return s.Pin(ctx, args[0], ref)
			})
		},
	}
}

// casRun adapts the body of a cas subcommand: it opens the store first.
func casRun(fn func(ctx context.Context, a *app, s *cas.Store, args []string) error) func(context.Context, *app, []string) error {
	return func(ctx context.Context, a *app, args []string) error {
		s, err := a.eng.CAS()
		if err != nil {
			return err
		}
		return fn(ctx, a, s, args)
	}
}

// casError marks missing objects as "not found" for the exit code.
func casError(err error) error {
	if errors.Is(err, cas.ErrMissing) {
		return &cliError{code: exitNotFound, err: err, hint: "fetch it: volt config set cas.remotes += URL (then retry)"}
	}
	if errors.Is(err, cas.ErrCorrupt) {
		return &cliError{code: exitVerify, err: err, hint: "repair with: volt cas verify --repair-from URL"}
	}
	return err
}
