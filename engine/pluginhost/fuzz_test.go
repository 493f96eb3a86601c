package pluginhost

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// FuzzStderrSink feeds arbitrary plugin stderr (untrusted) through the sink:
// it must not panic, must keep lines bounded, and must log every complete
// non-empty line.
func FuzzStderrSink(f *testing.F) {
	f.Add([]byte(`{"@level":"error","@message":"boom","@module":"x","k":1}`+"\n"), 3)
	f.Add([]byte("panic: x\ngoroutine 1 [running]:\n\tmain.go:1\n"), 1)
	f.Add([]byte(`{"@level":7,"@message":{"a":[1,2]}}`+"\n{not json\n"), 2)
	f.Add(bytes.Repeat([]byte("a"), 5000), 700)
	f.Add([]byte("\r\n\n\x00\xff\n"), 1)
	f.Fuzz(func(t *testing.T, data []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		var logs bytes.Buffer
		r := &tailRing{}
		s := r.newSink("fuzz", slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		for rest := data; len(rest) > 0; {
			n := min(chunk, len(rest))
			if k, err := s.Write(rest[:n]); k != n || err != nil {
				t.Fatalf("Write = %d, %v", k, err)
			}
			rest = rest[n:]
		}
		tail := r.Tail(stderrLines)
		if len(tail) > stderrLines+1 {
			t.Errorf("Tail has %d lines", len(tail))
		}
		for _, l := range tail {
			if len(l) > stderrLineMax {
				t.Errorf("line of %d bytes exceeds the bound", len(l))
			}
		}
		complete := 0
		for _, l := range strings.Split(string(data), "\n")[:strings.Count(string(data), "\n")] {
			if strings.TrimRight(l, "\r") != "" {
				complete++
			}
		}
		if got := strings.Count(logs.String(), "\n"); got != complete {
			t.Errorf("logged %d records, want %d", got, complete)
		}
	})
}
