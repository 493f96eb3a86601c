package oci

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/volt-cli/volt/sdk/conformance"
)

// warnings collects Logf lines.
type warnings struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnings) logf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, fmt.Sprintf(format, args...))
}

// naming returns the warnings about name (the first quoted name in them).
func (w *warnings) naming(name string) []string {
	var out []string
	for _, l := range w.lines {
		if i := strings.IndexByte(l, '"'); i >= 0 {
			if q, err := strconv.QuotedPrefix(l[i:]); err == nil && q == strconv.Quote(name) {
				out = append(out, l)
			}
		}
	}
	return out
}

// hostileLayer carries device nodes (the host's first disk, world-writable;
// a character device; a hard link to the disk), a FIFO and a regular file.
func hostileLayer(t testing.TB) []byte {
	return mkTar(t,
		tent{name: "dev/", typ: tar.TypeDir},
		tent{name: "dev/hostile-sda", typ: tar.TypeBlock, major: 8, minor: 0, mode: 0o666},
		tent{name: "dev/mem", typ: tar.TypeChar, major: 1, minor: 1, mode: 0o666},
		tent{name: "dev/sda-again", typ: tar.TypeLink, link: "dev/hostile-sda"},
		tent{name: "run/initctl", typ: tar.TypeFifo, mode: 0o600},
		tent{name: "etc/hostname", body: "box\n"},
	)
}

// TestNoDeviceNodesFromImages: root or not, in an OCI layout and in a
// rootfs tarball, device nodes are skipped with one warning each naming
// them; a hard link to one is skipped too; FIFOs and files are kept.
func TestNoDeviceNodesFromImages(t *testing.T) {
	for _, format := range []string{FormatOCI, FormatRootfs} {
		for _, nonRoot := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/nonroot=%v", format, nonRoot), func(t *testing.T) {
				tmp := t.TempDir()
				image := filepath.Join(tmp, "image")
				layer := hostileLayer(t)
				if format == FormatOCI {
					buildLayout(t, image, [][]byte{layer}, layoutOpts{})
				} else if err := os.WriteFile(image, gz(t, layer), 0o644); err != nil {
					t.Fatal(err)
				}
				dest := filepath.Join(tmp, "dest")
				os.Mkdir(dest, 0o755)
				var w warnings
				res, err := Unpack(t.Context(), image, format, dest, UnpackOptions{NonRoot: nonRoot, Logf: w.logf})
				if err != nil {
					t.Fatal(err)
				}
				if devs := conformance.DeviceNodes(dest); len(devs) != 0 {
					t.Fatalf("device nodes created: %v", devs)
				}
				for _, n := range []string{"dev/hostile-sda", "dev/mem", "dev/sda-again"} {
					if _, err := os.Lstat(filepath.Join(dest, n)); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("%s exists (%v)", n, err)
					}
					if got := w.naming(n); len(got) != 1 {
						t.Errorf("%d warnings name %s, want 1: %q", len(got), n, w.lines)
					}
				}
				if got := w.naming("dev/hostile-sda"); len(got) == 1 && !strings.Contains(got[0], "block device") {
					t.Errorf("warning does not say what was skipped: %q", got[0])
				}
				if len(res.Skipped) != 3 {
					t.Errorf("Skipped = %q", res.Skipped)
				}
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(dest, "run/initctl"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
					t.Errorf("FIFO not kept: %v", err)
				}
				if b, _ := os.ReadFile(filepath.Join(dest, "etc/hostname")); string(b) != "box\n" {
					t.Errorf("etc/hostname = %q", b)
				}
			})
		}
	}
}

