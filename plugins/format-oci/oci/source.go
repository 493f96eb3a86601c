package oci

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Bounds on metadata read into memory.
const (
	maxJSONSize   = 4 << 20  // index.json, manifests, configs, docker manifest.json
	maxCachedSize = 64 << 20 // small members kept from a compressed outer tar
)

// source gives access to the files of an image layout: a directory, an
// uncompressed tar (random access by offset) or a compressed tar (re-read
// from the start for each member, small members cached).
type source interface {
	// open returns the member name (clean, relative) and its size.
	open(ctx context.Context, name string) (io.ReadCloser, int64, error)
	exists(name string) bool
	close() error
}

// compression of a stream, sniffed from its magic bytes.
type compression int

const (
	compNone compression = iota
	compGzip
	compZstd
)

func sniff(br *bufio.Reader) compression {
	b, _ := br.Peek(4)
	switch {
	case len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b:
		return compGzip
	case len(b) >= 4 && bytes.Equal(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return compZstd
	}
	return compNone
}

// decompress wraps r according to its magic bytes.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	switch sniff(br) {
	case compGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", ErrCorrupt, err)
		}
		return zr, nil
	case compZstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", ErrCorrupt, err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// openSource opens path as a directory layout or a (possibly compressed) tar.
func openSource(image string) (source, error) {
	fi, err := os.Stat(image)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	if fi.IsDir() {
		r, err := os.OpenRoot(image)
		if err != nil {
			return nil, fmt.Errorf("open image dir: %w", err)
		}
		return &dirSource{root: r}, nil
	}
	f, err := os.Open(image)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	br := bufio.NewReader(f)
	comp := sniff(br)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("open image: %w", err)
	}
	if comp == compNone {
		s, err := indexTar(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		return s, nil
	}
	f.Close()
	s := &streamSource{path: image, members: map[string]int64{}, cache: map[string][]byte{}}
	if err := s.scan(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

type dirSource struct{ root *os.Root }

func (d *dirSource) open(_ context.Context, name string) (io.ReadCloser, int64, error) {
	f, err := d.root.Open(name)
	if err != nil {
		return nil, 0, fmt.Errorf("open %q: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %q is not a regular file", ErrNotImage, name)
	}
	return f, fi.Size(), nil
}

func (d *dirSource) exists(name string) bool {
	fi, err := d.root.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}

func (d *dirSource) close() error { return d.root.Close() }

type member struct{ off, size int64 }

// tarSource is an uncompressed tar read by offsets.
type tarSource struct {
	f       *os.File
	members map[string]member
}

func indexTar(f *os.File) (*tarSource, error) {
	s := &tarSource{f: f, members: map[string]member{}}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read image tar: %w", err)
	}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: read image tar: %w", ErrCorrupt, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name, err := cleanName(hdr.Name)
		if err != nil || name == "" {
			continue
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, fmt.Errorf("read image tar: %w", err)
		}
		if off+hdr.Size > fi.Size() {
			// Skipping data seeks, and seeking past the end is no error: check here.
			return nil, fmt.Errorf("%w: image tar truncated inside %q", ErrCorrupt, name)
		}
		s.members[name] = member{off: off, size: hdr.Size}
	}
	if len(s.members) == 0 {
		return nil, fmt.Errorf("%w: empty tar", ErrNotImage)
	}
	return s, nil
}

func (s *tarSource) open(_ context.Context, name string) (io.ReadCloser, int64, error) {
	m, ok := s.members[name]
	if !ok {
		return nil, 0, fmt.Errorf("%w: %q not in image tar", fs.ErrNotExist, name)
	}
	// The header's size may promise more than the file holds (truncation).
	return io.NopCloser(io.NewSectionReader(s.f, m.off, m.size)), m.size, nil
}

func (s *tarSource) exists(name string) bool { _, ok := s.members[name]; return ok }
func (s *tarSource) close() error            { return s.f.Close() }

// streamSource is a compressed tar: each open decompresses from the start.
type streamSource struct {
	path    string
	members map[string]int64
	cache   map[string][]byte
}

func (s *streamSource) walk(ctx context.Context, fn func(name string, hdr *tar.Header, r io.Reader) (bool, error)) error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("open image: %w", err)
	}
	defer f.Close()
	zr, err := decompress(f)
	if err != nil {
		return err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: read image tar: %w", ErrCorrupt, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name, err := cleanName(hdr.Name)
		if err != nil || name == "" {
			continue
		}
		stop, err := fn(name, hdr, tr)
		if err != nil || stop {
			return err
		}
	}
}

func (s *streamSource) scan(ctx context.Context) error {
	var cached int64
	err := s.walk(ctx, func(name string, hdr *tar.Header, r io.Reader) (bool, error) {
		s.members[name] = hdr.Size
		if hdr.Size <= maxJSONSize && cached+hdr.Size <= maxCachedSize {
			b, err := io.ReadAll(r)
			if err != nil {
				return false, fmt.Errorf("%w: read %q: %w", ErrCorrupt, name, err)
			}
			s.cache[name] = b
			cached += int64(len(b))
		}
		return false, nil
	})
	if err == nil && len(s.members) == 0 {
		err = fmt.Errorf("%w: empty tar", ErrNotImage)
	}
	return err
}

// pipeReader streams one member out of a walk running in a goroutine.
type pipeReader struct {
	*io.PipeReader
	done   chan struct{}
	cancel context.CancelFunc
}

func (p *pipeReader) Close() error {
	p.cancel()
	err := p.PipeReader.Close()
	<-p.done
	return err
}

func (s *streamSource) open(ctx context.Context, name string) (io.ReadCloser, int64, error) {
	size, ok := s.members[name]
	if !ok {
		return nil, 0, fmt.Errorf("%w: %q not in image tar", fs.ErrNotExist, name)
	}
	if b, ok := s.cache[name]; ok {
		return io.NopCloser(bytes.NewReader(b)), size, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		found := false
		err := s.walk(ctx, func(n string, _ *tar.Header, r io.Reader) (bool, error) {
			if n != name {
				return false, nil
			}
			found = true
			_, err := io.Copy(pw, r)
			return true, err
		})
		if err == nil && !found {
			err = fmt.Errorf("%w: %q vanished from image tar", ErrCorrupt, name)
		}
		if errors.Is(err, io.ErrClosedPipe) {
			err = nil
		}
		pw.CloseWithError(err)
	}()
	return &pipeReader{PipeReader: pr, done: done, cancel: cancel}, size, nil
}

func (s *streamSource) exists(name string) bool { _, ok := s.members[name]; return ok }
func (s *streamSource) close() error            { return nil }
