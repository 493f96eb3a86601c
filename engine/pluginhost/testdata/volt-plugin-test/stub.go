package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/volt-cli/volt/sdk"
)

// stubRuntime answers Info and Fingerprint; Run either waits for ctx or
// (crashInRun) writes output and a stderr line, then panics.
type stubRuntime struct {
	name        string
	apiVersions []int
	crashInRun  bool
}

func (r stubRuntime) Info(context.Context) (sdk.Info, error) {
	v := r.apiVersions
	if v == nil {
		v = []int{sdk.APIVersion}
	}
	return sdk.Info{Name: r.name, Kind: sdk.KindRuntime, Version: "0.0.1", APIVersions: v}, nil
}

func (r stubRuntime) Fingerprint(context.Context) (sdk.Health, error) {
	return sdk.Health{Healthy: true, Detail: "stub"}, nil
}

func (r stubRuntime) Start(context.Context, sdk.WorkloadSpec) (sdk.Handle, error) {
	return sdk.Handle{}, sdk.ErrUnsupported
}
func (r stubRuntime) Recover(context.Context, sdk.Handle) error { return sdk.ErrNotFound }
func (r stubRuntime) Wait(context.Context, sdk.Handle) (sdk.WorkloadStatus, error) {
	return sdk.WorkloadStatus{}, sdk.ErrNotFound
}
func (r stubRuntime) Stop(context.Context, sdk.Handle, time.Duration) error { return nil }
func (r stubRuntime) Destroy(context.Context, sdk.Handle) error             { return nil }
func (r stubRuntime) Inspect(context.Context, sdk.Handle) (sdk.WorkloadStatus, error) {
	return sdk.WorkloadStatus{}, sdk.ErrNotFound
}
func (r stubRuntime) Logs(context.Context, sdk.Handle, bool, int, io.Writer) error { return nil }
func (r stubRuntime) Exec(context.Context, sdk.Handle, sdk.ExecRequest) (int, error) {
	return -1, sdk.ErrUnsupported
}

func (r stubRuntime) Run(ctx context.Context, req sdk.RunRequest) (int, error) {
	fmt.Fprintln(req.Output, "step started")
	if r.crashInRun {
		fmt.Fprintln(os.Stderr, "bad-crash: about to fail")
		time.Sleep(50 * time.Millisecond)
		panic("bad-crash: boom")
	}
	<-ctx.Done()
	return -1, ctx.Err()
}

// copyFormat's "copy" format copies the file Image to Dest/file.
type copyFormat struct{}

func (copyFormat) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "format-test", Kind: sdk.KindFormat, Version: "0.0.1", APIVersions: []int{sdk.APIVersion}}, nil
}

func (copyFormat) Describe(context.Context) (sdk.FormatDescription, error) {
	return sdk.FormatDescription{Formats: []string{"copy"}}, nil
}

func (copyFormat) Unpack(_ context.Context, req sdk.UnpackRequest) error {
	if req.Format != "copy" {
		return fmt.Errorf("format %q: %w", req.Format, sdk.ErrUnsupported)
	}
	b, err := os.ReadFile(req.Image)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	if err := os.WriteFile(filepath.Join(req.Dest, "file"), b, 0o644); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	return nil
}

func (copyFormat) Pack(context.Context, sdk.PackRequest) ([]sdk.PackedFile, error) {
	return nil, sdk.ErrUnsupported
}

func (copyFormat) Convert(context.Context, sdk.ConvertRequest) ([]sdk.PackedFile, error) {
	return nil, sdk.ErrUnsupported
}
