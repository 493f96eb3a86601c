package cas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// packFiles lists the files in packs/ (catalog and lock left out).
func packFiles(t testing.TB, s *Store) []string {
	t.Helper()
	ents, err := os.ReadDir(s.packsDir())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != "catalog" && e.Name() != ".catalog.lock" {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestPackIndexRoundTrip(t *testing.T) {
	x := sampleIndex()
	p := &PackIndex{Size: x.Size, Chunks: x.Chunks}
	b, _ := p.MarshalBinary()
	q, err := ParsePackIndex(b)
	if err != nil || q.Size != p.Size || len(q.Chunks) != len(p.Chunks) {
		t.Fatalf("round trip: %+v, %v", q, err)
	}
	// An object index is not a pack index, nor the reverse.
	ob, _ := x.MarshalBinary()
	if _, err := ParsePackIndex(ob); !errors.Is(err, ErrBadPack) {
		t.Fatalf("object index parsed as a pack index: %v", err)
	}
	if _, err := ParseIndex(b); !errors.Is(err, ErrBadIndex) {
		t.Fatalf("pack index parsed as an object index: %v", err)
	}
}

func TestParseCatalog(t *testing.T) {
	n1, n2 := newPackName(), newPackName()
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"", 0, true},
		{n1 + "\n", 1, true},
		{n1 + "\n" + n2 + "\n", 2, true},
		{n1, 0, false},
		{"\n", 0, false},
		{n1 + "\n\n", 0, false},
		{"../lock\n", 0, false},
		{strings.ToUpper(n1) + "\n", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseCatalog([]byte(tt.in))
		if (err == nil) != tt.ok || len(got) != tt.want {
			t.Errorf("ParseCatalog(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func FuzzParsePackIndex(f *testing.F) {
	x := sampleIndex()
	b, _ := (&PackIndex{Size: x.Size, Chunks: x.Chunks}).MarshalBinary()
	f.Add(b)
	f.Add([]byte(packMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePackIndex(b)
		if err != nil {
			if !errors.Is(err, ErrBadPack) {
				t.Fatalf("error does not wrap ErrBadPack: %v", err)
			}
			return
		}
		var total int64
		for _, c := range p.Chunks {
			total += int64(c.Size)
		}
		if total != p.Size {
			t.Fatalf("sizes add up to %d, index says %d", total, p.Size)
		}
		if again, _ := p.MarshalBinary(); !bytes.Equal(again, b) {
			t.Fatal("does not re-encode to the same bytes")
		}
	})
}

func FuzzParseCatalog(f *testing.F) {
	f.Add([]byte(newPackName() + "\n"))
	f.Add([]byte("x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		names, err := ParseCatalog(b)
		if err != nil {
			return
		}
		for _, n := range names {
			if !validPackName(n) || strings.ContainsAny(n, "/.") {
				t.Fatalf("accepted %q", n)
			}
		}
	})
}

// TestPutWritesPacks: a put writes its chunks into one pack with an index
// and a catalog entry, not one file per chunk.
func TestPutWritesPacks(t *testing.T) {
	s := newStore(t)
	data := randBytes(150, 5<<20)
	ref, st := put(t, s, data)
	files := packFiles(t, s)
	if len(files) != 2 || !strings.HasSuffix(files[0], ".idx") || !strings.HasSuffix(files[1], ".pack") {
		t.Fatalf("packs/ holds %v, want one pack and its index", files)
	}
	if shards, _ := os.ReadDir(filepath.Join(s.Root(), "chunks")); len(shards) != 0 {
		t.Fatalf("put wrote loose chunks: %d shard dirs", len(shards))
	}
	cat, _ := os.ReadFile(filepath.Join(s.Root(), CatalogPath))
	if names, err := ParseCatalog(cat); err != nil || len(names) != 1 || names[0]+".idx" != files[0] {
		t.Fatalf("catalog %q: %v", cat, err)
	}
	fi, _ := os.Stat(filepath.Join(s.packsDir(), files[1]))
	if fi.Size() != st.NewBytes || st.NewChunks != st.Chunks {
		t.Fatalf("pack holds %d bytes, put stored %+v", fi.Size(), st)
	}
	// The pack holds the object's chunks in the object's order.
	pb, _ := os.ReadFile(filepath.Join(s.packsDir(), files[0]))
	px, err := ParsePackIndex(pb)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := s.Index(ref)
	if len(px.Chunks) != len(x.Chunks) {
		t.Fatalf("pack lists %d chunks, object %d", len(px.Chunks), len(x.Chunks))
	}
	for i := range x.Chunks {
		if px.Chunks[i] != x.Chunks[i] {
			t.Fatalf("pack chunk %d is %s, object's is %s", i, px.Chunks[i].ID, x.Chunks[i].ID)
		}
	}
	// A fresh Store on the same root (another process) reads it.
	s2, err := Open(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(get(t, s2, ref), data) {
		t.Fatal("another Store cannot read the pack")
	}
}

// TestPutFailureLeavesNothing: a put that fails part way (a read error, a
// cancelled context) leaves no pack, temporary file or chunk behind.
func TestPutFailureLeavesNothing(t *testing.T) {
	s := newStore(t)
	r := &failAfter{data: randBytes(151, 3<<20)}
	if _, _, err := s.Put(context.Background(), r); err == nil {
		t.Fatal("put of a failing reader succeeded")
	}
	if files := packFiles(t, s); len(files) != 0 {
		t.Fatalf("failed put left %v in packs/", files)
	}
	if shards, _ := os.ReadDir(filepath.Join(s.Root(), "chunks")); len(shards) != 0 {
		t.Fatal("failed put left loose chunks")
	}
}

// failAfter yields its data, then fails.
type failAfter struct{ data []byte }

func (f *failAfter) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, errors.New("disk on fire")
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// TestPutFullDisk fills a small tmpfs made by the test: the put fails with
// one clear error and leaves no pack or temporary file behind, and the
// store still works once there is room.
func TestPutFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if exec.Command("umount", dir).Run() != nil {
			exec.Command("umount", "-l", dir).Run()
		}
	})
	s, err := Open(filepath.Join(dir, "cas"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	small := randBytes(152, 1<<20)
	ref, _ := put(t, s, small)
	_, _, err = s.Put(context.Background(), bytes.NewReader(randBytes(153, 8<<20)))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("put on a full disk: %v", err)
	}
	files := packFiles(t, s)
	if len(files) != 2 {
		t.Fatalf("failed put left %v in packs/ (want only the first put's pack and index)", files)
	}
	if !bytes.Equal(get(t, s, ref), small) {
		t.Fatal("the earlier object is damaged")
	}
	if rep, err := s.Verify(context.Background(), VerifyOptions{Deep: true}); err != nil || !rep.OK() {
		t.Fatalf("verify after a full disk: %+v, %v", rep, err)
	}
	put(t, s, randBytes(154, 1<<20))
}

// TestReputHealsIndex: an empty or damaged index is reported by ListAll and
// rewritten by putting the same bytes again.
func TestReputHealsIndex(t *testing.T) {
	for _, damage := range []string{"empty", "garbage", "flipped"} {
		t.Run(damage, func(t *testing.T) {
			s := newStore(t)
			data := randBytes(160, 1<<20)
			ref, _ := put(t, s, data)
			b, _ := os.ReadFile(s.indexFile(ref))
			switch damage {
			case "empty":
				b = nil
			case "garbage":
				b = []byte("junk")
			case "flipped":
				b[len(b)/2] ^= 1
			}
			os.WriteFile(s.indexFile(ref), b, 0o644)
			list, skipped, err := s.ListAll(context.Background())
			if err != nil || len(list) != 0 || len(skipped) != 1 || skipped[0].Ref != ref || !strings.Contains(skipped[0].Error, "invalid object index") {
				t.Fatalf("ListAll with a bad index: %v %+v %v", list, skipped, err)
			}
			_, st := put(t, s, data)
			if !st.RepairedIndex || st.NewBytes != 0 {
				t.Fatalf("re-put: %+v, want the index repaired and nothing new", st)
			}
			if list, skipped, _ := s.ListAll(context.Background()); len(list) != 1 || len(skipped) != 0 {
				t.Fatalf("after re-put: %v, skipped %v", list, skipped)
			}
			if !bytes.Equal(get(t, s, ref), data) {
				t.Fatal("healed object differs")
			}
			if _, st := put(t, s, data); st.RepairedIndex {
				t.Fatal("a good index was reported repaired")
			}
		})
	}
}

// TestVerifyCountsStoredChunks: with no object readable, verify still
// checks (and counts) every stored chunk, packed and loose, and finds a
// corrupt one nothing uses.
func TestVerifyCountsStoredChunks(t *testing.T) {
	s := newStore(t)
	ref, st := put(t, s, randBytes(170, 2<<20))
	lref := putLoose(t, s, randBytes(171, 1<<20))
	lx, _ := s.Index(lref)
	os.WriteFile(s.indexFile(ref), nil, 0o644)
	os.Remove(s.indexFile(lref))
	rep, err := s.Verify(context.Background(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := st.Chunks + len(lx.Chunks); rep.Chunks != want || rep.Objects != 0 || len(rep.BadObjects) != 1 {
		t.Fatalf("verify: %d chunks checked, want %d: %+v", rep.Chunks, want, rep)
	}
	corruptChunk(t, s, lx.Chunks[0])
	rep, _ = s.Verify(context.Background(), VerifyOptions{})
	if len(rep.Problems) != 1 || rep.Problems[0].Problem != ProblemCorrupt || len(rep.Problems[0].Objects) != 0 {
		t.Fatalf("verify with a corrupt unused chunk: %+v", rep.Problems)
	}
	if b, _ := json.Marshal(rep); !strings.Contains(string(b), `"objects":[]`) {
		t.Fatalf("JSON of an unused chunk's problem: %s", b)
	}
}

// TestTornPackTail: a pack cut short (a crash without sync, a damaged disk)
// loses only the chunks past the cut; they read as missing and a re-put
// writes them again.
func TestTornPackTail(t *testing.T) {
	s := newStore(t)
	data := randBytes(180, 3<<20)
	ref, _ := put(t, s, data)
	l, _ := s.lookup(chunkIDs(t, s, ref)[0].ID)
	last := l.p.chunks[len(l.p.chunks)-1] // the pack's last chunk
	path, off := chunkAt(t, s, last.ID)
	if err := os.Truncate(path, off+int64(last.Size)/2); err != nil {
		t.Fatal(err)
	}
	s2, _ := Open(s.Root())
	s2.Sync = SyncNone
	rep, err := s2.Verify(context.Background(), VerifyOptions{})
	if err != nil || len(rep.Problems) != 1 || rep.Problems[0].Chunk != last.ID || rep.Problems[0].Problem != ProblemMissing {
		t.Fatalf("verify of a torn pack: %+v, %v", rep, err)
	}
	if _, st := put(t, s2, data); st.NewChunks != 1 {
		t.Fatalf("re-put wrote %d chunks, want the 1 lost", st.NewChunks)
	}
	if rep, _ := s2.Verify(context.Background(), VerifyOptions{Deep: true}); !rep.OK() {
		t.Fatalf("verify after re-put: %+v", rep)
	}
}

// TestGCRepacks: dropping an object whose pack also holds chunks a live
// object uses repacks the live chunks and frees the rest; a pack with
// nothing live goes whole.
func TestGCRepacks(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	base := randBytes(190, 4<<20)
	a, _ := put(t, s, base)                                         // pack 1: all of base
	b, _ := put(t, s, mutate(base, 0, 2, 60000, 191), WithPin("b")) // pack 2: b's new chunks; shares most of pack 1
	c, _ := put(t, s, randBytes(192, 1<<20))                        // pack 3: c only
	dry, err := s.GC(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.GC(ctx, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksRepacked != 1 || rep.PacksRemoved != 1 || len(rep.ObjectsRemoved) != 2 {
		t.Fatalf("gc: %+v", rep)
	}
	if dry.ChunksRemoved != rep.ChunksRemoved || dry.BytesFreed != rep.BytesFreed || dry.PacksRepacked != 1 {
		t.Fatalf("dry run %+v differs from gc %+v", dry, rep)
	}
	if s.Has(a) || s.Has(c) || !s.Has(b) {
		t.Fatal("gc kept or removed the wrong objects")
	}
	// Every stored chunk is one b uses: nothing dead is left in any pack.
	bx, _ := s.Index(b)
	used := map[ChunkID]bool{}
	for _, ch := range bx.Chunks {
		used[ch.ID] = true
	}
	stored, _ := s.storedChunks(ctx)
	if len(stored) != len(used) {
		t.Fatalf("%d chunks stored after gc, b uses %d", len(stored), len(used))
	}
	for _, ch := range stored {
		if !used[ch.ID] {
			t.Fatalf("dead chunk %s left", ch.ID)
		}
	}
	if v, err := s.Verify(ctx, VerifyOptions{Deep: true}); err != nil || !v.OK() || v.Objects != 1 {
		t.Fatalf("verify after repack: %+v, %v", v, err)
	}
	// Nothing left; JSON lists removed objects as [] then, never null.
	again, _ := s.GC(ctx, nil, false)
	if again.ChunksRemoved != 0 || again.PacksRepacked != 0 {
		t.Fatalf("second gc: %+v", again)
	}
	if j, _ := json.Marshal(again); !strings.Contains(string(j), `"objectsRemoved":[]`) {
		t.Fatalf("gc JSON: %s", j)
	}
}

// TestLooseStoreCompat: a store written before packs (loose chunk files)
// reads, verifies, dedups, serves and collects as before; new chunks go
// into packs beside the loose ones.
func TestLooseStoreCompat(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	base := randBytes(200, 3<<20)
	old := putLoose(t, s, base)
	if !bytes.Equal(get(t, s, old), base) {
		t.Fatal("loose object does not read")
	}
	ox, _ := s.Index(old)
	if rep, err := s.Verify(ctx, VerifyOptions{Deep: true}); err != nil || !rep.OK() || rep.Chunks != len(ox.Chunks) {
		t.Fatalf("verify of a loose store: %+v, %v", rep, err)
	}
	if _, st := put(t, s, base); st.NewBytes != 0 || st.RepairedIndex {
		t.Fatalf("re-put of a loose object stored %+v", st)
	}
	v2 := mutate(base, 5, 2, 40000, 201)
	ref, st := put(t, s, v2, WithPin("v2"))
	if st.NewChunks == 0 || st.NewChunks > st.Chunks/3 {
		t.Fatalf("put beside loose chunks: %+v", st)
	}
	// Served: a loose chunk and a packed one, by Handler and by a static
	// server fetch into another store.
	srv := httptest.NewServer(Handler(s))
	defer srv.Close()
	dst := newStore(t)
	if _, err := dst.Fetch(ctx, ref, []string{srv.URL}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(get(t, dst, ref), v2) {
		t.Fatal("fetched mixed object differs")
	}
	// gc keeps the loose chunks v2 shares and removes the rest.
	rep, err := s.GC(ctx, nil, false)
	if err != nil || rep.ChunksRemoved == 0 || rep.ChunksRemoved > len(ox.Chunks)/3 {
		t.Fatalf("gc of a mixed store: %+v, %v", rep, err)
	}
	if !bytes.Equal(get(t, s, ref), v2) {
		t.Fatal("gc damaged the live object")
	}
	// Once no object uses a loose chunk, gc leaves no shard directory.
	if err := s.Unpin(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx, nil, false); err != nil {
		t.Fatal(err)
	}
	if s.hasLooseChunks() {
		t.Fatal("gc left loose chunk directories")
	}
}

// TestReaderAfterRepack: a reader (another Store on the root, as another
// process) keeps reading while gc repacks what it reads, and once it
// looks again it closes the removed pack, so its space is freed.
func TestReaderAfterRepack(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, b := randBytes(220, 2<<20), randBytes(221, 2<<20)
	put(t, s, append(append([]byte{}, a...), b...)) // one pack: a's chunks and b's
	ra, _ := put(t, s, a, WithPin("a"))             // all deduplicated into that pack
	reader, err := Open(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if !bytes.Equal(get(t, reader, ra), a) {
		t.Fatal("reader: object differs")
	}
	old, _ := chunkAt(t, reader, chunkIDs(t, s, ra)[0].ID)
	if rep, err := s.GC(ctx, nil, false); err != nil || rep.PacksRepacked != 1 {
		t.Fatalf("gc: %+v, %v", rep, err)
	}
	if !bytes.Equal(get(t, reader, ra), a) { // through the pack it holds open
		t.Fatal("reader: object differs after the repack")
	}
	openDeleted := func() bool {
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); l == old+" (deleted)" {
				return true
			}
		}
		return false
	}
	if !openDeleted() {
		t.Skip("the reader does not hold the removed pack open: nothing to check")
	}
	if _, err := reader.refreshPacks(); err != nil {
		t.Fatal(err)
	}
	if openDeleted() {
		t.Fatal("the reader still holds the removed pack open after looking again")
	}
	if !bytes.Equal(get(t, reader, ra), a) {
		t.Fatal("reader: object differs after looking again")
	}
}
