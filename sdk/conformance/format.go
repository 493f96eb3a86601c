package conformance

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/volt-cli/volt/sdk"
)

// FormatFixture is what a format plugin's test gives the suite.
type FormatFixture struct {
	// Format is the plugin under test, normally a client from sdktest.Format.
	Format sdk.Format
	// Name is the format exercised, e.g. "oci"; Describe must list it.
	Name string
	// Input returns the path of a valid input in format Name.
	Input func(t *testing.T) string
	// Bad returns paths of inputs that Unpack must refuse (corrupt,
	// truncated, escaping the destination...).
	Bad func(t *testing.T) []string
	// PackFormat is the format Pack is asked for in the round trip; "" means Name.
	PackFormat string
	// NoRoundTrip skips Unpack → Pack → Unpack (for plugins that only Convert).
	NoRoundTrip bool
	// DeviceInput returns a valid input (and its format, which Describe
	// must list) whose content includes device nodes: DeviceTar writes a
	// rootfs tarball carrying dev/hostile-sda (block 8:0, mode 0666) and
	// dev/hostile-mem (char 1:1). Unpack must not create any block or
	// character device from it (it may skip them or refuse the input).
	// Nil skips the check; a plugin that unpacks images should set it.
	DeviceInput func(t *testing.T) (path, format string)
	// Equal compares two unpacked trees; nil means CompareTrees.
	Equal func(t *testing.T, a, b string)
	// Timeout bounds each subtest; 0 means 60 s.
	Timeout time.Duration
}

// Format runs the format conformance suite: Info and Describe, an
// Unpack → Pack → Unpack round trip that yields an equal tree, refusal of
// bad inputs and unknown formats, no device nodes from images, and a
// cancelled ctx.
func Format(t *testing.T, factory func(t *testing.T) FormatFixture) {
	tests := []struct {
		name string
		run  func(t *testing.T, f FormatFixture, ctx context.Context)
	}{
		{"InfoDescribe", testDescribe},
		{"RoundTrip", testRoundTrip},
		{"BadInputRefused", testBadInput},
		{"UnknownFormatRefused", testUnknownFormat},
		{"NoDeviceNodes", testNoDeviceNodes},
		{"Cancelled", testFormatCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := factory(t)
			d := f.Timeout
			if d == 0 {
				d = 60 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			tc.run(t, f, ctx)
		})
	}
}

func testDescribe(t *testing.T, f FormatFixture, ctx context.Context) {
	info, err := f.Format.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Kind != sdk.KindFormat || info.Name == "" || !slices.Contains(info.APIVersions, sdk.APIVersion) {
		t.Errorf("Info = %+v: want kind %q, a name, API %d", info, sdk.KindFormat, sdk.APIVersion)
	}
	d, err := f.Format.Describe(ctx)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if !slices.Contains(d.Formats, f.Name) {
		t.Errorf("Describe formats %v do not list %q", d.Formats, f.Name)
	}
}

func testRoundTrip(t *testing.T, f FormatFixture, ctx context.Context) {
	if f.NoRoundTrip {
		t.Skip("fixture has no round trip")
	}
	d1 := t.TempDir()
	if err := f.Format.Unpack(ctx, sdk.UnpackRequest{Image: f.Input(t), Format: f.Name, Dest: d1}); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	pf := f.PackFormat
	if pf == "" {
		pf = f.Name
	}
	staging := t.TempDir()
	files, err := f.Format.Pack(ctx, sdk.PackRequest{Source: d1, Format: pf, Staging: staging})
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	if len(files) == 0 {
		t.Fatalf("Pack returned no files")
	}
	for _, pfile := range files {
		if !filepath.IsLocal(pfile.Path) {
			t.Fatalf("Pack: file %q is not inside the staging dir", pfile.Path)
		}
	}
	d2 := t.TempDir()
	if err := f.Format.Unpack(ctx, sdk.UnpackRequest{Image: filepath.Join(staging, files[0].Path), Format: pf, Dest: d2}); err != nil {
		t.Fatalf("Unpack of the packed file: %v", err)
	}
	eq := f.Equal
	if eq == nil {
		eq = CompareTrees
	}
	eq(t, d1, d2)
}

