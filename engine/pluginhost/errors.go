package pluginhost

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors callers branch on with errors.Is. Errors from this package
// wrap one of them and name the plugin in one line.
var (
	// ErrPluginNotFound: no volt-plugin-<name> binary on the search path.
	ErrPluginNotFound = errors.New("plugin not found")
	// ErrPluginExited: the plugin process ended (before the handshake or during a call).
	ErrPluginExited = errors.New("plugin exited")
	// ErrStartTimeout: the plugin did not complete the handshake within the start timeout.
	ErrStartTimeout = errors.New("plugin start timed out")
	// ErrHandshake: the plugin spoke something other than the Volt handshake
	// (output on stdout before it, another wire version, no gRPC).
	ErrHandshake = errors.New("plugin handshake failed")
	// ErrChecksum: an installed plugin's BLAKE3 does not match the plugin lock.
	ErrChecksum = errors.New("plugin checksum mismatch")
	// ErrNotLocked: a binary in $VOLT_ROOT/plugins has no entry in the plugin lock.
	ErrNotLocked = errors.New("plugin not in the plugin lock")
	// ErrAPIVersion: the plugin and the host share no plugin API version.
	ErrAPIVersion = errors.New("plugin API version mismatch")
	// ErrWrongKind: the plugin is not of the kind asked for (runtime or format).
	ErrWrongKind = errors.New("wrong plugin kind")
	// ErrBadName: a plugin name or binary name that is not volt-plugin-<name>
	// with name made of [a-z0-9-].
	ErrBadName = errors.New("bad plugin name")
	// ErrClosed: the Host was closed.
	ErrClosed = errors.New("plugin host closed")
)

// PluginError is the error of a plugin that failed to start or died: it
// names the plugin and carries the tail of its stderr. It unwraps to one of
// the sentinels above (and to the underlying error when there is one).
type PluginError struct {
	Plugin string // plugin name
	Op     string // "start", or the call that failed ("Run", "Info"...)
	Kind   error  // one of the sentinels
	Detail string // one-line cause
	// StderrTail holds the plugin's last stderr lines, oldest first.
	StderrTail []string
	Err        error // underlying error, may be nil
}

// maxTailInError bounds how many stderr lines Error() shows.
const maxTailInError = 3

// Error renders the error on one line.
func (e *PluginError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plugin %q", e.Plugin)
	if e.Op != "" {
		fmt.Fprintf(&b, ": %s", e.Op)
	}
	fmt.Fprintf(&b, ": %v", e.Kind)
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", oneLine(e.Detail))
	}
	if tail := summarizeTail(e.StderrTail); len(tail) > 0 {
		fmt.Fprintf(&b, " (stderr: %q)", strings.Join(tail, " | "))
	}
	return b.String()
}

// summarizeTail picks the stderr lines worth showing in one line: the last
// few, or, when the plugin panicked, the lines up to and including the panic
// message (the goroutine dump after it says little to a user).
func summarizeTail(tail []string) []string {
	end := len(tail)
	for i := len(tail) - 1; i >= 0; i-- {
		if strings.HasPrefix(tail[i], "panic: ") || strings.HasPrefix(tail[i], "fatal error: ") {
			end = i + 1
			break
		}
	}
	return tail[max(0, end-maxTailInError):end]
}

// Unwrap returns the sentinel and the underlying error.
func (e *PluginError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// oneLine folds s onto one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
}
