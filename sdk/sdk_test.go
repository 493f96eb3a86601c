package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/volt-cli/volt/sdk"
	"github.com/volt-cli/volt/sdk/conformance"
	"github.com/volt-cli/volt/sdk/sdktest"
)

// fakeRuntime returns err from every call and echoes through the streams.
type fakeRuntime struct {
	err      error
	lastSpec sdk.WorkloadSpec
}

func (f *fakeRuntime) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "fake", Kind: sdk.KindRuntime, Version: "1.2.3", APIVersions: []int{1}, Capabilities: []string{"exec"}, ConfigSchema: "{}"}, nil
}
func (f *fakeRuntime) Fingerprint(context.Context) (sdk.Health, error) {
	return sdk.Health{Healthy: true, Detail: "ok", Attributes: map[string]string{"a": "b"}}, f.err
}
func (f *fakeRuntime) Start(_ context.Context, s sdk.WorkloadSpec) (sdk.Handle, error) {
	f.lastSpec = s
	return sdk.Handle{Name: s.Name, Data: []byte{0, 1, 2}}, f.err
}
func (f *fakeRuntime) Recover(context.Context, sdk.Handle) error { return f.err }
func (f *fakeRuntime) Wait(ctx context.Context, _ sdk.Handle) (sdk.WorkloadStatus, error) {
	<-ctx.Done()
	return sdk.WorkloadStatus{}, fmt.Errorf("wait: %w", ctx.Err())
}
func (f *fakeRuntime) Stop(_ context.Context, _ sdk.Handle, d time.Duration) error {
	if d != 1500*time.Millisecond {
		return fmt.Errorf("timeout %v: %w", d, sdk.ErrInvalid)
	}
	return f.err
}
func (f *fakeRuntime) Destroy(context.Context, sdk.Handle) error { return f.err }
func (f *fakeRuntime) Inspect(context.Context, sdk.Handle) (sdk.WorkloadStatus, error) {
	return sdk.WorkloadStatus{State: sdk.StatusRunning, PID: 42, StartedAt: time.Unix(1700000000, 5), Detail: map[string]string{"x": "y"}}, f.err
}
func (f *fakeRuntime) Logs(_ context.Context, _ sdk.Handle, _ bool, tail int, w io.Writer) error {
	big := bytes.Repeat([]byte("x"), 200<<10) // more than one chunk
	fmt.Fprintf(w, "tail=%d\n", tail)
	w.Write(big)
	return f.err
}
func (f *fakeRuntime) Exec(_ context.Context, _ sdk.Handle, req sdk.ExecRequest) (int, error) {
	if req.TTY {
		// Report the first size, stdin, then the next resize.
		b, _ := io.ReadAll(req.Stdin)
		sz := <-req.Resize
		fmt.Fprintf(req.Stdout, "tty %dx%d;%sresize %dx%d", req.Size.Rows, req.Size.Cols, b, sz.Rows, sz.Cols)
		return 0, f.err
	}
	if req.Stdin == nil {
		fmt.Fprint(req.Stderr, "no stdin")
		return 5, f.err
	}
	b, err := io.ReadAll(req.Stdin)
	if err != nil {
		return -1, err
	}
	fmt.Fprintf(req.Stdout, "%s:%s", strings.Join(req.Command, " "), strings.ToUpper(string(b)))
	return 0, f.err
}
func (f *fakeRuntime) Run(_ context.Context, req sdk.RunRequest) (int, error) {
	fmt.Fprintf(req.Output, "root=%s cmd=%v", req.Root, req.Command)
	return 9, f.err
}

