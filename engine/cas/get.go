package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// bufPool holds chunk-sized read buffers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, MaxChunk); return &b }}

func getBuf(n int) *[]byte {
	if n > MaxChunk {
		b := make([]byte, n)
		return &b
	}
	p := bufPool.Get().(*[]byte)
	*p = (*p)[:n]
	return p
}

func putBuf(p *[]byte) {
	if cap(*p) == MaxChunk {
		bufPool.Put(p)
	}
}

// readChunk reads a local chunk into a pooled buffer and checks its size and
// BLAKE3: ErrMissing if absent, ErrCorrupt if its bytes do not match.
func (s *Store) readChunk(c Chunk) (*[]byte, error) {
	p, err := s.readChunkRaw(c)
	if err != nil {
		return nil, err
	}
	if sum256(*p) != c.ID {
		putBuf(p)
		return nil, fmt.Errorf("chunk %s: %w", c.ID, ErrCorrupt)
	}
	return p, nil
}

// readChunkRaw reads a local chunk and checks only its size.
func (s *Store) readChunkRaw(c Chunk) (*[]byte, error) {
	p, fd, err := s.readChunkFile(c, false)
	if fd >= 0 {
		unix.Close(fd)
	}
	return p, err
}

// readChunkFile reads a local chunk and checks only its size; with keep it
// also returns the open file descriptor (else -1; the caller closes it). It
// uses raw system calls: os.File's poller registration and blocking-mode
// fcntl calls cost more than the read itself for 64 KiB files.
func (s *Store) readChunkFile(c Chunk, keep bool) (*[]byte, int, error) {
	fd, err := unix.Open(s.chunkFile(c.ID), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, -1, fmt.Errorf("chunk %s: %w", c.ID, ErrMissing)
	}
	if err != nil {
		return nil, -1, fmt.Errorf("chunk %s: %w", c.ID, err)
	}
	p := getBuf(int(c.Size) + 1)
	n := 0
	for n < len(*p) {
		k, err := unix.Read(fd, (*p)[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			putBuf(p)
			unix.Close(fd)
			return nil, -1, fmt.Errorf("chunk %s: %w", c.ID, err)
		}
		if k == 0 {
			break
		}
		n += k
	}
	if n != int(c.Size) {
		putBuf(p)
		unix.Close(fd)
		return nil, -1, fmt.Errorf("chunk %s: size differs from the index's %d: %w", c.ID, c.Size, ErrCorrupt)
	}
	*p = (*p)[:n]
	if !keep {
		unix.Close(fd)
		fd = -1
	}
	return p, fd, nil
}

// Get writes the object r to w, reading chunks ahead in parallel, and
// checks the BLAKE3 of the whole object as it streams: that one hash covers
// every chunk, so chunks are not hashed a second time one by one unless it
// fails, and then they are, to name the first corrupt chunk (ErrCorrupt).
// Bytes reach w before the check completes: do not trust them unless Get
// returns nil (the CLI writes to a temporary file and renames it on
// success). A missing chunk fails with ErrMissing naming the object and the
// first missing chunk.
func (s *Store) Get(ctx context.Context, r Ref, w io.Writer) error {
	x, err := s.readIndex(r)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if err := s.assemble(ctx, x, w); err != nil {
		return fmt.Errorf("get: %w", err)
	}
	return nil
}

type readResult struct {
	p   *[]byte
	fd  int // the chunk's file, in direct mode (else -1)
	err error
}

// directOut returns w as a regular file that copy_file_range can write.
func directOut(w io.Writer) *os.File {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	return f
}

// copyChunk copies n bytes of a chunk file to out in the kernel
// (copy_file_range: page cache to page cache, no copy through user space;
// about three times faster than write(2) here). It reports false if the
// kernel cannot do it for this pair of files and nothing was copied.
func copyChunk(out, chunk int, n int) (bool, error) {
	var off int64
	for off < int64(n) {
		k, err := unix.CopyFileRange(chunk, &off, out, nil, n-int(off), 0)
		if err != nil {
			if off == 0 && (errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)) {
				return false, nil
			}
			return true, err
		}
		if k == 0 {
			return true, io.ErrUnexpectedEOF
		}
	}
	return true, nil
}

