package bundle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/volt-cli/volt/engine/digest"
)

var testTime = time.Date(2025, 7, 14, 15, 30, 0, 0, time.UTC)

const imgName = "images/web/linux-amd64.tar.gz"

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func testManifest() *Manifest {
	p := imgName
	return &Manifest{
		Name: "demo", BundleVersion: "1.0.0", Compose: "compose.yaml",
		Platforms: []Platform{{OS: "linux", Arch: "amd64"}},
		Services: map[string]*Service{"web": {Type: TypeContainer, Images: map[string]*Image{
			"linux/amd64": {Path: &p, Format: FormatOCI},
		}}},
		Hooks: map[string]string{"pre-deploy": "hooks/pre-deploy.sh"},
	}
}

// testEntries returns entries for testManifest with an image of imgSize
// random bytes written to a file in dir.
func testEntries(t testing.TB, dir string, imgSize int) []Entry {
	t.Helper()
	img := filepath.Join(dir, "img.tar.gz")
	if err := os.WriteFile(img, randomBytes(imgSize, 7), 0o644); err != nil {
		t.Fatal(err)
	}
	return []Entry{
		{Name: "hooks/pre-deploy.sh", Data: []byte("#!/bin/sh\necho deploying\n"), Compress: true},
		{Name: imgName, Path: img},
		{Name: "compose.yaml", Data: []byte(strings.Repeat("services:\n  web: {}\n", 50)), Compress: true},
	}
}

