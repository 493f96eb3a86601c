package starlark

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// generatedImages maps example inputs that the examples' own scripts make
// from the host's busybox-static (they are not committed) to the example
// directory that holds them. Their bytes, and so their digests, depend on
// the host's busybox build.
var generatedImages = map[string]string{
	"images/base.tar.gz":  "multi",
	"images/hello.tar.gz": "hello",
}

// scripts make the generated images, per example.
var scripts = map[string]string{"multi": "make-images.sh", "hello": "make-image.sh"}

// TestMain makes the generated example images before the tests run.
func TestMain(m *testing.M) {
	for path, ex := range generatedImages {
		if _, err := os.Stat("../examples/" + ex + "/" + path); err == nil {
			continue
		}
		script := "../examples/" + ex + "/" + scripts[ex]
		if out, err := exec.Command("sh", script).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n%s", script, err, out)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
