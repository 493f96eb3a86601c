package oci

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/volt-cli/volt/sdk"
)

func TestPackUnpackRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src)
	want := treeDesc(t, src, true)
	for _, comp := range []string{CompressionGzip, CompressionZstd} {
		t.Run(comp, func(t *testing.T) {
			tmp := t.TempDir()
			o := PackOptions{MTime: 1700000000, Platform: "linux/arm64", Compression: comp}
			out1, out2 := filepath.Join(tmp, "a.tar"), filepath.Join(tmp, "b.tar")
			res, err := PackOCI(t.Context(), src, out1, o)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := PackOCI(t.Context(), src, out2, o); err != nil {
				t.Fatal(err)
			}
			b1, _ := os.ReadFile(out1)
			b2, _ := os.ReadFile(out2)
			if !bytes.Equal(b1, b2) {
				t.Fatal("same input packed twice gave different bytes")
			}
			dest := filepath.Join(tmp, "dest")
			os.Mkdir(dest, 0o755)
			ur, err := Unpack(t.Context(), out1, FormatOCI, dest, UnpackOptions{Platform: "linux/arm64"})
			if err != nil {
				t.Fatal(err)
			}
			if ur.Platform != "linux/arm64" || res.Platform != "linux/arm64" {
				t.Errorf("platform: unpack %q pack %q", ur.Platform, res.Platform)
			}
			diffTrees(t, want, treeDesc(t, dest, true))
			fi, _ := os.Lstat(filepath.Join(dest, "usr/bin/tool"))
			if fi.ModTime().Unix() != 1700000000 {
				t.Errorf("mtime %v, want 1700000000", fi.ModTime().Unix())
			}
			// Another platform is not in the image.
			dest2 := filepath.Join(tmp, "dest2")
			os.Mkdir(dest2, 0o755)
			if _, err := Unpack(t.Context(), out1, FormatOCI, dest2, UnpackOptions{Platform: "linux/s390x"}); !errors.Is(err, ErrNoPlatform) {
				t.Errorf("unpack for a missing platform: %v, want ErrNoPlatform", err)
			}
		})
	}
}

