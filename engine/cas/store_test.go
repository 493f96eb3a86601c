package cas

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/volt-cli/volt/engine/digest"
)

func TestRoundTrip(t *testing.T) {
	s := newStore(t)
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{42}},
		{"under min chunk", randBytes(10, MinChunk-3)},
		{"odd size", randBytes(11, 5<<20+12345)},
		{"two blocks and a bit", randBytes(12, 2*blockSize+MaxChunk+7)},
		{"zeros", make([]byte, 3<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, st := put(t, s, tt.data)
			if want := Ref(sum256(tt.data)); ref != want {
				t.Fatalf("ref %s, want BLAKE3 of the data %s", ref, want)
			}
			if st.Size != int64(len(tt.data)) {
				t.Fatalf("stats size %d, want %d", st.Size, len(tt.data))
			}
			if got := get(t, s, ref); !bytes.Equal(got, tt.data) {
				t.Fatalf("get returned %d bytes that differ from the %d put", len(got), len(tt.data))
			}
			// Into a regular file, batches of chunks go out with writev.
			if got := getFile(t, s, ref); !bytes.Equal(got, tt.data) {
				t.Fatalf("get into a file: %d bytes that differ from the %d put", len(got), len(tt.data))
			}
			rc, err := s.Open(context.Background(), ref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("Open: %d bytes, %v", len(got), err)
			}
			info, err := s.Stat(ref)
			if err != nil || info.Size != int64(len(tt.data)) || info.Chunks != st.Chunks {
				t.Fatalf("Stat = %+v, %v; put stats %+v", info, err, st)
			}
			// A second put stores nothing new.
			if _, st2 := put(t, s, tt.data); st2.NewBytes != 0 || st2.NewChunks != 0 {
				t.Fatalf("second put stored %d new bytes", st2.NewBytes)
			}
		})
	}
	list, err := s.List(context.Background())
	if err != nil || len(list) != len(tests) {
		t.Fatalf("List: %d objects, %v; want %d", len(list), err, len(tests))
	}
}

