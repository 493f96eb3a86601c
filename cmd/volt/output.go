package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/volt-cli/volt/engine"
)

// table prints aligned columns; the first row is the header.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

func (t *table) flush() error { return t.tw.Flush() }

// humanSize renders a byte count as people read sizes: "95 MB".
func humanSize(n int64) string { return engine.FormatSize(n) }

// humanAge renders how long ago t was: "3 minutes ago".
func humanAge(t time.Time, now time.Time) string {
	d := now.Sub(t)
	switch {
	case t.IsZero():
		return "-" // never happened (an interrupted import was never deployed)
	case d < 0:
		return t.UTC().Format(time.RFC3339)
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d.Minutes()), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d.Hours()), "hour") + " ago"
	default:
		return plural(int(d.Hours()/24), "day") + " ago"
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// marks returns the check and cross symbols, plain words under --no-color.
func (a *app) marks() (ok, bad string) {
	if a.noColor {
		return "[ok]", "[FAIL]"
	}
	return "✓", "✗"
}
