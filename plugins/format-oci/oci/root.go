package oci

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// root is a directory that every write is confined to. Paths are resolved
// by the kernel with openat2(RESOLVE_IN_ROOT): ".." and symlinks (absolute or
// relative) met while resolving are interpreted as if root were "/", so no
// resolution can leave it. Final path components are then operated on with
// *at system calls relative to the resolved parent, without following them.
type root struct {
	fd   int    // O_PATH directory descriptor of the root
	path string // for messages only
}

// openRoot opens dir as a confinement root.
func openRoot(dir string) (*root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open destination %q: %w", dir, err)
	}
	return &root{fd: fd, path: dir}, nil
}

func (r *root) close() error { return unix.Close(r.fd) }

// resolveDir opens the directory rel (slash-separated, relative, clean; ""
// for the root itself) resolved inside the root. The result is an O_PATH fd.
func (r *root) resolveDir(rel string) (int, error) {
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(r.fd, rel, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue // openat2 may ask for a retry when a rename races the walk
		}
		return fd, err
	}
}

// mkdirAll makes sure the directory rel exists inside the root (creating
// missing components with mode 0755) and returns an O_PATH fd of it.
// A component that is a symlink is followed inside the root; one that points
// at something missing or at a non-directory is an error.
func (r *root) mkdirAll(rel string) (int, error) {
	fd, err := r.resolveDir(rel)
	if err == nil || err != unix.ENOENT {
		if err != nil {
			return -1, fmt.Errorf("resolve %q: %w", rel, err)
		}
		return fd, nil
	}
	cur, err := r.resolveDir("")
	if err != nil {
		return -1, err
	}
	prefix := ""
	for _, c := range strings.Split(rel, "/") {
		prefix = path.Join(prefix, c)
		if err := unix.Mkdirat(cur, c, 0o755); err != nil && err != unix.EEXIST {
			unix.Close(cur)
			return -1, fmt.Errorf("mkdir %q: %w", prefix, err)
		}
		next, err := r.resolveDir(prefix)
		unix.Close(cur)
		if err != nil {
			if err == unix.ENOENT {
				return -1, fmt.Errorf("%w: parent %q is a symlink to a missing directory", ErrUnsafePath, prefix)
			}
			return -1, fmt.Errorf("resolve %q: %w", prefix, err)
		}
		cur = next
	}
	return cur, nil
}

// removeAllAt removes name (file, symlink or whole directory tree) from the
// directory dirfd without following any symlink. A missing name is not an error.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %q for removal: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	for {
		names, rerr := f.Readdirnames(256)
		for _, n := range names {
			if err := removeAllAt(fd, n); err != nil {
				return fmt.Errorf("%s/%w", name, err)
			}
		}
		if rerr != nil {
			break
		}
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove directory %q: %w", name, err)
	}
	return nil
}

// readDirNames lists the directory rel inside the root.
func (r *root) readDirNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

// clear removes everything inside the root (not the root itself).
func (r *root) clear() error {
	names, err := r.readDirNames(r.fd)
	if err != nil {
		return fmt.Errorf("list %q: %w", r.path, err)
	}
	for _, n := range names {
		if err := removeAllAt(r.fd, n); err != nil {
			return err
		}
	}
	return nil
}

// cleanName validates a tar entry or link name and returns it clean and
// relative ("" for the root itself). Absolute names, ".." components and NUL
// bytes are refused with ErrUnsafePath.
func cleanName(n string) (string, error) {
	if n == "" {
		return "", fmt.Errorf("%w: empty name", ErrUnsafePath)
	}
	if strings.IndexByte(n, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL byte in name %q", ErrUnsafePath, n)
	}
	if strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("%w: absolute name %q", ErrUnsafePath, n)
	}
	for _, c := range strings.Split(n, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: name %q contains \"..\"", ErrUnsafePath, n)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// splitName returns the parent directory ("" for the root) and base of a clean name.
func splitName(n string) (string, string) {
	dir, base := path.Split(n)
	return strings.TrimSuffix(dir, "/"), base
}
