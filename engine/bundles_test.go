package engine

import (
	"errors"
	"testing"

	"github.com/volt-cli/volt/starlark"
)

func TestRecipeFile(t *testing.T) {
	for _, tc := range []struct {
		name     string
		root     string
		dirGiven bool
		file     string
		want     recipeLoc
		wantErr  bool
	}{
		{"default", "/src", false, "", recipeLoc{}, false},
		{"relative", "/src", true, "recipes/web.star", recipeLoc{name: "recipes/web.star"}, false},
		{"label", "/src", false, "@volt//constellation.star", recipeLoc{name: "@volt//constellation.star"}, false},
		{"absolute without DIR: its directory is the root", "/cwd", false, "/src/app/volt.star", recipeLoc{root: "/src/app", name: "volt.star"}, false},
		{"absolute under DIR", "/src", true, "/src/recipes/../recipes/web.star", recipeLoc{name: "recipes/web.star"}, false},
		{"absolute outside DIR", "/src", true, "/other/volt.star", recipeLoc{}, true},
		{"absolute, DIR's sibling with a common prefix", "/src", true, "/src2/volt.star", recipeLoc{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := recipeFile(tc.root, tc.dirGiven, tc.file)
			var d *starlark.Diagnostic
			switch {
			case tc.wantErr && !errors.As(err, &d):
				t.Errorf("err = %v, want a diagnostic", err)
			case !tc.wantErr && (err != nil || got != tc.want):
				t.Errorf("recipeFile = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
