package bundle

import (
	"path/filepath"
	"testing"

	"github.com/volt-cli/volt/engine/digest"
)

// TestWriteGolden pins the bytes Write produces: a bundle of fixed inputs
// (a stored image over several copy buffers and not a multiple of any
// buffer or page, deflated texts, a signature), plain and with Zip64
// records forced, must hash to the digests recorded when the writer was
// changed to copy and hash in parallel. A change in any byte (header,
// order, alignment, CRC, deflate output) fails here.
func TestWriteGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		zip64 uint64
		size  int
		want  string
	}{
		{"plain", 0xffffffff, 9<<20 + 12345, "blake3:b2141555a74599a86cef352c3f46d4ae31e20355bff226cc4cca9914b9236580"},
		{"zip64", 1000, 300<<10 + 7, "blake3:9925f37699a2e68bc4f1fb412369e26be252aa4efe1f86f9dab3254b404bddab"},
		{"empty image", 0xffffffff, 0, "blake3:2539a7e1d3aee6bc1d680d5239589c79542e4e1064ae70744b30c796c09564b5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := zip64Limit
			zip64Limit = tc.zip64
			defer func() { zip64Limit = old }()
			dir := t.TempDir()
			path := filepath.Join(dir, "g.vbundle")
			writeTest(t, path, testEntries(t, dir, tc.size), WriteOptions{Sign: fakeSign})
			got, _, err := digest.File(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("bundle digest %s, want %s", got, tc.want)
			}
		})
	}
}
