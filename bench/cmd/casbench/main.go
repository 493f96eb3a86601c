// Command casbench drives engine/cas for bench/cas.sh: it generates test
// images, runs the store's operations with timings, and reads casync blob
// indexes (.caibx) so both tools' "new bytes" are counted the same way.
//
//	casbench gen -size BYTES -seed N -o FILE
//	casbench mutate -in FILE -mode clustered|scattered -seed N -o FILE
//	casbench scan FILE                 chunk + hash only (no store)
//	casbench put -store DIR [-sync batch|each|none] FILE
//	casbench get -store DIR -o FILE REF
//	casbench caibx-new OLD.caibx NEW.caibx
//
// Every command prints one JSON object on stdout.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/volt-cli/volt/engine/cas"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: casbench gen|mutate|scan|put|get|caibx-new ...")
		os.Exit(2)
	}
	cmds := map[string]func([]string) (any, error){
		"gen": gen, "mutate": mutate, "scan": scan, "put": put, "get": get, "caibx-new": caibxNew,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "casbench: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	out, err := f(os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "casbench:", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

func rng(seed uint64) *rand.ChaCha8 {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return rand.NewChaCha8(key)
}

// gen writes size incompressible bytes.
func gen(args []string) (any, error) {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	size := fs.Int64("size", 1<<30, "bytes")
	seed := fs.Uint64("seed", 1, "seed")
	out := fs.String("o", "", "output file")
	fs.Parse(args)
	f, err := os.Create(*out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := io.Copy(f, io.LimitReader(rng(*seed), *size)); err != nil {
		return nil, err
	}
	return map[string]any{"file": *out, "size": *size}, f.Close()
}

// mutate writes a changed version of a file. clustered: 7 random bytes
// inserted at the front and 1 % of the bytes overwritten in 16 contiguous
// runs; scattered: 1 % overwritten in 4 KiB runs at random places.
func mutate(args []string) (any, error) {
	fs := flag.NewFlagSet("mutate", flag.ExitOnError)
	in := fs.String("in", "", "input file")
	out := fs.String("o", "", "output file")
	mode := fs.String("mode", "clustered", "clustered or scattered")
	seed := fs.Uint64("seed", 2, "seed")
	fs.Parse(args)
	data, err := os.ReadFile(*in)
	if err != nil {
		return nil, err
	}
	r := rand.New(rng(*seed))
	noise := func(n int) []byte { b := make([]byte, n); rng(r.Uint64()).Read(b); return b }
	changed := len(data) / 100
	var prefix []byte
	runs := 0
	switch *mode {
	case "clustered":
		prefix = noise(7)
		runs = 16
		stride := len(data) / runs
		runLen := changed / runs
		for i := range runs {
			off := i*stride + r.IntN(stride-runLen)
			copy(data[off:], noise(runLen))
		}
	case "scattered":
		runs = changed / 4096
		for range runs {
			off := r.IntN(len(data) - 4096)
			copy(data[off:], noise(4096))
		}
	default:
		return nil, fmt.Errorf("unknown mode %q", *mode)
	}
	f, err := os.Create(*out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 4<<20)
	w.Write(prefix)
	w.Write(data)
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return map[string]any{"file": *out, "mode": *mode, "runs": runs, "changedBytes": changed, "inserted": len(prefix)}, f.Close()
}

type timing struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	MiBps   float64 `json:"MiBps"`
}

func timed(n int64, start time.Time) timing {
	sec := time.Since(start).Seconds()
	return timing{Bytes: n, Seconds: sec, MiBps: float64(n) / (1 << 20) / sec}
}

// scan chunks and hashes a file (no store): the pipeline's throughput.
func scan(args []string) (any, error) {
	if len(args) != 1 {
		return nil, errors.New("usage: scan FILE")
	}
	s, err := cas.Open(os.TempDir() + "/casbench-scan")
	if err != nil {
		return nil, err
	}
	f, err := os.Open(args[0])
	if err != nil {
		return nil, err
	}
	defer f.Close()
	start := time.Now()
	x, err := s.Scan(context.Background(), f)
	if err != nil {
		return nil, err
	}
	return struct {
		timing
		Ref    cas.Ref `json:"ref"`
		Chunks int     `json:"chunks"`
	}{timed(x.Size, start), x.Ref, len(x.Chunks)}, nil
}

func put(args []string) (any, error) {
	fs := flag.NewFlagSet("put", flag.ExitOnError)
	root := fs.String("store", "", "store root")
	sync := fs.String("sync", "batch", "batch, each or none")
	fs.Parse(args)
	s, err := cas.Open(*root)
	if err != nil {
		return nil, err
	}
	s.Sync = map[string]cas.SyncPolicy{"batch": cas.SyncBatch, "each": cas.SyncEach, "none": cas.SyncNone}[*sync]
	start := time.Now()
	ref, st, err := s.PutFile(context.Background(), fs.Arg(0))
	if err != nil {
		return nil, err
	}
	return struct {
		timing
		Ref cas.Ref `json:"ref"`
		cas.PutStats
	}{timed(st.Size, start), ref, st}, nil
}

func get(args []string) (any, error) {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	root := fs.String("store", "", "store root")
	out := fs.String("o", "", "output file")
	fs.Parse(args)
	s, err := cas.Open(*root)
	if err != nil {
		return nil, err
	}
	ref, err := cas.ParseRef(fs.Arg(0))
	if err != nil {
		return nil, err
	}
	f, err := os.Create(*out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	start := time.Now()
	if err := s.Get(context.Background(), ref, f); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	fi, _ := os.Stat(*out)
	return timed(fi.Size(), start), nil
}

// readCaibx returns the chunks (id → size) of a casync blob index: a 48-byte
// CaFormatIndex header, a 16-byte table header, 40-byte items {le64 end
// offset, 32-byte id} and a tail whose first word is zero.
func readCaibx(path string) (map[[32]byte]int64, int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	if len(b) < 64 {
		return nil, 0, fmt.Errorf("%s: too short for a caibx", path)
	}
	chunks := map[[32]byte]int64{}
	var prev int64
	for p := b[64:]; len(p) >= 40; p = p[40:] {
		end := int64(binary.LittleEndian.Uint64(p))
		if end == 0 {
			return chunks, prev, nil
		}
		chunks[[32]byte(p[8:40])] = end - prev
		prev = end
	}
	return nil, 0, fmt.Errorf("%s: no table tail", path)
}

// caibxNew counts the bytes of NEW's distinct chunks that OLD lacks.
func caibxNew(args []string) (any, error) {
	if len(args) != 2 {
		return nil, errors.New("usage: caibx-new OLD.caibx NEW.caibx")
	}
	old, _, err := readCaibx(args[0])
	if err != nil {
		return nil, err
	}
	cur, size, err := readCaibx(args[1])
	if err != nil {
		return nil, err
	}
	var n int64
	var chunks int
	for id, sz := range cur {
		if _, ok := old[id]; !ok {
			n += sz
			chunks++
		}
	}
	return map[string]any{"size": size, "newBytes": n, "newChunks": chunks, "chunks": len(cur)}, nil
}
