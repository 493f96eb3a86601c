package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// stderrLines and stderrLineMax bound the per-plugin stderr ring buffer.
const (
	stderrLines   = 64
	stderrLineMax = 1024
)

// stderrSink receives a plugin's stderr (go-plugin's ClientConfig.Stderr,
// which writes raw lines and newlines), keeps the last lines in a ring and
// logs each line to the host's logger under the plugin's name. hclog JSON
// lines (what sdk.Serve emits) are logged at their own level with their
// fields; other lines at Info.
type stderrSink struct {
	plugin string
	log    *slog.Logger
	ring   *tailRing

	mu   sync.Mutex
	part []byte
}

// tailRing keeps the last stderrLines lines written by a plugin's sinks (its
// real stderr, and the stdout/stderr go-plugin forwards after the handshake).
type tailRing struct {
	mu    sync.Mutex
	lines [stderrLines]string
	n     int // lines ever written
	sinks []*stderrSink
}

// newSink returns a sink for one of the plugin's output streams.
func (r *tailRing) newSink(plugin string, log *slog.Logger) *stderrSink {
	s := &stderrSink{plugin: plugin, log: log, ring: r}
	r.mu.Lock()
	r.sinks = append(r.sinks, s)
	r.mu.Unlock()
	return s
}

func (r *tailRing) add(l string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.n%stderrLines] = l
	r.n++
}

// Tail returns up to the last n lines, oldest first, then any unfinished lines.
func (r *tailRing) Tail(n int) []string {
	r.mu.Lock()
	n = min(n, r.n, stderrLines)
	out := make([]string, 0, n+1)
	for i := r.n - n; i < r.n; i++ {
		out = append(out, r.lines[i%stderrLines])
	}
	sinks := r.sinks
	r.mu.Unlock()
	for _, s := range sinks {
		s.mu.Lock()
		if len(s.part) > 0 {
			out = append(out, string(s.part))
		}
		s.mu.Unlock()
	}
	return out
}

func (s *stderrSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if len(s.part) < stderrLineMax {
				s.part = append(s.part, rest[:min(len(rest), stderrLineMax-len(s.part))]...)
			}
			break
		}
		if len(s.part) < stderrLineMax {
			s.part = append(s.part, rest[:min(i, stderrLineMax-len(s.part))]...)
		}
		s.line(string(s.part))
		s.part = s.part[:0]
		rest = rest[i+1:]
	}
	return len(p), nil
}

// line records one complete line; s.mu is held.
func (s *stderrSink) line(l string) {
	l = strings.TrimRight(l, "\r")
	if l == "" {
		return
	}
	level, msg, attrs := parseHCLog(l)
	s.ring.add(msg)
	if s.log != nil {
		s.log.LogAttrs(context.Background(), level, msg, append([]slog.Attr{slog.String("plugin", s.plugin)}, attrs...)...)
	}
}

// parseHCLog decodes an hclog JSON line; any other line is an Info message.
func parseHCLog(l string) (slog.Level, string, []slog.Attr) {
	if !strings.HasPrefix(l, "{") {
		return slog.LevelInfo, l, nil
	}
	var m map[string]any
	if json.Unmarshal([]byte(l), &m) != nil {
		return slog.LevelInfo, l, nil
	}
	msg, _ := m["@message"].(string)
	lv, _ := m["@level"].(string)
	level := slog.LevelInfo
	switch strings.ToLower(lv) {
	case "trace", "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	var attrs []slog.Attr
	for k, v := range m {
		switch k {
		case "@message", "@level", "@timestamp", "@caller":
			continue
		}
		attrs = append(attrs, slog.Any(strings.TrimPrefix(k, "@"), v))
	}
	slices.SortFunc(attrs, func(a, b slog.Attr) int { return strings.Compare(a.Key, b.Key) })
	if msg == "" {
		msg = l
	}
	return level, msg, attrs
}
