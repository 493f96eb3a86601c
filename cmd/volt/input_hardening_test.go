package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/volt-cli/volt/sdk/conformance"
)

// hostileImage is a gzip'd rootfs tarball carrying the host's first disk
// as a world-writable block device, a character device and a hard link to
// the disk, beside ordinary content.
func hostileImage(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "dev/hostile-sda", Typeflag: tar.TypeBlock, Devmajor: 8, Devminor: 0, Mode: 0o666},
		{Name: "dev/hostile-mem", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 1, Mode: 0o666},
		{Name: "dev/sda-link", Typeflag: tar.TypeLink, Linkname: "dev/hostile-sda"},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.WriteHeader(&tar.Header{Name: "etc/motd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	tw.Write([]byte("hi\n"))
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// TestImportCreatesNoDeviceNodes: importing an image that carries device
// nodes (from a rootfs tarball, and from a directory image packed by
// bundle create) leaves no block or character device under the state
// root, warns once per device naming it, and reports the checks it ran.
func TestImportCreatesNoDeviceNodes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("device nodes are only ever created as root")
	}
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeFiles(t, stack, map[string]string{
		"volt-compose.yaml": `version: "1"
name: hostile
containers:
  web:
    image: images/web.tar.gz
    command: ["/bin/sh", "-c", "echo hi"]
  dir:
    image: images/dir
    command: ["/bin/sh", "-c", "echo hi"]
`,
		"images/dir/etc/motd": "hi\n",
	})
	if err := os.WriteFile(filepath.Join(stack, "images/web.tar.gz"), hostileImage(t), 0o644); err != nil {
		t.Fatal(err)
	}
	// A directory image with a device node in it (as a debootstrap tree has).
	if err := unix.Mknod(filepath.Join(stack, "images/dir/sda"), unix.S_IFBLK|0o666, int(unix.Mkdev(8, 0))); err != nil {
		t.Skipf("cannot make a device node here: %v", err)
	}
	b := filepath.Join(e.dir, "hostile.vbundle")
	r := e.must("bundle", "create", stack, "-o", b)
	if !strings.Contains(r.stderr, `device \"sda\" (8:0)`) || !strings.Contains(r.stderr, "plugin=format-oci") {
		t.Errorf("bundle create did not warn about the directory image's device:\n%s", r.stderr)
	}
	defer e.run("stack", "destroy", "hostile")
	r = e.must("bundle", "import", "--no-start", "-o", "json", b)
	root := filepath.Join(e.dir, "root")
	if devs := conformance.DeviceNodes(root); len(devs) != 0 {
		t.Fatalf("device nodes under the state root after import: %v", devs)
	}
	for _, name := range []string{"dev/hostile-sda", "dev/hostile-mem", "dev/sda-link"} {
		if n := strings.Count(r.stderr, `\"`+name+`\"`); n < 1 {
			t.Errorf("no warning names %s:\n%s", name, r.stderr)
		}
	}
	if n := strings.Count(r.stderr, `block device \"dev/hostile-sda\"`); n != 1 {
		t.Errorf("%d warnings for dev/hostile-sda, want 1:\n%s", n, r.stderr)
	}
	var out struct {
		Name   string
		Checks []struct {
			Name string
			OK   bool
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("import -o json: %v\n%s", err, r.stdout)
	}
	var names []string
	for _, c := range out.Checks {
		if c.OK {
			names = append(names, c.Name)
		}
	}
	if got := strings.Join(names, ","); out.Name != "hostile" || got != "zip,structure,signature,integrity,tar" {
		t.Errorf("import report: stack %q, checks %s", out.Name, got)
	}
	if b, err := os.ReadFile(filepath.Join(root, "containers/hostile-web/rootfs/etc/motd")); err != nil || string(b) != "hi\n" {
		entries, _ := os.ReadDir(filepath.Join(root, "containers"))
		t.Errorf("image content missing (%v); containers: %v", err, entries)
	}
}

// zipParts splits a small (non-Zip64) bundle into its local entries (header
// and data), central records and end record.
func zipParts(t *testing.T, b []byte) (locals, central [][]byte, end []byte) {
	t.Helper()
	le := binary.LittleEndian
	end = b[len(b)-22:]
	if le.Uint32(end) != 0x06054b50 {
		t.Fatal("no end record")
	}
	cdOff, n := int(le.Uint32(end[16:])), int(le.Uint16(end[10:]))
	for off := 0; off < cdOff; {
		if le.Uint32(b[off:]) != 0x04034b50 {
			t.Fatalf("no local header at %d", off)
		}
		size := 30 + int(le.Uint16(b[off+26:])) + int(le.Uint16(b[off+28:])) + int(le.Uint32(b[off+18:]))
		locals = append(locals, b[off:off+size])
		off += size
	}
	for off, i := cdOff, 0; i < n; i++ {
		size := 46 + int(le.Uint16(b[off+28:])) + int(le.Uint16(b[off+30:])) + int(le.Uint16(b[off+32:]))
		central = append(central, append([]byte{}, b[off:off+size]...))
		off += size
	}
	return locals, central, append([]byte{}, end...)
}

// assemble joins parts back into an archive, fixing the end record's
// count, directory size and offset.
func assemble(locals, central [][]byte, end []byte) []byte {
	var out bytes.Buffer
	for _, l := range locals {
		out.Write(l)
	}
	cdOff := out.Len()
	for _, c := range central {
		out.Write(c)
	}
	le := binary.LittleEndian
	end = append([]byte{}, end...)
	le.PutUint16(end[8:], uint16(len(central)))
	le.PutUint16(end[10:], uint16(len(central)))
	le.PutUint32(end[12:], uint32(out.Len()-cdOff))
	le.PutUint32(end[16:], uint32(cdOff))
	out.Write(end)
	return out.Bytes()
}

// TestNonCanonicalBundlesRefused: hand-made bundles that other ZIP readers
// would see differently from Volt are refused by verify, inspect and
// import, with an error naming the entry and what disagreed.
func TestNonCanonicalBundlesRefused(t *testing.T) {
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeStack(t, stack)
	good := filepath.Join(e.dir, "good.vbundle")
	e.must("bundle", "create", stack, "-o", good)
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	nameOf := func(local []byte) string { return string(local[30 : 30+le.Uint16(local[26:])]) }
	find := func(locals [][]byte, name string) int {
		for i, l := range locals {
			if nameOf(l) == name {
				return i
			}
		}
		t.Fatalf("no entry %q", name)
		return -1
	}
	cases := []struct {
		name string
		make func() []byte
		want []string
	}{
		{"local name mismatch", func() []byte {
			locals, central, end := zipParts(t, orig)
			i := find(locals, "compose.yaml")
			l := append([]byte{}, locals[i]...)
			copy(l[30:], "../../x.yaml") // same length: offsets stay right
			locals[i] = l
			return assemble(locals, central, end)
		}, []string{`entry "compose.yaml"`, `names it "../../x.yaml"`}},
		{"gap between entries", func() []byte {
			locals, central, end := zipParts(t, orig)
			locals[0] = append(append([]byte{}, locals[0]...), make([]byte, 16)...)
			for _, c := range central[1:] {
				le.PutUint32(c[42:], le.Uint32(c[42:])+16)
			}
			return assemble(locals, central, end)
		}, []string{"16-byte gap after entry \"bundle.json\""}},
		{"trailing data", func() []byte {
			return append(append([]byte{}, orig...), "#!/bin/sh\n"...)
		}, []string{"10 bytes follow the end-of-central-directory record"}},
		{"data before the first entry", func() []byte {
			// A self-extractor's stub: offsets unchanged, which archive/zip
			// and unzip accept by shifting them.
			return append([]byte("#!/bin/sh\nexec unzip \"$0\"\n"+strings.Repeat("#", 14)), orig...)
		}, []string{"40 bytes precede the first entry"}},
		{"overlapping entries", func() []byte {
			locals, central, end := zipParts(t, orig)
			i := find(locals, "compose.yaml")
			central = append(central[:i+1], central[i:]...) // compose.yaml listed twice, at one offset
			return assemble(locals, central, end)
		}, []string{`entries "compose.yaml" and "compose.yaml" overlap`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(e.dir, strings.ReplaceAll(tc.name, " ", "-")+".vbundle")
			if err := os.WriteFile(bad, tc.make(), 0o644); err != nil {
				t.Fatal(err)
			}
			want := append([]string{"non-canonical ZIP", "recreate the bundle"}, tc.want...)
			check := func(what string, r result, code int, text string) {
				t.Helper()
				if r.code != code {
					t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
				}
				for _, w := range want {
					if !strings.Contains(text, w) {
						t.Errorf("%s: output lacks %q:\n%s", what, w, text)
					}
				}
			}
			r := e.run("bundle", "verify", bad)
			check("verify", r, exitVerify, r.stdout+r.stderr)
			if !strings.Contains(r.stdout, "Canonical ZIP") {
				t.Errorf("verify does not name the check:\n%s", r.stdout)
			}
			r = e.run("bundle", "verify", "-o", "json", bad)
			var rep struct {
				Passed bool
				Checks []struct {
					Name   string
					OK     bool
					Detail string
				}
			}
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Passed || len(rep.Checks) != 1 || rep.Checks[0].Name != "zip" || rep.Checks[0].OK {
				t.Errorf("verify -o json: %v %+v\n%s", err, rep, r.stdout)
			} else {
				check("verify -o json", r, exitVerify, rep.Checks[0].Detail)
			}
			r = e.run("bundle", "inspect", bad)
			check("inspect", r, exitFailure, r.stderr)
			r = e.run("bundle", "import", "--no-start", bad)
			check("import", r, exitVerify, r.stderr)
			if _, err := os.Stat(filepath.Join(e.dir, "root", "stacks", "demo")); err == nil {
				t.Error("a refused import left a stack behind")
			}
		})
	}
	// The untouched bundle passes: the checks refuse only what they should.
	r := e.must("bundle", "verify", "-o", "json", good)
	if !strings.Contains(r.stdout, `"name": "zip"`) {
		t.Errorf("verify -o json lacks the zip check:\n%s", r.stdout)
	}
}
