package bundle

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// forgery describes how forge departs from the canonical layout.
type forgery struct {
	prefix   int                          // bytes before the first entry (offsets include them)
	relative bool                         // with prefix: offsets relative to the first entry (self-extractor style)
	gapAfter map[int]int                  // bytes after entry i's data
	local    func(i int, h *zentry)       // changes entry i's local header
	localRaw func(i int, h []byte) []byte // edits entry i's rendered local header
	central  func(i int, h []byte) []byte // edits entry i's rendered central record
	order    []int                        // central directory order (default physical)
	comment  string                       // archive comment in the end record
	trailing []byte                       // after the end record
	nest     bool                         // entry 2 is stored inside entry 1's data
}

// forge writes the entries of a small valid bundle with Volt's record
// renderers, applying fg, and returns the archive bytes.
func forge(t testing.TB, fg forgery) []byte {
	t.Helper()
	files := withManifest(baseFiles(), nil)
	tm, date := dosTime(testTime)
	var out bytes.Buffer
	out.Write(make([]byte, fg.prefix))
	base := 0
	if fg.relative {
		base = fg.prefix
	}
	ents := make([]zentry, len(files))
	for i, f := range files {
		data := f.data
		method := uint16(methodStore)
		if f.deflate {
			var c bytes.Buffer
			fw, _ := flate.NewWriter(&c, flate.DefaultCompression)
			fw.Write(f.data)
			fw.Close()
			data, method = c.Bytes(), methodDeflate
		}
		ze := zentry{name: f.name, method: method, crc: crc32.ChecksumIEEE(f.data), csize: uint64(len(data)), usize: uint64(len(f.data)), offset: uint64(out.Len() - base)}
		if fg.nest && i == 2 {
			continue // written inside entry 1
		}
		lh := ze
		if fg.local != nil {
			fg.local(i, &lh)
		}
		h := lh.localHeader(tm, date)
		if fg.localRaw != nil {
			h = fg.localRaw(i, h)
		}
		if fg.nest && i == 1 {
			// Entry 1's data is entry 2's local header and data followed by its own.
			inner := files[2]
			ie := zentry{name: inner.name, method: methodStore, crc: crc32.ChecksumIEEE(inner.data), csize: uint64(len(inner.data)), usize: uint64(len(inner.data))}
			ie.offset = uint64(out.Len() - base + len(h))
			ents[2] = ie
			data = append(append(ie.localHeader(tm, date), inner.data...), f.data...)
			ze.method, ze.csize, ze.usize, ze.crc = methodStore, uint64(len(data)), uint64(len(data)), crc32.ChecksumIEEE(data)
			lh = ze
			h = lh.localHeader(tm, date)
		}
		ents[i] = ze
		out.Write(h)
		out.Write(data)
		out.Write(make([]byte, fg.gapAfter[i]))
	}
	order := fg.order
	if order == nil {
		order = []int{0, 1, 2}
	}
	cdStart := uint64(out.Len() - base)
	for _, i := range order {
		h := ents[i].centralHeader(tm, date)
		if fg.central != nil {
			h = fg.central(i, h)
		}
		out.Write(h)
	}
	var end bytes.Buffer
	writeCentral(&end, nil, 0, tm, date) // an empty directory: just the end record
	b := end.Bytes()
	le := binary.LittleEndian
	le.PutUint16(b[8:], uint16(len(order)))
	le.PutUint16(b[10:], uint16(len(order)))
	le.PutUint32(b[12:], uint32(uint64(out.Len()-base)-cdStart))
	le.PutUint32(b[16:], uint32(cdStart))
	le.PutUint16(b[20:], uint16(len(fg.comment)))
	out.Write(b)
	out.WriteString(fg.comment)
	out.Write(fg.trailing)
	return out.Bytes()
}

// openBytes opens b as a bundle from a file named after the test.
func openBytes(t *testing.T, b []byte) (*Reader, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "forged.vbundle")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	return r, path, err
}

func TestForgeBaseline(t *testing.T) {
	r, _, err := openBytes(t, forge(t, forgery{}))
	if err != nil {
		t.Fatalf("canonical forged bundle refused: %v", err)
	}
	r.Close()
}

