package pluginhost

import (
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/volt-cli/volt/sdk"
)

func TestDbgPhases(t *testing.T) {
	for _, mtls := range []bool{true, false} {
		for i := 0; i < 5; i++ {
			t0 := time.Now()
			c := plugin.NewClient(&plugin.ClientConfig{HandshakeConfig: sdk.Handshake, VersionedPlugins: sdk.HostPluginSets(),
				Cmd: exec.Command(binDir + "/volt-plugin-runtime-exec"), AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC}, AutoMTLS: mtls,
				Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: io.Discard})})
			_, err := c.Start()
			t1 := time.Now()
			_, err = c.Client()
			t2 := time.Now()
			t.Logf("mtls=%v start %v client %v err %v", mtls, t1.Sub(t0), t2.Sub(t1), err)
			c.Kill()
		}
	}
}
