// Command volt-plugin-runtime-nspawn is Volt's container runtime plugin: the
// sdk.Runtime of package nspawn served over go-plugin. The host starts it;
// run by hand it refuses to serve (no magic cookie).
package main

import (
	"github.com/volt-cli/volt/plugins/runtime-nspawn/nspawn"
	"github.com/volt-cli/volt/sdk"
)

func main() {
	sdk.Serve(nspawn.New(nspawn.Options{}))
}
