package conformance

import (
	"context"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/volt-cli/volt/sdk"
)

// Binary starts the built plugin executable at path the way the host does
// (go-plugin, gRPC only, AutoMTLS) and checks the handshake: nothing on
// stdout before it, Plugin.Info answering with kind and API version.
func Binary(t *testing.T, path string, kind string) {
	t.Helper()
	var stderr strings.Builder
	c := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.HostPluginSets(),
		Cmd:              exec.Command(path),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     10 * time.Second,
		Stderr:           &stderr,
		SyncStdout:       io.Discard,
		SyncStderr:       io.Discard,
		Logger:           hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: io.Discard}),
	})
	defer c.Kill()
	cp, err := c.Client()
	if err != nil {
		t.Fatalf("handshake with %s: %v (stderr: %s)", path, err, stderr.String())
	}
	raw, err := cp.Dispense(sdk.PluginInfo)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := raw.(sdk.Infoer).Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Kind != kind || !slices.Contains(info.APIVersions, sdk.APIVersion) {
		t.Errorf("Info = %+v: want kind %q and API %d", info, kind, sdk.APIVersion)
	}
}
