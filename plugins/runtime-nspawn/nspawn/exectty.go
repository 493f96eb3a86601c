package nspawn

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/volt-cli/volt/sdk"
)

// ttyDrain bounds how long output is still read after the command exited
// (a process it left behind may hold the terminal open).
const ttyDrain = 300 * time.Millisecond

// runOnTTY runs cmd (not yet started, its stdio unset) as the leader of a new
// session whose controlling terminal is a new pseudo-terminal of req.Size:
// req.Stdin is copied to the terminal (so a Ctrl-C byte interrupts the
// foreground process, as at a console), everything written to the terminal
// goes to req.Stdout, and req.Resize changes its window size. It returns
// cmd.Wait's error.
//
// The terminal comes from the container's own devpts (pid is its init), so
// inside it is /dev/pts/N and tty(1) names it; where that cannot be opened
// safely, from the host's.
func runOnTTY(cmd *exec.Cmd, req sdk.ExecRequest, pid int) error {
	ptmx, tty, err := containerPTY(pid)
	if err != nil {
		if ptmx, tty, err = pty.Open(); err != nil {
			return fmt.Errorf("open a pseudo-terminal: %w", err)
		}
	}
	defer ptmx.Close()
	size := &pty.Winsize{Rows: req.Size.Rows, Cols: req.Size.Cols}
	if size.Rows == 0 || size.Cols == 0 {
		size.Rows, size.Cols = 24, 80
	}
	_ = pty.Setsize(ptmx, size)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	err = cmd.Start()
	tty.Close()
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	defer close(stop)
	if req.Resize != nil {
		go func() {
			for {
				select {
				case sz := <-req.Resize:
					_ = pty.Setsize(ptmx, &pty.Winsize{Rows: sz.Rows, Cols: sz.Cols})
				case <-stop:
					return
				}
			}
		}()
	}
	if req.Stdin != nil {
		go func() { _, _ = io.Copy(ptmx, req.Stdin) }()
	}
	out := make(chan struct{})
	go func() {
		defer close(out)
		if req.Stdout != nil {
			_, _ = io.Copy(req.Stdout, ptmx) // ends with EIO when the terminal's last user closes it
		} else {
			_, _ = io.Copy(io.Discard, ptmx)
		}
	}()
	err = cmd.Wait()
	select {
	case <-out:
	case <-time.After(ttyDrain):
	}
	return err
}

// containerPTY opens a new pseudo-terminal pair on the devpts of the
// container whose init is pid: its /dev/pts/ptmx, resolved inside the
// container's root (a symlink planted there cannot lead out) and checked to
// be the ptmx device, and the peer through TIOCGPTPEER (no path lookup).
func containerPTY(pid int) (ptmx, tty *os.File, err error) {
	root, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, "dev/pts/ptmx", &unix.OpenHow{
		Flags:   unix.O_RDWR | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 5 || unix.Minor(st.Rdev) != 2 {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("container /dev/pts/ptmx is not the ptmx device")
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	peer, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		unix.Close(fd)
		return nil, nil, errno
	}
	return os.NewFile(uintptr(fd), "ptmx"), os.NewFile(uintptr(peer), "pts"), nil
}
