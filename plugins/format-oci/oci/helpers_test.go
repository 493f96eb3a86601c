package oci

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// tent is one entry of a test tar.
type tent struct {
	name, link string
	typ        byte
	mode       int64
	body       string
	uid, gid   int
	major      int64
	minor      int64
	pax        map[string]string
}

func mkTar(t testing.TB, ents ...tent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: time.Unix(1700000000, 0), Devmajor: e.major, Devminor: e.minor, PAXRecords: e.pax}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func sha(b []byte) digest.Digest { return digest.FromBytes(b) }

func writeBlob(t testing.TB, dir string, b []byte) digest.Digest {
	t.Helper()
	d := sha(b)
	p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// layoutOpts alter the image buildLayout writes, to make bad ones.
type layoutOpts struct {
	platform     string
	corruptBlob  bool // flip a byte of the first layer blob after hashing
	truncateBlob bool // drop the last byte of the first layer blob
}

// buildLayout writes an OCI layout dir with the given uncompressed layer tars (gzipped).
func buildLayout(t testing.TB, dir string, layers [][]byte, o layoutOpts) {
	t.Helper()
	if o.platform == "" {
		o.platform = "linux/amd64"
	}
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	var descs []v1.Descriptor
	var diffs []digest.Digest
	for i, l := range layers {
		z := gz(t, l)
		d := writeBlob(t, dir, z)
		if i == 0 && (o.corruptBlob || o.truncateBlob) {
			p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
			b := append([]byte{}, z...)
			if o.corruptBlob {
				b[len(b)-10] ^= 0xff
			} else {
				b = b[:len(b)-1]
			}
			os.WriteFile(p, b, 0o644)
		}
		descs = append(descs, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(z))})
		diffs = append(diffs, sha(l))
	}
	p := strings.Split(o.platform, "/")
	cfg, _ := json.Marshal(v1.Image{Platform: v1.Platform{OS: p[0], Architecture: p[1]}, RootFS: v1.RootFS{Type: "layers", DiffIDs: diffs}})
	cd := writeBlob(t, dir, cfg)
	man, _ := json.Marshal(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))}, Layers: descs})
	md := writeBlob(t, dir, man)
	idx, _ := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []v1.Descriptor{
		{MediaType: v1.MediaTypeImageManifest, Digest: md, Size: int64(len(man))}}})
	os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
}

// makeTree builds a tree with every kind of entry the round trip must keep.
func makeTree(t testing.TB, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "etc/app"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "private"), 0o700))
	must(os.Mkdir(filepath.Join(dir, "empty"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc/app/conf"), []byte("key=value\n"), 0o640))
	must(os.WriteFile(filepath.Join(dir, "usr/bin/tool"), bytes.Repeat([]byte("x"), 100000), 0o755))
	must(os.WriteFile(filepath.Join(dir, "private/secret"), []byte("s"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "usr/bin/suid"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(dir, "usr/bin/suid"), 0o4755|fs.ModeSetuid))
	must(os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "usr/bin/tool-link")))
	must(os.Symlink("../usr/bin/tool", filepath.Join(dir, "etc/tool")))
	must(os.Symlink("/etc/app/conf", filepath.Join(dir, "abs-link")))
	must(os.Symlink("dangling", filepath.Join(dir, "dangling-link")))
	must(os.WriteFile(filepath.Join(dir, "readonly"), []byte("r"), 0o444))
	if os.Geteuid() == 0 {
		must(os.Lchown(filepath.Join(dir, "private/secret"), 1000, 1001))
		must(os.Lchown(filepath.Join(dir, "etc/tool"), 1000, 1000))
	}
}

// treeDesc describes a tree: one line per entry with type, mode, owner,
// content hash or link target, and a hard link group.
func treeDesc(t testing.TB, dir string, owners bool) []string {
	t.Helper()
	var out []string
	inodes := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		if owners {
			line += fmt.Sprintf(" %d:%d", st.Uid, st.Gid)
		}
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					line += " link=" + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func diffTrees(t testing.TB, want, got []string) {
	t.Helper()
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Errorf("trees differ:\nwant:\n%s\ngot:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}

// snapshot lists a directory tree (names, modes, sizes) except the subtree
// skip, to detect writes outside the destination.
func snapshot(t testing.TB, dir, skip string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p == skip {
			return filepath.SkipDir
		}
		fi, _ := os.Lstat(p)
		if fi != nil {
			fmt.Fprintf(&b, "%s %v %d\n", p, fi.Mode(), fi.Size())
		}
		return nil
	})
	return b.String()
}

type digestT = digest.Digest

func hexSHA(s string) string { return sha([]byte(s)).Encoded() }

// tarHeaders reads every header of the tar stream r.
func tarHeaders(t testing.TB, r io.Reader) []*tar.Header {
	t.Helper()
	var out []*tar.Header
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
}
