// Package stdlib holds Volt's standard Starlark library, loaded by recipes
// as @volt//NAME.star. The files are embedded; the recipe host (package
// starlark) is their only reader.
package stdlib

import "embed"

// FS holds the stdlib modules at its root (images.star, constellation.star, env.star).
//
//go:embed *.star
var FS embed.FS