func TestPackMtimeChangesOutput(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src)
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	if _, err := PackOCI(t.Context(), src, a, PackOptions{MTime: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := PackOCI(t.Context(), src, b, PackOptions{MTime: 2}); err != nil {
		t.Fatal(err)
	}
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if bytes.Equal(ba, bb) {
		t.Error("different mtimes gave identical images")
	}
}

func TestRootfsRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src)
	for _, comp := range []string{CompressionGzip, CompressionZstd} {
		t.Run(comp, func(t *testing.T) {
			tmp := t.TempDir()
			out := filepath.Join(tmp, "rootfs.tar")
			if err := PackRootfs(t.Context(), src, out, PackOptions{Compression: comp}); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(tmp, "dest")
			os.Mkdir(dest, 0o755)
			if _, err := Unpack(t.Context(), out, FormatRootfs, dest, UnpackOptions{}); err != nil {
				t.Fatal(err)
			}
			diffTrees(t, treeDesc(t, src, true), treeDesc(t, dest, true))
		})
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestUmociLayout unpacks an image built by umoci (two layers, the second
// deleting a file) and compares with umoci's own unpack, from the layout
// directory, a tar of it, and a zstd-compressed tar of it.
func TestUmociLayout(t *testing.T) {
	if _, err := exec.LookPath("umoci"); err != nil {
		t.Skip("umoci not installed")
	}
	tmp := t.TempDir()
	layout := filepath.Join(tmp, "layout")
	run(t, "umoci", "init", "--layout", layout)
	run(t, "umoci", "new", "--image", layout+":latest")
	b1 := filepath.Join(tmp, "b1")
	run(t, "umoci", "unpack", "--image", layout+":latest", b1)
	rootfs := filepath.Join(b1, "rootfs")
	makeTree(t, rootfs)
	os.WriteFile(filepath.Join(rootfs, "etc/gone"), []byte("bye"), 0o644)
	run(t, "umoci", "repack", "--refresh-bundle", "--image", layout+":latest", b1)
	os.Remove(filepath.Join(rootfs, "etc/gone"))
	os.WriteFile(filepath.Join(rootfs, "etc/app/conf"), []byte("changed\n"), 0o600)
	run(t, "umoci", "repack", "--image", layout+":latest", b1)

	ref := filepath.Join(tmp, "ref")
	run(t, "umoci", "unpack", "--image", layout+":latest", ref)
	want := treeDesc(t, filepath.Join(ref, "rootfs"), true)

	layoutTar := filepath.Join(tmp, "layout.tar")
	run(t, "tar", "-C", layout, "-cf", layoutTar, ".")
	run(t, "zstd", "-q", "-1", layoutTar, "-o", layoutTar+".zst")
	for _, in := range []string{layout, layoutTar, layoutTar + ".zst"} {
		t.Run(filepath.Base(in), func(t *testing.T) {
			dest := t.TempDir()
			res, err := Unpack(t.Context(), in, FormatOCI, dest, UnpackOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Layers != 2 {
				t.Errorf("layers %d, want 2", res.Layers)
			}
			diffTrees(t, want, treeDesc(t, dest, true))
		})
	}
}

// TestDockerArchive unpacks a `docker save`-style tar (manifest.json,
// <id>/layer.tar, config with diff_ids), with one gzip and one plain layer.
func TestDockerArchive(t *testing.T) {
	l1 := mkTar(t, tent{name: "bin/", typ: tar.TypeDir}, tent{name: "bin/sh", body: "shell", mode: 0o755}, tent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777})
	l2 := mkTar(t, tent{name: "bin/.wh.sh"}, tent{name: "etc/hostname", body: "box\n"})
	cfg, _ := json.Marshal(v1.Image{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, RootFS: v1.RootFS{Type: "layers", DiffIDs: []digestT{sha(l1), sha(l2)}}})
	man, _ := json.Marshal([]dockerManifest{{Config: sha(cfg).Encoded() + ".json", RepoTags: []string{"x:latest"}, Layers: []string{"aaa/layer.tar", "bbb/layer.tar"}}})
	archive := mkTar(t,
		tent{name: "manifest.json", body: string(man)},
		tent{name: sha(cfg).Encoded() + ".json", body: string(cfg)},
		tent{name: "aaa/layer.tar", body: string(gz(t, l1))},
		tent{name: "bbb/layer.tar", body: string(l2)},
	)
	tmp := t.TempDir()
	in := filepath.Join(tmp, "img.tar")
	os.WriteFile(in, archive, 0o644)
	dest := filepath.Join(tmp, "dest")
	os.Mkdir(dest, 0o755)
	if _, err := Unpack(t.Context(), in, FormatDockerArchive, dest, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	got := treeDesc(t, dest, false)
	want := []string{"bin drwxr-xr-x", "etc drwxr-xr-x", "etc/hostname -rw-r--r-- " + hexSHA("box\n"), "tmp dtrwxrwxrwx"}
	diffTrees(t, want, got)

	// A layer that does not match its diff_id is refused.
	bad := mkTar(t,
		tent{name: "manifest.json", body: string(man)},
		tent{name: sha(cfg).Encoded() + ".json", body: string(cfg)},
		tent{name: "aaa/layer.tar", body: string(gz(t, l1))},
		tent{name: "bbb/layer.tar", body: string(mkTar(t, tent{name: "etc/hostname", body: "evil\n"}))},
	)
	os.WriteFile(in, bad, 0o644)
	dest2 := filepath.Join(tmp, "dest2")
	os.Mkdir(dest2, 0o755)
	if _, err := Unpack(t.Context(), in, FormatOCI, dest2, UnpackOptions{}); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("tampered layer: %v, want ErrDigestMismatch", err)
	}
	if ents, _ := os.ReadDir(dest2); len(ents) != 0 {
		t.Errorf("dest not emptied after failure: %v", ents)
	}
}

func TestWhiteoutsAndOpaque(t *testing.T) {
	l1 := mkTar(t,
		tent{name: "a/", typ: tar.TypeDir},
		tent{name: "a/keep", body: "1"},
		tent{name: "a/gone", body: "2"},
		tent{name: "o/", typ: tar.TypeDir},
		tent{name: "o/old", body: "old"},
		tent{name: "o/sub/", typ: tar.TypeDir},
		tent{name: "o/sub/deep", body: "deep"},
		tent{name: "d/", typ: tar.TypeDir},
		tent{name: "d/x", body: "x"},
		tent{name: "f", body: "file"},
	)
	l2 := mkTar(t,
		tent{name: "a/.wh.gone"},
		tent{name: "o/", typ: tar.TypeDir},
		tent{name: "o/new", body: "new"},
		tent{name: "o/.wh..wh..opq"},       // after o/new: must not remove it
		tent{name: ".wh.d"},                // a whole directory
		tent{name: "f/", typ: tar.TypeDir}, // a file replaced by a directory
		tent{name: "f/inner", body: "in"},
		tent{name: "a/.wh.nonexistent"},
		tent{name: "a/new", body: "n"},
		tent{name: "a/.wh.new"}, // same-layer whiteout hides nothing
	)
	tmp := t.TempDir()
	layout := filepath.Join(tmp, "layout")
	buildLayout(t, layout, [][]byte{l1, l2}, layoutOpts{})
	dest := filepath.Join(tmp, "dest")
	os.Mkdir(dest, 0o755)
	if _, err := Unpack(t.Context(), layout, FormatOCI, dest, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"a drwxr-xr-x", "a/keep -rw-r--r-- " + hexSHA("1"), "a/new -rw-r--r-- " + hexSHA("n"),
		"f drwxr-xr-x", "f/inner -rw-r--r-- " + hexSHA("in"),
		"o drwxr-xr-x", "o/new -rw-r--r-- " + hexSHA("new"),
	}
	diffTrees(t, want, treeDesc(t, dest, false))
}

// TestBadInputs: each input is refused (or the entry skipped), the
// destination is left empty on refusal, and nothing outside it changes.
func TestBadInputs(t *testing.T) {
	escape := func(ents ...tent) [][]byte { return [][]byte{mkTar(t, ents...)} }
	cases := []struct {
		name    string
		layers  [][]byte
		opts    layoutOpts
		nonRoot bool
		wantErr error
		check   func(t *testing.T, dest string)
	}{
		{name: "dotdot", layers: escape(tent{name: "../outside/pwned", body: "x"}), wantErr: ErrUnsafePath},
		{name: "dotdot-inner", layers: escape(tent{name: "a/../../outside/pwned", body: "x"}), wantErr: ErrUnsafePath},
		{name: "absolute", layers: escape(tent{name: "/tmp/pwned", body: "x"}), wantErr: ErrUnsafePath},
		{name: "symlink-escape-relative", layers: escape(
			tent{name: "evil", typ: tar.TypeSymlink, link: "../outside"},
			tent{name: "evil/pwned", body: "x"}), wantErr: ErrUnsafePath},
		{name: "symlink-escape-absolute", layers: escape(
			tent{name: "evil", typ: tar.TypeSymlink, link: "OUTSIDE"},
			tent{name: "evil/pwned", body: "x"}), wantErr: ErrUnsafePath},
		{name: "symlink-then-file-over-it", layers: escape(
			tent{name: "evil", typ: tar.TypeSymlink, link: "OUTSIDE/canary"},
			tent{name: "evil", body: "replaced"}),
			check: func(t *testing.T, dest string) {
				b, _ := os.ReadFile(filepath.Join(dest, "evil"))
				if string(b) != "replaced" {
					t.Errorf("evil = %q", b)
				}
			}},
		{name: "hardlink-escape-dotdot", layers: escape(tent{name: "h", typ: tar.TypeLink, link: "../outside/canary"}), wantErr: ErrUnsafePath},
		{name: "hardlink-escape-absolute", layers: escape(tent{name: "h", typ: tar.TypeLink, link: "OUTSIDE/canary"}), wantErr: ErrUnsafePath},
		{name: "hardlink-through-symlink", layers: escape(
			tent{name: "evil", typ: tar.TypeSymlink, link: "OUTSIDE"},
			tent{name: "h", typ: tar.TypeLink, link: "evil/canary"}), wantErr: errAny},
		{name: "device-nonroot-skipped", nonRoot: true, layers: escape(
			tent{name: "dev/", typ: tar.TypeDir},
			tent{name: "dev/sda", typ: tar.TypeBlock, major: 8},
			tent{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3},
			tent{name: "ok", body: "fine"}),
			check: func(t *testing.T, dest string) {
				for _, n := range []string{"dev/sda", "dev/null"} {
					if _, err := os.Lstat(filepath.Join(dest, n)); !os.IsNotExist(err) {
						t.Errorf("%s created without root semantics (%v)", n, err)
					}
				}
				if _, err := os.Stat(filepath.Join(dest, "ok")); err != nil {
					t.Error("regular entry after skipped devices missing")
				}
			}},
		{name: "digest-mismatch", layers: escape(tent{name: "f", body: strings.Repeat("data", 1000)}), opts: layoutOpts{corruptBlob: true}, wantErr: ErrDigestMismatch},
		{name: "truncated-layer", layers: escape(tent{name: "f", body: "data"}), opts: layoutOpts{truncateBlob: true}, wantErr: ErrSizeMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "canary"), []byte("canary"), 0o644)
			layers := make([][]byte, len(tc.layers))
			for i, l := range tc.layers {
				layers[i] = bytes.ReplaceAll(l, []byte("OUTSIDE"), []byte(outside))
				if !bytes.Equal(layers[i], l) { // lengths changed: rebuild the tar properly
					layers[i] = retar(t, l, outside)
				}
			}
			layout := filepath.Join(base, "layout")
			buildLayout(t, layout, layers, tc.opts)
			dest := filepath.Join(base, "dest")
			os.Mkdir(dest, 0o755)
			before := snapshot(t, base, dest)
			_, err := Unpack(t.Context(), layout, FormatOCI, dest, UnpackOptions{NonRoot: tc.nonRoot})
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr == errAny && err == nil, tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, sdk.ErrInvalid) {
					t.Errorf("error %v does not wrap sdk.ErrInvalid", err)
				}
				if ents, _ := os.ReadDir(dest); len(ents) != 0 {
					t.Errorf("dest not empty after refusal: %v", ents)
				}
			}
			if after := snapshot(t, base, dest); after != before {
				t.Errorf("something outside dest changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "canary")); string(b) != "canary" {
				t.Errorf("canary changed: %q", b)
			}
			if tc.check != nil {
				tc.check(t, dest)
			}
		})
	}
}