func TestRuntimeRoundTrip(t *testing.T) {
	impl := &fakeRuntime{}
	rt := sdktest.Runtime(t, impl)
	ctx := context.Background()
	info, err := rt.Info(ctx)
	if err != nil || info.Name != "fake" || info.Version != "1.2.3" || info.ConfigSchema != "{}" || info.APIVersions[0] != 1 {
		t.Errorf("Info = %+v, %v", info, err)
	}
	spec := sdk.WorkloadSpec{Name: "w", Root: "/r", Command: []string{"a", "b"}, Env: map[string]string{"K": "V"},
		Mounts: []sdk.Mount{{Source: "/s", Target: "/t", ReadOnly: true}}, CPUs: 1.5, MemoryBytes: 1 << 30, Ports: []string{"80:8080"}}
	h, err := rt.Start(ctx, spec)
	if err != nil || h.Name != "w" || !bytes.Equal(h.Data, []byte{0, 1, 2}) {
		t.Errorf("Start = %+v, %v", h, err)
	}
	if fmt.Sprint(impl.lastSpec) != fmt.Sprint(spec) {
		t.Errorf("spec arrived as %+v", impl.lastSpec)
	}
	st, err := rt.Inspect(ctx, h)
	if err != nil || st.PID != 42 || !st.StartedAt.Equal(time.Unix(1700000000, 5)) || st.Detail["x"] != "y" {
		t.Errorf("Inspect = %+v, %v", st, err)
	}
	if err := rt.Stop(ctx, h, 1500*time.Millisecond); err != nil {
		t.Errorf("Stop: %v", err)
	}
	var logs bytes.Buffer
	if err := rt.Logs(ctx, h, false, 7, &logs); err != nil || !strings.HasPrefix(logs.String(), "tail=7\n") || logs.Len() != len("tail=7\n")+200<<10 {
		t.Errorf("Logs: %d bytes, %v", logs.Len(), err)
	}
	var out, errb bytes.Buffer
	code, err := rt.Exec(ctx, h, sdk.ExecRequest{Command: []string{"up"}, Stdin: strings.NewReader("hello"), Stdout: &out, Stderr: &errb})
	if err != nil || code != 0 || out.String() != "up:HELLO" {
		t.Errorf("Exec = %d, %q, %v", code, out.String(), err)
	}
	code, err = rt.Exec(ctx, h, sdk.ExecRequest{Command: []string{"x"}, Stderr: &errb})
	if err != nil || code != 5 || errb.String() != "no stdin" {
		t.Errorf("Exec without stdin = %d, %q, %v", code, errb.String(), err)
	}
	// A terminal session: size, a resize and stdin all cross the wire.
	resize := make(chan sdk.TermSize, 1)
	resize <- sdk.TermSize{Rows: 50, Cols: 132}
	out.Reset()
	code, err = rt.Exec(ctx, h, sdk.ExecRequest{Command: []string{"sh"}, TTY: true, Size: sdk.TermSize{Rows: 24, Cols: 80},
		Resize: resize, Stdin: strings.NewReader("ls\n"), Stdout: &out})
	if err != nil || code != 0 || out.String() != "tty 24x80;ls\nresize 50x132" {
		t.Errorf("Exec with a tty = %d, %q, %v", code, out.String(), err)
	}
	var runOut bytes.Buffer
	code, err = rt.Run(ctx, sdk.RunRequest{Root: "/scratch", Command: []string{"make"}, Output: &runOut})
	if err != nil || code != 9 || runOut.String() != "root=/scratch cmd=[make]" {
		t.Errorf("Run = %d, %q, %v", code, runOut.String(), err)
	}
}

func TestErrorsCrossTheWire(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{fmt.Errorf("workload %q: %w", "w", sdk.ErrNotFound), sdk.ErrNotFound},
		{fmt.Errorf("exec: %w", sdk.ErrUnsupported), sdk.ErrUnsupported},
		{fmt.Errorf("bad spec: %w", sdk.ErrInvalid), sdk.ErrInvalid},
		{fmt.Errorf("state dir: %w", sdk.ErrExists), sdk.ErrExists},
		{errors.New("disk on fire"), nil},
	}
	for _, tc := range tests {
		rt := sdktest.Runtime(t, &fakeRuntime{err: tc.err})
		ctx := context.Background()
		calls := map[string]error{}
		_, calls["Fingerprint"] = rt.Fingerprint(ctx)
		_, calls["Start"] = rt.Start(ctx, sdk.WorkloadSpec{})
		calls["Recover"] = rt.Recover(ctx, sdk.Handle{})
		calls["Destroy"] = rt.Destroy(ctx, sdk.Handle{})
		calls["Logs"] = rt.Logs(ctx, sdk.Handle{}, false, 0, io.Discard)
		_, calls["Exec"] = rt.Exec(ctx, sdk.Handle{}, sdk.ExecRequest{})
		_, calls["Run"] = rt.Run(ctx, sdk.RunRequest{})
		for call, err := range calls {
			if err == nil || err.Error() != tc.err.Error() {
				t.Errorf("%s: err = %v, want exactly the plugin's message %q", call, err, tc.err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("%s: err = %v, want errors.Is %v", call, err, tc.want)
			}
			for _, s := range []error{sdk.ErrNotFound, sdk.ErrUnsupported, sdk.ErrInvalid, sdk.ErrExists} {
				if s != tc.want && errors.Is(err, s) {
					t.Errorf("%s: err = %v also matches %v", call, err, s)
				}
			}
		}
	}
}

