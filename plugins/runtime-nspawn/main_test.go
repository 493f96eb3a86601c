package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/volt-cli/volt/plugins/runtime-nspawn/nspawn"
	"github.com/volt-cli/volt/plugins/runtime-nspawn/testrootfs"
	"github.com/volt-cli/volt/sdk"
)

// TestMain lets the test binary act as the plugin binary: with
// VOLT_TEST_PLUGIN_MAIN=1 it runs main (sdk.Serve) instead of the tests, so
// TestPluginBinary drives this command's real main without a go build.
func TestMain(m *testing.M) {
	if os.Getenv("VOLT_TEST_PLUGIN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// pluginCmd is a command that runs this package's main.
func pluginCmd() *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "VOLT_TEST_PLUGIN_MAIN=1")
	return cmd
}

// launch starts the plugin binary the way the host does and returns its runtime.
func launch(t *testing.T) (*plugin.Client, sdk.Runtime) {
	t.Helper()
	c := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.HostPluginSets(),
		Cmd:              pluginCmd(),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.NewNullLogger(),
	})
	t.Cleanup(c.Kill)
	rpc, err := c.Client()
	if err != nil {
		t.Fatalf("connect to plugin: %v", err)
	}
	raw, err := rpc.Dispense(sdk.KindRuntime)
	if err != nil {
		t.Fatalf("dispense runtime: %v", err)
	}
	return c, raw.(sdk.Runtime)
}

// TestPluginBinary drives the plugin's main over go-plugin, as a separate
// process the way the host launches it: a container
// started through it outlives the plugin process (killed as the host's
// CleanupClients does) and is recovered, stopped and destroyed by a second
// plugin process.
func TestPluginBinary(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Skip("systemd-nspawn not installed")
	}
	root := testrootfs.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c1, rt1 := launch(t)
	info, err := rt1.Info(ctx)
	if err != nil || info.Name != "runtime-nspawn" || info.Version != nspawn.Version {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	if h, err := rt1.Fingerprint(ctx); err != nil || !h.Healthy {
		t.Fatalf("Fingerprint = %+v, %v", h, err)
	}
	spec := sdk.WorkloadSpec{Name: "vt-bin-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", ""), Root: root,
		StateDir: filepath.Join(t.TempDir(), "state"), Command: []string{"/bin/sh", "-c", "echo alive; exec sleep 1000"}}
	h, err := rt1.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start through the plugin: %v", err)
	}
	t.Cleanup(func() { _ = nspawn.New(nspawn.Options{}).Destroy(context.Background(), h) })
	c1.Kill() // the host going away kills the plugin process only
	if !c1.Exited() {
		t.Fatal("plugin still running after Kill")
	}

	_, rt2 := launch(t)
	if err := rt2.Recover(ctx, h); err != nil {
		t.Fatalf("Recover in a new plugin process: %v", err)
	}
	for {
		var b bytes.Buffer
		if err := rt2.Logs(ctx, h, false, 0, &b); err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if strings.Contains(b.String(), "alive") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no output; log %q", b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var out bytes.Buffer
	if code, err := rt2.Exec(ctx, h, sdk.ExecRequest{Command: []string{"echo", "hi"}, Stdout: &out}); err != nil || code != 0 || out.String() != "hi\n" {
		t.Errorf("Exec through the plugin = %d, %v, %q", code, err, out.String())
	}
	if err := rt2.Stop(ctx, h, 30*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st, err := rt2.Inspect(ctx, h); err != nil || st.State != sdk.StatusStopped {
		t.Errorf("Inspect after Stop = %+v, %v", st, err)
	}
	if err := rt2.Destroy(ctx, h); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
}
