package bundle

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by Open that is about the archive
// itself wraps ErrStructure and exactly one of the more specific sentinels
// below, so a caller may branch on either level with errors.Is.
var (
	// ErrStructure is the family of "this is not a well-formed bundle" errors.
	ErrStructure = errors.New("malformed bundle")
	// ErrTruncated: the archive ends early (no end-of-central-directory record,
	// or entry data past the end of the file).
	ErrTruncated = errors.New("bundle is truncated")
	// ErrManifest: bundle.json is missing, not first, not valid JSON, or inconsistent.
	ErrManifest = errors.New("invalid bundle.json")
	// ErrVersion: bundle.json "version" is not FormatVersion.
	ErrVersion = errors.New("unsupported bundle format version")
	// ErrUnsafeName: an entry name is absolute, has "..", a backslash, is not
	// clean, is duplicated, or the entry is a symlink or other non-regular file.
	ErrUnsafeName = errors.New("unsafe entry name")
	// ErrUnlisted: an entry is not listed in integrity.files.
	ErrUnlisted = errors.New("entry not listed in integrity")
	// ErrMissing: a file named by the manifest is not in the archive.
	ErrMissing = errors.New("entry missing from bundle")
	// ErrSize: the manifest's size of an image disagrees with the archive.
	ErrSize = errors.New("size mismatch")
	// ErrTooLarge: declared sizes exceed the ReadOptions limits (zip-bomb guard).
	ErrTooLarge = errors.New("bundle too large")
	// ErrIntegrity: an entry's content does not match its integrity digest or
	// its declared size.
	ErrIntegrity = errors.New("integrity check failed")
	// ErrChanged: an input file changed size while Write was reading it.
	ErrChanged = errors.New("input changed while writing")
)

// structural is an error that matches both ErrStructure and a specific sentinel.
type structural struct {
	kind error
	msg  string
}

func (e *structural) Error() string   { return e.msg }
func (e *structural) Unwrap() []error { return []error{ErrStructure, e.kind} }

// structErr builds an error matching ErrStructure and kind; the message is
// formatted from format and args.
func structErr(kind error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if kind != ErrStructure {
		msg = kind.Error() + ": " + msg
	}
	return &structural{kind: kind, msg: msg}
}