// DeviceTar writes an uncompressed rootfs tarball holding a world-writable
// block device for the host's first disk (dev/hostile-sda, 8:0), a
// character device (dev/hostile-mem, 1:1) and etc/motd, and returns its path.
func DeviceTar(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "dev/hostile-sda", Typeflag: tar.TypeBlock, Devmajor: 8, Devminor: 0, Mode: 0o666},
		{Name: "dev/hostile-mem", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 1, Mode: 0o666},
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "etc/motd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Write([]byte("hi\n"))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "devices.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testNoDeviceNodes: whatever Unpack does with an image carrying device
// nodes, none appears under Dest (systemd-nspawn gives containers their
// own /dev; a node from an image could be the host's disk).
func testNoDeviceNodes(t *testing.T, f FormatFixture, ctx context.Context) {
	if f.DeviceInput == nil {
		t.Skip("fixture has no DeviceInput")
	}
	image, format := f.DeviceInput(t)
	dest := t.TempDir()
	err := f.Format.Unpack(ctx, sdk.UnpackRequest{Image: image, Format: format, Dest: dest})
	t.Logf("Unpack: %v", err)
	if devs := DeviceNodes(dest); len(devs) != 0 {
		t.Errorf("Unpack created device nodes: %v", devs)
	}
}

// DeviceNodes lists the block and character devices under root.
func DeviceNodes(root string) []string {
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeDevice != 0 {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func testBadInput(t *testing.T, f FormatFixture, ctx context.Context) {
	if f.Bad == nil {
		t.Skip("fixture has no bad inputs")
	}
	for _, bad := range f.Bad(t) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "dest")
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := f.Format.Unpack(ctx, sdk.UnpackRequest{Image: bad, Format: f.Name, Dest: dest}); err == nil {
			t.Errorf("Unpack(%s) accepted a bad input", filepath.Base(bad))
		}
		ents, _ := os.ReadDir(parent)
		if len(ents) != 1 {
			t.Errorf("Unpack(%s) wrote next to the destination: %d entries", filepath.Base(bad), len(ents))
		}
	}
}

func testUnknownFormat(t *testing.T, f FormatFixture, ctx context.Context) {
	err := f.Format.Unpack(ctx, sdk.UnpackRequest{Image: f.Input(t), Format: "no-such-format", Dest: t.TempDir()})
	if err == nil {
		t.Fatal("Unpack of an unknown format succeeded")
	}
}

func testFormatCancelled(t *testing.T, f FormatFixture, ctx context.Context) {
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.Format.Unpack(cctx, sdk.UnpackRequest{Image: f.Input(t), Format: f.Name, Dest: t.TempDir()}); err == nil {
		t.Error("Unpack with a cancelled ctx succeeded")
	}
}

// CompareTrees fails t unless directories a and b hold the same names, types,
// permission bits, file contents and symlink targets.
func CompareTrees(t *testing.T, a, b string) {
	t.Helper()
	ta, tb := walkTree(t, a), walkTree(t, b)
	for name, ea := range ta {
		eb, ok := tb[name]
		switch {
		case !ok:
			t.Errorf("%s: only in %s", name, a)
		case ea.mode != eb.mode:
			t.Errorf("%s: mode %v vs %v", name, ea.mode, eb.mode)
		case !bytes.Equal(ea.data, eb.data):
			t.Errorf("%s: contents differ", name)
		}
	}
	for name := range tb {
		if _, ok := ta[name]; !ok {
			t.Errorf("%s: only in %s", name, b)
		}
	}
}

type treeEntry struct {
	mode fs.FileMode
	data []byte // file contents or link target
}

func walkTree(t *testing.T, root string) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := treeEntry{mode: fi.Mode() & (fs.ModeType | fs.ModePerm)}
		switch {
		case fi.Mode().IsRegular():
			e.data, err = os.ReadFile(p)
		case fi.Mode()&fs.ModeSymlink != 0:
			var l string
			l, err = os.Readlink(p)
			e.data = []byte(l)
		}
		out[rel] = e
		return err
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}
