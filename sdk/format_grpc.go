package sdk

import (
	"context"

	"google.golang.org/grpc"

	"github.com/volt-cli/volt/sdk/internal/pb"
)

// NewFormatClient returns a Format that calls a format plugin served on conn.
// Every call carries its ctx to the plugin; errors come back matching the sdk
// sentinels with errors.Is.
func NewFormatClient(conn grpc.ClientConnInterface) Format {
	return &formatClient{info: pb.NewPluginClient(conn), f: pb.NewFormatClient(conn)}
}

type formatClient struct {
	info pb.PluginClient
	f    pb.FormatClient
}

func (c *formatClient) Info(ctx context.Context) (Info, error) { return callInfo(ctx, c.info) }

func (c *formatClient) Describe(ctx context.Context) (FormatDescription, error) {
	r, err := c.f.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return FormatDescription{}, fromStatus(err)
	}
	return FormatDescription{Formats: r.GetFormats(), MediaTypes: r.GetMediaTypes()}, nil
}

func (c *formatClient) Unpack(ctx context.Context, req UnpackRequest) error {
	_, err := c.f.Unpack(ctx, &pb.UnpackRequest{Image: req.Image, Format: req.Format, Dest: req.Dest})
	return fromStatus(err)
}

func (c *formatClient) Pack(ctx context.Context, req PackRequest) ([]PackedFile, error) {
	r, err := c.f.Pack(ctx, &pb.PackRequest{Source: req.Source, Format: req.Format, Staging: req.Staging, Options: req.Options})
	if err != nil {
		return nil, fromStatus(err)
	}
	return packedFromPB(r.GetFiles()), nil
}

func (c *formatClient) Convert(ctx context.Context, req ConvertRequest) ([]PackedFile, error) {
	r, err := c.f.Convert(ctx, &pb.ConvertRequest{Bundle: req.Bundle, To: req.To, Staging: req.Staging})
	if err != nil {
		return nil, fromStatus(err)
	}
	return packedFromPB(r.GetFiles()), nil
}

// formatServer serves a Format implementation over gRPC.
type formatServer struct {
	pb.UnimplementedFormatServer
	impl Format
}

func (s *formatServer) Describe(ctx context.Context, _ *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.DescribeResponse{Formats: d.Formats, MediaTypes: d.MediaTypes}, nil
}

func (s *formatServer) Unpack(ctx context.Context, r *pb.UnpackRequest) (*pb.UnpackResponse, error) {
	if err := s.impl.Unpack(ctx, UnpackRequest{Image: r.GetImage(), Format: r.GetFormat(), Dest: r.GetDest()}); err != nil {
		return nil, toStatus(err)
	}
	return &pb.UnpackResponse{}, nil
}

func (s *formatServer) Pack(ctx context.Context, r *pb.PackRequest) (*pb.PackResponse, error) {
	fs, err := s.impl.Pack(ctx, PackRequest{Source: r.GetSource(), Format: r.GetFormat(), Staging: r.GetStaging(), Options: r.GetOptions()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.PackResponse{Files: packedToPB(fs)}, nil
}

func (s *formatServer) Convert(ctx context.Context, r *pb.ConvertRequest) (*pb.ConvertResponse, error) {
	fs, err := s.impl.Convert(ctx, ConvertRequest{Bundle: r.GetBundle(), To: r.GetTo(), Staging: r.GetStaging()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ConvertResponse{Files: packedToPB(fs)}, nil
}

// Infoer is the part every plugin implements: Runtime and Format both embed it.
type Infoer interface {
	Info(ctx context.Context) (Info, error)
}

// NewInfoClient returns an Infoer that calls Plugin.Info on conn; the host
// uses it to learn a plugin's kind before dispensing it.
func NewInfoClient(conn grpc.ClientConnInterface) Infoer {
	return infoClient{pb.NewPluginClient(conn)}
}

type infoClient struct{ c pb.PluginClient }

func (c infoClient) Info(ctx context.Context) (Info, error) { return callInfo(ctx, c.c) }

// infoServer serves Plugin.Info.
type infoServer struct {
	pb.UnimplementedPluginServer
	impl Infoer
}

func (s *infoServer) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.InfoResponse, error) {
	i, err := s.impl.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return infoToPB(i), nil
}