func TestContextCrossesTheWire(t *testing.T) {
	rt := sdktest.Runtime(t, &fakeRuntime{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := rt.Wait(ctx, sdk.Handle{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait past deadline: err = %v, want DeadlineExceeded", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel2)
	if _, err := rt.Wait(ctx2, sdk.Handle{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait cancelled: err = %v, want Canceled", err)
	}
}

func TestServerPluginSetRejectsOtherTypes(t *testing.T) {
	if _, err := sdk.ServerPluginSet(42); err == nil || !strings.Contains(err.Error(), "int") {
		t.Errorf("ServerPluginSet(42): err = %v", err)
	}
	for _, impl := range []any{&fakeRuntime{}, &dirFormat{}} {
		if _, err := sdk.ServerPluginSet(impl); err != nil {
			t.Errorf("ServerPluginSet(%T): %v", impl, err)
		}
	}
}

// dirFormat's "files" format is a directory tree stored as a flat text file:
// one "name\tcontents" line per regular file.
type dirFormat struct{}

func (dirFormat) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "format-files", Kind: sdk.KindFormat, Version: "0.1.0", APIVersions: []int{1}}, nil
}
func (dirFormat) Describe(context.Context) (sdk.FormatDescription, error) {
	return sdk.FormatDescription{Formats: []string{"files"}}, nil
}
func (dirFormat) Unpack(ctx context.Context, req sdk.UnpackRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if req.Format != "files" {
		return fmt.Errorf("format %q: %w", req.Format, sdk.ErrUnsupported)
	}
	b, err := os.ReadFile(req.Image)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		name, data, ok := strings.Cut(line, "\t")
		if !ok || !filepath.IsLocal(name) {
			return fmt.Errorf("bad line %q: %w", line, sdk.ErrInvalid)
		}
		if err := os.WriteFile(filepath.Join(req.Dest, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}
func (dirFormat) Pack(_ context.Context, req sdk.PackRequest) ([]sdk.PackedFile, error) {
	ents, err := os.ReadDir(req.Source)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(req.Source, e.Name()))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s\t%s\n", e.Name(), data)
	}
	if err := os.WriteFile(filepath.Join(req.Staging, "out.files"), []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return []sdk.PackedFile{{Path: "out.files", Format: "files", Meta: map[string]string{"n": fmt.Sprint(len(ents))}}}, nil
}
func (dirFormat) Convert(context.Context, sdk.ConvertRequest) ([]sdk.PackedFile, error) {
	return nil, fmt.Errorf("convert: %w", sdk.ErrUnsupported)
}

func TestFormatConformance(t *testing.T) {
	conformance.Format(t, func(t *testing.T) conformance.FormatFixture {
		dir := t.TempDir()
		good := filepath.Join(dir, "good.files")
		os.WriteFile(good, []byte("a\tone\nb\ttwo\n"), 0o644)
		escape := filepath.Join(dir, "escape.files")
		os.WriteFile(escape, []byte("../evil\tx\n"), 0o644)
		garbage := filepath.Join(dir, "garbage.files")
		os.WriteFile(garbage, []byte("no tab here\n"), 0o644)
		return conformance.FormatFixture{
			Format: sdktest.Format(t, dirFormat{}),
			Name:   "files",
			Input:  func(*testing.T) string { return good },
			Bad:    func(*testing.T) []string { return []string{escape, garbage, filepath.Join(dir, "missing")} },
		}
	})
}

func TestFormatRoundTripFields(t *testing.T) {
	f := sdktest.Format(t, dirFormat{})
	src, staging := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src, "x"), []byte("1"), 0o644)
	files, err := f.Pack(context.Background(), sdk.PackRequest{Source: src, Format: "files", Staging: staging, Options: map[string]string{"k": "v"}})
	if err != nil || len(files) != 1 || files[0].Meta["n"] != "1" || files[0].Format != "files" {
		t.Errorf("Pack = %+v, %v", files, err)
	}
	if _, err := f.Convert(context.Background(), sdk.ConvertRequest{}); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("Convert: err = %v, want ErrUnsupported", err)
	}
}
