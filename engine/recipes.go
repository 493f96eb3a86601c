package engine

import (
	"context"
	"io"
	"path/filepath"

	"github.com/volt-cli/volt/starlark"
)

// RecipeTest runs test_* functions in *_test.star files under dir.
func (e *Engine) RecipeTest(ctx context.Context, dir, filter string, out io.Writer) (passed, failed int, err error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return 0, 0, err
	}
	return starlark.Test(ctx, root, filter, out)
}

// RecipeDocs writes the builtins reference (one builtin, or all for "").
func (e *Engine) RecipeDocs(w io.Writer, builtin string) error { return starlark.Docs(w, builtin) }

// RecipeFormat returns src in canonical recipe formatting.
func (e *Engine) RecipeFormat(name string, src []byte) ([]byte, error) {
	return starlark.FormatFile(name, src)
}

// RecipeCheck evaluates a recipe without building anything.
func (e *Engine) RecipeCheck(ctx context.Context, opts CreateOptions) error {
	_, err := e.EvalRecipe(ctx, opts)
	return err
}
