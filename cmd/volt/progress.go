package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
)

// progressBar shows a byte progress bar on stderr when stderr is a terminal
// (and not --quiet / -o json); otherwise it does nothing, so logs and pipes
// never get one. The bar appears at the first update, which is when its
// clock starts.
type progressBar struct {
	a     *app
	label string
	bar   *progressbar.ProgressBar
	off   bool
}

func (a *app) progress(label string) *progressBar {
	f, ok := a.stderr.(*os.File)
	if !ok || a.quiet || a.json() || !isTerminal(f) {
		return &progressBar{off: true}
	}
	return &progressBar{a: a, label: label}
}

func (p *progressBar) update(done, total int64) {
	if p.off {
		return
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetDescription(p.label),
			progressbar.OptionSetWriter(p.a.stderr),
			progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(100_000_000),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionEnableColorCodes(!p.a.noColor),
		)
		// The clock starts here: left to the library it starts at the first
		// render, after the first bytes, and the first rate is absurd. The
		// bar is drawn at once, so a step that ends within the render
		// throttle still shows that it ran.
		_ = p.bar.RenderBlank()
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
	p.bar, p.off = nil, true
}

func copyAll(w io.Writer, r io.Reader) (int64, error) { return io.Copy(w, r) }
