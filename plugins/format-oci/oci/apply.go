package oci

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	opaqueWhiteout = ".wh..wh..opq"
	// overlayOpaque is the PAX record of a directory that overlayfs marks
	// opaque (layers made from an overlay upper directory).
	overlayOpaque = "SCHILY.xattr.trusted.overlay.opaque"
)

// applier writes tar layers into a root, one after the other.
type applier struct {
	root         *root
	asRoot       bool // chown entries
	logf         func(format string, args ...any)
	skipped      []string
	skippedSet   map[string]bool    // skipped names, so hard links to them are skipped too
	dirs         map[string]dirMeta // final metadata of directories, applied at the end
	buf          []byte
	maxEntrySize int64 // 0: unbounded
}

type dirMeta struct {
	mode  uint32
	mtime time.Time
}

func newApplier(r *root, asRoot bool, logf func(string, ...any)) *applier {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &applier{root: r, asRoot: asRoot, logf: logf, dirs: map[string]dirMeta{}, skippedSet: map[string]bool{}, buf: make([]byte, 256<<10)}
}

// applyLayer applies one (uncompressed) tar stream.
func (a *applier) applyLayer(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	written := map[string]struct{}{} // names created by this layer (whiteouts apply to lower layers only)
	for n := 0; ; n++ {
		if n%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: read tar: %w", ErrCorrupt, err)
		}
		if err := a.applyEntry(hdr, tr, written); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
}

func (a *applier) applyEntry(hdr *tar.Header, tr io.Reader, written map[string]struct{}) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		return nil // the root itself belongs to the host
	}
	dir, base := splitName(name)

	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(dir, base, written)
	}

	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeFifo:
	case tar.TypeLink:
		if target, err := cleanName(hdr.Linkname); err == nil && a.skippedSet[target] {
			a.skip(name, "skipping hard link %q to %q, which was skipped", name, target)
			return nil
		}
	case tar.TypeChar, tar.TypeBlock:
		if hdr.Typeflag == tar.TypeChar && hdr.Devmajor == 0 && hdr.Devminor == 0 {
			// overlayfs's whiteout: the layer deletes name from the lower ones.
			return a.whiteout(dir, whiteoutPrefix+base, written)
		}
		// Never a device node from an image, root or not: one could give
		// the container (or any local user, through the state root) the
		// host's disks. systemd-nspawn mounts its own /dev.
		kind := "character"
		if hdr.Typeflag == tar.TypeBlock {
			kind = "block"
		}
		a.skip(name, "skipping %s device %q (%d:%d) in the image: Volt never creates device nodes from images (the container gets its own /dev)", kind, name, hdr.Devmajor, hdr.Devminor)
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	default:
		a.skip(name, "skipping %q: unsupported tar entry type %q", name, hdr.Typeflag)
		return nil
	}
	if a.maxEntrySize > 0 && hdr.Size > a.maxEntrySize {
		return fmt.Errorf("%w: entry of %d bytes exceeds limit", ErrCorrupt, hdr.Size)
	}

	pfd, err := a.root.mkdirAll(dir)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	written[name] = struct{}{}

	var st unix.Stat_t
	exists := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
	if exists {
		if hdr.Typeflag == tar.TypeDir && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return a.finishDir(pfd, name, base, hdr, written)
		}
		if err := removeAllAt(pfd, base); err != nil {
			return err
		}
		delete(a.dirs, name)
	}

	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
		return a.finishDir(pfd, name, base, hdr, written)
	case tar.TypeReg:
		return a.writeFile(pfd, base, hdr, tr, mode)
	case tar.TypeSymlink:
		if strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return fmt.Errorf("%w: NUL in symlink target", ErrUnsafePath)
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
	case tar.TypeLink:
		if err := a.hardlink(pfd, name, base, hdr.Linkname); err != nil {
			return err
		}
		return nil // a hard link shares its target's metadata
	case tar.TypeFifo:
		// A named pipe reaches nothing outside the container: kept.
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|mode, 0); err != nil {
			return fmt.Errorf("mkfifo: %w", err)
		}
	}
	return a.setMeta(pfd, base, hdr, hdr.Typeflag != tar.TypeSymlink)
}

// skip records that name is not created and warns once, naming it.
func (a *applier) skip(name, format string, args ...any) {
	a.skipped = append(a.skipped, name)
	a.skippedSet[name] = true
	a.logf(format, args...)
}

