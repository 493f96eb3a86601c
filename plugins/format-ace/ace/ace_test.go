package ace

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"go.yaml.in/yaml/v3"

	"github.com/volt-cli/volt/sdk"
)

type zent struct {
	name, body string
	mode       fs.FileMode
}

func mkZip(t testing.TB, ents ...zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: zip.Store}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e.body))
	}
	zw.Close()
	return buf.Bytes()
}

func tarGz(t testing.TB, files map[string]string) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range sortedKeys(files) {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	zw.Close()
	return buf.String()
}

const goodCompose = `{"name": "shop", "version": "1.2.0", "services": {
  "web": {"image": "images/web.tar.gz", "platform": "android/arm64-v8a",
          "environment": {"MODE": "prod", "WORKERS": 4, "DEBUG": false}, "ports": ["8080:80", 9000], "command": ["/bin/httpd", "-f"]},
  "db":  {"image": "images/db.tar.gz", "command": "exec db --serve"}}}`

func goodZip(t testing.TB) []byte {
	return mkZip(t,
		zent{name: "compose.json", body: goodCompose},
		zent{name: "images/web.tar.gz", body: tarGz(t, map[string]string{"bin/httpd": "elf"})},
		zent{name: "images/db.tar.gz", body: tarGz(t, map[string]string{"oci-layout": "{}", "index.json": "{}"})},
	)
}

func TestACETreeRoundTrip(t *testing.T) {
	tmp := t.TempDir()
	in := filepath.Join(tmp, "in.zip")
	os.WriteFile(in, goodZip(t), 0o644)
	p := &Plugin{}
	tree := filepath.Join(tmp, "tree")
	os.Mkdir(tree, 0o755)
	files, err := p.Convert(t.Context(), sdk.ConvertRequest{Bundle: in, To: TargetTree, Staging: tree})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path+":"+f.Format)
	}
	want := []string{"compose.yaml:compose", "meta.json:meta", "images/db/android-arm64-v8a.tar.gz:oci", "images/web/android-arm64-v8a.tar.gz:rootfs"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("files %v, want %v", paths, want)
	}
	var meta Meta
	b, _ := os.ReadFile(filepath.Join(tree, MetaFile))
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Name != "shop" || meta.Version != "1.2.0" || !reflect.DeepEqual(meta.Platforms, []string{"android/arm64-v8a"}) || meta.Services["db"].Format != "oci" {
		t.Errorf("meta %+v", meta)
	}
	var tc map[string]any
	yb, _ := os.ReadFile(filepath.Join(tree, ComposeFile))
	if err := yaml.Unmarshal(yb, &tc); err != nil {
		t.Fatal(err)
	}
	web := tc["containers"].(map[string]any)["web"].(map[string]any)
	if web["image"].(map[string]any)["android/arm64-v8a"] != "images/web/android-arm64-v8a.tar.gz" || tc["name"] != "shop" {
		t.Errorf("compose.yaml:\n%s", yb)
	}
	if got, _ := os.ReadFile(filepath.Join(tree, "images/web/android-arm64-v8a.tar.gz")); string(got) != tarGz(t, map[string]string{"bin/httpd": "elf"}) {
		t.Error("web image not copied byte for byte")
	}

	// Tree -> ACE -> same services; -> tree again: identical compose.yaml.
	out := filepath.Join(tmp, "out")
	os.Mkdir(out, 0o755)
	files, err = p.Convert(t.Context(), sdk.ConvertRequest{Bundle: tree, To: TargetACE, Staging: out})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Path != "shop.zip" {
		t.Fatalf("files %+v", files)
	}
	a1, err := OpenZip(in, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	defer a1.Close()
	a2, err := OpenZip(filepath.Join(out, "shop.zip"), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if !reflect.DeepEqual(a1.Compose, a2.Compose) {
		t.Errorf("services differ after ACE -> tree -> ACE:\n%+v\n%+v", a1.Compose, a2.Compose)
	}
	tree2 := filepath.Join(tmp, "tree2")
	os.Mkdir(tree2, 0o755)
	if _, err := p.Convert(t.Context(), sdk.ConvertRequest{Bundle: filepath.Join(out, "shop.zip"), To: TargetTree, Staging: tree2}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ComposeFile, MetaFile, "images/web/android-arm64-v8a.tar.gz", "images/db/android-arm64-v8a.tar.gz"} {
		x, _ := os.ReadFile(filepath.Join(tree, f))
		y, _ := os.ReadFile(filepath.Join(tree2, f))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs after a second round trip", f)
		}
	}
	// Writing the same tree twice gives the same zip.
	out2 := filepath.Join(tmp, "out2")
	os.Mkdir(out2, 0o755)
	p.Convert(t.Context(), sdk.ConvertRequest{Bundle: tree, To: TargetACE, Staging: out2})
	z1, _ := os.ReadFile(filepath.Join(out, "shop.zip"))
	z2, _ := os.ReadFile(filepath.Join(out2, "shop.zip"))
	if !bytes.Equal(z1, z2) {
		t.Error("ACE output not deterministic")
	}
}