// TestPutFileDigest: a real file round-trips, and its ref is its
// engine/digest digest (what bundle manifests record).
func TestPutFileDigest(t *testing.T) {
	path := "/usr/bin/qemu-system-x86_64"
	if _, err := os.Stat(path); err != nil {
		path = filepath.Join(t.TempDir(), "big")
		if err := os.WriteFile(path, randBytes(20, 24<<20+1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := newStore(t)
	ref, st, err := s.PutFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	d, size, err := digest.File(path)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Digest() != d || st.Size != size {
		t.Fatalf("PutFile ref %s size %d; digest.File %s size %d", ref.Digest(), st.Size, d, size)
	}
	want, _ := os.ReadFile(path)
	if got := get(t, s, ref); !bytes.Equal(got, want) {
		t.Fatal("get differs from the file")
	}
	if _, _, err := s.PutFile(context.Background(), filepath.Join(t.TempDir(), "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("PutFile of a missing file: %v", err)
	}
}

// mutate returns a copy of data with a prefix inserted and runs random
// runs of runLen bytes overwritten, spread evenly.
func mutate(data []byte, prefix, runs, runLen int, seed uint64) []byte {
	out := append(randBytes(seed, prefix), data...)
	stride := len(data) / runs
	noise := randBytes(seed+1, runs*runLen)
	for i := range runs {
		off := prefix + i*stride + (stride-runLen)/2
		copy(out[off:off+runLen], noise[i*runLen:])
	}
	return out
}

// TestDedupClustered: 1 % of a 64 MiB file changed in a few contiguous runs
// plus bytes inserted at the front costs at most 3 % new bytes. (16 runs in
// 2 GiB is one run per 128 MiB; 4 runs in 64 MiB is 8 times denser.)
func TestDedupClustered(t *testing.T) {
	s := newStore(t)
	base := randBytes(30, 64<<20)
	_, st := put(t, s, base)
	if st.NewBytes != st.Size || st.DedupRatio != 0 {
		t.Fatalf("first put: %+v", st)
	}
	v2 := mutate(base, 7, 4, len(base)/100/4, 31)
	ref, st := put(t, s, v2)
	frac := float64(st.NewBytes) / float64(st.Size)
	t.Logf("clustered 1%% change: %.2f%% new bytes (%d new chunks of %d)", 100*frac, st.NewChunks, st.Chunks)
	if frac > 0.03 {
		t.Fatalf("second put stored %.2f%% new bytes, want ≤ 3%%", 100*frac)
	}
	if d := st.DedupRatio; d < 0.97 || d > 1 {
		t.Fatalf("DedupRatio %v", d)
	}
	if got := get(t, s, ref); !bytes.Equal(got, v2) {
		t.Fatal("changed version does not round-trip")
	}
}

// TestConcurrentSamePut: writers storing the same chunks at once all succeed.
func TestConcurrentSamePut(t *testing.T) {
	s := newStore(t)
	data := randBytes(40, 6<<20)
	var wg sync.WaitGroup
	refs := make([]Ref, 4)
	errs := make([]error, 4)
	for i := range refs {
		wg.Go(func() { refs[i], _, errs[i] = s.Put(context.Background(), bytes.NewReader(data)) })
	}
	wg.Wait()
	for i := range refs {
		if errs[i] != nil || refs[i] != refs[0] {
			t.Fatalf("writer %d: %s, %v", i, refs[i], errs[i])
		}
	}
	if !bytes.Equal(get(t, s, refs[0]), data) {
		t.Fatal("round trip failed")
	}
}

func TestPutCancelledLeavesNothing(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Put(ctx, bytes.NewReader(randBytes(41, 1<<20))); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with cancelled ctx: %v", err)
	}
	if list, _ := s.List(context.Background()); len(list) != 0 {
		t.Fatalf("cancelled put left %d objects", len(list))
	}
	r := io.MultiReader(bytes.NewReader(randBytes(42, 3<<20)), errReader{})
	if _, _, err := s.Put(context.Background(), r); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Put of a failing reader: %v", err)
	}
	if list, _ := s.List(context.Background()); len(list) != 0 {
		t.Fatalf("failed put left %d objects", len(list))
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// chunkIDs returns the ids of an object's chunks.
func chunkIDs(t *testing.T, s *Store, ref Ref) []Chunk {
	t.Helper()
	x, err := s.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	return x.Chunks
}

// TestMissingAndCorruptChunks damages chunks in both layouts: packed, and
// loose (stores written before packs).
func TestMissingAndCorruptChunks(t *testing.T) {
	for _, layout := range []string{"packed", "loose"} {
		t.Run(layout, func(t *testing.T) {
			s := newStore(t)
			data := randBytes(50, 2<<20)
			var ref Ref
			if layout == "packed" {
				ref, _ = put(t, s, data)
			} else {
				ref = putLoose(t, s, data)
			}
			cs := chunkIDs(t, s, ref)
			if len(cs) < 6 {
				t.Fatalf("only %d chunks", len(cs))
			}
			// Corrupt chunk 2 (same size): Get names it.
			corruptChunk(t, s, cs[2])
			err := s.Get(context.Background(), ref, io.Discard)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), cs[2].ID.String()) || !strings.Contains(err.Error(), ref.String()) {
				t.Fatalf("Get with a corrupt chunk: %v", err)
			}
			f, err := os.Create(filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := s.Get(context.Background(), ref, f); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), cs[2].ID.String()) {
				t.Fatalf("Get into a file with a corrupt chunk: %v", err)
			}
			// Remove chunks 1, 4 and 5: Get names the first missing one.
			for _, i := range []int{1, 4, 5} {
				dropChunk(t, s, cs[i].ID)
			}
			err = s.Get(context.Background(), ref, io.Discard)
			if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), cs[1].ID.String()) || !strings.Contains(err.Error(), ref.String()) {
				t.Fatalf("Get with missing chunks: %v (want the first missing chunk %s)", err, cs[1].ID)
			}
			// Verify lists all four problems: chunk 2 corrupt, 1, 4 and 5 missing.
			rep, err := s.Verify(context.Background(), VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || len(rep.Problems) != 4 || rep.Chunks != len(cs) {
				t.Fatalf("Verify: %+v, want 4 problems in %d chunks", rep, len(cs))
			}
			kinds := map[ChunkID]string{}
			for _, p := range rep.Problems {
				kinds[p.Chunk] = p.Problem
				if len(p.Objects) != 1 || p.Objects[0] != ref {
					t.Fatalf("problem %+v does not name object %s", p, ref)
				}
			}
			if kinds[cs[2].ID] != ProblemCorrupt || kinds[cs[1].ID] != ProblemMissing || kinds[cs[4].ID] != ProblemMissing || kinds[cs[5].ID] != ProblemMissing {
				t.Fatalf("problems %v", kinds)
			}
			// A damaged index is reported, and an absent object is ErrMissing.
			ib, _ := os.ReadFile(s.indexFile(ref))
			ib[20] ^= 1
			os.WriteFile(s.indexFile(ref), ib, 0o644)
			rep, err = s.Verify(context.Background(), VerifyOptions{})
			if err != nil || len(rep.BadObjects) != 1 || rep.BadObjects[0].Ref != ref || !strings.Contains(rep.BadObjects[0].Error, "checksum") {
				t.Fatalf("Verify with a damaged index: %+v, %v", rep, err)
			}
			if err := s.Get(context.Background(), Ref{}, io.Discard); !errors.Is(err, ErrMissing) {
				t.Fatalf("Get of an absent object: %v", err)
			}
		})
	}
}

func TestStatAndPins(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	ref, _ := put(t, s, randBytes(60, 100000), WithPin("web-1.0"))
	if err := s.Pin(ctx, "also", ref); err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(ref)
	if err != nil || strings.Join(info.Pins, ",") != "also,web-1.0" {
		t.Fatalf("Stat: %+v, %v", info, err)
	}
	for _, bad := range []string{"", "../x", ".hidden", "a/b", strings.Repeat("x", 200)} {
		if err := s.Pin(ctx, bad, ref); !errors.Is(err, ErrBadPin) {
			t.Errorf("Pin(%q): %v", bad, err)
		}
	}
	if err := s.Unpin(ctx, "also"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin(ctx, "never-pinned"); err != nil {
		t.Fatal(err)
	}
	pins, _ := s.Pins()
	if len(pins) != 1 || pins["web-1.0"] != ref {
		t.Fatalf("pins %v", pins)
	}
	if _, err := s.Stat(Ref{1}); !errors.Is(err, ErrMissing) {
		t.Fatalf("Stat of an absent object: %v", err)
	}
}

func TestAdvance(t *testing.T) {
	bufs := func() [][]byte { return [][]byte{[]byte("abc"), nil, []byte("de"), []byte("f")} }
	for _, tc := range []struct {
		n    int
		want string // remaining bytes, buffers separated by |
	}{
		{0, "abc||de|f"},
		{1, "bc||de|f"},
		{3, "de|f"},
		{4, "e|f"},
		{5, "f"},
		{6, ""},
	} {
		var parts []string
		for _, b := range advance(bufs(), tc.n) {
			parts = append(parts, string(b))
		}
		if got := strings.Join(parts, "|"); got != tc.want {
			t.Errorf("advance(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
