package constellation

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/volt-cli/volt/engine/suggest"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound is returned by FindFile when a directory holds no Constellation.
	ErrNotFound = errors.New("no constellation file found")
	// ErrCycle is wrapped by Order and Levels when depends_on forms a cycle.
	ErrCycle = errors.New("dependency cycle")
	// ErrInvalid is wrapped by every *Error about the content of a file.
	ErrInvalid = errors.New("invalid constellation")
)

// Error is a problem in a file at a position. Error() is "file:line:col: msg"
// (or "file: msg" when the position is unknown); Hint, when not empty, is a
// likely fix the CLI prints on a second line.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
	Hint string
	err  error
}

// Error formats the error as "file:line:col: msg".
func (e *Error) Error() string {
	switch {
	case e.File == "" && e.Line == 0:
		return e.Msg
	case e.Line == 0:
		return e.File + ": " + e.Msg
	case e.Col == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	}
}

// Unwrap returns the sentinel the error belongs to (ErrInvalid, ErrCycle or ErrNotFound).
func (e *Error) Unwrap() error {
	if e.err == nil {
		return ErrInvalid
	}
	return e.err
}

// Pos is a 1-based line and column in a file; zero means unknown.
type Pos struct {
	Line int
	Col  int
}

// Position returns where the entry at path ("containers.web",
// "containers.web.ports[0]", "vms.db.memory") was written: the key for map
// entries, the item for list entries. It is zero when unknown (f was not
// read by Parse, or path names nothing). Docker-compose files use
// "services.NAME" for their containers.
func (f *File) Position(path string) Pos {
	return f.pos[path].key
}

// WorkloadPosition returns where key ("image", "configs", "env_file") of
// the container or VM name was written: its value, else the workload's own
// entry; zero when unknown.
func (f *File) WorkloadPosition(name, key string) Pos {
	w := f.workloadPath(name)
	if p, ok := f.pos[w+"."+key]; ok && p.val.Line > 0 {
		return p.val
	}
	return f.pos[w].key
}

// didYouMean returns a hint suggesting the closest of known to got, or
// listing known when nothing is close.
func didYouMean(got string, known []string) string {
	best, bestD := "", -1
	for _, k := range known {
		d := suggest.Distance(strings.ToLower(got), k)
		if bestD < 0 || d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	limit := len(got) / 3
	if limit < 2 {
		limit = 2
	}
	if bestD >= 0 && bestD <= limit {
		return fmt.Sprintf("did you mean %q?", best)
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	return "known keys: " + strings.Join(sorted, ", ")
}
