package bundle

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/volt-cli/volt/engine/digest"
)

// VerifyOptions controls Verify.
type VerifyOptions struct {
	// Progress, when set, is called with bytes hashed so far and the total;
	// calls are serialised but may come from any goroutine.
	Progress func(done, total int64)
	// Workers is the number of hashing goroutines (default GOMAXPROCS).
	Workers int
}

// EntryResult is the outcome of checking one integrity entry.
type EntryResult struct {
	Name   string
	Size   int64
	Want   string // digest from integrity.files
	Got    string // digest computed; "" if the entry could not be read
	Err    error  // nil when the entry is intact; wraps ErrIntegrity otherwise
	Stored bool
}

// Report is what Verify checked. Structure is always true for a Reader that
// Open returned (Open refuses malformed bundles). Entries is sorted by name.
type Report struct {
	Path      string
	Structure bool
	Signed    bool // signatures/bundle.sig is present (not checked here)
	Entries   []EntryResult
	Bytes     int64 // uncompressed bytes hashed
}

// OK reports whether every check passed.
func (rep *Report) OK() bool { return rep.Structure && len(rep.Failures()) == 0 }

// Failures returns the entries that failed.
func (rep *Report) Failures() []EntryResult {
	var out []EntryResult
	for _, e := range rep.Entries {
		if e.Err != nil {
			out = append(out, e)
		}
	}
	return out
}

// Verify hashes every entry listed in integrity.files and compares it with
// its digest and declared size. Entries are hashed concurrently, one per
// worker; a stored entry larger than a worker's share of the bundle is
// split into aligned BLAKE3 subtrees hashed on all workers. The returned Report lists every entry's result. The error wraps
// ErrIntegrity when any entry fails (the report says which), or is the
// context's error when ctx is cancelled.
func (r *Reader) Verify(ctx context.Context, opts VerifyOptions) (*Report, error) {
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	names := sortedKeys(r.manifest.Integrity.Files)
	rep := &Report{Path: r.path, Structure: true, Signed: r.byName[SignatureName] != nil, Entries: make([]EntryResult, len(names))}
	var total int64
	for i, name := range names {
		zf := r.byName[name]
		rep.Entries[i] = EntryResult{Name: name, Size: int64(zf.UncompressedSize64), Want: r.manifest.Integrity.Files[name], Stored: zf.Method == zip.Store}
		total += rep.Entries[i].Size
	}
	var done atomic.Int64
	var pmu sync.Mutex
	progress := func(k int64) {
		d := done.Add(k)
		if opts.Progress != nil {
			pmu.Lock()
			opts.Progress(d, total)
			pmu.Unlock()
		}
	}

	// A large stored entry is split into subtrees hashed on all workers.
	// With Volt's AVX-512 kernels the split path is faster per core than
	// sequential hashing, so every such entry is split; without them it is
	// slower, and an entry is split only when it is more than a worker's
	// share of the bundle (it would otherwise keep a core busy alone).
	big := func(e *EntryResult) bool {
		return e.Stored && e.Size > 2*digest.SegmentSize && workers > 1 &&
			(digest.SubtreeKernel() || e.Size > total/int64(workers))
	}
	// Other entries: one per worker at a time.
	jobs := make(chan *EntryResult)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range jobs {
				e.Got, e.Err = r.hashEntry(ctx, e, 1, progress)
			}
		}()
	}
	for i := range rep.Entries {
		if e := &rep.Entries[i]; !big(e) {
			jobs <- e
		}
	}
	close(jobs)
	wg.Wait()
	// Large stored entries: one at a time, each split across all workers.
	for i := range rep.Entries {
		if e := &rep.Entries[i]; big(e) {
			e.Got, e.Err = r.hashEntry(ctx, e, workers, progress)
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("verify bundle %q: %w", r.path, err)
	}
	failed := rep.Failures()
	rep.Bytes = done.Load()
	if len(failed) > 0 {
		return rep, fmt.Errorf("verify bundle %q: %d of %d entries failed; first: %w", r.path, len(failed), len(rep.Entries), failed[0].Err)
	}
	return rep, nil
}

// hashEntry hashes one entry and compares it with e.Want.
func (r *Reader) hashEntry(ctx context.Context, e *EntryResult, workers int, progress func(int64)) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var got string
	if e.Stored {
		d, err := digest.ReaderAt(ctx, r.ra, r.dataOff[e.Name], e.Size, workers, progress)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", fmt.Errorf("entry %q: %w: %v", e.Name, ErrIntegrity, err)
		}
		got = d
	} else {
		rc, err := r.byName[e.Name].Open()
		if err != nil {
			return "", fmt.Errorf("entry %q: %w: %v", e.Name, ErrIntegrity, err)
		}
		defer rc.Close()
		h := digest.New()
		buf := make([]byte, min(e.Size+1, digest.BufSize))
		var n int64
		for {
			if err := ctx.Err(); err != nil {
				return "", err
			}
			k, err := io.ReadFull(io.LimitReader(rc, e.Size-n+1), buf)
			h.Write(buf[:k])
			n += int64(k)
			progress(int64(k))
			if n > e.Size {
				return "", fmt.Errorf("entry %q: %w: more than the declared %d bytes", e.Name, ErrIntegrity, e.Size)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			if err != nil {
				return "", fmt.Errorf("entry %q: %w: %v", e.Name, ErrIntegrity, err)
			}
		}
		if n != e.Size {
			return "", fmt.Errorf("entry %q: %w: %d bytes, declared %d", e.Name, ErrIntegrity, n, e.Size)
		}
		got = digest.Format(h.Sum(nil))
	}
	if got != e.Want {
		return got, mismatch(e.Name, e.Want, got)
	}
	return got, nil
}
