package registry

import (
	"errors"
	"fmt"
	"io"

	"github.com/volt-cli/volt/engine/bundle"
)

// ErrNoOrigin: a partial bundle lacks origin/bundle.json (it was not made
// by a platform-filtered pull).
var ErrNoOrigin = errors.New("partial bundle has no origin manifest")

// Origin returns the original bundle.json and signature (nil when the
// original was unsigned) that a platform-filtered pull keeps in a partial
// bundle as OriginManifestName and OriginSignatureName.
func Origin(br *bundle.Reader) (manifest, sig []byte, err error) {
	read := func(name string) ([]byte, error) {
		rc, err := br.OpenEntry(name)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, bundle.DefaultMaxManifestSize+1))
	}
	if manifest, err = read(OriginManifestName); err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w: %v", br.Path(), ErrNoOrigin, err)
	}
	if _, ok := br.Manifest().Integrity.Files[OriginSignatureName]; ok {
		if sig, err = read(OriginSignatureName); err != nil {
			return nil, nil, fmt.Errorf("bundle %s: %s: %w", br.Path(), OriginSignatureName, err)
		}
	}
	return manifest, sig, nil
}

// CheckOrigin ties a partial bundle to its signed original: it calls
// verify with the original bundle.json and its signature (verify checks the
// signature against trusted keys, e.g. sign.TrustStore.Verify), then checks
// that every entry of the partial bundle (origin/* excepted) has the BLAKE3
// the original bundle.json lists for it. Since the partial bundle's own
// integrity map is checked by bundle.Verify, a partial bundle that passes
// both carries only content the original's signer vouched for.
func CheckOrigin(br *bundle.Reader, verify func(manifest, sig []byte) error) error {
	mb, sig, err := Origin(br)
	if err != nil {
		return err
	}
	if sig == nil {
		return fmt.Errorf("bundle %s: the original bundle was not signed", br.Path())
	}
	if err := verify(mb, sig); err != nil {
		return fmt.Errorf("bundle %s: origin signature: %w", br.Path(), err)
	}
	om, err := bundle.ParseManifest(mb)
	if err != nil {
		return fmt.Errorf("bundle %s: origin manifest: %w", br.Path(), err)
	}
	for name, d := range br.Manifest().Integrity.Files {
		if name == OriginManifestName || name == OriginSignatureName {
			continue
		}
		if od, ok := om.Integrity.Files[name]; !ok || od != d {
			return fmt.Errorf("bundle %s: entry %q: %w: not as in the signed original (%s vs %s)", br.Path(), name, ErrDigest, d, od)
		}
	}
	return nil
}
