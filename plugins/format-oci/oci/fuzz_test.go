package oci

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"

	"github.com/volt-cli/volt/sdk/conformance"
)

// FuzzUnpackTar feeds arbitrary bytes to the rootfs unpacker and, as an
// image tar, to the OCI unpacker: neither may panic, write outside dest or
// create a device node.
func FuzzUnpackTar(f *testing.F) {
	f.Add(mkTar(f, tent{name: "a/", typ: tar.TypeDir}, tent{name: "a/b", body: "x"}, tent{name: "a/l", typ: tar.TypeLink, link: "a/b"}))
	f.Add(mkTar(f, tent{name: "../x", body: "x"}))
	f.Add(mkTar(f, tent{name: "s", typ: tar.TypeSymlink, link: "/"}, tent{name: "s/x", body: "x"}))
	f.Add(mkTar(f, tent{name: "s", typ: tar.TypeSymlink, link: "../.."}, tent{name: "h", typ: tar.TypeLink, link: "s/etc/passwd"}))
	f.Add(mkTar(f, tent{name: "d/", typ: tar.TypeDir}, tent{name: "d/.wh..wh..opq"}, tent{name: ".wh.d"}, tent{name: ".wh.."}))
	f.Add(mkTar(f, tent{name: "index.json", body: `{"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + hexSHA("") + `","size":0}]}`}))
	f.Add(mkTar(f, tent{name: "manifest.json", body: `[{"Config":"c.json","Layers":["../l.tar"]}]`}, tent{name: "c.json", body: `{}`}))
	f.Add(gz(f, mkTar(f, tent{name: "z", body: "compressed"})))
	f.Add(hostileLayer(f))
	f.Add(mkTar(f, tent{name: "a", body: "x"}, tent{name: "a", typ: tar.TypeChar}, tent{name: "d/", typ: tar.TypeDir, pax: map[string]string{overlayOpaque: "y"}}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		outside := filepath.Join(base, "outside")
		os.Mkdir(outside, 0o755)
		os.WriteFile(filepath.Join(outside, "canary"), []byte("canary"), 0o644)
		img := filepath.Join(base, "img")
		os.WriteFile(img, data, 0o644)
		for _, format := range []string{FormatRootfs, FormatOCI} {
			dest := filepath.Join(base, "dest-"+format)
			os.Mkdir(dest, 0o755)
			before := snapshot(t, base, dest)
			_, err := Unpack(t.Context(), img, format, dest, UnpackOptions{})
			if after := snapshot(t, base, dest); after != before {
				t.Fatalf("%s: wrote outside dest:\nbefore:\n%s\nafter:\n%s", format, before, after)
			}
			if devs := conformance.DeviceNodes(dest); len(devs) != 0 {
				t.Fatalf("%s: device nodes created: %v", format, devs)
			}
			if err != nil {
				if ents, _ := os.ReadDir(dest); len(ents) != 0 {
					t.Fatalf("%s: failed (%v) but left %d entries in dest", format, err, len(ents))
				}
			}
		}
	})
}
