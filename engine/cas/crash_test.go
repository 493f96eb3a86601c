package cas

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const crashEnv = "VOLT_CAS_CRASH_WRITER"

// crashData is what the crash writer puts: object 1 whole, then object 2,
// slowly, until it is killed.
func crashData(i int) []byte { return randBytes(uint64(140+i), 12<<20) }

// slowReader yields its data a piece at a time, sleeping in between.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 256<<10)])
}

// TestMain turns the test binary into the crash writer when crashEnv is set.
func TestMain(m *testing.M) {
	if root := os.Getenv(crashEnv); root != "" {
		s, err := Open(root)
		if err == nil {
			_, _, err = s.Put(context.Background(), bytes.NewReader(crashData(1)), WithPin("one"))
		}
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("first done")
		s.Put(context.Background(), slowReader{bytes.NewReader(crashData(2))})
		fmt.Println("second done")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestKillDuringPut kills a writer process with SIGKILL in the middle of a
// put: no half object may be visible, and the store stays consistent.
func TestKillDuringPut(t *testing.T) {
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+root)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "first done\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("writer said %q", line)
	}
	// Wait until the second put has written some chunks into its
	// temporary pack, then kill it.
	tmpBytes := func() int64 {
		var n int64
		ents, _ := os.ReadDir(filepath.Join(root, "packs"))
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), ".tmp-") {
				n += fi.Size()
			}
		}
		return n
	}
	for deadline := time.Now().Add(20 * time.Second); tmpBytes() < 10*AvgChunk && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	s.Sync = SyncNone
	one, two := Ref(sum256(crashData(1))), Ref(sum256(crashData(2)))
	if s.Has(two) {
		t.Fatal("the killed put's object is visible (writer finished too soon?)")
	}
	if !s.Has(one) {
		t.Fatal("the completed object is gone")
	}
	// No pack is visible without its index, and every indexed pack is
	// whole (Verify below reads every stored chunk).
	ents, err := os.ReadDir(filepath.Join(root, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".pack"); ok && !strings.HasPrefix(n, ".tmp-") {
			if _, err := os.Stat(filepath.Join(root, "packs", n+".idx")); err != nil {
				t.Errorf("pack %s is visible without its index", n)
			}
		}
	}
	if tmpBytes() == 0 {
		t.Fatal("the killed put left no temporary pack: it was not killed mid-put")
	}
	rep, err := s.Verify(context.Background(), VerifyOptions{Deep: true})
	if err != nil || !rep.OK() || rep.Objects != 1 {
		t.Fatalf("verify after kill: %+v, %v", rep, err)
	}
	// The next put removes the dead writer's temporary pack once it has
	// gone unwritten for staleAge (aged here), and completes the object.
	ents, _ = os.ReadDir(filepath.Join(root, "packs"))
	old := time.Now().Add(-2 * staleAge)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			os.Chtimes(filepath.Join(root, "packs", e.Name()), old, old)
		}
	}
	ref, _ := put(t, s, crashData(2))
	if n := tmpBytes(); n != 0 {
		t.Fatalf("the next put left %d bytes of the killed put's temporary pack", n)
	}
	if ref != two || !bytes.Equal(get(t, s, ref), crashData(2)) {
		t.Fatal("re-put after the crash failed")
	}
}