// TestOverlayWhiteouts: layers in overlayfs's own format (a 0:0 character
// device deletes, a directory with trusted.overlay.opaque=y hides the
// lower content) are applied as whiteouts, creating no device.
func TestOverlayWhiteouts(t *testing.T) {
	l1 := mkTar(t,
		tent{name: "a/", typ: tar.TypeDir},
		tent{name: "a/keep", body: "1"},
		tent{name: "a/gone", body: "2"},
		tent{name: "gonedir/", typ: tar.TypeDir},
		tent{name: "gonedir/x", body: "x"},
		tent{name: "o/", typ: tar.TypeDir},
		tent{name: "o/old", body: "old"},
	)
	l2 := mkTar(t,
		tent{name: "a/gone", typ: tar.TypeChar},
		tent{name: "gonedir", typ: tar.TypeChar},
		tent{name: "a/never", typ: tar.TypeChar}, // nothing to delete
		tent{name: "o/", typ: tar.TypeDir, pax: map[string]string{overlayOpaque: "y"}},
		tent{name: "o/new", body: "new"},
	)
	tmp := t.TempDir()
	layout := filepath.Join(tmp, "layout")
	buildLayout(t, layout, [][]byte{l1, l2}, layoutOpts{})
	dest := filepath.Join(tmp, "dest")
	os.Mkdir(dest, 0o755)
	var w warnings
	if _, err := Unpack(t.Context(), layout, FormatOCI, dest, UnpackOptions{Logf: w.logf}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"a drwxr-xr-x", "a/keep -rw-r--r-- " + hexSHA("1"),
		"o drwxr-xr-x", "o/new -rw-r--r-- " + hexSHA("new"),
	}
	diffTrees(t, want, treeDesc(t, dest, false))
	if len(w.lines) != 0 {
		t.Errorf("whiteouts warned: %q", w.lines)
	}
}

// TestPackLeavesDevicesOut: a device node in the tree being packed is
// left out of the layer with a warning naming it.
func TestPackLeavesDevicesOut(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o644)
	if err := unix.Mknod(filepath.Join(dir, "sda"), unix.S_IFBLK|0o666, int(unix.Mkdev(8, 0))); err != nil {
		t.Skipf("cannot make a device node here: %v", err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	var w warnings
	var buf bytes.Buffer
	if err := WriteTree(t.Context(), dir, &buf, PackOptions{Logf: w.logf}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range tarHeaders(t, &buf) {
		if h.Typeflag == tar.TypeBlock || h.Typeflag == tar.TypeChar {
			t.Errorf("device %q packed", h.Name)
		}
		names = append(names, h.Name)
	}
	if strings.Join(names, " ") != "file pipe" {
		t.Errorf("packed %q, want file and pipe", names)
	}
	if got := w.naming("sda"); len(got) != 1 || !strings.Contains(got[0], "block device") || !strings.Contains(got[0], "(8:0)") {
		t.Errorf("warnings = %q", w.lines)
	}
}

// TestSetIDModesKept: as documented, setuid, setgid and sticky bits of
// image entries are kept, also on a file chowned to another user (chown
// clears set-id bits, so the mode is applied after it).
func TestSetIDModesKept(t *testing.T) {
	layer := mkTar(t,
		tent{name: "bin/", typ: tar.TypeDir},
		tent{name: "bin/su", body: "elf", mode: 0o4755},
		tent{name: "bin/wall", body: "elf", mode: 0o2755, uid: 1000, gid: 5},
		tent{name: "bin/both", body: "elf", mode: 0o6711, uid: 1000, gid: 1000},
		tent{name: "shared/", typ: tar.TypeDir, mode: 0o2775},
		tent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
	)
	tmp := t.TempDir()
	image := filepath.Join(tmp, "rootfs.tar")
	os.WriteFile(image, layer, 0o644)
	dest := filepath.Join(tmp, "dest")
	os.Mkdir(dest, 0o755)
	if _, err := Unpack(t.Context(), image, FormatRootfs, dest, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint32{"bin/su": 0o4755, "bin/wall": 0o2755, "bin/both": 0o6711, "shared": 0o2775, "tmp": 0o1777} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dest, name), &st); err != nil {
			t.Fatal(err)
		}
		if got := st.Mode & 0o7777; got != want {
			t.Errorf("%s: mode %#o, want %#o", name, got, want)
		}
		if os.Geteuid() == 0 && name == "bin/wall" && (st.Uid != 1000 || st.Gid != 5) {
			t.Errorf("%s: owner %d:%d, want 1000:5", name, st.Uid, st.Gid)
		}
	}
}
