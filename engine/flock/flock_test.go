package flock

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", "lock")
	l, err := Acquire(context.Background(), path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	waited := false
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := Acquire(ctx, path, true, func() { waited = true }); !errors.Is(err, ErrTimeout) {
		t.Fatalf("second exclusive lock: %v, want ErrTimeout", err)
	}
	if !waited {
		t.Errorf("onWait was not called")
	}
	if _, err := Acquire(ctx, path, false, nil); err == nil {
		t.Errorf("shared lock granted while held exclusively")
	}
	l.Release()
	l.Release() // idempotent
	l2, err := Acquire(context.Background(), path, true, nil)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
}

func TestShared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, err := Acquire(context.Background(), path, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	b, err := Acquire(context.Background(), path, false, nil)
	if err != nil {
		t.Fatalf("two shared locks: %v", err)
	}
	b.Release()
}

// TestCancelIsNotTimeout: a wait ended by cancellation (Ctrl-C) reports
// context.Canceled, a wait ended by the deadline ErrTimeout.
func TestCancelIsNotTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	l, err := Acquire(context.Background(), path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	ctx, cancel := context.WithCancel(context.Background())
	_, err = Acquire(ctx, path, true, cancel)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Errorf("cancelled wait: err = %v, want context.Canceled and not ErrTimeout", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer dcancel()
	if _, err = Acquire(dctx, path, true, nil); !errors.Is(err, ErrTimeout) {
		t.Errorf("wait past the deadline: err = %v, want ErrTimeout", err)
	}
}
