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

// mkdirAllIn opens (creating as needed) dir relative to rootfd, resolving
// inside the root, and returns an O_PATH descriptor for it.
func mkdirAllIn(rootfd int, dir string) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT}
	if dir == "." || dir == "" {
		return unix.Openat2(rootfd, ".", how)
	}
	fd, err := unix.Openat2(rootfd, dir, how)
	if err == nil {
		return fd, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return -1, err
	}
	parent, err := mkdirAllIn(rootfd, path.Dir(dir))
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	if err := unix.Mkdirat(parent, path.Base(dir), 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, err
	}
	return unix.Openat2(rootfd, dir, how)
}
