// Command volt-plugin-format-oci is Volt's OCI image format plugin: it
// unpacks OCI image layouts, docker-archives and rootfs tarballs, and packs
// directories into deterministic OCI images (see package oci).
package main

import (
	"github.com/volt-cli/volt/plugins/format-oci/oci"
	"github.com/volt-cli/volt/sdk"
)

func main() {
	sdk.Serve(&oci.Plugin{})
}
