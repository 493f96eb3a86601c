// Command seccompdefault prints docker's default seccomp profile resolved
// for docker's default capability set (sdk.SeccompProfile JSON), as Volt
// resolves it at import. bench/security.sh feeds it to the runtime benchmark.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/volt-cli/volt/engine/security"
	"github.com/volt-cli/volt/sdk"
)

func main() {
	p, err := security.DefaultSeccomp(sdk.DefaultCapabilities)
	if err != nil {
		fmt.Fprintln(os.Stderr, "seccompdefault:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(p); err != nil {
		fmt.Fprintln(os.Stderr, "seccompdefault:", err)
		os.Exit(1)
	}
}
