package starlark

import (
	"github.com/bazelbuild/buildtools/build"
)

// Format returns src in canonical form: the layout of buildifier (from
// github.com/bazelbuild/buildtools/build) without any of its rewrites, so
// nothing is reordered, only indentation, spacing, line breaks and trailing
// commas change. It is idempotent. A syntax
// error is returned as a *Diagnostic for file "<input>".
func Format(src []byte) ([]byte, error) {
	return FormatFile("<input>", src)
}

// FormatFile is Format with name used in diagnostics.
func FormatFile(name string, src []byte) ([]byte, error) {
	// Check with the same dialect the evaluator uses, for the same diagnostics.
	if _, err := fileOptions.Parse(name, src, 0); err != nil {
		ev := &evaluator{text: map[string][]byte{name: src}}
		return nil, ev.syntaxDiag(err)
	}
	f, err := build.ParseDefault(name, src)
	if err != nil {
		return nil, &Diagnostic{File: name, Msg: "format: " + err.Error()}
	}
	return build.FormatWithoutRewriting(f), nil
}
