package constellation

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestRoundTrip(t *testing.T) {
	for _, tt := range []struct{ in, golden string }{
		{"testdata/example.volt-compose.yaml", "testdata/example.golden.yaml"},
		{"testdata/docker-compose.yml", "testdata/docker-compose.golden.yaml"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			f, err := Load(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Marshal(f)
			if err != nil || !bytes.Equal(out, again) {
				t.Fatalf("Marshal is not deterministic")
			}
			if *update {
				if err := os.WriteFile(tt.golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(tt.golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, golden) {
				t.Errorf("Marshal differs from %s (run with -update after checking):\n%s", tt.golden, out)
			}
			back, err := Parse("marshalled.yaml", out)
			if err != nil {
				t.Fatalf("Parse(Marshal(f)): %v", err)
			}
			if !reflect.DeepEqual(stripInternal(back), stripInternal(f)) {
				t.Errorf("round trip differs:\n got %#v\nwant %#v", stripInternal(back), stripInternal(f))
			}
		})
	}
}

func TestImageRefYAML(t *testing.T) {
	for _, img := range []ImageRef{{Single: "images/web"}, {PerPlatform: map[string]string{"linux/amd64": "a.tar", "linux/arm64": "b.tar"}}} {
		f := &File{Containers: map[string]*Container{"web": {Image: img}}}
		out, err := Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		back := mustParse(t, string(out))
		if !reflect.DeepEqual(back.Containers["web"].Image, img) {
			t.Errorf("image %+v came back as %+v from:\n%s", img, back.Containers["web"].Image, out)
		}
	}
}
