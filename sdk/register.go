package sdk

import (
	"google.golang.org/grpc"

	"github.com/volt-cli/volt/sdk/internal/pb"
)

func registerInfo(s grpc.ServiceRegistrar, impl Infoer) {
	pb.RegisterPluginServer(s, &infoServer{impl: impl})
}

func registerRuntime(s grpc.ServiceRegistrar, impl Runtime) {
	pb.RegisterRuntimeServer(s, &runtimeServer{impl: impl})
}

func registerFormat(s grpc.ServiceRegistrar, impl Format) {
	pb.RegisterFormatServer(s, &formatServer{impl: impl})
}
