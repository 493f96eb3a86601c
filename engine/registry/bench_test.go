package registry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// benchSize is the image payload of the benchmark bundle (4 images).
const benchSize = 64 << 20

// BenchmarkPushPull pushes a 64 MiB bundle to a fresh repository of Debian's
// docker-registry (hashing included: no digest cache) and pulls it back.
func BenchmarkPushPull(b *testing.B) {
	dir := b.TempDir()
	imgs := map[string][]byte{}
	for _, n := range []string{"images/web/linux-amd64.tar", "images/web/linux-arm64.tar", "images/db/linux-amd64.qcow2", "images/db/linux-arm64.qcow2", "images/db/linux-amd64.vmlinuz"} {
		imgs[n] = randBytes(b, benchSize/5)
	}
	src := writeBundle(b, dir, bundleSpec{name: "bench", version: "1.0.0", images: imgs})
	host := startDockerRegistry(b)
	opts := optsFor(b, host, "")
	b.Run("push", func(b *testing.B) {
		b.SetBytes(benchSize)
		for i := 0; i < b.N; i++ {
			if _, err := Push(context.Background(), src, fmt.Sprintf("%s/push%d/bench:1", host, i), PushOptions{Options: opts}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pull", func(b *testing.B) {
		if _, err := Push(context.Background(), src, host+"/pull/bench:1", PushOptions{Options: opts}); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(benchSize)
		out := filepath.Join(dir, "out.vbundle")
		for i := 0; i < b.N; i++ {
			os.Remove(out)
			if _, err := Pull(context.Background(), host+"/pull/bench:1", PullOptions{Options: opts, Output: out}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
