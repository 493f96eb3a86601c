// Package oci is Volt's OCI format adapter: it unpacks OCI image layouts,
// docker-archives and rootfs tarballs into a directory, every path resolved
// inside it with openat2(RESOLVE_IN_ROOT), and packs a directory into a
// deterministic single-layer OCI image or rootfs tarball. Plugin implements
// sdk.Format; cmd volt-plugin-format-oci serves it.
package oci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/volt-cli/volt/sdk"
)

// Version of the plugin.
const Version = "0.1.0"

// Output file names in the staging dir.
const (
	ImageFile      = "image.tar"
	RootfsGzipFile = "rootfs.tar.gz"
	RootfsZstdFile = "rootfs.tar.zst"
)

// Plugin is the sdk.Format implementation. The zero value is ready; Logf
// (nil: warnings on stderr as hclog JSON lines at level warn, which the
// host shows the user under the plugin's name) receives warnings such as
// skipped device nodes.
type Plugin struct {
	Logf func(format string, args ...any)
}

var _ sdk.Format = (*Plugin)(nil)

// warnLog writes the plugin's warnings where the host reads them.
var warnLog = hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Warn})

func (p *Plugin) logf(format string, args ...any) {
	if p.Logf != nil {
		p.Logf(format, args...)
		return
	}
	warnLog.Warn(fmt.Sprintf(format, args...))
}

// Info implements sdk.Format.
func (p *Plugin) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:        "format-oci",
		Kind:        sdk.KindFormat,
		Version:     Version,
		APIVersions: []int{sdk.APIVersion},
		Capabilities: []string{
			"unpack:oci", "unpack:docker-archive", "unpack:rootfs",
			"pack:oci", "pack:rootfs",
		},
		ConfigSchema: `{"type":"object","properties":{` +
			`"mtime":{"type":"string","description":"unix seconds stamped on every entry (default 0)"},` +
			`"platform":{"type":"string","description":"os/arch[/variant] (default linux/GOARCH)"},` +
			`"compression":{"enum":["gzip","zstd"]},"owner":{"enum":["preserve","root"]},"tag":{"type":"string"}}}`,
	}, nil
}

// Describe implements sdk.Format.
func (p *Plugin) Describe(context.Context) (sdk.FormatDescription, error) {
	return sdk.FormatDescription{
		Formats: []string{FormatOCI, FormatDockerArchive, FormatRootfs},
		MediaTypes: []string{
			"application/vnd.oci.image.layout.v1+tar",
			"application/vnd.oci.image.manifest.v1+json",
			"application/vnd.oci.image.layer.v1.tar+gzip",
			"application/vnd.oci.image.layer.v1.tar+zstd",
			"application/vnd.docker.image.rootfs.diff.tar.gzip",
			"application/x-tar",
		},
	}, nil
}

// Unpack implements sdk.Format. Format is "oci", "docker-archive" or
// "rootfs", optionally with ";platform=os/arch[/variant]".
func (p *Plugin) Unpack(ctx context.Context, req sdk.UnpackRequest) error {
	format, params := ParseFormat(req.Format)
	_, err := Unpack(ctx, req.Image, format, req.Dest, UnpackOptions{Platform: params["platform"], Logf: p.logf})
	return err
}

// Pack implements sdk.Format: Format "oci" writes Staging/image.tar, "rootfs"
// writes Staging/rootfs.tar.gz (or .tar.zst with compression=zstd).
func (p *Plugin) Pack(ctx context.Context, req sdk.PackRequest) ([]sdk.PackedFile, error) {
	o, err := ParsePackOptions(req.Options)
	if err != nil {
		return nil, err
	}
	o.Logf = p.logf
	fi, err := os.Stat(req.Source)
	if err != nil {
		return nil, fmt.Errorf("pack: source: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("pack: source %q is not a directory: %w", req.Source, sdk.ErrInvalid)
	}
	format, _ := ParseFormat(req.Format)
	switch format {
	case FormatOCI:
		res, err := PackOCI(ctx, req.Source, filepath.Join(req.Staging, ImageFile), o)
		if err != nil {
			return nil, err
		}
		return []sdk.PackedFile{{Path: ImageFile, Format: FormatOCI, Meta: map[string]string{
			"platform": res.Platform, "manifest": res.Manifest.String(), "compression": o.Compression,
		}}}, nil
	case FormatRootfs:
		name := RootfsGzipFile
		if o.Compression == CompressionZstd {
			name = RootfsZstdFile
		}
		if err := PackRootfs(ctx, req.Source, filepath.Join(req.Staging, name), o); err != nil {
			return nil, err
		}
		return []sdk.PackedFile{{Path: name, Format: FormatRootfs, Meta: map[string]string{
			"platform": o.Platform, "compression": o.Compression,
		}}}, nil
	}
	return nil, fmt.Errorf("pack format %q: %w", req.Format, sdk.ErrUnsupported)
}

// Convert implements sdk.Format: whole-bundle conversion is not this plugin's job.
func (p *Plugin) Convert(context.Context, sdk.ConvertRequest) ([]sdk.PackedFile, error) {
	return nil, fmt.Errorf("format-oci converts no bundles: %w", sdk.ErrUnsupported)
}
