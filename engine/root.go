package engine

import (
	"fmt"
	"os"
)

// RootMode is the mode of the state root. The root holds every image's
// files (setuid binaries included), stack state with --set values and
// workload handles; 0700 makes all of it unreachable for other users
// whatever the modes below it, as Docker does with /var/lib/docker. Nothing
// needs to traverse it: systemd-nspawn and QEMU run as the root's owner,
// and containers see their rootfs through nspawn's own mounts.
const RootMode os.FileMode = 0o700

// ensureRoot creates the state root private to its owner, or makes an
// existing one private (one warning through the engine logger, the first
// time: afterwards the root is private). It runs once per Engine.
func (e *Engine) ensureRoot() error {
	e.rootOnce.Do(func() { e.rootErr = e.makeRootPrivate() })
	return e.rootErr
}

func (e *Engine) makeRootPrivate() error {
	if err := os.MkdirAll(e.Root, RootMode); err != nil {
		return fmt.Errorf("state root: %w", err)
	}
	fi, err := os.Stat(e.Root)
	if err != nil {
		return fmt.Errorf("state root: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state root %s is not a directory", e.Root)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(e.Root, RootMode); err != nil {
			return fmt.Errorf("state root %s is open to other users (mode %04o) and cannot be made private: %w", e.Root, perm, err)
		}
		e.Logger.Warn(fmt.Sprintf("state root %s was open to other users (mode %04o): made it private (%04o); see docs/security.md", e.Root, perm, RootMode))
	}
	return nil
}
