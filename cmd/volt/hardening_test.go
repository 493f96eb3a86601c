package main

// End-to-end tests of the hardening issue (#11): sandboxed plugins on every
// start, a private state root, state files that cannot be turned against
// the host, and an import --force that is true after kill -9.

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sandboxLine is a format plugin's own report that its Landlock ruleset is
// in force (sdk, at debug level): plugin, ABI, read and write lists.
var sandboxLine = regexp.MustCompile(`msg="sandbox applied" plugin=(\S+) landlock_abi=(\d+) read=\[([^\]]*)\] write=\[([^\]]*)\]`)

// startedLine is the host's record of a plugin process start.
var startedLine = regexp.MustCompile(`msg="plugin started" plugin=(\S+)`)

// assertConfined checks, in the --debug stderr of one command, that every
// format plugin process that started reported its own Landlock ruleset, and
// that plugin's ruleset reads read and writes write ("" = any).
func assertConfined(t *testing.T, what, stderr, plugin, read, write string) {
	t.Helper()
	starts := map[string]int{}
	for _, m := range startedLine.FindAllStringSubmatch(stderr, -1) {
		if strings.HasPrefix(m[1], "format-") {
			starts[m[1]]++
		}
	}
	applied := map[string]int{}
	found := false
	for _, m := range sandboxLine.FindAllStringSubmatch(stderr, -1) {
		applied[m[1]]++
		if abi, _ := strconv.Atoi(m[2]); abi == 0 {
			t.Errorf("%s: %s runs without Landlock (ABI 0)", what, m[1])
		}
		if m[1] == plugin && strings.Contains(" "+m[3]+" ", " "+read+" ") && (write == "" || strings.Contains(" "+m[4]+" ", " "+write+" ")) {
			found = true
		}
	}
	if starts[plugin] == 0 {
		t.Errorf("%s: %s never started:\n%s", what, plugin, stderr)
	}
	for p, n := range starts {
		if applied[p] != n {
			t.Errorf("%s: %s started %d times, confined itself %d times", what, p, n, applied[p])
		}
	}
	if !found {
		t.Errorf("%s: no %s confined to read %s, write %s:\n%s", what, plugin, read, write, stderr)
	}
}

// TestPluginsConfinedOnEveryStart: bundle create (a directory image and a
// build step), bundle convert and bundle import start every format plugin
// under the Landlock policy of that command, as the plugins themselves
// report.
func TestPluginsConfinedOnEveryStart(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	rootfs := filepath.Join(src, "rootfs")
	for _, d := range []string{"bin", "usr", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("no /bin/busybox")
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"sh", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", app)); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, src, map[string]string{"volt.star": `bundle(name = "sbx", version = "1.0.0")
container("plain", image = rootfs("rootfs"), command = ["/bin/sh", "-c", "exec sleep 1000"])
container("built", image = build(base = rootfs("rootfs"), run = [["/bin/sh", "-c", "echo built > /built"]]), command = ["/bin/sh", "-c", "exec sleep 1000"])
`})
	vb := filepath.Join(e.dir, "sbx.vbundle")
	r := e.must("bundle", "create", "--debug", src, "-o", vb)
	assertConfined(t, "bundle create", r.stderr, "format-oci", src, e.dir)

	ace := filepath.Join(e.dir, "sbx.zip")
	e.must("bundle", "create", src, "--format", "ace", "-o", ace)
	r = e.must("bundle", "convert", "--debug", ace, "-o", filepath.Join(e.dir, "conv.vbundle"))
	assertConfined(t, "bundle convert", r.stderr, "format-ace", ace, "")

	defer e.run("stack", "destroy", "sbx")
	r = e.must("bundle", "import", "--debug", vb)
	assertConfined(t, "bundle import", r.stderr, "format-oci", vb, filepath.Join(e.dir, "root"))
}
