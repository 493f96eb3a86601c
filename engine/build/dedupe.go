package build

import (
	"os"
	"path/filepath"

	"github.com/volt-cli/volt/engine/digest"
)

// imageEntry is an image file already put into the bundle under name.
type imageEntry struct {
	file, name string
	size       int64
	digest     string // computed when another file of the same size comes
}

// sharedImage returns the entry name of an image already in the bundle with
// the same content as file (the same file, or one of equal size and BLAKE3),
// else records file under name and returns "". Two services on one image
// thus store it once, both referencing one entry (FORMATS.md allows it).
func (b *builder) sharedImage(file, name string) string {
	real, err := filepath.EvalSymlinks(file)
	if err != nil {
		real = file
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	var sum string
	for i := range b.images {
		prev := &b.images[i]
		if prev.file == real {
			return prev.name
		}
		if prev.size != fi.Size() {
			continue
		}
		if prev.digest == "" {
			if prev.digest, _, err = digest.File(prev.file); err != nil {
				continue
			}
		}
		if sum == "" {
			if sum, _, err = digest.File(real); err != nil {
				return ""
			}
		}
		if sum == prev.digest {
			return prev.name
		}
	}
	b.images = append(b.images, imageEntry{file: real, name: name, size: fi.Size(), digest: sum})
	return ""
}
