package bundle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/volt-cli/volt/engine/digest"
)

// cf is one entry of a crafted archive.
type cf struct {
	name    string
	data    []byte
	deflate bool
	mode    os.FileMode
	usize   uint64 // when non-zero, a forged uncompressed size
}

// baseFiles are the entries of a small valid bundle, without bundle.json.
func baseFiles() []cf {
	return []cf{
		{name: "compose.yaml", data: []byte("services: {}\n"), deflate: true},
		{name: imgName, data: []byte("image bytes")},
	}
}

// manifestFor builds bundle.json listing files, then applies mut.
func manifestFor(files []cf, mut func(m *Manifest)) []byte {
	m := testManifest()
	delete(m.Hooks, "pre-deploy")
	m.Version, m.Created = FormatVersion, "2025-07-14T15:30:00Z"
	m.Integrity = Integrity{Algorithm: "blake3", Files: map[string]string{}}
	for _, f := range files {
		if !integrityExempt(f.name) {
			m.Integrity.Files[f.name] = digest.Bytes(f.data)
		}
		if f.name == imgName {
			img := m.Services["web"].Images["linux/amd64"]
			img.Size, img.Digest = int64(len(f.data)), digest.Bytes(f.data)
		}
	}
	if mut != nil {
		mut(m)
	}
	b, _ := json.Marshal(m)
	return b
}

// craft writes files as a ZIP with archive/zip (not our writer) and returns its path.
func craft(t testing.TB, files []cf) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		h := &zip.FileHeader{Name: f.name, Method: zip.Store}
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		data := f.data
		if f.deflate {
			h.Method = zip.Deflate
			var c bytes.Buffer
			fw, _ := flate.NewWriter(&c, flate.BestCompression)
			fw.Write(f.data)
			fw.Close()
			data = c.Bytes()
		}
		h.CRC32 = crc32.ChecksumIEEE(f.data)
		h.CompressedSize64 = uint64(len(data))
		h.UncompressedSize64 = uint64(len(f.data))
		if f.usize != 0 {
			h.UncompressedSize64 = f.usize
		}
		w, err := zw.CreateRaw(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "crafted.vbundle")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// withManifest prepends a bundle.json for files (after mut) to files.
func withManifest(files []cf, mut func(*Manifest)) []cf {
	return append([]cf{{name: ManifestName, data: manifestFor(files, mut)}}, files...)
}

var allSentinels = []error{ErrTruncated, ErrManifest, ErrVersion, ErrUnsafeName, ErrUnlisted, ErrMissing, ErrSize, ErrTooLarge, ErrIntegrity}

