package console

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeConsole is a unix socket that echoes what it receives, upper-cased,
// the way a guest shell echoes typed characters; closing it ends the VM.
// got receives everything the VM was sent.
func fakeConsole(t *testing.T) (string, chan []byte, func()) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	conns := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(conns)
			return
		}
		conns <- c
		var all []byte
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			all = append(all, buf[:n]...)
			_, _ = c.Write(bytes.ToUpper(buf[:n]))
			if err != nil {
				break
			}
		}
		got <- all
	}()
	var once sync.Once
	return sock, got, func() {
		once.Do(func() {
			l.Close()
			if c, ok := <-conns; ok {
				c.Close()
			}
		})
	}
}

// syncWriter is a goroutine-safe buffer.
type syncWriter struct {
	ch chan []byte
}

func (s syncWriter) Write(p []byte) (int, error) {
	s.ch <- bytes.Clone(p)
	return len(p), nil
}

func TestAttachDetach(t *testing.T) {
	sock, got, closeVM := fakeConsole(t)
	defer closeVM()
	out := syncWriter{ch: make(chan []byte, 16)}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Attach(context.Background(), sock, pr, out) }()
	pw.Write([]byte("echo hi\r"))
	select {
	case b := <-out.ch:
		if !strings.HasPrefix("ECHO HI\r", string(b)) {
			t.Errorf("console output %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no echo from the console")
	}
	pw.Write([]byte("after\x1dnot sent"))
	if err := <-done; err != nil {
		t.Fatalf("Attach after detach key: %v", err)
	}
	if b := <-got; string(b) != "echo hi\rafter" {
		t.Errorf("the VM received %q, want the bytes before the detach key", b)
	}
}

func TestAttachVMCloses(t *testing.T) {
	sock, _, closeVM := fakeConsole(t)
	pr, _ := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Attach(context.Background(), sock, pr, io.Discard) }()
	time.Sleep(10 * time.Millisecond)
	closeVM()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Attach when the VM closes: %v, want ErrClosed", err)
	}
}

func TestAttachNoSocket(t *testing.T) {
	if err := Attach(context.Background(), filepath.Join(t.TempDir(), "none.sock"), strings.NewReader(""), io.Discard); err == nil {
		t.Fatal("Attach to a missing socket: no error")
	}
}

func TestAttachCancelled(t *testing.T) {
	sock, _, closeVM := fakeConsole(t)
	defer closeVM()
	ctx, cancel := context.WithCancel(context.Background())
	pr, _ := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Attach(ctx, sock, pr, io.Discard) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Attach after cancel: %v", err)
	}
}
