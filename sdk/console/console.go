// Package console attaches a terminal to a workload's serial console: the unix
// socket chardev that runtime-qemu keeps at StateDir/console.sock (Inspect
// reports its path as Detail["console"]). QEMU serves one client at a time;
// everything the guest prints is also in StateDir/serial.log whether or not
// anyone is attached.
//
// The caller owns the terminal: put it in raw mode (golang.org/x/term
// MakeRaw) before Attach and restore it after, so that the detach key and
// the guest's line editing work.
package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
)

// DetachKey is the byte that ends Attach: Ctrl-] (as in telnet and virsh console).
const DetachKey = 0x1d

// ErrClosed is returned by Attach when the VM closed its console (QEMU exited).
var ErrClosed = errors.New("console closed by the VM")

// Attach connects to the console socket and copies in to the guest and the
// guest's output to out until the user types DetachKey or in ends (nil),
// the VM closes the console (ErrClosed), or ctx ends (ctx.Err()). A read
// from in that is blocked when Attach returns is left to finish in the
// background.
func Attach(ctx context.Context, socket string, in io.Reader, out io.Writer) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("attach console %s: %w", socket, err)
	}
	defer conn.Close()
	fromVM := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, conn)
		fromVM <- err
	}()
	toVM := make(chan error, 1)
	go func() { toVM <- copyUntilDetach(conn, in) }()
	select {
	case err := <-toVM:
		if err != nil {
			return fmt.Errorf("attach console %s: %w", socket, err)
		}
		return nil
	case err := <-fromVM:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("attach console %s: %w", socket, err)
		}
		return fmt.Errorf("attach console %s: %w", socket, ErrClosed)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// copyUntilDetach copies in to w up to DetachKey or EOF.
func copyUntilDetach(w io.Writer, in io.Reader) error {
	buf := make([]byte, 4096)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			i := bytes.IndexByte(chunk, DetachKey)
			if i >= 0 {
				chunk = chunk[:i]
			}
			if len(chunk) > 0 {
				if _, werr := w.Write(chunk); werr != nil {
					return werr
				}
			}
			if i >= 0 {
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
