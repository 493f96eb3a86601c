package registry

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/volt-cli/volt/engine/bundle"
)

// entryKind is what the bundle's manifest says an entry is.
type entryKind struct {
	mediaType string
	platform  string // "os/arch" for images and boot files
}

// kinds maps every entry path named by m to its kind.
func kinds(m *bundle.Manifest) map[string]entryKind {
	k := map[string]entryKind{bundle.SignatureName: {mediaType: MediaTypeSignature}}
	if m.Compose != "" {
		k[m.Compose] = entryKind{mediaType: MediaTypeCompose}
	}
	for _, h := range m.Hooks {
		k[h] = entryKind{mediaType: MediaTypeHook}
	}
	for _, svc := range m.Services {
		if svc == nil {
			continue
		}
		for pk, img := range svc.Images {
			p := img.EntryPath()
			if p == "" {
				continue
			}
			mt := MediaTypeImage
			switch img.Format {
			case bundle.FormatQCOW2:
				mt = MediaTypeDiskQCOW2
			case bundle.FormatRaw:
				mt = MediaTypeDiskRaw
			}
			k[p] = entryKind{mediaType: mt, platform: pk}
		}
		for pk, b := range svc.Boot {
			if b == nil {
				continue
			}
			for _, p := range []string{b.Kernel, b.Initrd} {
				if p != "" {
					k[p] = entryKind{mediaType: MediaTypeBoot, platform: pk}
				}
			}
		}
		for _, c := range svc.Config {
			k[c.Path] = entryKind{mediaType: MediaTypeConfig}
		}
	}
	return k
}

// kindOf returns the kind of entry name (MediaTypeFile when unnamed by m).
func kindOf(ks map[string]entryKind, name string) entryKind {
	if k, ok := ks[name]; ok {
		return k
	}
	return entryKind{mediaType: MediaTypeFile}
}

// maxBlob bounds sizes and offsets read from a manifest (1 PiB), so sums
// of them cannot overflow.
const maxBlob = 1 << 50

// hole is a range of the .vbundle file filled by one blob at pull.
type hole struct {
	off, size int64
	idx       int // index into the layer list; -1 for the config
}

// artifact is a parsed Volt bundle manifest.
type artifact struct {
	manifest ocispec.Manifest
	skeleton *ocispec.Descriptor // nil when pushed without one
	holes    []hole              // sorted by offset; empty without a skeleton
	size     int64               // .vbundle size (with a skeleton)
}

// parseArtifact checks that raw is a Volt bundle image manifest and, when
// it has a skeleton, that its holes tile a file of a consistent size.
func parseArtifact(raw []byte, mediaType string) (*artifact, error) {
	var a artifact
	if err := json.Unmarshal(raw, &a.manifest); err != nil {
		return nil, fmt.Errorf("%w: manifest is not JSON: %v", ErrNotBundle, err)
	}
	m := &a.manifest
	if mt := firstNonEmpty(m.MediaType, mediaType); mt != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("%w: manifest media type is %q (an image index or another kind of manifest)", ErrNotBundle, mt)
	}
	if m.ArtifactType != MediaTypeArtifact && m.Config.MediaType != MediaTypeManifest {
		what := m.ArtifactType
		if what == "" {
			what = m.Config.MediaType
		}
		return nil, fmt.Errorf("%w: artifact type is %q, want %q", ErrNotBundle, what, MediaTypeArtifact)
	}
	if m.Config.MediaType != MediaTypeManifest {
		return nil, fmt.Errorf("%w: config media type is %q, want %q (bundle.json)", ErrNotBundle, m.Config.MediaType, MediaTypeManifest)
	}
	if m.Config.Size < 0 {
		return nil, fmt.Errorf("%w: config has negative size", ErrNotBundle)
	}
	if m.Config.Size > bundle.DefaultMaxManifestSize {
		return nil, fmt.Errorf("%w: bundle.json is %d bytes (limit %d)", ErrTooLarge, m.Config.Size, bundle.DefaultMaxManifestSize)
	}
	for i := range m.Layers {
		if m.Layers[i].MediaType == MediaTypeSkeleton {
			if a.skeleton != nil {
				return nil, fmt.Errorf("%w: two skeleton layers", ErrNotBundle)
			}
			a.skeleton = &m.Layers[i]
		}
		if m.Layers[i].Size < 0 || m.Layers[i].Size > maxBlob {
			return nil, fmt.Errorf("%w: layer %d has negative size", ErrNotBundle, i)
		}
	}
	if a.skeleton == nil {
		return &a, nil
	}
	addHole := func(d ocispec.Descriptor, idx int) error {
		s, ok := d.Annotations[AnnotationOffset]
		if !ok {
			return nil
		}
		off, err := strconv.ParseInt(s, 10, 64)
		if err != nil || off < 0 || off > maxBlob || d.Size > maxBlob {
			return fmt.Errorf("%w: blob %s: bad %s %q", ErrNotBundle, d.Digest, AnnotationOffset, s)
		}
		a.holes = append(a.holes, hole{off: off, size: d.Size, idx: idx})
		return nil
	}
	if err := addHole(m.Config, -1); err != nil {
		return nil, err
	}
	for i, l := range m.Layers {
		if l.MediaType != MediaTypeSkeleton {
			if err := addHole(l, i); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(a.holes, func(i, j int) bool { return a.holes[i].off < a.holes[j].off })
	a.size = a.skeleton.Size
	var end int64
	for _, h := range a.holes {
		if h.off < end {
			return nil, fmt.Errorf("%w: blobs overlap at offset %d", ErrNotBundle, h.off)
		}
		end = h.off + h.size
		a.size += h.size
	}
	if end > a.size {
		return nil, fmt.Errorf("%w: a blob ends at %d, past the %d-byte bundle", ErrNotBundle, end, a.size)
	}
	if s, ok := m.Annotations[AnnotationSize]; ok && s != strconv.FormatInt(a.size, 10) {
		return nil, fmt.Errorf("%w: manifest says the bundle is %s bytes, its blobs make %d", ErrNotBundle, s, a.size)
	}
	return &a, nil
}

// gaps returns the ranges of a file of size bytes not covered by holes
// (sorted, non-overlapping).
func gaps(holes []hole, size int64) [][2]int64 {
	var out [][2]int64
	var pos int64
	for _, h := range holes {
		if h.off > pos {
			out = append(out, [2]int64{pos, h.off})
		}
		pos = h.off + h.size
	}
	if pos < size {
		out = append(out, [2]int64{pos, size})
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
