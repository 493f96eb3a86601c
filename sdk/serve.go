package sdk

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Handshake values shared by host and plugins. A binary started without the
// cookie (e.g. by a user at a shell) refuses to serve.
const (
	MagicCookieKey   = "VOLT_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "a8d1f3c6-volt-plugin-2f7e9b04"
	// WireVersion is the go-plugin protocol version; VersionedPlugins are keyed by it.
	WireVersion = 1
)

// Names of the go-plugin plugin set entries: every plugin serves PluginInfo,
// plus KindRuntime or KindFormat.
const PluginInfo = "plugin"

// Handshake is the go-plugin handshake both sides use.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  WireVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// InfoPlugin is the go-plugin GRPCPlugin for the Plugin service. On the host
// side Impl is nil and Dispense returns an Infoer.
type InfoPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Infoer
}

// GRPCServer registers the Plugin service.
func (p *InfoPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	registerInfo(s, p.Impl)
	return nil
}

// GRPCClient returns an Infoer over c.
func (p *InfoPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewInfoClient(c), nil
}

// RuntimePlugin is the go-plugin GRPCPlugin for the Runtime service. On the
// host side Impl is nil and Dispense returns a Runtime.
type RuntimePlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Runtime
}

// GRPCServer registers the Runtime service.
func (p *RuntimePlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	registerRuntime(s, p.Impl)
	return nil
}

// GRPCClient returns a Runtime over c.
func (p *RuntimePlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewRuntimeClient(c), nil
}

// FormatPlugin is the go-plugin GRPCPlugin for the Format service. On the
// host side Impl is nil and Dispense returns a Format.
type FormatPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Format
}

// GRPCServer registers the Format service.
func (p *FormatPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	registerFormat(s, p.Impl)
	return nil
}

// GRPCClient returns a Format over c.
func (p *FormatPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewFormatClient(c), nil
}

// HostPluginSets returns the VersionedPlugins a host passes to go-plugin's
// ClientConfig: for each wire version, the set of dispensable plugins
// (PluginInfo, KindRuntime, KindFormat).
func HostPluginSets() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		WireVersion: {
			PluginInfo:  &InfoPlugin{},
			KindRuntime: &RuntimePlugin{},
			KindFormat:  &FormatPlugin{},
		},
	}
}

// ServerPluginSet returns the plugin set that serves impl (a Runtime or a
// Format), or an error naming impl's type when it is neither.
func ServerPluginSet(impl any) (plugin.PluginSet, error) {
	switch v := impl.(type) {
	case Runtime:
		return plugin.PluginSet{PluginInfo: &InfoPlugin{Impl: v}, KindRuntime: &RuntimePlugin{Impl: v}}, nil
	case Format:
		return plugin.PluginSet{PluginInfo: &InfoPlugin{Impl: v}, KindFormat: &FormatPlugin{Impl: v}}, nil
	}
	return nil, fmt.Errorf("sdk.Serve: %T implements neither sdk.Runtime nor sdk.Format", impl)
}

// Serve runs impl (an sdk.Runtime or sdk.Format) as a plugin over go-plugin
// (gRPC over mutual TLS: the host's Ed25519 pair from TLSEnv, or go-plugin's
// AutoMTLS when the host asks for that) and returns when the host goes
// away. It must be the first thing main does: stdout is the handshake
// channel, and logs belong on stderr. A value that is neither a Runtime nor a
// Format is a programming error: Serve prints why on stderr and exits with
// status 2. A format plugin applies the Landlock sandbox the host asks for
// (see SandboxEnv) before it serves; if that fails it exits with status 3.
func Serve(impl any) {
	set, err := ServerPluginSet(impl)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if _, ok := set[KindFormat]; ok {
		if err := applySandboxFromEnv(); err != nil {
			fmt.Fprintf(os.Stderr, "sdk.Serve: %v\n", err)
			os.Exit(3)
		}
	}
	tlsProvider, err := serverTLSFromEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "sdk.Serve: %v\n", err)
		os.Exit(3)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{WireVersion: set},
		GRPCServer:       plugin.DefaultGRPCServer,
		TLSProvider:      tlsProvider,
		Logger: hclog.New(&hclog.LoggerOptions{
			Output:     os.Stderr,
			Level:      hclog.LevelFromString(os.Getenv("VOLT_PLUGIN_LOG_LEVEL")),
			JSONFormat: true,
		}),
	})
}
