package oci

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkUnpackOCI unpacks a 32 MiB single-layer gzip image (half random,
// half repetitive data, 256 files); bench/oci-unpack.sh compares a 500 MiB
// image with umoci.
func BenchmarkUnpackOCI(b *testing.B) {
	src := b.TempDir()
	r := rand.New(rand.NewSource(1))
	buf := make([]byte, 128<<10)
	for i := 0; i < 256; i++ {
		if i%2 == 0 {
			r.Read(buf)
		} else {
			for j := range buf {
				buf[j] = byte('a' + j%7)
			}
		}
		d := filepath.Join(src, fmt.Sprintf("d%02d", i%16))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d", i)), buf, 0o644)
	}
	img := filepath.Join(b.TempDir(), "image.tar")
	if _, err := PackOCI(b.Context(), src, img, PackOptions{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(256 * int64(len(buf)))
	base := b.TempDir()
	for i := 0; b.Loop(); i++ {
		dest := filepath.Join(base, fmt.Sprint(i))
		os.Mkdir(dest, 0o755)
		if _, err := Unpack(b.Context(), img, FormatOCI, dest, UnpackOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
