package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/volt-cli/volt/sdk/internal/pb"
)

// chunkSize bounds the payload of one streamed message.
const chunkSize = 64 << 10

// NewRuntimeClient returns a Runtime that calls a runtime plugin served on conn.
// Every call carries its ctx (deadline and cancellation) to the plugin; errors
// come back matching the sdk sentinels with errors.Is.
func NewRuntimeClient(conn grpc.ClientConnInterface) Runtime {
	return &runtimeClient{info: pb.NewPluginClient(conn), rt: pb.NewRuntimeClient(conn)}
}

type runtimeClient struct {
	info pb.PluginClient
	rt   pb.RuntimeClient
}

func (c *runtimeClient) Info(ctx context.Context) (Info, error) {
	return callInfo(ctx, c.info)
}

func callInfo(ctx context.Context, c pb.PluginClient) (Info, error) {
	r, err := c.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return Info{}, fromStatus(err)
	}
	return infoFromPB(r), nil
}

func (c *runtimeClient) Fingerprint(ctx context.Context) (Health, error) {
	r, err := c.rt.Fingerprint(ctx, &pb.FingerprintRequest{})
	if err != nil {
		return Health{}, fromStatus(err)
	}
	return Health{Healthy: r.GetHealthy(), Detail: r.GetDetail(), Attributes: r.GetAttributes()}, nil
}

func (c *runtimeClient) Start(ctx context.Context, spec WorkloadSpec) (Handle, error) {
	r, err := c.rt.Start(ctx, &pb.StartRequest{Spec: specToPB(spec)})
	if err != nil {
		return Handle{}, fromStatus(err)
	}
	return handleFromPB(r.GetHandle()), nil
}

func (c *runtimeClient) Recover(ctx context.Context, h Handle) error {
	_, err := c.rt.Recover(ctx, &pb.RecoverRequest{Handle: handleToPB(h)})
	return fromStatus(err)
}

func (c *runtimeClient) Wait(ctx context.Context, h Handle) (WorkloadStatus, error) {
	r, err := c.rt.Wait(ctx, &pb.WaitRequest{Handle: handleToPB(h)})
	if err != nil {
		return WorkloadStatus{}, fromStatus(err)
	}
	return statusFromPB(r.GetStatus()), nil
}

func (c *runtimeClient) Stop(ctx context.Context, h Handle, timeout time.Duration) error {
	_, err := c.rt.Stop(ctx, &pb.StopRequest{Handle: handleToPB(h), TimeoutNanos: int64(timeout)})
	return fromStatus(err)
}

func (c *runtimeClient) Destroy(ctx context.Context, h Handle) error {
	_, err := c.rt.Destroy(ctx, &pb.DestroyRequest{Handle: handleToPB(h)})
	return fromStatus(err)
}

func (c *runtimeClient) Inspect(ctx context.Context, h Handle) (WorkloadStatus, error) {
	r, err := c.rt.Inspect(ctx, &pb.InspectRequest{Handle: handleToPB(h)})
	if err != nil {
		return WorkloadStatus{}, fromStatus(err)
	}
	return statusFromPB(r.GetStatus()), nil
}

func (c *runtimeClient) Logs(ctx context.Context, h Handle, follow bool, tail int, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.rt.Logs(ctx, &pb.LogsRequest{Handle: handleToPB(h), Follow: follow, Tail: int32(tail)})
	if err != nil {
		return fromStatus(err)
	}
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fromStatus(err)
		}
		if _, err := w.Write(m.GetData()); err != nil {
			return fmt.Errorf("write logs: %w", err)
		}
	}
}

