package pluginhost

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/volt-cli/volt/engine/digest"
)

// PluginInfo is one row of List and the result of Inspect; its JSON is the
// stable shape of `volt plugin list -o json` / `volt plugin inspect`.
type PluginInfo struct {
	Name         string   `json:"name"`
	Kind         string   `json:"kind,omitempty"`
	Version      string   `json:"version,omitempty"`
	APIVersions  []int    `json:"api_versions,omitempty"`
	API          int      `json:"api,omitempty"` // negotiated; 0 when the plugin did not start
	Path         string   `json:"path"`
	BLAKE3       string   `json:"blake3,omitempty"`
	Installed    bool     `json:"installed"` // in $VOLT_ROOT/plugins, checked against the lock
	Capabilities []string `json:"capabilities,omitempty"`
	ConfigSchema string   `json:"config_schema,omitempty"`
	// Healthy and Health come from Fingerprint (runtimes) or Describe (formats);
	// Health holds the error when the plugin could not start.
	Healthy    bool              `json:"healthy"`
	Health     string            `json:"health"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Formats    []string          `json:"formats,omitempty"`
	MediaTypes []string          `json:"media_types,omitempty"`
	// Error is the one-line start or call error, "" when the plugin works.
	Error string `json:"error,omitempty"`
}

// List starts every plugin on the search path and reports it. A plugin that
// fails to start is still listed, with Error set; List itself fails only
// when ctx ends.
func (h *Host) List(ctx context.Context) ([]PluginInfo, error) {
	var out []PluginInfo
	for _, f := range h.discover() {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		out = append(out, h.describe(ctx, f))
	}
	return out, nil
}

// Inspect reports one plugin like List, starting it if needed. It fails
// only when the plugin is not found or ctx ends; a broken plugin is
// reported with Error set.
func (h *Host) Inspect(ctx context.Context, name string) (PluginInfo, error) {
	f, err := h.lookup(name)
	if err != nil {
		return PluginInfo{}, err
	}
	pi := h.describe(ctx, f)
	return pi, ctx.Err()
}

func (h *Host) describe(ctx context.Context, f found) PluginInfo {
	pi := PluginInfo{Name: f.name, Path: f.path, Installed: f.installed}
	if d, _, err := digest.File(f.path); err == nil {
		pi.BLAKE3 = d
	}
	p, err := h.get(ctx, f.name, InspectPolicy)
	if err != nil {
		pi.Error, pi.Health = err.Error(), "error"
		return pi
	}
	i := p.info
	pi.Kind, pi.Version, pi.APIVersions, pi.API = i.Kind, i.Version, i.APIVersions, p.api
	pi.Capabilities, pi.ConfigSchema = i.Capabilities, i.ConfigSchema
	switch {
	case p.runtime != nil:
		hl, err := p.runtime.Fingerprint(ctx)
		if err != nil {
			pi.Error, pi.Health = fmt.Sprintf("fingerprint: %v", err), "error"
			break
		}
		pi.Healthy, pi.Health, pi.Attributes = hl.Healthy, hl.Detail, hl.Attributes
	case p.format != nil:
		d, err := p.format.Describe(ctx)
		if err != nil {
			pi.Error, pi.Health = fmt.Sprintf("describe: %v", err), "error"
			break
		}
		pi.Healthy, pi.Formats, pi.MediaTypes = true, d.Formats, d.MediaTypes
		pi.Health = "formats: " + strings.Join(d.Formats, ", ")
	}
	return pi
}

func hexDecode(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != digest.Size {
		return nil, fmt.Errorf("bad BLAKE3 %q in the plugin lock", s)
	}
	return b, nil
}

// WriteTable writes ps as the human table of `volt plugin list`:
// NAME KIND VERSION API PATH BLAKE3 HEALTH, BLAKE3 shortened to 12 hex
// digits, HEALTH "ok: <detail>", "unhealthy: <detail>" or "error: <error>".
func WriteTable(w io.Writer, ps []PluginInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tAPI\tPATH\tBLAKE3\tHEALTH")
	for _, p := range ps {
		api, sum := "-", "-"
		if p.API > 0 {
			api = strconv.Itoa(p.API)
		}
		if h := digest.Hex(p.BLAKE3); len(h) >= 12 {
			sum = h[:12]
		}
		health := "ok: " + p.Health
		switch {
		case p.Error != "":
			health = "error: " + p.Error
		case !p.Healthy:
			health = "unhealthy: " + p.Health
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, dash(p.Kind), dash(p.Version), api, p.Path, sum, health)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
