// Command volt-plugin-runtime-qemu is Volt's VM runtime plugin: the
// sdk.Runtime of package qemu served over go-plugin. The host starts it;
// run by hand it refuses to serve (no magic cookie).
package main

import (
	"github.com/volt-cli/volt/plugins/runtime-qemu/qemu"
	"github.com/volt-cli/volt/sdk"
)

func main() {
	sdk.Serve(qemu.New(qemu.Options{}))
}