// Exec streams req.Stdin to the plugin from a separate goroutine; if
// req.Stdin blocks after the command has exited, that goroutine stays blocked
// in Read until the reader returns.
func (c *runtimeClient) Exec(ctx context.Context, h Handle, req ExecRequest) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.rt.Exec(ctx)
	if err != nil {
		return -1, fromStatus(err)
	}
	start := &pb.ExecStart{Handle: handleToPB(h), Command: req.Command, Env: req.Env, HasStdin: req.Stdin != nil, Tty: req.TTY}
	if req.TTY {
		start.Size = &pb.TermSize{Rows: uint32(req.Size.Rows), Cols: uint32(req.Size.Cols)}
	}
	if err := s.Send(&pb.ExecInput{Msg: &pb.ExecInput_Start{Start: start}}); err != nil {
		return -1, fromStatus(recvErr(s, err))
	}
	// Stdin and window sizes are sent from two goroutines; a gRPC stream
	// takes one sender at a time.
	var sendMu sync.Mutex
	send := func(m *pb.ExecInput) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return s.Send(m)
	}
	if req.TTY && req.Resize != nil {
		go func() {
			for {
				select {
				case sz := <-req.Resize:
					if send(&pb.ExecInput{Msg: &pb.ExecInput_Resize{Resize: &pb.TermSize{Rows: uint32(sz.Rows), Cols: uint32(sz.Cols)}}}) != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	if req.Stdin == nil {
		if !req.TTY || req.Resize == nil {
			_ = s.CloseSend()
		}
	} else {
		go func() {
			buf := make([]byte, chunkSize)
			for {
				n, rerr := req.Stdin.Read(buf)
				if n > 0 {
					if send(&pb.ExecInput{Msg: &pb.ExecInput_Stdin{Stdin: buf[:n]}}) != nil {
						return
					}
				}
				if rerr != nil {
					_ = send(&pb.ExecInput{Msg: &pb.ExecInput_StdinClose{StdinClose: true}})
					if !req.TTY || req.Resize == nil {
						sendMu.Lock()
						_ = s.CloseSend()
						sendMu.Unlock()
					}
					return
				}
			}
		}()
	}
	code, got := -1, false
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return -1, fromStatus(err)
		}
		switch x := m.GetMsg().(type) {
		case *pb.ExecOutput_Stdout:
			if err := writeTo(req.Stdout, x.Stdout); err != nil {
				return -1, fmt.Errorf("exec: write stdout: %w", err)
			}
		case *pb.ExecOutput_Stderr:
			if err := writeTo(req.Stderr, x.Stderr); err != nil {
				return -1, fmt.Errorf("exec: write stderr: %w", err)
			}
		case *pb.ExecOutput_ExitCode:
			code, got = int(x.ExitCode), true
		}
	}
	if !got {
		return -1, errors.New("exec: plugin ended the stream without an exit code")
	}
	return code, nil
}

// recvErr returns the real status of a stream whose Send failed: gRPC
// reports a failed Send as io.EOF and keeps the status for Recv.
func recvErr(s interface{ RecvMsg(any) error }, sendErr error) error {
	if !errors.Is(sendErr, io.EOF) {
		return sendErr
	}
	if err := s.RecvMsg(new(pb.ExecOutput)); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return sendErr
}

func writeTo(w io.Writer, p []byte) error {
	if w == nil {
		return nil
	}
	_, err := w.Write(p)
	return err
}

func (c *runtimeClient) Run(ctx context.Context, req RunRequest) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.rt.Run(ctx, &pb.RunRequest{Root: req.Root, Command: req.Command, Env: req.Env, WorkDir: req.WorkDir})
	if err != nil {
		return -1, fromStatus(err)
	}
	code, got := -1, false
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return -1, fromStatus(err)
		}
		switch x := m.GetEvent().(type) {
		case *pb.RunEvent_Output:
			if err := writeTo(req.Output, x.Output); err != nil {
				return -1, fmt.Errorf("run: write output: %w", err)
			}
		case *pb.RunEvent_ExitCode:
			code, got = int(x.ExitCode), true
		}
	}
	if !got {
		return -1, errors.New("run: plugin ended the stream without an exit code")
	}
	return code, nil
}

// runtimeServer serves a Runtime implementation over gRPC.
type runtimeServer struct {
	pb.UnimplementedRuntimeServer
	impl Runtime
}