// TestOpenRefusesNonCanonical: each departure from the canonical layout is
// refused with ErrNonCanonical (and ErrStructure), naming what disagreed.
func TestOpenRefusesNonCanonical(t *testing.T) {
	le := binary.LittleEndian
	// Sixteen levels up, as in the report that found the hole.
	evil := strings.Repeat("../", 16) + "etc/cron.d/x"
	tests := []struct {
		name string
		fg   forgery
		want []string // substrings of the message
	}{
		{"local name elsewhere", forgery{local: func(i int, h *zentry) {
			if i == 1 {
				h.name = evil
			}
		}}, []string{`entry "compose.yaml"`, "names it", "../../"}},
		{"local name same length", forgery{local: func(i int, h *zentry) {
			if i == 1 {
				h.name = "../../x.yaml"
			}
		}}, []string{`entry "compose.yaml"`, `names it "../../x.yaml"`}},
		{"local crc", forgery{local: func(i int, h *zentry) {
			if i == 2 {
				h.crc ^= 1
			}
		}}, []string{`entry "` + imgName + `"`, "CRC-32"}},
		{"local sizes", forgery{local: func(i int, h *zentry) {
			if i == 0 {
				h.usize++
			}
		}}, []string{`entry "bundle.json"`, "sizes"}},
		{"local method", forgery{local: func(i int, h *zentry) {
			if i == 2 {
				h.method = methodDeflate
			}
		}}, []string{`entry "` + imgName + `"`, "method"}},
		{"local flags", forgery{localRaw: func(i int, h []byte) []byte {
			if i == 1 {
				le.PutUint16(h[6:], 0)
			}
			return h
		}}, []string{`entry "compose.yaml"`, "flags"}},
		{"data descriptor", forgery{localRaw: func(i int, h []byte) []byte {
			if i == 1 {
				le.PutUint16(h[6:], flagUTF8|flagDataDescriptor)
			}
			return h
		}, central: func(i int, h []byte) []byte {
			if i == 1 {
				le.PutUint16(h[8:], flagUTF8|flagDataDescriptor)
			}
			return h
		}}, []string{`entry "compose.yaml"`, "data descriptor"}},
		{"local extra field", forgery{localRaw: func(i int, h []byte) []byte {
			if i == 1 {
				le.PutUint16(h[28:], 4)
				h = append(h, 0x55, 0x54, 0, 0)
			}
			return h
		}}, []string{`entry "compose.yaml"`}},
		{"central extra field", forgery{central: func(i int, h []byte) []byte {
			if i == 1 {
				le.PutUint16(h[30:], 4)
				h = append(h, 0x55, 0x54, 0, 0)
			}
			return h
		}}, []string{`entry "compose.yaml"`, "extra fields"}},
		{"central comment", forgery{central: func(i int, h []byte) []byte {
			if i == 1 {
				le.PutUint16(h[32:], 2)
				h = append(h, 'h', 'i')
			}
			return h
		}}, []string{`entry "compose.yaml"`, "comment"}},
		{"gap between entries", forgery{gapAfter: map[int]int{1: 7}}, []string{`entry "` + imgName + `"`, `7-byte gap after entry "compose.yaml"`}},
		{"gap before the directory", forgery{gapAfter: map[int]int{2: 5}}, []string{"5 bytes lie between the last entry", imgName}},
		{"data before the first entry", forgery{prefix: 64}, []string{`64 bytes precede the first entry "bundle.json"`}},
		{"self-extractor prefix", forgery{prefix: 64, relative: true}, []string{"64 bytes precede the first entry (the archive's offsets do not count them)"}},
		{"trailing data", forgery{trailing: []byte("appended")}, []string{"8 bytes follow the end-of-central-directory record"}},
		{"archive comment", forgery{comment: "hello"}, []string{"5 bytes follow the end-of-central-directory record"}},
		{"overlapping entries", forgery{nest: true}, []string{"overlap", "compose.yaml", imgName}},
		{"directory order differs", forgery{order: []int{0, 2, 1}}, []string{"compose.yaml", "in the central directory"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, path, err := openBytes(t, forge(t, tc.fg))
			if err == nil {
				r.Close()
				t.Fatal("Open accepted the bundle")
			}
			if !errors.Is(err, ErrNonCanonical) || !errors.Is(err, ErrStructure) {
				t.Fatalf("err = %v, want ErrNonCanonical and ErrStructure", err)
			}
			for _, s := range allSentinels {
				if errors.Is(err, s) {
					t.Errorf("err = %v also matches %v", err, s)
				}
			}
			msg := err.Error()
			for _, w := range append(tc.want, path, "volt bundle create") {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q: %s", w, msg)
				}
			}
			t.Log(msg)
		})
	}
}