// assemble streams x's chunks to w in order (w may be io.Discard) in 4 MiB
// writes while another goroutine hashes them, and checks the whole-object
// BLAKE3; on a mismatch it finds the corrupt chunk.
func (s *Store) assemble(ctx context.Context, x *Index, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		c   Chunk
		out chan readResult
	}
	window := 8 * s.workers()
	jobs := make(chan job, window)
	order := make(chan job, window)
	out := directOut(w)
	direct := out != nil
	outFD := -1
	if direct {
		outFD = int(out.Fd())
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(jobs)
		defer close(order)
		for _, c := range x.Chunks {
			j := job{c: c, out: make(chan readResult, 1)}
			select {
			case order <- j:
			case <-ctx.Done():
				return
			}
			jobs <- j // cannot block for long: workers drain jobs
		}
	})
	for range s.workers() {
		wg.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					j.out <- readResult{fd: -1, err: ctx.Err()}
					continue
				}
				p, fd, err := s.readChunkFile(j.c, out != nil)
				j.out <- readResult{p, fd, err}
			}
		})
	}
	// Chunks are copied into 4 MiB stages: one big write per stage (as
	// cat does) and, beside it, the whole-object hash of the stage.
	const stageSize = 4 << 20
	free := make(chan []byte, 3)
	for range 3 {
		free <- make([]byte, 0, stageSize)
	}
	var whole hasher
	hashq := make(chan []byte, 3)
	var hwg sync.WaitGroup
	hwg.Go(func() {
		for b := range hashq {
			whole.Write(b)
			free <- b[:0]
		}
	})
	stage := <-free
	var err error
	flush := func() error {
		if len(stage) == 0 {
			return nil
		}
		var err error
		if !direct {
			_, err = w.Write(stage)
		}
		hashq <- stage
		stage = <-free
		return err
	}
	release := func(r readResult) {
		if r.p != nil {
			putBuf(r.p)
		}
		if r.fd >= 0 {
			unix.Close(r.fd)
		}
	}
	fail := func(err error) error {
		cancel()
		for j := range order {
			release(<-j.out)
		}
		wg.Wait()
		close(hashq)
		hwg.Wait()
		return err
	}
	var off int64
	for j := range order {
		r := <-j.out
		if r.err != nil {
			return fail(fmt.Errorf("object %s: at offset %d: %w", x.Ref, off, r.err))
		}
		data := *r.p
		if direct {
			var copied bool
			if copied, err = copyChunk(outFD, r.fd, len(data)); err != nil {
				release(r)
				return fail(fmt.Errorf("object %s: write: %w", x.Ref, err))
			}
			if !copied {
				// Write the rest of the object through user space. The
				// stage so far was copied already: hash it only.
				if len(stage) > 0 {
					hashq <- stage
					stage = <-free
				}
				direct = false
			}
		}
		off += int64(len(data))
		for len(data) > 0 {
			n := min(len(data), stageSize-len(stage))
			stage = append(stage, data[:n]...)
			data = data[n:]
			if len(stage) == stageSize {
				if err := flush(); err != nil {
					release(r)
					return fail(fmt.Errorf("object %s: write: %w", x.Ref, err))
				}
			}
		}
		release(r)
	}
	if err := flush(); err != nil {
		return fail(fmt.Errorf("object %s: write: %w", x.Ref, err))
	}
	wg.Wait()
	close(hashq)
	hwg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if sum := whole.sum(); sum != x.Ref {
		return s.findCorrupt(ctx, x, sum)
	}
	return nil
}

// findCorrupt explains a whole-object mismatch: the first chunk whose bytes
// do not match its id, or else an index that lists the wrong chunks.
func (s *Store) findCorrupt(ctx context.Context, x *Index, sum [32]byte) error {
	var off int64
	for _, c := range x.Chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := s.readChunk(c)
		if err != nil {
			return fmt.Errorf("object %s: at offset %d: %w", x.Ref, off, err)
		}
		putBuf(p)
		off += int64(c.Size)
	}
	return fmt.Errorf("object %s: reassembled bytes have BLAKE3 %x: %w", x.Ref, sum, ErrCorrupt)
}

// Open returns a reader of the object r that verifies each chunk as it goes
// and the whole object's BLAKE3 at the end: Read returns an error wrapping
// ErrCorrupt instead of io.EOF if the object does not match r. It reads
// sequentially; Get is faster for whole objects.
func (s *Store) Open(ctx context.Context, r Ref) (io.ReadCloser, error) {
	x, err := s.readIndex(r)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return &objectReader{ctx: ctx, s: s, x: x}, nil
}

type objectReader struct {
	ctx   context.Context
	s     *Store
	x     *Index
	next  int
	p     *[]byte
	cur   []byte
	whole hasher
	err   error
}

// Read implements io.Reader.
func (o *objectReader) Read(b []byte) (int, error) {
	for len(o.cur) == 0 {
		if o.err != nil {
			return 0, o.err
		}
		if o.p != nil {
			putBuf(o.p)
			o.p = nil
		}
		if o.next == len(o.x.Chunks) {
			if sum := o.whole.sum(); sum != o.x.Ref {
				o.err = fmt.Errorf("object %s: reassembled bytes have BLAKE3 %x: %w", o.x.Ref, sum, ErrCorrupt)
			} else {
				o.err = io.EOF
			}
			continue
		}
		if err := o.ctx.Err(); err != nil {
			o.err = err
			continue
		}
		p, err := o.s.readChunk(o.x.Chunks[o.next])
		if err != nil {
			o.err = fmt.Errorf("object %s: %w", o.x.Ref, err)
			continue
		}
		o.next++
		o.p, o.cur = p, *p
		o.whole.Write(o.cur)
	}
	n := copy(b, o.cur)
	o.cur = o.cur[n:]
	return n, nil
}

// Close releases the reader's buffer.
func (o *objectReader) Close() error {
	if o.p != nil {
		putBuf(o.p)
		o.p = nil
	}
	o.cur = nil
	if o.err == nil {
		o.err = errors.New("read after close")
	}
	return nil
}
