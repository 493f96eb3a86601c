package pluginhost

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyBoundaries checks with `go list -deps` that the plugin SDK,
// the plugins and the example import nothing from engine/, and that starlark/
// does not import engine/bundle.
func TestDependencyBoundaries(t *testing.T) {
	const mod = "github.com/volt-cli/volt/"
	tests := []struct {
		pkgs      []string
		forbidden string
	}{
		{[]string{"./sdk/...", "./plugins/...", "./examples/..."}, mod + "engine/"},
		{[]string{"./starlark/..."}, mod + "engine/bundle"},
	}
	for _, tc := range tests {
		args := append([]string{"list", "-e", "-deps", "-f", "{{.ImportPath}}"}, tc.pkgs...)
		cmd := exec.Command("go", args...)
		cmd.Dir = "../.."
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v", strings.Join(args, " "), err)
		}
		for _, p := range strings.Fields(string(out)) {
			if strings.HasPrefix(p, tc.forbidden) {
				t.Errorf("%v depend on %s", tc.pkgs, p)
			}
		}
	}
}
