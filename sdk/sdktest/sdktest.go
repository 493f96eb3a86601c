// Package sdktest runs a plugin implementation in-process behind a real gRPC
// connection over a unix socket, served by the same gRPC plugin adapters
// sdk.Serve uses, so plugin authors test exactly what the host sees over the
// wire: messages, error codes, streaming and context cancellation.
package sdktest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/volt-cli/volt/sdk"
)

// Runtime serves impl over gRPC for the duration of t and returns a client
// for it. The server and connection are closed when t ends.
func Runtime(t testing.TB, impl sdk.Runtime) sdk.Runtime {
	t.Helper()
	return sdk.NewRuntimeClient(serve(t, impl))
}

// Format serves impl over gRPC for the duration of t and returns a client
// for it. The server and connection are closed when t ends.
func Format(t testing.TB, impl sdk.Format) sdk.Format {
	t.Helper()
	return sdk.NewFormatClient(serve(t, impl))
}

func serve(t testing.TB, impl any) *grpc.ClientConn {
	t.Helper()
	set, err := sdk.ServerPluginSet(impl)
	if err != nil {
		t.Fatal(err)
	}
	// Unix socket paths are limited to 108 bytes: t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "sdktest-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	for _, p := range set {
		if err := p.(plugin.GRPCPlugin).GRPCServer(nil, srv); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _ = srv.Serve(ln) }()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		os.RemoveAll(dir)
	})
	return conn
}
