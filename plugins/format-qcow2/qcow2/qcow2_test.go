package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/volt-cli/volt/sdk"
)

func needQemuImg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// rawDisk writes a 3 MiB raw disk: random data, a zero hole, more data.
func rawDisk(t *testing.T, p string) []byte {
	b := make([]byte, 3<<20)
	r := rand.New(rand.NewSource(1))
	r.Read(b[:1<<20])
	r.Read(b[2<<20:])
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRawQcow2RawRoundTrip(t *testing.T) {
	needQemuImg(t)
	for _, compress := range []string{"false", "true"} {
		t.Run("compress="+compress, func(t *testing.T) {
			tmp := t.TempDir()
			raw := filepath.Join(tmp, "in.raw")
			want := rawDisk(t, raw)
			p := New()
			stage1 := filepath.Join(tmp, "s1")
			os.Mkdir(stage1, 0o755)
			files, err := p.Pack(t.Context(), sdk.PackRequest{Source: raw, Format: FormatQcow2, Staging: stage1, Options: map[string]string{"compress": compress}})
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 1 || files[0].Path != "disk.qcow2" || files[0].Meta["virtual-size"] != "3145728" || files[0].Meta["source-format"] != "raw" {
				t.Fatalf("packed %+v", files)
			}
			q := filepath.Join(stage1, files[0].Path)
			if ok, _ := hasQcow2Magic(q); !ok {
				t.Fatal("output is not qcow2")
			}
			// Unpack the qcow2 into raw and back into qcow2.
			dest := filepath.Join(tmp, "dest")
			os.Mkdir(dest, 0o755)
			if err := p.Unpack(t.Context(), sdk.UnpackRequest{Image: q, Format: "qcow2;to=raw", Dest: dest}); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(dest, "disk.raw"))
			if !bytes.Equal(got, want) {
				t.Fatalf("raw -> qcow2 -> raw differs (%d vs %d bytes)", len(got), len(want))
			}
			stage2 := filepath.Join(tmp, "s2")
			os.Mkdir(stage2, 0o755)
			files, err = p.Pack(t.Context(), sdk.PackRequest{Source: q, Format: FormatRaw, Staging: stage2})
			if err != nil {
				t.Fatal(err)
			}
			got, _ = os.ReadFile(filepath.Join(stage2, files[0].Path))
			if !bytes.Equal(got, want) || files[0].Meta["source-format"] != "qcow2" {
				t.Fatalf("Pack raw from qcow2 differs (meta %v)", files[0].Meta)
			}
			if ents, _ := os.ReadDir(stage2); len(ents) != 1 {
				t.Errorf("staging holds %d entries, want 1 (temp files left?)", len(ents))
			}
		})
	}
}

func TestPackResize(t *testing.T) {
	needQemuImg(t)
	tmp := t.TempDir()
	raw := filepath.Join(tmp, "in.raw")
	rawDisk(t, raw)
	files, err := New().Pack(t.Context(), sdk.PackRequest{Source: raw, Format: FormatQcow2, Staging: tmp, Options: map[string]string{"size": "8388608"}})
	if err != nil {
		t.Fatal(err)
	}
	if files[0].Meta["virtual-size"] != "8388608" {
		t.Errorf("virtual-size %s", files[0].Meta["virtual-size"])
	}
}

// corruptL1 overwrites the first L1 entry of a qcow2 with garbage.
func corruptL1(t *testing.T, p string) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hdr [48]byte
	f.ReadAt(hdr[:], 0)
	l1 := binary.BigEndian.Uint64(hdr[40:48])
	f.WriteAt(bytes.Repeat([]byte{0xff}, 8), int64(l1))
}

func TestRefusals(t *testing.T) {
	needQemuImg(t)
	tmp := t.TempDir()
	raw := filepath.Join(tmp, "r.raw")
	rawDisk(t, raw)
	secret := filepath.Join(tmp, "secret.raw")
	os.WriteFile(secret, []byte(strings.Repeat("secret", 1000)), 0o600)

	backing := filepath.Join(tmp, "backing.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", backing)
	backingMissing := filepath.Join(tmp, "backing-missing.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-b", "/nonexistent/base.qcow2", "-F", "qcow2", backingMissing, "1M")
	dataFile := filepath.Join(tmp, "datafile.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-o", "data_file="+secret, dataFile, "1M")
	corrupt := filepath.Join(tmp, "corrupt.qcow2")
	qemuImg(t, "convert", "-f", "raw", "-O", "qcow2", raw, corrupt)
	corruptL1(t, corrupt)

	cases := []struct {
		name, image, format string
		want                error
	}{
		{"backing-file", backing, "qcow2", ErrBackingFile},
		{"backing-file-missing", backingMissing, "qcow2", ErrBackingFile},
		{"data-file", dataFile, "qcow2", ErrDataFile},
		{"corrupt", corrupt, "qcow2", ErrCorrupt},
		{"raw-declared-qcow2", raw, "qcow2", ErrWrongFormat},
		{"unknown-format", raw, "vmdk", sdk.ErrUnsupported},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			err := New().Unpack(t.Context(), sdk.UnpackRequest{Image: tc.image, Format: tc.format, Dest: dest})
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if ents, _ := os.ReadDir(dest); len(ents) != 0 {
				t.Errorf("dest not empty after refusal")
			}
			_, err = New().Pack(t.Context(), sdk.PackRequest{Source: tc.image, Format: FormatRaw, Staging: dest, Options: map[string]string{"source-format": tc.format}})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Pack: error %v, want %v", err, tc.want)
			}
		})
	}
	// The corrupt image's message is qemu-img's own.
	err := New().Unpack(t.Context(), sdk.UnpackRequest{Image: corrupt, Format: "qcow2", Dest: t.TempDir()})
	if !strings.Contains(err.Error(), "ERROR") {
		t.Errorf("corrupt image error lacks qemu-img's message: %v", err)
	}
}

func TestQemuImgMissing(t *testing.T) {
	p := &Plugin{Tool: Tool{Path: "/nonexistent/qemu-img"}}
	raw := filepath.Join(t.TempDir(), "r.raw")
	os.WriteFile(raw, make([]byte, 512), 0o644)
	err := p.Unpack(t.Context(), sdk.UnpackRequest{Image: raw, Format: "raw", Dest: t.TempDir()})
	if !errors.Is(err, ErrQemuImgMissing) || !errors.Is(err, sdk.ErrUnsupported) {
		t.Fatalf("error %v, want ErrQemuImgMissing", err)
	}
	info, _ := p.Info(t.Context())
	if len(info.Capabilities) != 0 {
		t.Errorf("capabilities %v without qemu-img", info.Capabilities)
	}
}
