package logfile

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\n", 5, "a\nb\n"},
		{"a\nb\n", 0, "a\nb\n"},
		{"a\n", 1, "a\n"},
		{"", 3, ""},
	} {
		if got := string(LastLines([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("LastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// syncBuf is a bytes.Buffer safe for Follow's writes and the test's reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFollow: a log that appears late, grows, and is replaced by a shorter
// one after a restart is copied in order from the given offset, and Follow ends
// with ctx.
func TestFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuf
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, path, 4, &out, 5*time.Millisecond) }()
	waitFor := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); out.String() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("followed %q, want %q", out.String(), want)
			}
		}
	}
	appendTo := func(s string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	// Files appear and are replaced whole (rename), so Follow never sees
	// one half written.
	replace := func(s string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	replace("old\nnew 1\n") // appears late; its first 4 bytes were shown already
	waitFor("new 1\n")
	appendTo("new 2\n")
	waitFor("new 1\nnew 2\n")
	replace("r\n") // restarted: shorter than the offset
	waitFor("new 1\nnew 2\nr\n")
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("Follow returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not end with its context")
	}
	if strings.Count(out.String(), "new 1") != 1 {
		t.Errorf("a line was copied twice: %q", out.String())
	}
}
