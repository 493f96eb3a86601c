package ace

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/volt-cli/volt/sdk"
)

// TestConvertCreatesNoDevices: format-ace never unpacks an image: an image
// tarball carrying a block device is copied whole (format-oci skips the
// device when the image is imported), the converted tree holds only
// regular files and directories, and a ZIP entry whose mode is a device
// is refused.
func TestConvertCreatesNoDevices(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "dev/hostile-sda", Typeflag: tar.TypeBlock, Devmajor: 8, Mode: 0o666})
	tw.WriteHeader(&tar.Header{Name: "bin/httpd", Typeflag: tar.TypeReg, Mode: 0o755, Size: 3})
	tw.Write([]byte("elf"))
	tw.Close()
	zw.Close()
	img := buf.String()

	tmp := t.TempDir()
	in := filepath.Join(tmp, "in.zip")
	os.WriteFile(in, mkZip(t,
		zent{name: "compose.json", body: `{"name": "dev", "version": "1.0.0", "services": {"web": {"image": "images/web.tar.gz"}}}`},
		zent{name: "images/web.tar.gz", body: img},
	), 0o644)
	tree := filepath.Join(tmp, "tree")
	os.Mkdir(tree, 0o755)
	if _, err := (&Plugin{}).Convert(t.Context(), sdk.ConvertRequest{Bundle: in, To: TargetTree, Staging: tree}); err != nil {
		t.Fatal(err)
	}
	var images int
	filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			t.Errorf("%s: %v, want regular files and directories only", p, d.Type())
		}
		if filepath.Ext(p) == ".gz" {
			images++
			if b, _ := os.ReadFile(p); string(b) != img {
				t.Errorf("%s is not the image byte for byte", p)
			}
		}
		return nil
	})
	if images != 1 {
		t.Errorf("%d images in the tree, want 1", images)
	}

	os.WriteFile(in, mkZip(t,
		zent{name: "compose.json", body: `{"name": "dev", "version": "1.0.0", "services": {"web": {"image": "images/web.tar.gz"}}}`},
		zent{name: "images/web.tar.gz", body: img},
		zent{name: "dev/sda", mode: fs.ModeDevice | 0o666},
	), 0o644)
	out := filepath.Join(tmp, "tree2")
	os.Mkdir(out, 0o755)
	_, err := (&Plugin{}).Convert(t.Context(), sdk.ConvertRequest{Bundle: in, To: TargetTree, Staging: out})
	if !errors.Is(err, ErrUnsafeName) {
		t.Fatalf("device entry: err = %v, want ErrUnsafeName", err)
	}
}
