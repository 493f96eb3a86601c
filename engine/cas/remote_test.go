package cas

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// twoVersions fills src with a base object and a changed version of it, and
// dst with the base only: fetching the new version must move only the
// changed chunks.
func twoVersions(t *testing.T, src, dst *Store) (newRef Ref, newData []byte) {
	t.Helper()
	base := randBytes(70, 8<<20)
	put(t, src, base)
	put(t, dst, base)
	newData = mutate(base, 3, 2, 50000, 71)
	newRef, _ = put(t, src, newData)
	return newRef, newData
}

// checkFetch fetches newRef from url into dst and checks only changed
// chunks moved and the object reassembles.
func checkFetch(t *testing.T, dst *Store, url string, ref Ref, want []byte) {
	t.Helper()
	st, err := dst.Fetch(context.Background(), ref, []string{url})
	if err != nil {
		t.Fatal(err)
	}
	if st.Fetched == 0 || st.Fetched > st.Chunks/4 {
		t.Fatalf("fetched %d of %d chunks; want only the changed ones", st.Fetched, st.Chunks)
	}
	if got := get(t, dst, ref); !bytes.Equal(got, want) {
		t.Fatal("fetched object differs")
	}
	// Everything is local now: a second fetch downloads nothing.
	if st, err := dst.Fetch(context.Background(), ref, []string{url}); err != nil || st.Fetched != 0 {
		t.Fatalf("second fetch: %+v, %v", st, err)
	}
}

func TestFetchFromHandler(t *testing.T) {
	src, dst := newStore(t), newStore(t)
	ref, data := twoVersions(t, src, dst)
	// A damaged local copy of a shared chunk is replaced, not trusted.
	shared := chunkIDs(t, src, ref)[len(chunkIDs(t, src, ref))/2]
	overwriteChunk(t, dst, shared.ID, make([]byte, shared.Size))
	srv := httptest.NewServer(Handler(src))
	defer srv.Close()
	checkFetch(t, dst, srv.URL, ref, data)
	if rep, err := dst.Verify(context.Background(), VerifyOptions{}); err != nil || !rep.OK() {
		t.Fatalf("verify after fetch: %+v, %v", rep, err)
	}
}