func TestOpenRefusesBadBundles(t *testing.T) {
	add := func(extra ...cf) []cf { return withManifest(append(baseFiles(), extra...), nil) }
	listedButAbsent := func(extra cf) []cf {
		fs := withManifest(append(baseFiles(), extra), nil)
		return fs[:len(fs)-1]
	}
	zeros := make([]byte, 8<<20)
	tests := []struct {
		name  string
		files func() []cf
		raw   func(t testing.TB) string // alternative to files
		want  error
	}{
		{name: "dotdot", files: func() []cf { return add(cf{name: "images/../../etc/passwd", data: []byte("x")}) }, want: ErrUnsafeName},
		{name: "absolute", files: func() []cf { return add(cf{name: "/etc/passwd", data: []byte("x")}) }, want: ErrUnsafeName},
		{name: "backslash", files: func() []cf { return add(cf{name: `config\x`, data: []byte("x")}) }, want: ErrUnsafeName},
		{name: "duplicate", files: func() []cf { return add(cf{name: "compose.yaml", data: []byte("services: {}\n")}) }, want: ErrUnsafeName},
		{name: "symlink", files: func() []cf {
			return add(cf{name: "config/link", data: []byte("/etc/shadow"), mode: os.ModeSymlink | 0o777})
		}, want: ErrUnsafeName},
		{name: "directory entry", files: func() []cf { return add(cf{name: "config/", mode: os.ModeDir | 0o755}) }, want: ErrUnsafeName},
		{name: "unlisted", files: func() []cf {
			return append(withManifest(baseFiles(), nil), cf{name: "hooks/evil.sh", data: []byte("rm -rf /")})
		}, want: ErrUnlisted},
		{name: "missing", files: func() []cf { return listedButAbsent(cf{name: "config/web/app.conf", data: []byte("x")}) }, want: ErrMissing},
		{name: "missing hook", files: func() []cf {
			return withManifest(baseFiles(), func(m *Manifest) { m.Hooks = map[string]string{"pre-deploy": "hooks/pre-deploy.sh"} })
		}, want: ErrMissing},
		{name: "missing image", files: func() []cf {
			return withManifest(baseFiles()[:1], func(m *Manifest) {
				img := m.Services["web"].Images["linux/amd64"]
				img.Size, img.Digest = 11, digest.Bytes([]byte("image bytes"))
			})
		}, want: ErrMissing},
		{name: "invalid json", files: func() []cf {
			return append([]cf{{name: ManifestName, data: []byte(`{"version": 1, "name": `)}}, baseFiles()...)
		}, want: ErrManifest},
		{name: "unknown version", files: func() []cf {
			return withManifest(baseFiles(), func(m *Manifest) { m.Version = 2 })
		}, want: ErrVersion},
		{name: "manifest not first", files: func() []cf {
			fs := withManifest(baseFiles(), nil)
			fs[0], fs[1] = fs[1], fs[0]
			return fs
		}, want: ErrManifest},
		{name: "no manifest", files: baseFiles, want: ErrManifest},
		{name: "lying image size", files: func() []cf {
			return withManifest(baseFiles(), func(m *Manifest) { m.Services["web"].Images["linux/amd64"].Size = 5 })
		}, want: ErrSize},
		{name: "zip bomb ratio", files: func() []cf { return add(cf{name: "volumes/web/data.tar", data: zeros, deflate: true}) }, want: ErrTooLarge},
		{name: "zip bomb forged size", files: func() []cf {
			return add(cf{name: "volumes/web/data.tar", data: []byte("small"), deflate: true, usize: 1 << 31})
		}, want: ErrTooLarge},
		{name: "truncated", raw: func(t testing.TB) string {
			path := craft(t, withManifest(baseFiles(), nil))
			b, _ := os.ReadFile(path)
			os.WriteFile(path, b[:len(b)-30], 0o644)
			return path
		}, want: ErrTruncated},
		{name: "truncated mid-data", raw: func(t testing.TB) string {
			path := craft(t, withManifest(baseFiles(), nil))
			b, _ := os.ReadFile(path)
			os.WriteFile(path, b[:len(b)/2], 0o644)
			return path
		}, want: ErrTruncated},
		{name: "not a zip", raw: func(t testing.TB) string {
			path := filepath.Join(t.TempDir(), "x.vbundle")
			os.WriteFile(path, []byte("#!/bin/sh\necho hello\n"), 0o644)
			return path
		}, want: ErrStructure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var path string
			if tc.raw != nil {
				path = tc.raw(t)
			} else {
				path = craft(t, tc.files())
			}
			r, err := Open(path)
			if err == nil {
				r.Close()
				t.Fatalf("Open accepted the bundle, want %v", tc.want)
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrStructure) {
				t.Fatalf("err = %v, want %v (and ErrStructure)", err, tc.want)
			}
			for _, s := range allSentinels {
				if s != tc.want && errors.Is(err, s) {
					t.Errorf("err = %v also matches %v", err, s)
				}
			}
			t.Log(err)
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the bundle: %v", err)
			}
		})
	}
}

func TestOpenLimits(t *testing.T) {
	path := craft(t, withManifest(baseFiles(), nil))
	if _, err := OpenWith(path, ReadOptions{MaxTotalSize: 10}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxTotalSize: err = %v", err)
	}
	if _, err := OpenWith(path, ReadOptions{MaxManifestSize: 10}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxManifestSize: err = %v", err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatalf("valid crafted bundle refused: %v", err)
	}
	r.Close()
}

// TestAlteredEntry changes one byte of a payload: Open succeeds (it does not
// hash), Verify and OpenEntry report ErrIntegrity naming the entry.
func TestAlteredEntry(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.vbundle")
	writeTest(t, path, testEntries(t, dir, 1000), WriteOptions{})
	// Find the image data and flip a byte in place.
	b, _ := os.ReadFile(path)
	img, _ := os.ReadFile(filepath.Join(dir, "img.tar.gz"))
	i := bytes.Index(b, img[:64])
	if i < 0 {
		t.Fatal("image bytes not found in bundle")
	}
	b[i+500] ^= 0xff
	os.WriteFile(path, b, 0o644)

	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, err := r.Verify(context.Background(), VerifyOptions{})
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("verify err = %v, want ErrIntegrity", err)
	}
	fails := rep.Failures()
	if len(fails) != 1 || fails[0].Name != imgName || rep.OK() || len(rep.Entries) != 3 {
		t.Fatalf("report = %+v", rep)
	}
	msg := fails[0].Err.Error()
	if !strings.Contains(msg, `entry "`+imgName+`": `) || !strings.Contains(msg, "blake3 mismatch (manifest blake3:"+digest.Short(fails[0].Want)) {
		t.Errorf("message = %q", msg)
	}
	rc, _ := r.OpenEntry(imgName)
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, ErrIntegrity) {
		t.Errorf("OpenEntry read err = %v, want ErrIntegrity", err)
	}
}

