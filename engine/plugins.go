package engine

import (
	"context"

	"github.com/volt-cli/volt/engine/build"
)

// packer returns a build.Packer backed by the format-oci plugin, or nil when
// no such plugin is available.
func (e *Engine) packer(ctx context.Context) build.Packer { return nil }
