package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrQMP is wrapped by errors QEMU's monitor returned for a command.
var ErrQMP = errors.New("qmp error")

// qmpEvent is an asynchronous QMP event such as SHUTDOWN or POWERDOWN.
type qmpEvent struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// qmpMessage is any message QEMU sends on a QMP socket.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// qmpConn is a client for one QMP unix socket: the greeting and capability
// negotiation happen in dialQMP; execute runs one command; events seen while
// waiting for a reply are queued for nextEvent.
type qmpConn struct {
	c      net.Conn
	r      *bufio.Reader
	events []qmpEvent
}

// maxQMPLine bounds one message from QEMU.
const maxQMPLine = 1 << 20

// dialQMP connects to the QMP socket at path, reads the greeting and leaves
// capability negotiation mode. ctx bounds the whole exchange.
func dialQMP(ctx context.Context, path string) (*qmpConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", path, err)
	}
	q := &qmpConn{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	msg, err := q.read(ctx)
	if err == nil && msg.QMP == nil {
		err = fmt.Errorf("%w: no greeting", ErrQMP)
	}
	if err == nil {
		_, err = q.execute(ctx, "qmp_capabilities", nil)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("qmp %s: %w", path, err)
	}
	return q, nil
}

// Close closes the connection.
func (q *qmpConn) Close() error { return q.c.Close() }

// read reads one message, honouring ctx's deadline and cancellation.
func (q *qmpConn) read(ctx context.Context) (qmpMessage, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Time{}
	}
	_ = q.c.SetReadDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = q.c.SetReadDeadline(time.Now()) })
	defer stop()
	line, err := readLine(q.r, maxQMPLine)
	if err != nil {
		if ctx.Err() != nil {
			return qmpMessage{}, ctx.Err()
		}
		return qmpMessage{}, err
	}
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return qmpMessage{}, fmt.Errorf("%w: bad message %.200q: %v", ErrQMP, line, err)
	}
	return m, nil
}

// readLine reads one '\n'-terminated line of at most limit bytes.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var out []byte
	for {
		chunk, err := r.ReadSlice('\n')
		out = append(out, chunk...)
		if len(out) > limit {
			return nil, fmt.Errorf("%w: message longer than %d bytes", ErrQMP, limit)
		}
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// execute runs cmd with args (nil for none) and returns its "return" value.
// A QMP error reply wraps ErrQMP.
func (q *qmpConn) execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = q.c.SetWriteDeadline(dl)
	}
	if _, err := q.c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	for {
		m, err := q.read(ctx)
		if err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, err)
		}
		switch {
		case m.Event != "":
			q.events = append(q.events, qmpEvent{Event: m.Event, Data: m.Data})
		case m.Error != nil:
			return nil, fmt.Errorf("qmp %s: %w: %s: %s", cmd, ErrQMP, m.Error.Class, m.Error.Desc)
		case m.Return != nil:
			return m.Return, nil
		}
	}
}

// nextEvent returns the next event, queued or read from the socket.
func (q *qmpConn) nextEvent(ctx context.Context) (qmpEvent, error) {
	for len(q.events) == 0 {
		m, err := q.read(ctx)
		if err != nil {
			return qmpEvent{}, fmt.Errorf("qmp event: %w", err)
		}
		if m.Event != "" {
			q.events = append(q.events, qmpEvent{Event: m.Event, Data: m.Data})
		}
	}
	ev := q.events[0]
	q.events = q.events[1:]
	return ev, nil
}

// queryStatus asks QEMU for the run state ("running", "paused", "shutdown", ...).
func queryStatus(ctx context.Context, path string) (string, error) {
	q, err := dialQMP(ctx, path)
	if err != nil {
		return "", err
	}
	defer q.Close()
	raw, err := q.execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", fmt.Errorf("qmp query-status: %w: %v", ErrQMP, err)
	}
	return st.Status, nil
}
