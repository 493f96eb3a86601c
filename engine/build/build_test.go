package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/volt-cli/volt/engine/bundle"
	"github.com/volt-cli/volt/engine/constellation"
	"github.com/volt-cli/volt/engine/plan"
)

// testPlan is one container whose image is a small (non-gzip) tar, one
// overlay and one hook, on linux/amd64.
func testPlan(t *testing.T) *plan.Plan {
	t.Helper()
	root := t.TempDir()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "etc/motd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	tw.Write([]byte("hi\n"))
	tw.Close()
	files := map[string][]byte{"img.tar": tb.Bytes(), "app.conf": []byte("x=${X:-1}\n"), "pre.sh": []byte("#!/bin/sh\n")}
	for n, b := range files {
		os.WriteFile(filepath.Join(root, n), b, 0o644)
	}
	at := plan.Pos{File: "volt.star", Line: 3, Col: 1}
	return &plan.Plan{
		Name: "t", Version: "1.0.0", Platforms: []string{"linux/amd64"}, Root: root,
		Constellation: &constellation.File{Version: "1", Name: "t", Containers: map[string]*constellation.Container{"web": {Image: constellation.ImageRef{Single: "img.tar"}}}},
		Services: []*plan.Service{{Name: "web", Type: plan.Container, At: at,
			Images: map[string]*plan.ImageSource{"linux/amd64": {Kind: plan.KindFile, Path: "img.tar", At: at}},
			Config: []plan.Overlay{{Source: "app.conf", Target: "/etc/app.conf", Template: true, At: at}}}},
		Hooks: []plan.Hook{{Kind: "pre-deploy", Path: "pre.sh", At: at}},
	}
}

func TestDryRunLayout(t *testing.T) {
	l, err := DryRun(context.Background(), testPlan(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range l.Entries {
		names = append(names, e.Name)
	}
	want := "compose.yaml config/web/app.conf hooks/pre-deploy.sh images/web/linux-amd64.tar"
	if strings.Join(names, " ") != want {
		t.Errorf("entries = %v, want %s", names, want)
	}
	if l.Manifest.Services["web"].Images["linux/amd64"].Format != bundle.FormatRootfs {
		t.Errorf("format not detected from content: %+v", l.Manifest.Services["web"].Images["linux/amd64"])
	}
}

func TestBuildErrorsPointAtTheRecipe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(p *plan.Plan)
		opts   Options
		want   string
	}{
		{"missing image", func(p *plan.Plan) { os.Remove(filepath.Join(p.Root, "img.tar")) }, Options{}, `volt.star:3:1: image "img.tar" does not exist`},
		{"undeclared platform", nil, Options{Platforms: []string{"linux/arm64"}}, `platform "linux/arm64" is not one the bundle declares`},
		{"no image for a platform", func(p *plan.Plan) { p.Platforms = append(p.Platforms, "linux/arm64") }, Options{}, `has no image for platform linux/arm64`},
		{"vm with a tar", func(p *plan.Plan) { p.Services[0].Type = plan.VM }, Options{}, "want a qcow2 or raw disk"},
		{"missing overlay", func(p *plan.Plan) { os.Remove(filepath.Join(p.Root, "app.conf")) }, Options{}, `file "app.conf" does not exist`},
		{"missing env_file", func(p *plan.Plan) { p.Constellation.Containers["web"].EnvFile = []string{"nope.env"} }, Options{}, `volt.star:3:1: container web: env_file "nope.env" does not exist`},
		{"directory without a packer", func(p *plan.Plan) {
			os.Mkdir(filepath.Join(p.Root, "dir"), 0o755)
			p.Services[0].Images["linux/amd64"] = &plan.ImageSource{Kind: plan.KindRootfs, Path: "dir"}
		}, Options{}, "needs the format-oci plugin"},
		{"build without a builder", func(p *plan.Plan) {
			p.Services[0].Images["linux/amd64"] = &plan.ImageSource{Kind: plan.KindBuild, Build: &plan.BuildStep{}}
		}, Options{}, ErrNoBuilder.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPlan(t)
			if tc.change != nil {
				tc.change(p)
			}
			out := filepath.Join(t.TempDir(), "x.vbundle")
			tc.opts.Output = out
			_, err := Build(context.Background(), p, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			var pe *plan.Error
			if !errors.As(err, &pe) {
				t.Errorf("error is not a *plan.Error: %T", err)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a failed build left %s", out)
			}
		})
	}
}

