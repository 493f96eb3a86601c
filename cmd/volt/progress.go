package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
)

// progressBar shows a byte progress bar on stderr when stdout is a terminal
// (and not --quiet / -o json); otherwise it does nothing.
type progressBar struct {
	bar *progressbar.ProgressBar
}

func (a *app) progress(label string) *progressBar {
	f, ok := a.stdout.(*os.File)
	if !ok || a.quiet || a.json() || !isTerminal(f) {
		return &progressBar{}
	}
	return &progressBar{bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetDescription(label),
		progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionEnableColorCodes(!a.noColor),
	)}
}

func (p *progressBar) update(done, total int64) {
	if p.bar == nil {
		return
	}
	if p.bar.GetMax64() != total {
		p.bar.ChangeMax64(total)
	}
	p.bar.Set64(done)
}

func (p *progressBar) done() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

func copyAll(w io.Writer, r io.Reader) (int64, error) { return io.Copy(w, r) }