func TestBadACE(t *testing.T) {
	img := tarGz(t, map[string]string{"a": "b"})
	svc := func(image string) string {
		return `{"name":"x","version":"1","services":{"s":{"image":"` + image + `"}}}`
	}
	cases := []struct {
		name string
		zip  []byte
		want error
	}{
		{"no-compose", mkZip(t, zent{name: "images/s.tar.gz", body: img}), ErrNoCompose},
		{"compose-in-subdir", mkZip(t, zent{name: "x/compose.json", body: svc("images/s.tar.gz")}, zent{name: "images/s.tar.gz", body: img}), ErrNoCompose},
		{"image-outside-images", mkZip(t, zent{name: "compose.json", body: svc("other/s.tar.gz")}, zent{name: "other/s.tar.gz", body: img}), ErrBadImagePath},
		{"image-dotdot", mkZip(t, zent{name: "compose.json", body: svc("images/../../etc/passwd.tar")}), ErrBadImagePath},
		{"image-absolute", mkZip(t, zent{name: "compose.json", body: svc("/images/s.tar.gz")}), ErrBadImagePath},
		{"image-missing", mkZip(t, zent{name: "compose.json", body: svc("images/s.tar.gz")}), ErrBadImagePath},
		{"image-not-tar", mkZip(t, zent{name: "compose.json", body: svc("images/s.exe")}, zent{name: "images/s.exe", body: "MZ"}), ErrBadImagePath},
		{"zip-slip", mkZip(t, zent{name: "compose.json", body: svc("images/s.tar.gz")}, zent{name: "images/s.tar.gz", body: img}, zent{name: "../../evil", body: "x"}), ErrUnsafeName},
		{"zip-slip-inner", mkZip(t, zent{name: "images/../../evil", body: "x"}), ErrUnsafeName},
		{"absolute-name", mkZip(t, zent{name: "/etc/evil", body: "x"}), ErrUnsafeName},
		{"backslash", mkZip(t, zent{name: "..\\evil", body: "x"}), ErrUnsafeName},
		{"duplicate", mkZip(t, zent{name: "compose.json", body: svc("images/s.tar.gz")}, zent{name: "compose.json", body: "{}"}), ErrUnsafeName},
		{"symlink", mkZip(t, zent{name: "compose.json", body: svc("images/s.tar.gz")}, zent{name: "images/s.tar.gz", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}), ErrUnsafeName},
		{"bad-service-name", mkZip(t, zent{name: "compose.json", body: `{"name":"x","services":{"../s":{"image":"images/s.tar.gz"}}}`}, zent{name: "images/s.tar.gz", body: img}), ErrBadCompose},
		{"bad-platform", mkZip(t, zent{name: "compose.json", body: `{"name":"x","services":{"s":{"image":"images/s.tar.gz","platform":"../x"}}}`}, zent{name: "images/s.tar.gz", body: img}), ErrBadCompose},
		{"bad-json", mkZip(t, zent{name: "compose.json", body: `{`}), ErrBadCompose},
		{"no-services", mkZip(t, zent{name: "compose.json", body: `{"name":"x"}`}), ErrBadCompose},
		{"compose-too-big", mkZip(t, zent{name: "compose.json", body: svc("images/s.tar.gz") + strings.Repeat(" ", 2<<20)}), ErrTooLarge},
		{"image-not-a-tar", mkZip(t, zent{name: "compose.json", body: svc("images/s.tar.gz")}, zent{name: "images/s.tar.gz", body: "\x1f\x8bgarbage"}), ErrBadImagePath},
		{"not-a-zip", []byte("PK nonsense"), sdk.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			in := filepath.Join(tmp, "in.zip")
			os.WriteFile(in, tc.zip, 0o644)
			staging := filepath.Join(tmp, "staging")
			os.Mkdir(staging, 0o755)
			_, err := (&Plugin{}).Convert(t.Context(), sdk.ConvertRequest{Bundle: in, To: TargetTree, Staging: staging})
			if !errors.Is(err, tc.want) || !errors.Is(err, sdk.ErrInvalid) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			ents, _ := os.ReadDir(tmp)
			if len(ents) != 2 {
				t.Errorf("something written next to staging: %v", ents)
			}
		})
	}
}