func (s *runtimeServer) Fingerprint(ctx context.Context, _ *pb.FingerprintRequest) (*pb.FingerprintResponse, error) {
	h, err := s.impl.Fingerprint(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.FingerprintResponse{Healthy: h.Healthy, Detail: h.Detail, Attributes: h.Attributes}, nil
}

func (s *runtimeServer) Start(ctx context.Context, r *pb.StartRequest) (*pb.StartResponse, error) {
	h, err := s.impl.Start(ctx, specFromPB(r.GetSpec()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.StartResponse{Handle: handleToPB(h)}, nil
}

func (s *runtimeServer) Recover(ctx context.Context, r *pb.RecoverRequest) (*pb.RecoverResponse, error) {
	if err := s.impl.Recover(ctx, handleFromPB(r.GetHandle())); err != nil {
		return nil, toStatus(err)
	}
	return &pb.RecoverResponse{}, nil
}

func (s *runtimeServer) Wait(ctx context.Context, r *pb.WaitRequest) (*pb.WaitResponse, error) {
	st, err := s.impl.Wait(ctx, handleFromPB(r.GetHandle()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.WaitResponse{Status: statusToPB(st)}, nil
}

func (s *runtimeServer) Stop(ctx context.Context, r *pb.StopRequest) (*pb.StopResponse, error) {
	if err := s.impl.Stop(ctx, handleFromPB(r.GetHandle()), time.Duration(r.GetTimeoutNanos())); err != nil {
		return nil, toStatus(err)
	}
	return &pb.StopResponse{}, nil
}

func (s *runtimeServer) Destroy(ctx context.Context, r *pb.DestroyRequest) (*pb.DestroyResponse, error) {
	if err := s.impl.Destroy(ctx, handleFromPB(r.GetHandle())); err != nil {
		return nil, toStatus(err)
	}
	return &pb.DestroyResponse{}, nil
}

func (s *runtimeServer) Inspect(ctx context.Context, r *pb.InspectRequest) (*pb.InspectResponse, error) {
	st, err := s.impl.Inspect(ctx, handleFromPB(r.GetHandle()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.InspectResponse{Status: statusToPB(st)}, nil
}

// streamWriter turns Write calls into messages sent on a stream, in chunks,
// one Send at a time.
type streamWriter struct {
	mu   *sync.Mutex
	send func(p []byte) error
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for len(p) > 0 {
		k := min(len(p), chunkSize)
		if err := w.send(p[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

func (s *runtimeServer) Logs(r *pb.LogsRequest, st pb.Runtime_LogsServer) error {
	w := streamWriter{mu: new(sync.Mutex), send: func(p []byte) error { return st.Send(&pb.LogsChunk{Data: p}) }}
	err := s.impl.Logs(st.Context(), handleFromPB(r.GetHandle()), r.GetFollow(), int(r.GetTail()), w)
	return toStatus(err)
}

func (s *runtimeServer) Exec(st pb.Runtime_ExecServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return toStatus(fmt.Errorf("exec: first message must be start: %w", ErrInvalid))
	}
	mu := new(sync.Mutex)
	req := ExecRequest{
		Command: start.GetCommand(),
		Env:     start.GetEnv(),
		Stdout: streamWriter{mu: mu, send: func(p []byte) error {
			return st.Send(&pb.ExecOutput{Msg: &pb.ExecOutput_Stdout{Stdout: p}})
		}},
		Stderr: streamWriter{mu: mu, send: func(p []byte) error {
			return st.Send(&pb.ExecOutput{Msg: &pb.ExecOutput_Stderr{Stderr: p}})
		}},
	}
	ctx, cancel := context.WithCancel(st.Context())
	defer cancel()
	var resize chan TermSize
	if start.GetTty() {
		req.TTY = true
		req.Size = TermSize{Rows: uint16(start.GetSize().GetRows()), Cols: uint16(start.GetSize().GetCols())}
		resize = make(chan TermSize, 1)
		req.Resize = resize
	}
	var pw *io.PipeWriter
	if start.GetHasStdin() {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		defer pr.Close()
		req.Stdin = pr
	}
	if pw != nil || resize != nil {
		go func() {
			for {
				m, err := st.Recv()
				if err != nil {
					if errors.Is(err, io.EOF) {
						err = nil
					}
					if pw != nil {
						pw.CloseWithError(err)
					}
					return
				}
				switch x := m.GetMsg().(type) {
				case *pb.ExecInput_Stdin:
					if pw == nil {
						continue
					}
					if _, err := pw.Write(x.Stdin); err != nil {
						return
					}
				case *pb.ExecInput_StdinClose:
					if pw != nil {
						pw.Close()
					}
					if resize == nil {
						return
					}
				case *pb.ExecInput_Resize:
					if resize == nil {
						continue
					}
					sz := TermSize{Rows: uint16(x.Resize.GetRows()), Cols: uint16(x.Resize.GetCols())}
					select { // only the newest size matters
					case <-resize:
					default:
					}
					select {
					case resize <- sz:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	code, err := s.impl.Exec(ctx, handleFromPB(start.GetHandle()), req)
	if err != nil {
		return toStatus(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return st.Send(&pb.ExecOutput{Msg: &pb.ExecOutput_ExitCode{ExitCode: int32(code)}})
}

func (s *runtimeServer) Run(r *pb.RunRequest, st pb.Runtime_RunServer) error {
	mu := new(sync.Mutex)
	w := streamWriter{mu: mu, send: func(p []byte) error {
		return st.Send(&pb.RunEvent{Event: &pb.RunEvent_Output{Output: p}})
	}}
	code, err := s.impl.Run(st.Context(), RunRequest{Root: r.GetRoot(), Command: r.GetCommand(),
		Env: r.GetEnv(), WorkDir: r.GetWorkDir(), Output: w})
	if err != nil {
		return toStatus(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return st.Send(&pb.RunEvent{Event: &pb.RunEvent_ExitCode{ExitCode: int32(code)}})
}