func writeTest(t testing.TB, path string, entries []Entry, opts WriteOptions) *Manifest {
	t.Helper()
	if opts.Created.IsZero() {
		opts.Created = testTime
	}
	m, err := Write(context.Background(), path, testManifest(), entries, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func fakeSign(b []byte) ([]byte, error) {
	return []byte("-----BEGIN SSH SIGNATURE-----\n" + digest.Bytes(b) + "\n-----END SSH SIGNATURE-----\n"), nil
}

func TestWriteOpenRoundTrip(t *testing.T) {
	dir := t.TempDir()
	entries := testEntries(t, dir, 300<<10)
	path := filepath.Join(dir, "b.vbundle")
	m := writeTest(t, path, entries, WriteOptions{Sign: fakeSign})

	if m.Created != "2025-07-14T15:30:00Z" || m.Version != FormatVersion || m.Integrity.Algorithm != "blake3" {
		t.Errorf("manifest header = %q %d %q", m.Created, m.Version, m.Integrity.Algorithm)
	}
	img := m.Services["web"].Images["linux/amd64"]
	if img.Size != 300<<10 || img.Digest != m.Integrity.Files[imgName] || !digest.Valid(img.Digest) {
		t.Errorf("image = %+v, integrity %s", img, m.Integrity.Files[imgName])
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var names []string
	for _, e := range r.Entries() {
		names = append(names, e.Name)
	}
	want := []string{ManifestName, "compose.yaml", "hooks/pre-deploy.sh", imgName, SignatureName}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("entries = %v, want %v", names, want)
	}
	if got := r.Entries()[1]; got.Stored || got.CompressedSize >= got.Size {
		t.Errorf("compose.yaml should be deflated: %+v", got)
	}
	if got := r.Entries()[3]; !got.Stored {
		t.Errorf("image should be stored: %+v", got)
	}
	sr, err := r.EntryReaderAt(imgName)
	if err != nil {
		t.Fatal(err)
	}
	inPlace, _ := io.ReadAll(sr)
	if fileData, _ := os.ReadFile(entries[1].Path); !bytes.Equal(inPlace, fileData) {
		t.Error("EntryReaderAt bytes differ from the image")
	}
	if _, err := r.EntryReaderAt("compose.yaml"); err == nil {
		t.Error("EntryReaderAt of a deflated entry should fail")
	}
	if ManifestDigest(r.ManifestBytes()) != digest.Bytes(r.ManifestBytes()) || r.Manifest().Name != "demo" {
		t.Error("manifest bytes/digest mismatch")
	}
	sig, err := r.Signature()
	if err != nil || !bytes.Contains(sig, []byte(ManifestDigest(r.ManifestBytes()))) {
		t.Errorf("signature = %q, %v", sig, err)
	}
	for _, e := range entries {
		rc, err := r.OpenEntry(e.Name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		wantData := e.Data
		if e.Path != "" {
			wantData, _ = os.ReadFile(e.Path)
		}
		if !bytes.Equal(got, wantData) {
			t.Errorf("%s: content differs", e.Name)
		}
	}
	var calls int
	rep, err := r.Verify(context.Background(), VerifyOptions{Progress: func(done, total int64) { calls++ }})
	if err != nil || !rep.OK() || len(rep.Entries) != 3 || !rep.Signed || calls == 0 {
		t.Errorf("verify: %v, %+v, progress calls %d", err, rep, calls)
	}
}

func TestWriteReproducible(t *testing.T) {
	dir := t.TempDir()
	entries := testEntries(t, dir, 100<<10)
	a, b := filepath.Join(dir, "a.vbundle"), filepath.Join(dir, "sub", "b.vbundle")
	os.Mkdir(filepath.Dir(b), 0o755)
	writeTest(t, a, entries, WriteOptions{Sign: fakeSign})
	// Same inputs in another order, another path: same bytes.
	rev := append([]Entry(nil), entries...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	writeTest(t, b, rev, WriteOptions{Sign: fakeSign})
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Fatal("two writes of the same inputs differ")
	}
	// SOURCE_DATE_EPOCH gives the same created time.
	t.Setenv("SOURCE_DATE_EPOCH", "1752507000")
	c := filepath.Join(dir, "c.vbundle")
	if _, err := Write(context.Background(), c, testManifest(), entries, WriteOptions{Sign: fakeSign}); err != nil {
		t.Fatal(err)
	}
	cb, _ := os.ReadFile(c)
	if !bytes.Equal(ab, cb) {
		t.Error("SOURCE_DATE_EPOCH write differs from explicit Created")
	}
}

func TestWriteZip64(t *testing.T) {
	old := zip64Limit
	zip64Limit = 1000 // force Zip64 sizes, offsets and end records with small files
	defer func() { zip64Limit = old }()
	dir := t.TempDir()
	path := filepath.Join(dir, "z.vbundle")
	writeTest(t, path, testEntries(t, dir, 5000), WriteOptions{Sign: fakeSign})
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Verify(context.Background(), VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	unzipTest(t, path)
	// Removing and re-adding the signature round-trips through Zip64 records.
	want, _ := os.ReadFile(path)
	sig, _ := fakeSign(mustManifestBytes(t, path))
	if err := SetSignature(context.Background(), path, nil); err != nil {
		t.Fatal(err)
	}
	if err := SetSignature(context.Background(), path, sig); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
		t.Error("SetSignature changed a Zip64 bundle")
	}
}

func mustManifestBytes(t *testing.T, path string) []byte {
	t.Helper()
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return r.ManifestBytes()
}

func unzipTest(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("unzip"); err != nil {
		t.Skip("unzip not installed")
	}
	out, err := exec.Command("unzip", "-t", path).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("No errors detected")) {
		t.Fatalf("unzip -t: %v\n%s", err, out)
	}
}

func TestUnzipAcceptsAndB3sumAgrees(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.vbundle")
	// Image bigger than two segments, so Verify takes the parallel path.
	m := writeTest(t, path, testEntries(t, dir, 2*digest.SegmentSize+12345), WriteOptions{Sign: fakeSign})
	unzipTest(t, path)
	out, err := exec.Command("unzip", "-Z1", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Fields(string(out)); lines[0] != ManifestName || lines[len(lines)-1] != SignatureName {
		t.Errorf("unzip -Z1 order: %v", lines)
	}
	b3, err := exec.LookPath("b3sum")
	if err != nil {
		t.Skip("b3sum not installed")
	}
	for name, want := range m.Integrity.Files {
		cmd := exec.Command("sh", "-c", `unzip -p "$1" "$2" | "$3" --no-names`, "sh", path, name, b3)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := digest.Prefix + strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s: b3sum %s, manifest %s", name, got, want)
		}
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if rep, err := r.Verify(context.Background(), VerifyOptions{Workers: 2}); err != nil || rep.Bytes < 2*digest.SegmentSize {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

func TestSetSignature(t *testing.T) {
	dir := t.TempDir()
	entries := testEntries(t, dir, 50<<10)
	signed, unsigned := filepath.Join(dir, "s.vbundle"), filepath.Join(dir, "u.vbundle")
	writeTest(t, signed, entries, WriteOptions{Sign: fakeSign})
	writeTest(t, unsigned, entries, WriteOptions{})
	want, _ := os.ReadFile(signed)
	wantUnsigned, _ := os.ReadFile(unsigned)

	r, _ := Open(unsigned)
	sig, _ := fakeSign(r.ManifestBytes())
	r.Close()
	ctx := context.Background()
	steps := []struct {
		sig  []byte
		want []byte
	}{
		{sig, want},            // add
		{[]byte("other"), nil}, // replace
		{sig, want},            // replace back
		{nil, wantUnsigned},    // remove
	}
	for i, s := range steps {
		if err := SetSignature(ctx, unsigned, s.sig); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, _ := os.ReadFile(unsigned)
		if s.want != nil && !bytes.Equal(got, s.want) {
			t.Errorf("step %d: bundle differs from a Write with the same signature", i)
		}
		r, err := Open(unsigned)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		gotSig, _ := r.Signature()
		r.Close()
		if !bytes.Equal(gotSig, s.sig) {
			t.Errorf("step %d: signature %q, want %q", i, gotSig, s.sig)
		}
	}
	unzipTest(t, unsigned)
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	good := testEntries(t, dir, 10)
	with := func(extra ...Entry) []Entry { return append(append([]Entry(nil), good...), extra...) }
	missingRef := testManifest()
	missingRef.Hooks["post-deploy"] = "hooks/nope.sh"
	badVersion := testManifest()
	badVersion.Version = 2
	tests := []struct {
		name    string
		m       *Manifest
		entries []Entry
		want    error
	}{
		{"dotdot", nil, with(Entry{Name: "a/../b"}), ErrUnsafeName},
		{"absolute", nil, with(Entry{Name: "/etc/passwd"}), ErrUnsafeName},
		{"backslash", nil, with(Entry{Name: `a\b`}), ErrUnsafeName},
		{"not clean", nil, with(Entry{Name: "a//b"}), ErrUnsafeName},
		{"duplicate", nil, with(Entry{Name: "compose.yaml"}), ErrUnsafeName},
		{"reserved manifest", nil, with(Entry{Name: ManifestName}), ErrUnsafeName},
		{"reserved signature", nil, with(Entry{Name: SignatureName}), ErrUnsafeName},
		{"file and dir", nil, with(Entry{Name: "compose.yaml/x"}), ErrUnsafeName},
		{"missing reference", missingRef, good, ErrMissing},
		{"missing image", testManifest(), good[:1], ErrMissing},
		{"version", badVersion, good, ErrVersion},
		{"missing file", nil, with(Entry{Name: "x", Path: filepath.Join(dir, "nope")}), os.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m
			if m == nil {
				m = testManifest()
			}
			path := filepath.Join(dir, "out.vbundle")
			_, err := Write(context.Background(), path, m, tc.entries, WriteOptions{Created: testTime})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("%s exists after a failed write", path)
			}
		})
	}
}

// TestWriteInputChanges grows an input while it is being read.
func TestWriteInputChanges(t *testing.T) {
	dir := t.TempDir()
	entries := testEntries(t, dir, 3<<20)
	img := entries[1].Path
	path := filepath.Join(dir, "out.vbundle")
	grown := false
	_, err := Write(context.Background(), path, testManifest(), entries, WriteOptions{Created: testTime, Progress: func(done, total int64) {
		if !grown {
			grown = true
			f, _ := os.OpenFile(img, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte("more"))
			f.Close()
		}
	}})
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("err = %v, want ErrChanged", err)
	}
	assertNoOutput(t, dir, path)
}

// assertNoOutput checks that neither path nor a temp file is left in dir.
func assertNoOutput(t *testing.T, dir, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists", path)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temp files left: %v", leftovers)
	}
}

