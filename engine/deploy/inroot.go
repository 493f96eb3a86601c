package deploy

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrEscape is returned for an overlay target that would leave the workload's root.
var ErrEscape = errors.New("path escapes the root")

// writeInRoot writes data to target (an absolute path inside the workload)
// under root. Every component is resolved inside root with openat2
// RESOLVE_IN_ROOT, so symlinks in the image (absolute or relative) can
// never lead outside it; targets with ".." are refused outright. Missing
// parent directories are created (0755). The final component must not be a
// symlink.
func writeInRoot(root, target string, data []byte, mode os.FileMode) error {
	if !path.IsAbs(target) {
		return fmt.Errorf("target %q: want an absolute path inside the workload", target)
	}
	for _, c := range strings.Split(target, "/") {
		if c == ".." {
			return fmt.Errorf("target %q: %w", target, ErrEscape)
		}
	}
	rel := strings.TrimPrefix(path.Clean(target), "/")
	if rel == "" || rel == "." {
		return fmt.Errorf("target %q: not a file path", target)
	}
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open root %s: %w", root, err)
	}
	defer unix.Close(rootfd)
	dirfd, err := mkdirAllIn(rootfd, path.Dir(rel))
	if err != nil {
		return fmt.Errorf("target %q: %w", target, err)
	}
	defer unix.Close(dirfd)
	base := path.Base(rel)
	tmp := "." + base + ".volt-tmp"
	fd, err := unix.Openat2(dirfd, tmp, &unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Mode:    uint64(mode.Perm()),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return fmt.Errorf("target %q: %w", target, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode.Perm())
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		// renameat replaces a symlink at the final name rather than following it.
		werr = unix.Renameat(dirfd, tmp, dirfd, base)
	}
	if werr != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("target %q: %w", target, werr)
	}
	return nil
}

// maxLinks bounds the dangling symlinks mkdirAllIn follows (as the kernel's 40).
const maxLinks = 40

// mkdirAllIn opens (creating as needed) dir relative to rootfd, resolving
// inside the root, and returns an O_PATH descriptor for it. A component
// that is a dangling symlink (say /etc/app -> /srv/app, absent from the
// image) gets its target created, resolved inside the root as the
// container will see it, like any missing directory.
func mkdirAllIn(rootfd int, dir string) (int, error) {
	links := 0
	return mkdirAllInLinks(rootfd, dir, &links)
}

func mkdirAllInLinks(rootfd int, dir string, links *int) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT}
	if dir == "." || dir == "" || dir == "/" {
		return unix.Openat2(rootfd, ".", how)
	}
	fd, err := unix.Openat2(rootfd, dir, how)
	if err == nil {
		return fd, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return -1, err
	}
	parent, err := mkdirAllInLinks(rootfd, path.Dir(dir), links)
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	base := path.Base(dir)
	if err := unix.Mkdirat(parent, base, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, err
	}
	fd, err = unix.Openat2(rootfd, dir, how)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	// Still missing although the name exists: a dangling symlink. Create
	// its target instead. Every step still resolves with RESOLVE_IN_ROOT,
	// so whatever the link says, nothing is created outside the root.
	target, lerr := readlinkat(parent, base)
	if lerr != nil {
		return -1, err
	}
	if *links++; *links > maxLinks {
		return -1, unix.ELOOP
	}
	if !path.IsAbs(target) {
		at, err := pathInRoot(rootfd, parent)
		if err != nil {
			return -1, err
		}
		target = path.Join(at, target)
	}
	// path.Clean (by Join or here) stops ".." at "/", as RESOLVE_IN_ROOT does.
	target = strings.TrimPrefix(path.Clean("/"+target), "/")
	tfd, err := mkdirAllInLinks(rootfd, target, links)
	if err != nil {
		return -1, err
	}
	unix.Close(tfd)
	return unix.Openat2(rootfd, dir, how)
}

// readlinkat returns the target of the symlink name in dirfd.
func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// pathInRoot returns where the directory fd is, as an absolute path inside
// the root rootfd.
func pathInRoot(rootfd, fd int) (string, error) {
	root, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", rootfd))
	if err != nil {
		return "", err
	}
	dir, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", err
	}
	if dir == root {
		return "/", nil
	}
	rel, ok := strings.CutPrefix(dir, strings.TrimSuffix(root, "/")+"/")
	if !ok {
		return "", fmt.Errorf("%s is not under %s: %w", dir, root, ErrEscape)
	}
	return "/" + rel, nil
}
