package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/volt-cli/volt/sdk"
)

// Sentinel errors Start returns (wrapped) for images it refuses.
var (
	// ErrBackingFile: the disk image names a backing file; bundles carry self-contained disks.
	ErrBackingFile = errors.New("disk image has a backing file")
	// ErrCorruptImage: qemu-img check found corruption.
	ErrCorruptImage = errors.New("disk image is corrupt")
	// ErrImageFormat: the disk is neither qcow2 nor raw.
	ErrImageFormat = errors.New("unsupported disk image format")
	// ErrNoEmulator: the guest's architecture needs a qemu-system binary that is not installed.
	ErrNoEmulator = errors.New("no emulator for the guest architecture")
	// ErrMemory: the VM asks for more memory than the host has.
	ErrMemory = errors.New("not enough host memory")
)

// imageInfo is the part of `qemu-img info --output=json` the runtime reads.
type imageInfo struct {
	Format          string `json:"format"`
	VirtualSize     int64  `json:"virtual-size"`
	BackingFilename string `json:"backing-filename"`
	FullBacking     string `json:"full-backing-filename"`
	BackingFormat   string `json:"backing-filename-format"`
}

// parseImageInfo parses qemu-img info JSON output.
func parseImageInfo(b []byte) (imageInfo, error) {
	var ii imageInfo
	if err := json.Unmarshal(b, &ii); err != nil {
		return imageInfo{}, fmt.Errorf("parse qemu-img info: %w", err)
	}
	if ii.Format == "" {
		return imageInfo{}, fmt.Errorf("parse qemu-img info: no format")
	}
	return ii, nil
}

// inspectImage runs qemu-img info (never following backing chains) and,
// for qcow2, qemu-img check. It refuses backing files, corruption and
// formats other than qcow2 and raw.
func inspectImage(ctx context.Context, qemuImg, path string) (imageInfo, error) {
	out, err := exec.CommandContext(ctx, qemuImg, "info", "--output=json", "-U", path).Output()
	if err != nil {
		return imageInfo{}, fmt.Errorf("disk %q: qemu-img info: %w", path, cmdErr(err))
	}
	ii, err := parseImageInfo(out)
	if err != nil {
		return imageInfo{}, fmt.Errorf("disk %q: %w", path, err)
	}
	if ii.BackingFilename != "" {
		return imageInfo{}, fmt.Errorf("disk %q: %w %q (refused: bundles carry self-contained disks)", path, ErrBackingFile, ii.BackingFilename)
	}
	switch ii.Format {
	case "raw":
	case "qcow2":
		cmd := exec.CommandContext(ctx, qemuImg, "check", "-f", "qcow2", "-U", path)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee) && ee.ExitCode() == 3:
			// Leaked clusters only: harmless, the image is consistent.
		case errors.As(err, &ee) && (ee.ExitCode() == 2 || ee.ExitCode() == 1):
			return imageInfo{}, fmt.Errorf("disk %q: %w: qemu-img check: %s", path, ErrCorruptImage, lastLine(out, err))
		default:
			return imageInfo{}, fmt.Errorf("disk %q: qemu-img check: %w", path, cmdErr(err))
		}
	default:
		return imageInfo{}, fmt.Errorf("disk %q: %w %q (want qcow2 or raw)", path, ErrImageFormat, ii.Format)
	}
	return ii, nil
}

// cmdErr adds a command's stderr to its error.
func cmdErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, lastLine(ee.Stderr, nil))
	}
	return err
}

// ensureOverlay makes overlay a qcow2 whose backing file is base (format
// fmt). An existing overlay on the same base is kept, so the VM's disk
// survives a restart; any other is replaced.
func ensureOverlay(ctx context.Context, qemuImg, base, format, overlay string) error {
	if out, err := exec.CommandContext(ctx, qemuImg, "info", "--output=json", "-U", overlay).Output(); err == nil {
		if ii, err := parseImageInfo(out); err == nil && ii.Format == "qcow2" && ii.BackingFilename == base && ii.BackingFormat == format {
			return nil
		}
	}
	tmp := overlay + ".tmp"
	_ = os.Remove(tmp)
	cmd := exec.CommandContext(ctx, qemuImg, "create", "-q", "-f", "qcow2", "-F", format, "-b", base, tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("create overlay on %q: %w: %s", base, err, lastLine(out, err))
	}
	if err := os.Rename(tmp, overlay); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("create overlay on %q: %w", base, err)
	}
	return nil
}

// Guest architectures (Volt's names, as in bundle platforms).
const (
	ArchAMD64 = "amd64"
	ArchARM64 = "arm64"
	ArchARMv7 = "armv7"
)

// qemuSystemFor maps a guest architecture to its qemu-system binary name and
// the Debian package that ships it.
func qemuSystemFor(arch string) (bin, pkg string, err error) {
	switch arch {
	case ArchAMD64, "x86_64", "":
		return "qemu-system-x86_64", "qemu-system-x86", nil
	case ArchARM64, "arm64-v8a", "aarch64":
		return "qemu-system-aarch64", "qemu-system-arm", nil
	case ArchARMv7, "armeabi-v7a", "arm":
		return "qemu-system-arm", "qemu-system-arm", nil
	case "riscv64":
		return "qemu-system-riscv64", "qemu-system-misc", nil
	}
	return "", "", fmt.Errorf("guest architecture %q: %w", arch, sdk.ErrUnsupported)
}

// kernelArch reads a kernel image's header: an x86 bzImage ("HdrS" at
// 0x202), an arm64 Image ("ARM\x64" at 0x38), a riscv Image ("RSC\x05" at
// 0x38), or an ELF file (e_machine). It returns "" when it cannot tell.
func kernelArch(r io.ReaderAt) string {
	var b [64]byte
	n, _ := r.ReadAt(b[:], 0)
	if n >= 20 && bytes.Equal(b[:4], []byte("\x7fELF")) {
		var m uint16
		if b[5] == 2 {
			m = binary.BigEndian.Uint16(b[18:20])
		} else {
			m = binary.LittleEndian.Uint16(b[18:20])
		}
		switch m {
		case 3, 62: // EM_386, EM_X86_64
			return ArchAMD64
		case 183: // EM_AARCH64
			return ArchARM64
		case 40: // EM_ARM
			return ArchARMv7
		case 243: // EM_RISCV
			return "riscv64"
		}
		return ""
	}
	if n >= 0x3c {
		switch string(b[0x38:0x3c]) {
		case "ARM\x64":
			return ArchARM64
		case "RSC\x05":
			return "riscv64"
		}
	}
	var h [4]byte
	if n, _ := r.ReadAt(h[:], 0x202); n == 4 && string(h[:]) == "HdrS" {
		return ArchAMD64
	}
	var z [4]byte // arm zImage magic at 0x24
	if n, _ := r.ReadAt(z[:], 0x24); n == 4 && binary.LittleEndian.Uint32(z[:]) == 0x016f2818 {
		return ArchARMv7
	}
	return ""
}

// hostMemory returns MemTotal from a /proc/meminfo-formatted reader, in bytes.
func hostMemory(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || kb <= 0 {
				return 0, fmt.Errorf("meminfo: bad MemTotal %q", f[1])
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("meminfo: %w", err)
	}
	return 0, fmt.Errorf("meminfo: no MemTotal")
}
