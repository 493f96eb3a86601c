package cas

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGC(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	shared := randBytes(120, 2<<20)
	a, _ := put(t, s, append(append([]byte{}, shared...), randBytes(121, 1<<20)...), WithPin("a"))
	b, _ := put(t, s, append(append([]byte{}, shared...), randBytes(122, 1<<20)...))
	c, _ := put(t, s, randBytes(123, 1<<20))
	d, _ := put(t, s, randBytes(124, 500000))
	// Leftovers of an interrupted writer.
	os.MkdirAll(filepath.Join(s.Root(), "chunks", "ab"), 0o755)
	if err := os.WriteFile(filepath.Join(s.Root(), "chunks", "ab", ".tmp-123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}

	dry, err := s.GC(ctx, []Ref{c}, true)
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || len(dry.ObjectsRemoved) != 2 || dry.TempRemoved != 1 || dry.BytesFreed == 0 {
		t.Fatalf("dry run: %+v", dry)
	}
	for _, r := range []Ref{a, b, c, d} {
		if !s.Has(r) {
			t.Fatalf("dry run removed %s", r)
		}
	}
	rep, err := s.GC(ctx, []Ref{c}, false)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rep.ObjectsRemoved, func(x, y Ref) int { return bytes.Compare(x[:], y[:]) })
	want := []Ref{b, d}
	slices.SortFunc(want, func(x, y Ref) int { return bytes.Compare(x[:], y[:]) })
	if !slices.Equal(rep.ObjectsRemoved, want) || rep.ChunksRemoved != dry.ChunksRemoved || rep.BytesFreed != dry.BytesFreed {
		t.Fatalf("gc: %+v; dry run said %+v", rep, dry)
	}
	if rep.ObjectsKept != 2 || rep.Roots != 2 {
		t.Fatalf("gc kept %d objects of %d roots", rep.ObjectsKept, rep.Roots)
	}
	// The kept objects are whole, chunks shared with b included.
	v, err := s.Verify(ctx, VerifyOptions{Deep: true})
	if err != nil || !v.OK() || v.Objects != 2 {
		t.Fatalf("verify after gc: %+v, %v", v, err)
	}
	// Nothing left to collect; a missing root is reported, not fatal.
	rep, err = s.GC(ctx, []Ref{c, b}, false)
	if err != nil || len(rep.ObjectsRemoved) != 0 || rep.ChunksRemoved != 0 || len(rep.MissingRoots) != 1 {
		t.Fatalf("second gc: %+v, %v", rep, err)
	}
	// A root whose index is damaged stops gc rather than losing its chunks.
	os.WriteFile(s.indexFile(a), []byte("junk"), 0o644)
	if _, err := s.GC(ctx, nil, false); err == nil {
		t.Fatal("gc with a damaged root index succeeded")
	}
	if _, err := os.Stat(s.indexFile(c)); err != nil {
		t.Fatal("failed gc removed an object")
	}
}

// TestGCRacingPuts runs gc in a loop while writers put objects that share
// chunks with objects gc is collecting: every pinned object must stay whole.
func TestGCRacingPuts(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	pool := randBytes(130, 4<<20)
	const writers, rounds = 3, 6
	var done atomic.Bool
	var gcs atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		for !done.Load() {
			if _, err := s.GC(ctx, nil, false); err != nil {
				t.Error(err)
				return
			}
			gcs.Add(1)
			time.Sleep(time.Millisecond)
		}
	})
	kept := make([]map[Ref][]byte, writers)
	var wwg sync.WaitGroup
	for w := range writers {
		kept[w] = map[Ref][]byte{}
		wwg.Go(func() {
			for i := range rounds {
				// Segments of the shared pool: chunks repeat across
				// objects, so puts dedup against objects gc is removing.
				var data []byte
				for k := range 3 {
					off := ((w*rounds + i + k) * 700000) % (len(pool) - 1<<20)
					data = append(data, pool[off:off+1<<20]...)
				}
				pin := fmt.Sprintf("w%d-%d", w, i)
				ref, _, err := s.Put(ctx, bytes.NewReader(data), WithPin(pin))
				if err != nil {
					t.Error(err)
					return
				}
				var got bytes.Buffer
				if err := s.Get(ctx, ref, &got); err != nil || !bytes.Equal(got.Bytes(), data) {
					t.Errorf("writer %d round %d: pinned object lost under gc: %v", w, i, err)
					return
				}
				kept[w][ref] = data
				if i%2 == 1 { // drop every other object: gc collects it
					if err := s.Unpin(ctx, pin); err != nil {
						t.Error(err)
						return
					}
					delete(kept[w], ref)
				}
			}
		})
	}
	wwg.Wait()
	done.Store(true)
	wg.Wait()
	if _, err := s.GC(ctx, nil, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d gc runs raced %d puts", gcs.Load(), writers*rounds)
	for _, m := range kept {
		for ref, data := range m {
			if got := get(t, s, ref); !bytes.Equal(got, data) {
				t.Fatalf("object %s lost", ref)
			}
		}
	}
	if list, _ := s.List(ctx); len(list) != writers*rounds/2 {
		t.Fatalf("%d objects left, want the %d pinned", len(list), writers*rounds/2)
	}
}
