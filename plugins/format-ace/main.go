// Command volt-plugin-format-ace is Volt's ACE bundle plugin: ACE zip ⇄
// vbundle tree (see package ace).
package main

import (
	"github.com/volt-cli/volt/plugins/format-ace/ace"
	"github.com/volt-cli/volt/sdk"
)

func main() {
	sdk.Serve(&ace.Plugin{})
}