func TestVerifyCancelled(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.vbundle")
	writeTest(t, path, testEntries(t, dir, 1000), WriteOptions{})
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Verify(ctx, VerifyOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"compose.yaml", true},
		{"images/web/linux-amd64.tar.gz", true},
		{"", false}, {".", false}, {"..", false}, {"a/..", false}, {"../a", false},
		{"/a", false}, {"a/", false}, {"a//b", false}, {"./a", false}, {`a\b`, false},
		{"C:/x", false}, {"a\x00b", false}, {"a\nb", false}, {"\xff", false},
	}
	for _, tc := range tests {
		err := CheckName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrUnsafeName) {
			t.Errorf("CheckName(%q) = %v, not ErrUnsafeName", tc.name, err)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add(manifestFor(baseFiles(), nil))
	f.Add([]byte(`{"version": 1}`))
	f.Add([]byte(`{"version": 2}`))
	f.Add([]byte(`{"version": 1, "integrity": {"algorithm": "blake3", "files": {"../x": "blake3:00"}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if !errors.Is(err, ErrStructure) {
				t.Fatalf("error outside the ErrStructure family: %v", err)
			}
			return
		}
		if m.Version != FormatVersion || m.Integrity.Algorithm != "blake3" {
			t.Fatalf("accepted manifest %+v", m)
		}
		for name, d := range m.Integrity.Files {
			if CheckName(name) != nil || !digest.Valid(d) {
				t.Fatalf("accepted integrity entry %q: %q", name, d)
			}
		}
	})
}

func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.vbundle")
	writeTest(f, path, testEntries(f, dir, 2000), WriteOptions{Sign: fakeSign})
	good, _ := os.ReadFile(path)
	f.Add(good)
	f.Add(good[:len(good)-10])
	crafted, _ := os.ReadFile(craft(f, withManifest(baseFiles(), nil)))
	f.Add(crafted)
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	// Non-canonical archives (open_canonical_test.go): each must stay refused.
	f.Add(forge(f, forgery{}))
	f.Add(forge(f, forgery{local: func(i int, h *zentry) {
		if i == 1 {
			h.name = strings.Repeat("../", 16) + "compose.yaml"
		}
	}}))
	f.Add(forge(f, forgery{gapAfter: map[int]int{1: 7}}))
	f.Add(forge(f, forgery{prefix: 64}))
	f.Add(forge(f, forgery{prefix: 64, relative: true}))
	f.Add(forge(f, forgery{trailing: []byte("appended")}))
	f.Add(forge(f, forgery{comment: "hello"}))
	f.Add(forge(f, forgery{nest: true}))
	f.Add(forge(f, forgery{order: []int{0, 2, 1}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b), int64(len(b)), "fuzz.vbundle", ReadOptions{MaxTotalSize: 64 << 20})
		if err != nil {
			if !errors.Is(err, ErrStructure) {
				t.Fatalf("error outside the ErrStructure family: %v", err)
			}
			return
		}
		defer r.Close()
		assertCanonical(t, b, r)
		if _, err := r.Verify(context.Background(), VerifyOptions{Workers: 2}); err != nil && !errors.Is(err, ErrIntegrity) {
			t.Fatalf("verify error is not ErrIntegrity: %v", err)
		}
		for _, e := range r.Entries() {
			rc, err := r.OpenEntry(e.Name)
			if err != nil {
				continue
			}
			io.Copy(io.Discard, rc)
			rc.Close()
		}
		r.Signature()
	})
}

// assertCanonical checks what Open promises about an archive it accepted:
// it ends with an end record without comment, every local header names its
// entry and the entries tile the file from offset 0 without gaps.
func assertCanonical(t *testing.T, b []byte, r *Reader) {
	t.Helper()
	if n := len(b); n < endLen || string(b[n-endLen:n-endLen+4]) != "PK\x05\x06" || b[n-2] != 0 || b[n-1] != 0 {
		t.Fatal("accepted an archive that does not end with a comment-less end record")
	}
	var pos int64
	for _, zf := range r.files {
		off := r.dataOff[zf.Name]
		start := off - localLen - int64(len(zf.Name))
		if start != pos {
			start -= local64Extra
		}
		if start != pos || string(b[start:start+4]) != "PK\x03\x04" || string(b[start+localLen:start+localLen+int64(len(zf.Name))]) != zf.Name {
			t.Fatalf("entry %q: local header not at %d or naming another entry", zf.Name, pos)
		}
		pos = off + int64(zf.CompressedSize64)
	}
}
