package constellation

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Marshal encodes f as a Volt Constellation in deterministic YAML (fixed
// field order, sorted map keys, two-space indent), so the compose.yaml
// written into bundles is reproducible. Parse(Marshal(f)) equals f for a
// valid f. A File read from a docker-compose file is written in Volt form.
func Marshal(f *File) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("marshal constellation: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal constellation: %w", err)
	}
	return buf.Bytes(), nil
}

// MarshalYAML writes the image as a string (Single) or a map (PerPlatform).
func (r ImageRef) MarshalYAML() (any, error) {
	if len(r.PerPlatform) > 0 {
		return r.PerPlatform, nil
	}
	return r.Single, nil
}

// UnmarshalYAML reads an image given as a string or a map from platform to
// path, so ImageRef also works with plain yaml.Unmarshal.
func (r *ImageRef) UnmarshalYAML(n *yaml.Node) error {
	d := &decoder{pos: map[string]nodePos{}}
	img, err := d.image(n, "image")
	if err != nil {
		return err
	}
	*r = img
	return nil
}
