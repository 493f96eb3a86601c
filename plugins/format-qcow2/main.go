// Command volt-plugin-format-qcow2 is Volt's disk image format plugin
// (raw ⇄ qcow2 through qemu-img; see package qcow2).
package main

import (
	"github.com/volt-cli/volt/plugins/format-qcow2/qcow2"
	"github.com/volt-cli/volt/sdk"
)

func main() {
	sdk.Serve(qcow2.New())
}
