package qcow2

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/volt-cli/volt/sdk"
)

// Plugin is the sdk.Format implementation over Tool.
//
// Unpack: Image of Format "qcow2" or "raw" (optionally "qcow2;to=raw" or
// "raw;to=qcow2") is inspected and converted into Dest/disk.<to>.
// Pack: Source is a disk file, or a directory holding exactly one (qcow2 or raw, detected from its header
// unless Options["source-format"] says), converted to Staging/disk.<Format>;
// Options "compress" ("true": compressed qcow2 clusters) and "size" (bytes:
// grow the virtual disk). PackedFile.Meta carries "virtual-size" (bytes).
type Plugin struct {
	Tool Tool
}

var _ sdk.Format = (*Plugin)(nil)

// New returns a Plugin that logs warnings to stderr.
func New() *Plugin {
	l := log.New(os.Stderr, "", 0)
	return &Plugin{Tool: Tool{Logf: l.Printf}}
}

// Info implements sdk.Format. Capabilities are empty when qemu-img is missing.
func (p *Plugin) Info(context.Context) (sdk.Info, error) {
	info := sdk.Info{Name: "format-qcow2", Kind: sdk.KindFormat, Version: Version, APIVersions: []int{sdk.APIVersion},
		ConfigSchema: `{"type":"object","properties":{"source-format":{"enum":["qcow2","raw"]},"compress":{"enum":["true","false"]},"size":{"type":"string","description":"grow the virtual disk to this many bytes"}}}`}
	if p.Tool.Available() == nil {
		info.Capabilities = []string{"unpack:qcow2", "unpack:raw", "pack:qcow2", "pack:raw"}
	}
	return info, nil
}

// Describe implements sdk.Format.
func (p *Plugin) Describe(context.Context) (sdk.FormatDescription, error) {
	return sdk.FormatDescription{Formats: []string{FormatQcow2, FormatRaw},
		MediaTypes: []string{"application/x-qemu-disk", "application/octet-stream"}}, nil
}

// diskName is the output file name for a format.
func diskName(format string) string { return "disk." + format }

// Unpack implements sdk.Format.
func (p *Plugin) Unpack(ctx context.Context, req sdk.UnpackRequest) error {
	from, params, _ := strings.Cut(req.Format, ";")
	to := from
	if v, ok := strings.CutPrefix(strings.TrimSpace(params), "to="); ok {
		to = v
	}
	if _, err := p.Tool.Convert(ctx, req.Image, from, filepath.Join(req.Dest, diskName(to)), to, ConvertOptions{}); err != nil {
		return fmt.Errorf("unpack %q: %w", req.Image, err)
	}
	return nil
}

// Pack implements sdk.Format.
func (p *Plugin) Pack(ctx context.Context, req sdk.PackRequest) ([]sdk.PackedFile, error) {
	src, err := sourceDisk(req.Source)
	if err != nil {
		return nil, err
	}
	from := req.Options["source-format"]
	if from == "" {
		if from, err = DetectFormat(src); err != nil {
			return nil, fmt.Errorf("pack: %w", err)
		}
	}
	var o ConvertOptions
	switch req.Options["compress"] {
	case "", "false":
	case "true":
		o.Compress = true
	default:
		return nil, fmt.Errorf("option compress %q: want true or false: %w", req.Options["compress"], sdk.ErrInvalid)
	}
	if s := req.Options["size"]; s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("option size %q: want bytes: %w", s, sdk.ErrInvalid)
		}
		o.Size = n
	}
	name := diskName(req.Format)
	info, err := p.Tool.Convert(ctx, src, from, filepath.Join(req.Staging, name), req.Format, o)
	if err != nil {
		return nil, fmt.Errorf("pack %q: %w", req.Source, err)
	}
	return []sdk.PackedFile{{Path: name, Format: req.Format, Meta: map[string]string{
		"virtual-size": strconv.FormatInt(info.VirtualSize, 10), "source-format": from,
	}}}, nil
}

// sourceDisk returns src, or for a directory (what Unpack made) the one
// regular file in it.
func sourceDisk(src string) (string, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("pack: source: %w", err)
	}
	if !fi.IsDir() {
		return src, nil
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return "", fmt.Errorf("pack: source: %w", err)
	}
	var disks []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			disks = append(disks, filepath.Join(src, e.Name()))
		}
	}
	if len(disks) != 1 {
		return "", fmt.Errorf("pack: source dir %q holds %d files, want one disk image: %w", src, len(disks), sdk.ErrInvalid)
	}
	return disks[0], nil
}

// Convert implements sdk.Format: whole-bundle conversion is not this plugin's job.
func (p *Plugin) Convert(context.Context, sdk.ConvertRequest) ([]sdk.PackedFile, error) {
	return nil, fmt.Errorf("format-qcow2 converts no bundles: %w", sdk.ErrUnsupported)
}
