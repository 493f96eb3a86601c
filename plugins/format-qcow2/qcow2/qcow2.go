// Package qcow2 is Volt's disk image format adapter: raw ⇄ qcow2 through
// qemu-img (Debian qemu-utils). Every image is inspected with
// `qemu-img info` (which never opens a backing file) before anything else
// touches it; an image with a backing file or an external data file, or one
// that `qemu-img check` finds corrupt, is refused. Plugin implements sdk.Format.
package qcow2

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/volt-cli/volt/sdk"
)

// Version of the plugin.
const Version = "0.1.0"

// Formats handled.
const (
	FormatQcow2 = "qcow2"
	FormatRaw   = "raw"
)

// Sentinel errors.
var (
	// ErrQemuImgMissing: qemu-img is not installed (Debian: qemu-utils).
	ErrQemuImgMissing = fmt.Errorf("qemu-img not found (install qemu-utils): %w", sdk.ErrUnsupported)
	// ErrBackingFile: the qcow2 refers to a backing file, which could be any host file.
	ErrBackingFile = fmt.Errorf("image has a backing file: %w", sdk.ErrInvalid)
	// ErrDataFile: the qcow2 keeps its data in an external file.
	ErrDataFile = fmt.Errorf("image has an external data file: %w", sdk.ErrInvalid)
	// ErrCorrupt: qemu-img check reports corruption, or the image cannot be opened.
	ErrCorrupt = fmt.Errorf("corrupt image: %w", sdk.ErrInvalid)
	// ErrWrongFormat: the image is not in the format it was declared to be.
	ErrWrongFormat = fmt.Errorf("wrong image format: %w", sdk.ErrInvalid)
)

// Tool runs qemu-img. The zero value uses "qemu-img" from PATH.
type Tool struct {
	// Path of qemu-img; empty: looked up in PATH.
	Path string
	// Logf receives warnings (e.g. leaked clusters). Nil discards them.
	Logf func(format string, args ...any)
}

func (t *Tool) logf(format string, args ...any) {
	if t.Logf != nil {
		t.Logf(format, args...)
	}
}

// Available reports ErrQemuImgMissing when qemu-img cannot be found.
func (t *Tool) Available() error {
	_, err := t.bin()
	return err
}

func (t *Tool) bin() (string, error) {
	name := t.Path
	if name == "" {
		name = "qemu-img"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w (looked for %q)", ErrQemuImgMissing, name)
	}
	return p, nil
}

// exitError is qemu-img failing, with the useful part of its stderr.
type exitError struct {
	args   []string
	msg    string
	code   int
	stdout []byte
}

func (e *exitError) Error() string {
	return fmt.Sprintf("qemu-img %s: exit %d: %s", e.args[0], e.code, e.msg)
}

// run runs qemu-img with args and returns its stdout.
func (t *Tool) run(ctx context.Context, args ...string) ([]byte, error) {
	bin, err := t.bin()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.Bytes(), &exitError{args: args, msg: summarise(stderr.String()), code: ee.ExitCode(), stdout: stdout.Bytes()}
	}
	if err != nil {
		return nil, fmt.Errorf("run qemu-img: %w", err)
	}
	return stdout.Bytes(), nil
}

// summarise keeps qemu-img's error lines (or the first line) on one line.
func summarise(stderr string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "ERROR") || strings.HasPrefix(l, "qemu-img:") {
			keep = append(keep, strings.TrimPrefix(l, "qemu-img: "))
		}
	}
	if len(keep) == 0 {
		keep = strings.SplitN(strings.TrimSpace(stderr), "\n", 2)[:1]
	}
	if len(keep) > 3 {
		keep = append(keep[:3], fmt.Sprintf("(%d more)", len(keep)-3))
	}
	return strings.Join(keep, "; ")
}

// ImageInfo is the part of `qemu-img info --output=json` Volt uses.
type ImageInfo struct {
	Format              string `json:"format"`
	VirtualSize         int64  `json:"virtual-size"`
	ActualSize          int64  `json:"actual-size"`
	BackingFilename     string `json:"backing-filename"`
	FullBackingFilename string `json:"full-backing-filename"`
	BackingFormat       string `json:"backing-filename-format"`
	DirtyFlag           bool   `json:"dirty-flag"`
	FormatSpecific      struct {
		Type string `json:"type"`
		Data struct {
			DataFile string `json:"data-file"`
			Corrupt  bool   `json:"corrupt"`
		} `json:"data"`
	} `json:"format-specific"`
}