// TestFetchFromStaticServer serves a store root with a plain static file
// server on loopback: the layout needs nothing else.
func TestFetchFromStaticServer(t *testing.T) {
	servers := []struct {
		name string
		tool string
		args func(root, addr string) []string
	}{
		{"busybox httpd", "busybox", func(root, addr string) []string { return []string{"httpd", "-f", "-p", addr, "-h", root} }},
		{"python http.server", "python3", func(root, addr string) []string {
			host, port, _ := net.SplitHostPort(addr)
			return []string{"-m", "http.server", "--bind", host, "--directory", root, port}
		}},
	}
	for _, sv := range servers {
		t.Run(sv.name, func(t *testing.T) {
			tool, err := exec.LookPath(sv.tool)
			if err != nil {
				t.Skipf("%s not installed", sv.tool)
			}
			src, dst := newStore(t), newStore(t)
			ref, data := twoVersions(t, src, dst)
			addr := freeAddr(t)
			cmd := exec.Command(tool, sv.args(src.Root(), addr)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			url := "http://" + addr
			waitHTTP(t, url+"/"+IndexPath(ref))
			checkFetch(t, dst, url, ref, data)
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatalf("server at %s did not come up", url)
}

func TestHandlerServesOnlyTheLayout(t *testing.T) {
	s := newStore(t)
	ref, _ := put(t, s, randBytes(80, 300000), WithPin("p"))
	c := chunkIDs(t, s, ref)[0]
	srv := httptest.NewServer(Handler(s))
	defer srv.Close()
	tests := []struct {
		method, path string
		status       int
	}{
		{"GET", "/" + IndexPath(ref), 200},
		{"HEAD", "/" + ChunkPath(c.ID), 200},
		{"GET", "/" + ChunkPath(c.ID), 200},
		{"GET", "/" + strings.Replace(ChunkPath(c.ID), "/"+c.ID.String()[:2]+"/", "/00/", 1), 404},
		{"GET", "/chunks/" + c.ID.String()[:2] + "/" + strings.Repeat("0", 64), 404},
		{"GET", "/lock", 404},
		{"GET", "/" + CatalogPath, 404}, // packed chunks are served under chunks/
		{"GET", "/packs/.catalog.lock", 404},
		{"GET", "/pins/p", 404},
		{"GET", "/", 404},
		{"GET", "/chunks/../lock", 404},
		{"PUT", "/" + ChunkPath(c.ID), 405},
		{"DELETE", "/" + IndexPath(ref), 405},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
		}
	}
}

// TestCorruptionRepair corrupts and deletes chunks, then repairs them from
// a remote holding good copies.
func TestCorruptionRepair(t *testing.T) {
	good, s := newStore(t), newStore(t)
	data := randBytes(90, 3<<20)
	ref, _ := put(t, good, data)
	put(t, s, data)
	cs := chunkIDs(t, s, ref)
	overwriteChunk(t, s, cs[1].ID, randBytes(91, int(cs[1].Size)))
	dropChunk(t, s, cs[3].ID)
	srv := httptest.NewServer(Handler(good))
	defer srv.Close()

	rep, err := s.Verify(context.Background(), VerifyOptions{RepairFrom: []string{srv.URL}, Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 2 || !rep.OK() {
		t.Fatalf("Verify with repair: %+v", rep)
	}
	rep, err = s.Verify(context.Background(), VerifyOptions{Deep: true})
	if err != nil || len(rep.Problems) != 0 || len(rep.BadObjects) != 0 || rep.Objects != 1 {
		t.Fatalf("Verify after repair: %+v, %v", rep, err)
	}
	if !bytes.Equal(get(t, s, ref), data) {
		t.Fatal("repaired object differs")
	}
}

// garbageServer serves good indexes from s but garbage for every chunk.
func garbageServer(s *Store) *httptest.Server {
	h := Handler(s)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/chunks/") {
			w.Write(bytes.Repeat([]byte("garbage!"), 9000))
			return
		}
		h.ServeHTTP(w, r)
	}))
}

func TestFetchFaults(t *testing.T) {
	src := newStore(t)
	data := randBytes(100, 2<<20)
	ref, _ := put(t, src, data)
	good := httptest.NewServer(Handler(src))
	defer good.Close()
	garbage := garbageServer(src)
	defer garbage.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	var tried sync.Map
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, again := tried.LoadOrStore(r.URL.Path, true); !again {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		Handler(src).ServeHTTP(w, r)
	}))
	defer flaky.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	empty := httptest.NewServer(Handler(newStore(t)))
	defer empty.Close()

	tests := []struct {
		name    string
		remotes []string
		wantErr error
		text    string
		timeout time.Duration // per request; default 10 s
	}{
		{"garbage refused", []string{garbage.URL}, ErrCorrupt, "chunk", 0},
		{"down", []string{down.URL}, ErrRemote, down.URL, 0},
		{"slow", []string{slow.URL}, ErrRemote, "deadline", 300 * time.Millisecond},
		{"not there", []string{empty.URL}, ErrMissing, ref.String(), 0},
		{"no remotes", nil, ErrMissing, "no remotes", 0},
		{"bad url", []string{"ftp://x"}, ErrRemote, "ftp://x", 0},
		{"garbage then good", []string{garbage.URL, good.URL}, nil, "", 0},
		{"flaky (retried)", []string{flaky.URL}, nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := newStore(t)
			timeout := cmp.Or(tt.timeout, 10*time.Second)
			dst.Remote = RemoteOptions{Retries: 1, Backoff: time.Millisecond, Timeout: timeout}
			_, err := dst.Fetch(context.Background(), ref, tt.remotes)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(get(t, dst, ref), data) {
					t.Fatal("fetched object differs")
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Fetch: %v; want %v mentioning %q", err, tt.wantErr, tt.text)
			}
			if dst.Has(ref) {
				t.Fatal("failed fetch published the index")
			}
		})
	}
}

