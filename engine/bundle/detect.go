package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// ErrUnknownFormat: DetectFormat could not tell what an image file is.
var ErrUnknownFormat = errors.New("unknown image format")

// detectWindow is how much of a file DetectFormat reads at most.
const detectWindow = 64 << 10

var dockerLayerName = regexp.MustCompile(`^[0-9a-f]{64}(\.json|/|/layer\.tar|/json|/VERSION)?$`)

// DetectFormat tells what the image file at path is from its first 64 KiB:
// a (gzip/zstd compressed) tar holding an OCI layout or docker-archive
// (FormatOCI) or a filesystem (FormatRootfs), a qcow2 disk (FormatQCOW2), or a
// raw disk with an MBR or GPT signature, or any file named *.raw or *.img
// (FormatRaw). ext is the entry name suffix to use: ".tar", ".tar.gz",
// ".tar.zst", ".qcow2" or ".raw". Anything else is ErrUnknownFormat.
func DetectFormat(path string) (format string, ext string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("detect format: %w", err)
	}
	defer f.Close()
	head := make([]byte, detectWindow)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", "", fmt.Errorf("detect format of %s: %w", path, err)
	}
	format, ext = detectBytes(head[:n], path)
	if format == "" {
		return "", "", fmt.Errorf("detect format of %s: %w (want an OCI/docker-archive or rootfs tar, optionally .gz/.zst, a qcow2 or a raw disk)", path, ErrUnknownFormat)
	}
	return format, ext, nil
}

// detectBytes classifies the first bytes of a file; "" means unknown.
func detectBytes(head []byte, path string) (format, ext string) {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(head))
		if err != nil {
			return "", ""
		}
		return tarKind(zr), ".tar.gz"
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(bytes.NewReader(head), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			return "", ""
		}
		defer zr.Close()
		return tarKind(zr), ".tar.zst"
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return FormatQCOW2, ".qcow2"
	case isTar(head):
		return tarKind(bytes.NewReader(head)), ".tar"
	case len(head) >= 512+8 && string(head[512:520]) == "EFI PART",
		len(head) >= 512 && head[510] == 0x55 && head[511] == 0xaa:
		return FormatRaw, ".raw"
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".raw", ".img":
		return FormatRaw, ".raw"
	}
	return "", ""
}

// isTar reports whether b starts with a tar header (ustar/GNU magic, or a
// valid v7 header checksum).
func isTar(b []byte) bool {
	if len(b) < 512 {
		return false
	}
	if string(b[257:262]) == "ustar" {
		return true
	}
	_, err := tar.NewReader(bytes.NewReader(b[:512])).Next()
	return err == nil
}

// tarKind reads tar headers from r (a possibly truncated stream) and returns
// FormatOCI when they show an OCI layout or docker-archive, FormatRootfs when
// the first header is readable and nothing says OCI, "" when r is not a tar.
func tarKind(r io.Reader) string {
	tr := tar.NewReader(r)
	seen := 0
	for seen < 64 {
		h, err := tr.Next()
		if err != nil {
			break
		}
		seen++
		name := strings.TrimPrefix(h.Name, "./")
		switch {
		case name == "oci-layout", name == "index.json", strings.HasPrefix(name, "blobs/"),
			name == "manifest.json", name == "repositories", dockerLayerName.MatchString(name):
			return FormatOCI
		}
	}
	if seen == 0 {
		return ""
	}
	return FormatRootfs
}