// setMeta sets owner, mode (unless the entry is a symlink) and mtime of base in pfd.
func (a *applier) setMeta(pfd int, base string, hdr *tar.Header, chmod bool) error {
	if a.asRoot {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if chmod {
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode)&0o7777, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if !hdr.AccessTime.IsZero() {
		ts[0] = unix.NsecToTimespec(hdr.AccessTime.UnixNano())
	}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// finishDir records the directory's final mode and mtime (applied once all
// layers are in, since writing children changes the mtime and a read-only
// mode could block them) and sets its owner now. A directory overlayfs
// marks opaque hides what lower layers put in it.
func (a *applier) finishDir(pfd int, name, base string, hdr *tar.Header, written map[string]struct{}) error {
	if a.asRoot {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	a.dirs[name] = dirMeta{mode: uint32(hdr.Mode) & 0o7777, mtime: hdr.ModTime}
	// Keep the directory writable for us until the end.
	if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode)&0o7777|0o700, 0); err != nil {
		return err
	}
	if hdr.PAXRecords[overlayOpaque] != "y" {
		return nil
	}
	// overlayfs's opaque directory: like .wh..wh..opq inside it.
	fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %q: %w", name, err)
	}
	defer unix.Close(fd)
	return a.opaque(fd, name, written)
}

func (a *applier) writeFile(pfd int, base string, hdr *tar.Header, r io.Reader, mode uint32) error {
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	n, err := io.CopyBuffer(fileWriter{f}, r, a.buf)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated file data: %w", ErrCorrupt, err)
		}
		return fmt.Errorf("write: %w", err)
	}
	if n != hdr.Size {
		return fmt.Errorf("%w: wrote %d of %d bytes", ErrCorrupt, n, hdr.Size)
	}
	for k, v := range hdr.PAXRecords {
		if attr, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if err := unix.Fsetxattr(fd, attr, []byte(v), 0); err != nil {
				a.logf("%s: xattr %q not set: %v", base, attr, err)
			}
		}
	}
	if a.asRoot {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil { // after chown, which clears set-id bits
		return fmt.Errorf("chmod: %w", err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if !hdr.AccessTime.IsZero() {
		ts[0] = unix.NsecToTimespec(hdr.AccessTime.UnixNano())
	}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// fileWriter hides os.File's ReadFrom so io.CopyBuffer uses our buffer.
type fileWriter struct{ f *os.File }

func (w fileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// hardlink links name (base in pfd) to target, both resolved inside the root.
func (a *applier) hardlink(pfd int, name, base, linkname string) error {
	target, err := cleanName(linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if target == "" || target == name {
		return fmt.Errorf("%w: hard link %q to itself or to the root", ErrUnsafePath, name)
	}
	tdir, tbase := splitName(target)
	tfd, err := a.root.resolveDir(tdir)
	if err != nil {
		return fmt.Errorf("%w: hard link target %q: %w", ErrCorrupt, target, err)
	}
	defer unix.Close(tfd)
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("%w: hard link to %q: %w", ErrCorrupt, target, err)
	}
	return nil
}

// whiteout handles ".wh.<name>" (delete name from lower layers) and
// ".wh..wh..opq" (hide the lower layers' content of the directory).
func (a *applier) whiteout(dir, base string, written map[string]struct{}) error {
	if base == opaqueWhiteout {
		pfd, err := a.root.mkdirAll(dir)
		if err != nil {
			return err
		}
		defer unix.Close(pfd)
		return a.opaque(pfd, dir, written)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // other AUFS metadata (.wh..wh.plnk, ...) is not content
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." || strings.Contains(victim, "/") {
		return fmt.Errorf("%w: bad whiteout %q", ErrUnsafePath, base)
	}
	if _, ok := written[path.Join(dir, victim)]; ok {
		return nil // whiteouts do not hide entries of their own layer
	}
	pfd, err := a.root.resolveDir(dir)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolve %q: %w", dir, err)
	}
	defer unix.Close(pfd)
	delete(a.dirs, path.Join(dir, victim))
	return removeAllAt(pfd, victim)
}

// opaque removes from the directory fd (named dir) everything not written by
// the current layer, recursing into directories the layer did write.
func (a *applier) opaque(fd int, dir string, written map[string]struct{}) error {
	names, err := a.root.readDirNames(fd)
	if err != nil {
		return fmt.Errorf("list %q: %w", dir, err)
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if _, ok := written[p]; !ok {
			delete(a.dirs, p)
			if err := removeAllAt(fd, n); err != nil {
				return err
			}
			continue
		}
		var st unix.Stat_t
		if unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			cfd, err := unix.Openat(fd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %q: %w", p, err)
			}
			err = a.opaque(cfd, p, written)
			unix.Close(cfd)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// finish applies the recorded directory modes and mtimes, deepest first.
func (a *applier) finish(ctx context.Context) error {
	names := make([]string, 0, len(a.dirs))
	for n := range a.dirs {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] > names[j] })
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		m := a.dirs[n]
		dir, base := splitName(n)
		pfd, err := a.root.resolveDir(dir)
		if err != nil {
			continue // removed or replaced by a later layer
		}
		var st unix.Stat_t
		if unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Close(pfd)
			continue
		}
		err = unix.Fchmodat(pfd, base, m.mode, 0)
		if err == nil {
			ts := unix.NsecToTimespec(m.mtime.UnixNano())
			err = unix.UtimesNanoAt(pfd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
		}
		unix.Close(pfd)
		if err != nil {
			return fmt.Errorf("directory %q metadata: %w", n, err)
		}
	}
	return nil
}
