// Command volt-plugin-runtime-exec is an example out-of-tree Volt runtime
// plugin built against the sdk only. It runs a workload's command as a plain
// process (chrooted into WorkloadSpec.Root when one is given), detached from
// the plugin under a small supervisor that records the exit code, so a later
// plugin process can recover, inspect, stop and destroy it.
//
// Build it as volt-plugin-runtime-exec and put it on the plugin path.
package main

import (
	"os"

	"github.com/volt-cli/volt/sdk"
)

func main() {
	// The supervisor is this same binary, re-executed by Start. It must be
	// checked before Serve, and it never writes to stdout.
	if dir := os.Getenv(superviseEnv); dir != "" {
		os.Exit(supervise(dir))
	}
	sdk.Serve(&Runtime{})
}