// Info runs `qemu-img info --output=json -U -f format path`. qemu-img info
// (without --backing-chain) does not open backing files. format must be
// given: probing lets a raw disk whose content looks like a qcow2 header
// pose as one.
func (t *Tool) Info(ctx context.Context, path, format string) (*ImageInfo, error) {
	out, err := t.run(ctx, "info", "--output=json", "--force-share", "-f", format, path)
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if strings.Contains(ee.msg, "not in") && strings.Contains(ee.msg, "format") {
				return nil, fmt.Errorf("%w: %v", ErrWrongFormat, err)
			}
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return nil, err
	}
	var info ImageInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("parse qemu-img info: %w", err)
	}
	return &info, nil
}

// Inspect checks that path is a safe image of the given format and returns
// its info: no backing file, no external data file, not marked corrupt, and
// for qcow2 a clean `qemu-img check` (leaked clusters are only logged).
func (t *Tool) Inspect(ctx context.Context, path, format string) (*ImageInfo, error) {
	switch format {
	case FormatQcow2, FormatRaw:
	default:
		return nil, fmt.Errorf("format %q: %w", format, sdk.ErrUnsupported)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("image %q is not a regular file: %w", path, sdk.ErrInvalid)
	}
	if format == FormatQcow2 {
		// Refuse non-qcow2 before qemu-img sees it, with a clear message.
		if ok, err := hasQcow2Magic(path); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("%w: %q has no qcow2 header", ErrWrongFormat, path)
		}
	}
	info, err := t.Info(ctx, path, format)
	if err != nil {
		return nil, err
	}
	if info.BackingFilename != "" || info.FullBackingFilename != "" {
		return nil, fmt.Errorf("%w: %q refers to %q", ErrBackingFile, path, firstNonEmpty(info.FullBackingFilename, info.BackingFilename))
	}
	if info.FormatSpecific.Data.DataFile != "" {
		return nil, fmt.Errorf("%w: %q refers to %q", ErrDataFile, path, info.FormatSpecific.Data.DataFile)
	}
	if info.FormatSpecific.Data.Corrupt {
		return nil, fmt.Errorf("%w: %q is marked corrupt", ErrCorrupt, path)
	}
	if format == FormatQcow2 {
		_, err := t.run(ctx, "check", "--force-share", "-f", format, path)
		var ee *exitError
		switch {
		case err == nil:
		case errors.As(err, &ee) && ee.code == 3:
			t.logf("%s: qemu-img check: leaked clusters (harmless): %s", path, ee.msg)
		case errors.As(err, &ee):
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		default:
			return nil, err
		}
	}
	return info, nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func hasQcow2Magic(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	var b [4]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false, nil
	}
	return string(b[:]) == "QFI\xfb", nil
}

// ConvertOptions tune Convert.
type ConvertOptions struct {
	Compress bool  // qcow2 only: compressed clusters (-c)
	Size     int64 // >0: resize the output to this many bytes after converting (grow only)
}

// Convert inspects src (of format from) and writes it as format to into out,
// atomically (a temp file in out's directory renamed into place). It
// returns the output's info.
func (t *Tool) Convert(ctx context.Context, src, from, out, to string, o ConvertOptions) (*ImageInfo, error) {
	if to != FormatQcow2 && to != FormatRaw {
		return nil, fmt.Errorf("convert to %q: %w", to, sdk.ErrUnsupported)
	}
	if _, err := t.Inspect(ctx, src, from); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create temp: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args := []string{"convert", "--force-share", "-f", from, "-O", to}
	if o.Compress && to == FormatQcow2 {
		args = append(args, "-c")
	}
	args = append(args, src, tmp.Name())
	if _, err := t.run(ctx, args...); err != nil {
		return nil, fmt.Errorf("convert %q: %w", src, err)
	}
	if o.Size > 0 {
		if _, err := t.run(ctx, "resize", "-f", to, tmp.Name(), strconv.FormatInt(o.Size, 10)); err != nil {
			return nil, fmt.Errorf("resize %q: %w", out, err)
		}
	}
	if err := syncFile(tmp.Name()); err != nil {
		return nil, err
	}
	info, err := t.Info(ctx, tmp.Name(), to)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return nil, fmt.Errorf("publish %q: %w", out, err)
	}
	return info, syncFile(filepath.Dir(out))
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", p, err)
	}
	return nil
}

// DetectFormat says whether the file at path starts with a qcow2 header
// (FormatQcow2) or not (FormatRaw).
func DetectFormat(path string) (string, error) {
	ok, err := hasQcow2Magic(path)
	if err != nil {
		return "", err
	}
	if ok {
		return FormatQcow2, nil
	}
	return FormatRaw, nil
}
