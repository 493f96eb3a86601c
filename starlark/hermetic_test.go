package starlark

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/volt-cli/volt/engine/digest"
)

// writeTree creates files (path -> content) under a new temp dir and returns it.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func evalSrc(t testing.TB, files map[string]string, opts Options) (*Diagnostic, error) {
	t.Helper()
	opts.Root = writeTree(t, files)
	_, err := Eval(context.Background(), opts)
	var d *Diagnostic
	errors.As(err, &d)
	return d, err
}

func TestHermetic(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.star")
	if err := os.WriteFile(secret, []byte("x = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const head = "bundle(name = \"x\", version = \"1\")\n"
	for _, tc := range []struct {
		name, src, want string
		link            string // creates link.star / link.txt -> outside file when set
	}{
		{"load /etc/passwd", `load("/etc/passwd", "x")` + "\n" + head, "a module label must end in .star", ""},
		{"load absolute .star", `load("` + secret + `", "x")` + "\n" + head, "absolute paths are not allowed", ""},
		{"load escape", `load("//../../../../etc/x.star", "x")` + "\n" + head, "escapes the recipe root", ""},
		{"load via symlink", `load("//link.star", "x")` + "\n" + head, "escapes the recipe root through a symlink", secret},
		{"file /etc/passwd", head + `file("/etc/passwd")`, "absolute path", ""},
		{"file escape", head + `file("../../../../../../etc/passwd")`, "escapes the recipe root", ""},
		{"file via symlink", head + `file("link.txt")`, "escapes the recipe root through a symlink", "/etc/passwd"},
		{"glob escape", head + `glob(["../**"])`, "escapes the recipe root", ""},
		{"no environment", head + `x = environ["HOME"]`, "undefined: environ", ""},
		{"no os module", head + `x = os.getenv("HOME")`, "undefined: os", ""},
		{"no clock", head + `x = time.now()`, "undefined: time", ""},
		{"no getenv builtin", head + `x = getenv("HOME")`, "undefined: getenv", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeTree(t, map[string]string{"volt.star": tc.src})
			if tc.link != "" {
				for _, n := range []string{"link.star", "link.txt"} {
					if err := os.Symlink(tc.link, filepath.Join(root, n)); err != nil {
						t.Fatal(err)
					}
				}
			}
			_, err := Eval(context.Background(), Options{Root: root})
			if !IsRecipeError(err) {
				t.Fatalf("err = %v, want a *Diagnostic", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestGlobSymlinkOutsideInvisible(t *testing.T) {
	root := writeTree(t, map[string]string{
		"volt.star":  "bundle(name = \"x\", version = \"1\")\nfiles = glob([\"conf/**\"])\nif len(files) != 2:\n    fail(\"got %s\" % files)\n",
		"conf/a.txt": "a", "conf/sub/b.txt": "b",
	})
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "conf", "passwd")); err != nil {
		t.Fatal(err)
	}
	p, err := Eval(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Inputs) != 2 || p.Inputs[0].Path != "conf/a.txt" || p.Inputs[1].Path != "conf/sub/b.txt" {
		t.Errorf("inputs = %+v", p.Inputs)
	}
}

func TestParams(t *testing.T) {
	files := map[string]string{
		"volt.star": `bundle(name = "x", params = {
    "version": param.string(default = "0.1.0"),
    "replicas": param.int(default = 1),
    "debug": param.bool(),
})
if params.replicas != 3 or not params.debug:
    fail("params %d %s" % (params.replicas, params.debug))
`,
	}
	root := writeTree(t, files)
	p, err := Eval(context.Background(), Options{Root: root, Params: map[string]string{"replicas": "3", "debug": "true", "version": "2.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != "2.0.0" || p.Params["replicas"] != "3" || p.Params["debug"] != "true" {
		t.Errorf("plan = %s %v", p.Version, p.Params)
	}
	_, err = Eval(context.Background(), Options{Root: root, Params: map[string]string{"replicas": "many"}})
	if err == nil || !strings.Contains(err.Error(), "--set replicas=many: want an integer") {
		t.Errorf("bad int: %v", err)
	}
}

func TestPrintAndStepBudgetAcrossModules(t *testing.T) {
	var out bytes.Buffer
	files := map[string]string{
		"volt.star": "load(\"//lib.star\", \"n\")\nprint(\"n =\", n)\nbundle(name = \"x\", version = \"1\")\n",
		"lib.star":  "def f():\n    s = 0\n    for i in range(100000):\n        s += i\n    return s\nn = f()\n",
	}
	if _, err := evalSrc(t, files, Options{Print: func(m string) { out.WriteString(m) }}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "n = 4999950000" {
		t.Errorf("print = %q", out.String())
	}
	d, _ := evalSrc(t, files, Options{MaxSteps: 10000})
	if d == nil || !strings.Contains(d.Msg, "step limit") || d.File != "lib.star" {
		t.Errorf("step limit in a loaded module: %v", d)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	root := writeTree(t, map[string]string{
		"volt.star": "def f():\n    for i in range(1000000):\n        for j in range(1000000):\n            pass\nf()\n",
	})
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := Eval(ctx, Options{Root: root, MaxSteps: 1 << 62})
	if !errors.Is(err, context.Canceled) || IsRecipeError(err) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestDefaultConstellationRecipe(t *testing.T) {
	root := writeTree(t, map[string]string{
		"volt-compose.yaml": `name: demo
containers:
  web:
    image:
      linux/amd64: images/web-amd64.tar
      linux/arm64: images/web-arm64.tar
    depends_on: [db]
    configs:
      - {source: web-conf, target: /etc/web.conf}
  db:
    image: images/db
configs:
  web-conf:
    file: conf/web.conf
`,
		"images/web-amd64.tar": "a", "images/web-arm64.tar": "b",
		"images/db/oci-layout": "{}", "conf/web.conf": "x",
		"hooks/pre-deploy.sh": "#!/bin/sh\n", "hooks/notes.sh": "#!/bin/sh\n",
	})
	p, err := Eval(context.Background(), Options{Root: root, Params: map[string]string{"version": "3.1.4"}})
	if err != nil {
		var d *Diagnostic
		if errors.As(err, &d) {
			t.Fatal(d.Render())
		}
		t.Fatal(err)
	}
	if p.Name != "demo" || p.Version != "3.1.4" || p.Recipe != "" || strings.Join(p.Platforms, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("plan header = %q %q %q %v", p.Name, p.Version, p.Recipe, p.Platforms)
	}
	if _, ok := p.Sources["@volt//constellation.star"]; !ok {
		t.Errorf("sources = %v", p.Sources)
	}
	if len(p.Services) != 2 || p.Services[0].Name != "db" || p.Services[0].Images["linux/arm64"].Kind != "oci_layout" ||
		p.Services[1].Images["linux/arm64"].Digest == "" || len(p.Services[1].Config) != 1 {
		t.Errorf("services = %+v %+v", p.Services[0], p.Services[1])
	}
	if len(p.Hooks) != 1 || p.Hooks[0].Kind != "pre-deploy" || p.Hooks[0].Path != "hooks/pre-deploy.sh" {
		t.Errorf("hooks = %+v", p.Hooks)
	}
	if p.Constellation.Containers["web"].Configs[0].Source != "web-conf" {
		t.Errorf("config ref = %+v", p.Constellation.Containers["web"].Configs)
	}
	// no Constellation at all: a positioned error, not a Go error
	_, err = Eval(context.Background(), Options{Root: t.TempDir()})
	if !IsRecipeError(err) || !strings.Contains(err.Error(), "no Constellation file") {
		t.Errorf("empty dir: %v", err)
	}
}

func TestRecipeTests(t *testing.T) {
	var out bytes.Buffer
	passed, failed, err := Test(context.Background(), filepath.Join(examplesDir(t), "shared-lib"), "", &out)
	if err != nil || failed != 0 || passed != 3 {
		t.Fatalf("Test = %d passed, %d failed, %v\n%s", passed, failed, err, out.String())
	}
	root := writeTree(t, map[string]string{
		"a_test.star": "def test_ok():\n    assert.true(1 < 2)\n\ndef test_bad():\n    assert.eq(1 + 1, 3)\n\ndef test_fails_missing():\n    assert.fails(lambda: 1)\n",
	})
	out.Reset()
	passed, failed, err = Test(context.Background(), root, "", &out)
	if err != nil || passed != 1 || failed != 2 {
		t.Fatalf("Test = %d passed, %d failed, %v\n%s", passed, failed, err, out.String())
	}
	if !strings.Contains(out.String(), "FAIL a_test.star::test_bad\na_test.star:5:5: assert.eq: got 2, want 3") {
		t.Errorf("output:\n%s", out.String())
	}
	out.Reset()
	passed, failed, _ = Test(context.Background(), root, "test_ok$", &out)
	if passed != 1 || failed != 0 {
		t.Errorf("filtered: %d %d\n%s", passed, failed, out.String())
	}
}

func TestFormat(t *testing.T) {
	got, err := Format([]byte("bundle(name='x',version = \"1\")\ncontainer(\"a\",\n  image=\"i.tar\",   ports=[\"80:80\"])\n\n\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "bundle(name = \"x\", version = \"1\")\ncontainer(\n    \"a\",\n    image = \"i.tar\",\n    ports = [\"80:80\"],\n)\n"
	if string(got) != want {
		t.Errorf("Format =\n%s\nwant\n%s", got, want)
	}
	again, _ := Format(got)
	if !bytes.Equal(again, got) {
		t.Errorf("Format is not idempotent")
	}
	if _, err := Format([]byte("bundle(\n")); !IsRecipeError(err) {
		t.Errorf("syntax error: %v", err)
	}
}

func TestExplicitFile(t *testing.T) {
	root := writeTree(t, map[string]string{
		"recipes/web.star": "load(\"../lib.star\", \"v\")\nbundle(name = \"web\", version = v)\n",
		"lib.star":         "v = \"9.9.9\"\n",
	})
	p, err := Eval(context.Background(), Options{Root: root, File: "recipes/./web.star"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Recipe != "recipes/web.star" || p.Version != "9.9.9" || len(p.Sources) != 2 || p.Sources["lib.star"] == "" {
		t.Errorf("recipe %q version %q sources %v", p.Recipe, p.Version, p.Sources)
	}
	_, err = Eval(context.Background(), Options{Root: root, File: "nothere.star"})
	if !IsRecipeError(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing -f file: %v", err)
	}
	_, err = Eval(context.Background(), Options{Root: "relative/dir"})
	if err == nil || IsRecipeError(err) {
		t.Errorf("relative root: %v", err)
	}
}

// TestExamplesFormatted keeps the examples and the stdlib in canonical form.
func TestExamplesFormatted(t *testing.T) {
	files, _ := filepath.Glob("../examples/*/*.star")
	more, _ := filepath.Glob("../examples/*/lib/*.star")
	std, _ := filepath.Glob("../stdlib/*.star")
	for _, f := range append(append(files, more...), std...) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := FormatFile(f, src)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !bytes.Equal(got, src) {
			t.Errorf("%s is not formatted; volt recipe fmt gives:\n%s", f, got)
		}
	}
}

// TestDeferImageDigests checks that bundle create's evaluation leaves image
// files unhashed (the writer hashes them) and a plain one hashes them.
func TestDeferImageDigests(t *testing.T) {
	root := writeTree(t, map[string]string{
		"volt-compose.yaml":    "name: demo\ncontainers:\n  web: {image: images/web.tar}\n",
		"images/web.tar":       "a",
		"images/db/oci-layout": "{}",
	})
	for _, tc := range []struct {
		deferred bool
		want     string
	}{
		{false, digest.Bytes([]byte("a"))},
		{true, ""},
	} {
		p, err := Eval(context.Background(), Options{Root: root, DeferImageDigests: tc.deferred})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Services[0].Images["linux/amd64"].Digest; got != tc.want {
			t.Errorf("DeferImageDigests=%v: image digest %q, want %q", tc.deferred, got, tc.want)
		}
	}
}
