package starlark

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkEval1000 evaluates a generated recipe declaring 1,000 containers
// across 3 modules (target: < 200 ms and < 50 MiB per evaluation).
func BenchmarkEval1000(b *testing.B) {
	root := b.TempDir()
	write := func(name, src string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(src), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write("images/app.tar", strings.Repeat("x", 4096))
	write("images/layout/oci-layout", "{}")
	lib := func(prefix string, n int, image string) string {
		return fmt.Sprintf(`load("@volt//env.star", "merge")
def declare():
    names = []
    for i in range(%d):
        name = "%s-%%d" %% i
        container(
            name,
            image = %s,
            command = ["/bin/app", "--id", str(i)],
            environment = merge({"ID": str(i)}, {"ROLE": "%s"}),
            ports = ["%%d:80" %% (10000 + i)],
            depends_on = [names[-1]] if names else [],
        )
        names.append(name)
    return names
`, n, prefix, image, prefix)
	}
	write("lib/a.star", lib("alpha", 334, `"images/app.tar"`))
	write("lib/b.star", lib("beta", 333, `oci_layout("images/layout")`))
	write("volt.star", `load("//lib/a.star", declare_a = "declare")
load("//lib/b.star", declare_b = "declare")
bundle(name = "big", version = "1.0.0")
a = declare_a()
b = declare_b()
for i in range(333):
    container("gamma-%d" % i, image = "images/app.tar", depends_on = [a[i], b[i]])
`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := Eval(ctx, Options{Root: root})
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Services) != 1000 {
			b.Fatalf("%d services", len(p.Services))
		}
	}
}

// BenchmarkEvalExamples evaluates each example recipe (the --dry-run path; target < 50 ms).
func BenchmarkEvalExamples(b *testing.B) {
	for _, ex := range []string{"web-recipe", "multi", "shared-lib"} {
		root := filepath.Join(examplesDir(b), ex)
		b.Run(ex, func(b *testing.B) {
			for b.Loop() {
				if _, err := Eval(context.Background(), Options{Root: root}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// writeSharedImageRecipe writes a recipe declaring n containers on one
// rootfs tarball (1 MiB), the shape of issue 17's dry-run row.
func writeSharedImageRecipe(tb testing.TB, n int) string {
	tb.Helper()
	root := tb.TempDir()
	os.MkdirAll(filepath.Join(root, "images"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "images/base.tar.gz"), bytes.Repeat([]byte{0x1f, 0x8b, 8, 0}, 256<<10), 0o644); err != nil {
		tb.Fatal(err)
	}
	os.Symlink("base.tar.gz", filepath.Join(root, "images/alias.tar.gz"))
	src := fmt.Sprintf(`bundle(name = "many", version = "1.0.0")
for i in range(%d):
    container("svc-%%d" %% i, image = rootfs("images/alias.tar.gz" if i %% 2 else "images/base.tar.gz"), command = ["/bin/app", str(i)])
`, n)
	if err := os.WriteFile(filepath.Join(root, "volt.star"), []byte(src), 0o644); err != nil {
		tb.Fatal(err)
	}
	return root
}

// BenchmarkEvalSharedImage evaluates N containers on one rootfs image
// (through two paths): the image is stat'ed and hashed once, so the cost
// per container is the declaration only.
func BenchmarkEvalSharedImage(b *testing.B) {
	for _, n := range []int{10, 1000} {
		root := writeSharedImageRecipe(b, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Eval(context.Background(), Options{Root: root}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
