// Command volt-plugin-test is every misbehaving plugin the host tests need,
// in one binary (one link instead of six): it acts on the name it is run
// under (a hard link named volt-plugin-<name>).
//
//	bad-stdout   prints to stdout before the handshake
//	bad-exit     exits at once with a message on stderr
//	bad-hang     never completes the handshake
//	bad-api99    speaks only plugin API version 99
//	bad-crash    panics in the middle of Run
//	format-test  a format plugin whose "copy" format copies one file (runs sandboxed)
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/volt-cli/volt/sdk"
)

func main() {
	name := strings.TrimPrefix(filepath.Base(os.Args[0]), "volt-plugin-")
	switch name {
	case "bad-stdout":
		fmt.Println("hello from main")
		sdk.Serve(stubRuntime{name: name})
	case "bad-exit":
		fmt.Fprintln(os.Stderr, "bad-exit: cannot open /etc/bad-exit.conf")
		os.Exit(3)
	case "bad-hang":
		fmt.Fprintln(os.Stderr, "bad-hang: waiting forever")
		for {
			time.Sleep(time.Hour)
		}
	case "bad-api99":
		sdk.Serve(stubRuntime{name: name, apiVersions: []int{99}})
	case "bad-crash":
		sdk.Serve(stubRuntime{name: name, crashInRun: true})
	case "format-test":
		sdk.Serve(copyFormat{})
	default:
		fmt.Fprintf(os.Stderr, "volt-plugin-test: unknown role %q\n", name)
		os.Exit(2)
	}
}
