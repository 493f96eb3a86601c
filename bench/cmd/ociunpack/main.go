// Command ociunpack unpacks an OCI image layout, docker-archive or rootfs
// tarball into a directory with the format-oci plugin's code, in process
// (for bench/oci-unpack.sh).
//
//	ociunpack [-format oci] [-platform linux/amd64] IMAGE DEST
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/volt-cli/volt/plugins/format-oci/oci"
)

func main() {
	format := flag.String("format", oci.FormatOCI, "oci, docker-archive or rootfs")
	platform := flag.String("platform", "", "os/arch[/variant]")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: ociunpack [-format F] [-platform P] IMAGE DEST")
		os.Exit(2)
	}
	dest := flag.Arg(1)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "ociunpack:", err)
		os.Exit(1)
	}
	res, err := oci.Unpack(context.Background(), flag.Arg(0), *format, dest, oci.UnpackOptions{Platform: *platform,
		Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ociunpack:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "unpacked %d layers (%s), %d skipped\n", res.Layers, res.Platform, len(res.Skipped))
}
