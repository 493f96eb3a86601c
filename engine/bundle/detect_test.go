package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// tarOf builds a tar with the named files (content: a few bytes each).
func tarOf(t *testing.T, names ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		if n[len(n)-1] == '/' {
			tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755})
			continue
		}
		data := bytes.Repeat([]byte("x"), 100)
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(data))})
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zst(b []byte) []byte {
	w, _ := zstd.NewWriter(nil)
	defer w.Close()
	return w.EncodeAll(b, nil)
}

func TestDetectFormat(t *testing.T) {
	dir := t.TempDir()
	oci := tarOf(t, "blobs/", "blobs/sha256/", "oci-layout", "index.json")
	ociLate := tarOf(t, "./", "./oci-layout", "./index.json")
	docker := tarOf(t, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/", "manifest.json")
	rootfs := tarOf(t, "./", "./bin/", "./etc/", "./etc/hostname")
	mbr := make([]byte, 4096)
	mbr[510], mbr[511] = 0x55, 0xaa
	gpt := make([]byte, 4096)
	copy(gpt[512:], "EFI PART")
	tests := []struct {
		file    string
		data    []byte
		format  string
		ext     string
		wantErr error
	}{
		{"oci.tar", oci, FormatOCI, ".tar", nil},
		{"oci-dot.tar", ociLate, FormatOCI, ".tar", nil},
		{"oci.tgz", gz(oci), FormatOCI, ".tar.gz", nil},
		{"oci.tar.zst", zst(oci), FormatOCI, ".tar.zst", nil},
		{"docker.tar", docker, FormatOCI, ".tar", nil},
		{"docker.tar.gz", gz(docker), FormatOCI, ".tar.gz", nil},
		{"rootfs.tar", rootfs, FormatRootfs, ".tar", nil},
		{"rootfs.tar.gz", gz(rootfs), FormatRootfs, ".tar.gz", nil},
		{"rootfs.tar.zst", zst(rootfs), FormatRootfs, ".tar.zst", nil},
		{"disk.bin", mbr, FormatRaw, ".raw", nil},
		{"gpt.bin", gpt, FormatRaw, ".raw", nil},
		{"blank.img", make([]byte, 4096), FormatRaw, ".raw", nil},
		{"blank.raw", []byte("x"), FormatRaw, ".raw", nil},
		{"qcow2.bin", append([]byte("QFI\xfb"), make([]byte, 100)...), FormatQCOW2, ".qcow2", nil},
		{"notes.txt", []byte("hello"), "", "", ErrUnknownFormat},
		{"bad.gz", gz([]byte("not a tar at all")), "", "", ErrUnknownFormat},
		{"empty", nil, "", "", ErrUnknownFormat},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			p := filepath.Join(dir, tc.file)
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			format, ext, err := DetectFormat(p)
			if !errors.Is(err, tc.wantErr) || format != tc.format || ext != tc.ext {
				t.Errorf("DetectFormat = %q, %q, %v; want %q, %q, %v", format, ext, err, tc.format, tc.ext, tc.wantErr)
			}
		})
	}
}

// TestDetectFormatRealTools checks files made by qemu-img and a big OCI
// layout whose first blob exceeds the detection window.
func TestDetectFormatRealTools(t *testing.T) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	q := filepath.Join(dir, "disk")
	if out, err := exec.Command(qemuImg, "create", "-f", "qcow2", q, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	if f, ext, err := DetectFormat(q); err != nil || f != FormatQCOW2 || ext != ".qcow2" {
		t.Errorf("qcow2: %q %q %v", f, ext, err)
	}
	if umoci, err := exec.LookPath("umoci"); err == nil {
		layout := filepath.Join(dir, "layout")
		if out, err := exec.Command(umoci, "init", "--layout", layout).CombinedOutput(); err != nil {
			t.Fatalf("umoci init: %v\n%s", err, out)
		}
		tarball := filepath.Join(dir, "layout.tar")
		if out, err := exec.Command("tar", "-C", layout, "-cf", tarball, ".").CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, out)
		}
		if f, ext, err := DetectFormat(tarball); err != nil || f != FormatOCI || ext != ".tar" {
			t.Errorf("umoci layout: %q %q %v", f, ext, err)
		}
	}
	// A blob bigger than the window comes first: its name alone must decide.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	big := randomBytes(200<<10, 1)
	tw.WriteHeader(&tar.Header{Name: "blobs/sha256/aa", Mode: 0o644, Size: int64(len(big))})
	tw.Write(big)
	tw.Close()
	p := filepath.Join(dir, "big.tar.gz")
	os.WriteFile(p, gz(buf.Bytes()), 0o644)
	if f, ext, err := DetectFormat(p); err != nil || f != FormatOCI || ext != ".tar.gz" {
		t.Errorf("big OCI: %q %q %v", f, ext, err)
	}
}