// TestCanonicalAcceptsWhatVoltWrites: Write's output, signed or not, with
// and without Zip64 records, and a plain archive/zip archive pass.
func TestCanonicalAcceptsWhatVoltWrites(t *testing.T) {
	for _, limit := range []uint64{zip64Limit, 1000} {
		old := zip64Limit
		zip64Limit = limit
		dir := t.TempDir()
		for _, sign := range []bool{false, true} {
			path := filepath.Join(dir, "b.vbundle")
			opts := WriteOptions{}
			if sign {
				opts.Sign = fakeSign
			}
			writeTest(t, path, testEntries(t, dir, 5000), opts)
			r, err := Open(path)
			if err != nil {
				t.Fatalf("zip64Limit %d signed %v: %v", limit, sign, err)
			}
			r.Close()
		}
		zip64Limit = old
	}
	r, err := Open(craft(t, withManifest(baseFiles(), nil)))
	if err != nil {
		t.Fatalf("archive/zip bundle refused: %v", err)
	}
	r.Close()
}

// TestCanonicalZip64Tail: the Zip64 end records must sit exactly where
// Volt writes them and agree with the end record.
func TestCanonicalZip64Tail(t *testing.T) {
	old := zip64Limit
	zip64Limit = 1000
	defer func() { zip64Limit = old }()
	dir := t.TempDir()
	path := filepath.Join(dir, "z.vbundle")
	writeTest(t, path, testEntries(t, dir, 5000), WriteOptions{})
	good, _ := os.ReadFile(path)
	le := binary.LittleEndian
	end64 := len(good) - endLen - locator64Len - end64Len
	tests := map[string]func(b []byte) []byte{
		"bytes between directory and Zip64 end": func(b []byte) []byte {
			out := append(append(append([]byte{}, b[:end64]...), 0, 0, 0, 0), b[end64:]...)
			loc := len(out) - endLen - locator64Len
			le.PutUint64(out[loc+8:], uint64(end64+4))
			return out
		},
		"Zip64 count disagrees": func(b []byte) []byte {
			b = append([]byte{}, b...)
			le.PutUint64(b[end64+32:], 9)
			le.PutUint64(b[end64+24:], 9)
			return b
		},
		"locator elsewhere": func(b []byte) []byte {
			b = append([]byte{}, b...)
			le.PutUint64(b[len(b)-endLen-locator64Len+8:], 0)
			return b
		},
	}
	for name, mut := range tests {
		t.Run(name, func(t *testing.T) {
			r, _, err := openBytes(t, mut(good))
			if err == nil {
				r.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrNonCanonical) {
				t.Fatalf("err = %v, want ErrNonCanonical", err)
			}
			t.Log(err)
		})
	}
}

// BenchmarkOpen1000Entries measures Open (what `volt bundle inspect` does)
// of a bundle with 1000 small entries: the canonical check reads each local
// header once.
func BenchmarkOpen1000Entries(b *testing.B) {
	dir := b.TempDir()
	entries := testEntries(b, dir, 1<<20)
	for i := range 997 {
		entries = append(entries, Entry{Name: fmt.Sprintf("config/web/file-%04d.conf", i), Data: []byte("key = value\n"), Compress: i%2 == 0})
	}
	path := filepath.Join(dir, "many.vbundle")
	writeTest(b, path, entries, WriteOptions{Sign: fakeSign})
	for b.Loop() {
		r, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