// TestFetchLyingIndex: a remote whose index lists good chunks of another
// object under the wanted ref is caught by the whole-object check.
func TestFetchLyingIndex(t *testing.T) {
	src := newStore(t)
	real, _ := put(t, src, randBytes(110, 1<<20))
	x, _ := src.Index(real)
	wanted := Ref(sum256([]byte("something else")))
	x.Ref = wanted
	b, _ := x.MarshalBinary()
	if err := writeAtomic(src.indexFile(wanted), b, false); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(src))
	defer srv.Close()
	dst := newStore(t)
	if _, err := dst.Fetch(context.Background(), wanted, []string{srv.URL}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Fetch of a lying index: %v", err)
	}
	if dst.Has(wanted) {
		t.Fatal("lying index published")
	}
}

func ExampleParseRef() {
	r, err := ParseRef("stellarium://" + strings.Repeat("0f", 32))
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Digest()[:20])
	// Output: blake3:0f0f0f0f0f0f0
}

func TestRuns(t *testing.T) {
	id := func(i byte) ChunkID { return ChunkID{i} }
	ck := func(i byte, size uint32) Chunk { return Chunk{ID: id(i), Size: size} }
	cat := map[ChunkID]remoteLoc{
		id(1): {"p", 0, 100},
		id(2): {"p", 100, 50},
		id(3): {"p", 150, 10},
		id(4): {"q", 160, 10}, // another pack
		id(5): {"p", 1000, 10},
		id(6): {"p", 1010, maxRun - 20},
		id(7): {"p", 1010 + maxRun - 20, 20},
	}
	tests := []struct {
		name string
		need []Chunk
		want []int // run lengths
	}{
		{"no catalog", []Chunk{ck(1, 100), ck(2, 50)}, []int{1, 1}},
		{"adjacent", []Chunk{ck(1, 100), ck(2, 50), ck(3, 10)}, []int{3}},
		{"other pack", []Chunk{ck(2, 50), ck(3, 10), ck(4, 10)}, []int{2, 1}},
		{"gap", []Chunk{ck(1, 100), ck(3, 10)}, []int{1, 1}},
		{"out of order", []Chunk{ck(2, 50), ck(1, 100)}, []int{1, 1}},
		{"size differs", []Chunk{ck(1, 100), ck(2, 49), ck(3, 10)}, []int{1, 1, 1}},
		{"unlisted", []Chunk{ck(1, 100), ck(9, 10), ck(2, 50)}, []int{1, 1, 1}},
		{"too long", []Chunk{ck(5, 10), ck(6, maxRun-20), ck(7, 20)}, []int{2, 1}},
	}
	for _, tt := range tests {
		c := cat
		if tt.name == "no catalog" {
			c = nil
		}
		var got []int
		for _, r := range runs(c, tt.need) {
			got = append(got, len(r))
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: runs %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestFetchRangesFromStaticServer: from a static server over a packed
// store, the changed chunks come in few Range requests into the packs.
func TestFetchRangesFromStaticServer(t *testing.T) {
	src, dst := newStore(t), newStore(t)
	base := randBytes(210, 6<<20)
	put(t, dst, base)
	put(t, src, base)
	data := append(randBytes(211, 2<<20), base...) // 2 MiB of new chunks in front
	ref, _ := put(t, src, data)
	var packGets, chunkGets atomic.Int32
	fs := http.FileServer(http.Dir(src.Root()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, ".pack"):
			if r.Header.Get("Range") == "" {
				t.Errorf("GET %s without Range", r.URL.Path)
			}
			packGets.Add(1)
		case strings.HasPrefix(r.URL.Path, "/chunks/"):
			chunkGets.Add(1)
		}
		fs.ServeHTTP(w, r)
	}))
	defer srv.Close()
	st, err := dst.Fetch(context.Background(), ref, []string{srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(get(t, dst, ref), data) {
		t.Fatal("fetched object differs")
	}
	if st.Fetched < 20 || packGets.Load() > 3 || chunkGets.Load() != 0 {
		t.Fatalf("fetched %d chunks with %d pack requests and %d chunk requests", st.Fetched, packGets.Load(), chunkGets.Load())
	}
}
