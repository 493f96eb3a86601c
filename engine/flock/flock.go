// Package flock serialises Volt processes on a state root with flock(2)
// on a lock file. Locks are released when the process exits, so a killed
// CLI never leaves a stale lock behind.
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTimeout is returned when the lock could not be taken before ctx's
// deadline. When ctx is cancelled instead, the error wraps context.Canceled.
var ErrTimeout = errors.New("timed out waiting for lock")

// Lock is a held lock.
type Lock struct{ f *os.File }

// Acquire takes an exclusive (or shared) lock on path, creating the file and
// its directory if needed. It polls until ctx ends; onWait, if not nil, is
// called once when the lock is busy so the caller can tell the user it waits.
func Acquire(ctx context.Context, path string, exclusive bool, onWait func()) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	waited := false
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !waited && onWait != nil {
			onWait()
		}
		waited = true
		select {
		case <-ctx.Done():
			f.Close()
			if errors.Is(ctx.Err(), context.Canceled) {
				// Interrupted (Ctrl-C), not timed out: callers see context.Canceled.
				return nil, fmt.Errorf("lock %s: waiting for another volt process: %w", path, ctx.Err())
			}
			return nil, fmt.Errorf("lock %s: %w (another volt process holds it)", path, ErrTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Release drops the lock. It is safe to call on a nil Lock and more than once.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}
