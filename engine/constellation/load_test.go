package constellation

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestFindFile(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  string // "" means ErrNotFound
		hint  string
	}{
		{"yaml first", []string{"Voltfile", "volt-compose.yml", "volt-compose.yaml"}, "volt-compose.yaml", ""},
		{"yml before Voltfile", []string{"Voltfile", "volt-compose.yml"}, "volt-compose.yml", ""},
		{"Voltfile", []string{"Voltfile"}, "Voltfile", ""},
		{"none", nil, "", "create volt-compose.yaml, volt-compose.yml, Voltfile (looked up in that order), or pass -f FILE"},
		{"docker-compose only", []string{"docker-compose.yml"}, "",
			"found docker-compose.yml: pass -f docker-compose.yml to use it (looked for volt-compose.yaml, volt-compose.yml, Voltfile)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("name: x\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := FindFile(dir)
			if tt.want != "" {
				if err != nil || got != filepath.Join(dir, tt.want) {
					t.Fatalf("FindFile = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			var e *Error
			if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Hint != tt.hint {
				t.Fatalf("FindFile err = %v (hint %q), want ErrNotFound with hint %q", err, hintOf(err), tt.hint)
			}
		})
	}
	// A directory named like the file is not a match.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "volt-compose.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := FindFile(dir); !errors.Is(err, ErrNotFound) {
		t.Fatalf("directory matched: %v", err)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "read constellation") {
		t.Fatalf("err = %v", err)
	}
}

// seeds are the fuzz corpus: every testdata file plus the parse test inputs.
func seeds(tb testing.TB) [][]byte {
	paths, _ := filepath.Glob("testdata/*")
	var out [][]byte
	for _, p := range paths {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	for _, s := range []string{"", "a: [", "containers: {a: {image: *x}}", "- 1", "<<: 1", "x: &a [*a]",
		"services:\n  s: {image: a, command: \"'\"}\n", "vms:\n  v: {kernel: k, memory: 1e400G}\n"} {
		out = append(out, []byte(s))
	}
	return out
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			return
		}
		if _, err := Order(file); err != nil {
			t.Fatalf("Order on a valid file: %v", err)
		}
		out, err := Marshal(file)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse("marshalled.yaml", out)
		if err != nil {
			t.Fatalf("Parse(Marshal(f)) failed: %v\ninput:\n%s\nmarshalled:\n%s", err, data, out)
		}
		if !reflect.DeepEqual(stripInternal(back), stripInternal(file)) {
			t.Fatalf("round trip differs\ninput:\n%s\nmarshalled:\n%s", data, out)
		}
	})
}

func FuzzParseEnvFile(f *testing.F) {
	for _, s := range []string{"A=1\n", "export A='b'", "A=\"\\", "=", "A=\"x\"#", "\ufeff# c\n"} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile("testdata/env.sample"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvFile("fuzz.env", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Line < 1 {
				t.Fatalf("error %v is not a positioned *Error", err)
			}
			return
		}
		for k := range env {
			if !envKeyRE.MatchString(k) {
				t.Fatalf("invalid key %q accepted", k)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/example.volt-compose.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("example.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPosition(t *testing.T) {
	f := mustParse(t, "containers:\n  web:\n    image: i\n    ports: [\"80:80\"]\n")
	for path, want := range map[string]Pos{
		"containers.web":          {2, 3},
		"containers.web.ports":    {4, 5},
		"containers.web.ports[0]": {4, 13},
		"nothing":                 {},
	} {
		if got := f.Position(path); got != want {
			t.Errorf("Position(%q) = %v, want %v", path, got, want)
		}
	}
}
