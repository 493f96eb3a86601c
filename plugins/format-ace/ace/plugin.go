package ace

import (
	"context"
	"fmt"
	"os"

	"github.com/volt-cli/volt/sdk"
)

// Version of the plugin.
const Version = "0.1.0"

// Conversion targets.
const (
	TargetTree = "vbundle-tree"
	TargetACE  = "ace"
)

// Plugin is the sdk.Format implementation: Convert only.
//
// Convert{Bundle: ACE zip, To: "vbundle-tree"} writes the tree into Staging;
// Convert{Bundle: tree dir, To: "ace"} writes Staging/<name>.zip.
type Plugin struct {
	// Limits for reading ACE zips; zero value: DefaultLimits.
	Limits Limits
}

var _ sdk.Format = (*Plugin)(nil)

// Info implements sdk.Format.
func (p *Plugin) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "format-ace", Kind: sdk.KindFormat, Version: Version, APIVersions: []int{sdk.APIVersion},
		Capabilities: []string{"convert:ace->vbundle-tree", "convert:vbundle-tree->ace"}}, nil
}

// Describe implements sdk.Format.
func (p *Plugin) Describe(context.Context) (sdk.FormatDescription, error) {
	return sdk.FormatDescription{Formats: []string{TargetACE, TargetTree}, MediaTypes: []string{"application/zip"}}, nil
}

// Unpack implements sdk.Format: ACE is a bundle format, see Convert.
func (p *Plugin) Unpack(context.Context, sdk.UnpackRequest) error {
	return fmt.Errorf("format-ace unpacks no images (use Convert): %w", sdk.ErrUnsupported)
}

// Pack implements sdk.Format: ACE is a bundle format, see Convert.
func (p *Plugin) Pack(context.Context, sdk.PackRequest) ([]sdk.PackedFile, error) {
	return nil, fmt.Errorf("format-ace packs no images (use Convert): %w", sdk.ErrUnsupported)
}

// Convert implements sdk.Format.
func (p *Plugin) Convert(ctx context.Context, req sdk.ConvertRequest) ([]sdk.PackedFile, error) {
	lim := p.Limits
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	if _, err := os.Stat(req.Staging); err != nil {
		return nil, fmt.Errorf("convert: staging: %w", err)
	}
	switch req.To {
	case TargetTree:
		return ToTree(ctx, req.Bundle, req.Staging, lim)
	case TargetACE:
		return FromTree(ctx, req.Bundle, req.Staging)
	}
	return nil, fmt.Errorf("convert to %q: %w", req.To, sdk.ErrUnsupported)
}