var errAny = errors.New("any error")

// retar rewrites a test tar with OUTSIDE replaced in names and link targets.
func retar(t *testing.T, b []byte, outside string) []byte {
	tr := tar.NewReader(bytes.NewReader(b))
	var ents []tent
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		body := new(bytes.Buffer)
		body.ReadFrom(tr)
		ents = append(ents, tent{name: strings.ReplaceAll(h.Name, "OUTSIDE", outside), link: strings.ReplaceAll(h.Linkname, "OUTSIDE", outside),
			typ: h.Typeflag, mode: h.Mode, body: body.String()})
	}
	return mkTar(t, ents...)
}

func TestUnpackRejectsNonEmptyDestAndUnknownInput(t *testing.T) {
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "dest")
	os.Mkdir(dest, 0o755)
	os.WriteFile(filepath.Join(dest, "x"), nil, 0o644)
	img := filepath.Join(tmp, "img.tar")
	os.WriteFile(img, mkTar(t, tent{name: "hello", body: "x"}), 0o644)
	if _, err := Unpack(t.Context(), img, FormatOCI, dest, UnpackOptions{}); !errors.Is(err, ErrDestNotEmpty) {
		t.Errorf("non-empty dest: %v", err)
	}
	os.Remove(filepath.Join(dest, "x"))
	if _, err := Unpack(t.Context(), img, FormatOCI, dest, UnpackOptions{}); !errors.Is(err, ErrNotImage) {
		t.Errorf("plain tar as oci: %v", err)
	}
	if _, err := Unpack(t.Context(), img, "squashfs", dest, UnpackOptions{}); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("unknown format: %v", err)
	}
	// zstd rootfs tarball.
	var zb bytes.Buffer
	zw, _ := zstd.NewWriter(&zb)
	zw.Write(mkTar(t, tent{name: "hello", body: "x"}))
	zw.Close()
	os.WriteFile(img, zb.Bytes(), 0o644)
	if _, err := Unpack(t.Context(), img, FormatRootfs, dest, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "hello")); string(b) != "x" {
		t.Errorf("hello = %q", b)
	}
}