func TestWriteCancelled(t *testing.T) {
	dir := t.TempDir()
	entries := testEntries(t, dir, 3<<20)
	path := filepath.Join(dir, "out.vbundle")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Write(ctx, path, testManifest(), entries, WriteOptions{Created: testTime, Progress: func(done, total int64) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	assertNoOutput(t, dir, path)
}

const crashEnv = "VOLT_BUNDLE_CRASH_DEST"

// TestCrashHelper is the subprocess of TestCrashSafety: it starts a write,
// says so on stdout, and blocks until killed.
func TestCrashHelper(t *testing.T) {
	dest := os.Getenv(crashEnv)
	if dest == "" {
		t.Skip("helper process for TestCrashSafety")
	}
	dir := filepath.Dir(dest)
	entries := testEntries(t, dir, 4<<20)
	said := false
	Write(context.Background(), dest, testManifest(), entries, WriteOptions{Created: testTime, Progress: func(done, total int64) {
		if !said && done >= 2<<20 {
			said = true
			os.Stdout.WriteString("writing\n")
			select {} // wait for SIGKILL mid-write
		}
	}})
	t.Fatal("write finished; it should have been killed")
}

func TestCrashSafety(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "crash.vbundle")
	cmd, tmps := startCrashHelper(t, dir, dest)
	if len(tmps) != 1 {
		t.Errorf("expected one temp file mid-write, got %v", tmps)
	}
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("%s exists after the writer was killed mid-write", dest)
	}

	// The next write of dest removes the killed writer's temp file, and
	// leaves a live writer's alone.
	live, all := startCrashHelper(t, dir, dest)
	defer func() { live.Process.Kill(); live.Wait() }()
	writeTest(t, dest, testEntries(t, t.TempDir(), 1000), WriteOptions{})
	left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	for _, tmp := range tmps {
		if slices.Contains(left, tmp) {
			t.Errorf("the killed writer's %s is still there after the next write", tmp)
		}
	}
	if len(left) != 1 || !slices.Contains(all, left[0]) || slices.Contains(tmps, left[0]) {
		t.Errorf("temp files after the write: %v; want only the live writer's (of %v)", left, all)
	}
}

// startCrashHelper starts TestCrashHelper writing dest and returns it once
// it is mid-write, with the temp files then in dir.
func startCrashHelper(t *testing.T, dir, dest string) (*exec.Cmd, []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dest)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(out, buf, len("writing\n"))
	if !strings.Contains(string(buf[:n]), "writing") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper did not start writing: %q", buf[:n])
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	return cmd, tmps
}
