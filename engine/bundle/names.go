package bundle

import (
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// CheckName reports whether name is a safe entry name: non-empty, valid
// UTF-8, relative, clean, '/'-separated, without "." or ".." elements, without
// a backslash, colon or control character. The error wraps ErrUnsafeName.
func CheckName(name string) error {
	bad := func(why string) error { return structErr(ErrUnsafeName, "entry %q: %s", name, why) }
	switch {
	case name == "":
		return bad("empty name")
	case len(name) > 1024:
		return bad("name longer than 1024 bytes")
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case strings.HasPrefix(name, "/"):
		return bad("absolute path")
	case strings.ContainsRune(name, '\\'):
		return bad("contains a backslash")
	case strings.ContainsRune(name, ':'):
		return bad("contains a colon")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return bad("contains a control character")
		}
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return bad(`contains ".."`)
		}
	}
	if path.Clean(name) != name || name == "." {
		return bad(fmt.Sprintf("not a clean path (want %q)", path.Clean(name)))
	}
	return nil
}

// integrityExempt reports whether name is left out of integrity.files.
func integrityExempt(name string) bool {
	return name == ManifestName || strings.HasPrefix(name, SignaturesDir)
}