func TestParseFormat(t *testing.T) {
	f, p := ParseFormat("oci; platform=linux/arm64")
	if f != "oci" || p["platform"] != "linux/arm64" {
		t.Errorf("got %q %v", f, p)
	}
	if f, p := ParseFormat("rootfs"); f != "rootfs" || len(p) != 0 {
		t.Errorf("got %q %v", f, p)
	}
}

// TestTruncatedImageTar cuts one byte out of the layer blob inside an image
// tar (not a layout dir): refused before anything is written.
func TestTruncatedImageTar(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("abc"), 50000), 0o644)
	tmp := t.TempDir()
	img := filepath.Join(tmp, "image.tar")
	res, err := PackOCI(t.Context(), src, img, PackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(img)
	// Rewrite the tar with the layer blob one byte short but its header intact.
	layer := "blobs/sha256/" + res.Layer.Encoded()
	i := bytes.Index(b, []byte(layer))
	if i < 0 {
		t.Fatal("layer not found in tar")
	}
	hdr, _ := tar.NewReader(bytes.NewReader(b[i:])).Next()
	dataStart := i + 512
	cut := append(append([]byte{}, b[:dataStart+int(hdr.Size)-1]...), b[dataStart+int(hdr.Size):]...)
	os.WriteFile(img, cut, 0o644)
	dest := filepath.Join(tmp, "dest")
	os.Mkdir(dest, 0o755)
	if _, err := Unpack(t.Context(), img, FormatOCI, dest, UnpackOptions{}); err == nil || !errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("truncated layer in image tar: %v", err)
	}
	if ents, _ := os.ReadDir(dest); len(ents) != 0 {
		t.Errorf("dest not empty: %v", ents)
	}
}
