//go:build unix

package atomicfile

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// errRemoved: the temp was removed (by RemoveStale) before it was locked.
var errRemoved = errors.New("temp removed before it was locked")

// hold locks the open file description of f (through a close-on-exec
// duplicate) and checks that name still names f: RemoveStale may have
// removed a temp between its creation and this lock, which errRemoved says.
func hold(f *os.File, name string) (*Hold, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	lf := os.NewFile(uintptr(fd), name)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errRemoved // a cleaner holds it and is removing it
		}
		return nil, err
	}
	if !sameFile(fd, name) {
		lf.Close()
		return nil, errRemoved
	}
	return &Hold{f: lf}, nil
}

// sameFile reports whether name (not followed if a symlink) is the inode open as fd.
func sameFile(fd int, name string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(fd, &a) != nil || unix.Lstat(name, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// removeIfStale removes name if no one holds its lock, while holding it
// itself, so that a writer that created it but has not locked it yet sees
// it gone (hold's check) and makes another.
func removeIfStale(name string, dir bool) bool {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	if dir {
		flags |= unix.O_DIRECTORY
	}
	fd, err := unix.Open(name, flags, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Uid != uint32(os.Getuid()) {
		return false
	}
	if (st.Mode&unix.S_IFMT == unix.S_IFDIR) != dir || (!dir && st.Mode&unix.S_IFMT != unix.S_IFREG) {
		return false
	}
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return false // a live writer holds it
	}
	if !sameFile(fd, name) {
		return false // renamed into place (or replaced) since we looked
	}
	if dir {
		return os.RemoveAll(name) == nil
	}
	return os.Remove(name) == nil
}
