package build

import (
	"os"

	"github.com/volt-cli/volt/engine/digest"
)

// imageEntry is an image file already put into the bundle under name.
type imageEntry struct {
	file, name string
	fi         os.FileInfo
	digest     string // computed when another file of the same size comes
}

// sharedImage returns the entry name of an image already in the bundle with
// the same content as file (stat'ed as fi: the same file, or one of equal
// size and BLAKE3), else records file under name and returns "". Two
// services on one image thus store it once, both referencing one entry
// (FORMATS.md allows it).
func (b *builder) sharedImage(file string, fi os.FileInfo, name string) string {
	if !fi.Mode().IsRegular() {
		return ""
	}
	var sum string
	var err error
	for i := range b.images {
		prev := &b.images[i]
		if os.SameFile(prev.fi, fi) {
			return prev.name
		}
		if prev.fi.Size() != fi.Size() {
			continue
		}
		if prev.digest == "" {
			if prev.digest, _, err = digest.File(prev.file); err != nil {
				continue
			}
		}
		if sum == "" {
			if sum, _, err = digest.File(file); err != nil {
				return ""
			}
		}
		if sum == prev.digest {
			return prev.name
		}
	}
	b.images = append(b.images, imageEntry{file: file, name: name, fi: fi, digest: sum})
	return ""
}