func TestCorruptImageCRC(t *testing.T) {
	z := goodZip(t)
	web := tarGz(t, map[string]string{"bin/httpd": "elf"})
	i := bytes.Index(z, []byte(web))
	z[i+len(web)/2] ^= 0xff
	tmp := t.TempDir()
	in := filepath.Join(tmp, "in.zip")
	os.WriteFile(in, z, 0o644)
	_, err := (&Plugin{}).Convert(t.Context(), sdk.ConvertRequest{Bundle: in, To: TargetTree, Staging: tmp})
	if !errors.Is(err, zip.ErrChecksum) || !errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("error %v, want zip.ErrChecksum", err)
	}
}

func TestFromTreeRefusesWhatACECannotHold(t *testing.T) {
	cases := map[string]string{
		"vm":            "name: x\nvms:\n  db: {image: images/db/linux-amd64.qcow2}\n",
		"two-platforms": "name: x\ncontainers:\n  web:\n    image: {linux/amd64: images/web/linux-amd64.tar, linux/arm64: images/web/linux-arm64.tar}\n",
		"image-escapes": "name: x\ncontainers:\n  web: {image: ../../etc/passwd.tar}\n",
		"bad-name":      "name: ../x\ncontainers:\n  web: {image: images/web/linux-amd64.tar}\n",
	}
	for name, y := range cases {
		t.Run(name, func(t *testing.T) {
			tree := t.TempDir()
			os.WriteFile(filepath.Join(tree, ComposeFile), []byte(y), 0o644)
			_, err := (&Plugin{}).Convert(t.Context(), sdk.ConvertRequest{Bundle: tree, To: TargetACE, Staging: t.TempDir()})
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// FuzzReadACE: arbitrary zip bytes never panic the reader, and a
// conversion never writes outside its staging dir.
func FuzzReadACE(f *testing.F) {
	f.Add(goodZip(f))
	f.Add(mkZip(f, zent{name: "../evil", body: "x"}))
	f.Add(mkZip(f, zent{name: "compose.json", body: `{"name":"x","services":{"s":{"image":"images/s.tar"}}}`}, zent{name: "images/s.tar", body: ""}))
	f.Add([]byte("PK\x03\x04"))
	f.Fuzz(func(t *testing.T, data []byte) {
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if _, err := ReadZip(zr, DefaultLimits); err != nil {
			return
		}
		base := t.TempDir()
		in := filepath.Join(base, "in.zip")
		os.WriteFile(in, data, 0o644)
		staging := filepath.Join(base, "staging")
		os.Mkdir(staging, 0o755)
		ToTree(t.Context(), in, staging, DefaultLimits)
		filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if p != base && p != in && p != staging && !strings.HasPrefix(p, staging+"/") {
				t.Fatalf("wrote outside staging: %s", p)
			}
			return nil
		})
	})
}

// TestFromTreeWithBundleJSON: the host extracts a vbundle (compose.yaml
// naming the recipe's source image, bundle.json naming the bundle entry).
func TestFromTreeWithBundleJSON(t *testing.T) {
	tree := t.TempDir()
	os.WriteFile(filepath.Join(tree, ComposeFile), []byte("version: \"1\"\nname: shop\ncontainers:\n  web:\n    image: images/web\n    command: [/bin/httpd]\n    ports: [\"80:80\"]\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "bundle.json"), []byte(`{"version":1,"name":"shop","bundleVersion":"2.0.0",
		"services":{"web":{"type":"container","images":{"linux/amd64":{"path":"images/web/linux-amd64.tar.gz","format":"rootfs"}}}}}`), 0o644)
	img := tarGz(t, map[string]string{"bin/httpd": "elf"})
	os.MkdirAll(filepath.Join(tree, "images/web"), 0o755)
	os.WriteFile(filepath.Join(tree, "images/web/linux-amd64.tar.gz"), []byte(img), 0o644)
	out := t.TempDir()
	files, err := (&Plugin{}).Convert(t.Context(), sdk.ConvertRequest{Bundle: tree, To: TargetACE, Staging: out})
	if err != nil {
		t.Fatal(err)
	}
	a, err := OpenZip(filepath.Join(out, files[0].Path), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	want := Compose{Name: "shop", Version: "2.0.0", Services: map[string]*Service{"web": {
		Image: "images/web.tar.gz", Platform: "linux/amd64", Ports: []string{"80:80"}, Command: []string{"/bin/httpd"}}}}
	if !reflect.DeepEqual(a.Compose, want) {
		t.Errorf("compose.json %+v, want %+v", a.Compose, want)
	}
}