func TestBuildReproducibleAndSelfContained(t *testing.T) {
	p := testPlan(t)
	dir := t.TempDir()
	opts := Options{Created: time.Unix(1700000000, 0)}
	var outs [][]byte
	for _, name := range []string{"a.vbundle", "b.vbundle"} {
		opts.Output = filepath.Join(dir, name)
		m, err := Build(context.Background(), p, opts)
		if err != nil {
			t.Fatal(err)
		}
		if m.Created != "2023-11-14T22:13:20Z" {
			t.Errorf("created = %s", m.Created)
		}
		b, _ := os.ReadFile(opts.Output)
		outs = append(outs, b)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Errorf("two builds differ")
	}
	r, err := bundle.Open(filepath.Join(dir, "a.vbundle"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rc, _ := r.OpenEntry("compose.yaml")
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	rc.Close()
	if !strings.Contains(buf.String(), "images/web/linux-amd64.tar") {
		t.Errorf("compose.yaml does not name the bundle's image entry:\n%s", buf.String())
	}
	if p.Constellation.Containers["web"].Image.Single != "img.tar" {
		t.Errorf("build changed the Plan's Constellation")
	}
}

// TestEnvFilesInlined: env_file values travel in the bundle's compose.yaml,
// merged under the explicit environment, later files winning, literal.
func TestEnvFilesInlined(t *testing.T) {
	p := testPlan(t)
	os.WriteFile(filepath.Join(p.Root, ".env"), []byte("# defaults\nA=1\nB=from-file\nP='pa$word'\n"), 0o644)
	os.WriteFile(filepath.Join(p.Root, "extra.env"), []byte("A=2\n"), 0o644)
	c := p.Constellation.Containers["web"]
	c.EnvFile = []string{".env", "extra.env"}
	c.Environment = map[string]string{"B": "explicit", "C": "${X:-c}"}
	l, err := DryRun(context.Background(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	compose, err := constellation.Marshal(l.Compose)
	if err != nil {
		t.Fatal(err)
	}
	f, err := constellation.Parse("compose.yaml", compose)
	if err != nil {
		t.Fatalf("bundle compose.yaml: %v\n%s", err, compose)
	}
	got := f.Containers["web"]
	want := map[string]string{"A": "2", "B": "explicit", "C": "${X:-c}", "P": "pa$$word"}
	if len(got.Environment) != len(want) {
		t.Errorf("environment = %v, want %v", got.Environment, want)
	}
	for k, v := range want {
		if got.Environment[k] != v {
			t.Errorf("environment[%s] = %q, want %q", k, got.Environment[k], v)
		}
	}
	if len(got.EnvFile) != 0 {
		t.Errorf("env_file still listed in the bundle: %v", got.EnvFile)
	}
	if len(p.Constellation.Containers["web"].EnvFile) != 2 || p.Constellation.Containers["web"].Environment["A"] != "" {
		t.Errorf("the plan's Constellation was changed: %+v", p.Constellation.Containers["web"])
	}

	// A malformed env file is an error naming its line.
	os.WriteFile(filepath.Join(p.Root, "extra.env"), []byte("A=2\nnot a pair\n"), 0o644)
	if _, err := DryRun(context.Background(), p, Options{}); err == nil || !strings.Contains(err.Error(), "extra.env:2:1") {
		t.Errorf("malformed env file: err = %v, want one at extra.env:2:1", err)
	}
}

// sharedImagePlan is n containers on one gzip rootfs tarball (of 256 KiB
// of incompressible data), the shape of a recipe that runs many services
// from one image.
func sharedImagePlan(tb testing.TB, n int) *plan.Plan {
	tb.Helper()
	root := tb.TempDir()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	data := make([]byte, 256<<10)
	for i := range data {
		data[i] = byte(i*7919 ^ i>>3)
	}
	tw.WriteHeader(&tar.Header{Name: "bin/app", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))})
	tw.Write(data)
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	if err := os.WriteFile(filepath.Join(root, "base.tar.gz"), gz.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	p := &plan.Plan{Name: "many", Version: "1.0.0", Platforms: []string{"linux/amd64"}, Root: root,
		Constellation: &constellation.File{Version: "1", Name: "many", Containers: map[string]*constellation.Container{}}}
	at := plan.Pos{File: "volt.star", Line: 2, Col: 1}
	for i := range n {
		name := fmt.Sprintf("svc-%d", i)
		p.Constellation.Containers[name] = &constellation.Container{Image: constellation.ImageRef{Single: "base.tar.gz"}}
		p.Services = append(p.Services, &plan.Service{Name: name, Type: plan.Container, At: at,
			Images: map[string]*plan.ImageSource{"linux/amd64": {Kind: plan.KindRootfs, Path: "base.tar.gz", At: at}}})
	}
	return p
}

// TestDryRunSharedImage: every service on one image gets the same detected
// format (detected once per file version).
func TestDryRunSharedImage(t *testing.T) {
	l, err := DryRun(context.Background(), sharedImagePlan(t, 50), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, svc := range l.Manifest.Services {
		img := svc.Images["linux/amd64"]
		if img.Format != bundle.FormatRootfs || img.Path == nil || !strings.HasSuffix(*img.Path, ".tar.gz") {
			t.Fatalf("%s: image %+v", name, img)
		}
	}
	if len(l.Manifest.Services) != 50 {
		t.Fatalf("%d services", len(l.Manifest.Services))
	}
}

// BenchmarkDryRunSharedImage lays out N containers sharing one gzip rootfs
// image (issue 17: 1,000 within 4x of 10; 10,000 linear).
func BenchmarkDryRunSharedImage(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		p := sharedImagePlan(b, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if _, err := DryRun(context.Background(), p, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
