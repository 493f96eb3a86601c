package constellation

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FileNames are the names FindFile looks for, in order.
var FileNames = []string{"volt-compose.yaml", "volt-compose.yml", "Voltfile"}

// dockerFileNames are mentioned in FindFile's hint when present.
var dockerFileNames = []string{"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"}

// FindFile returns the path of the Constellation in dir: the first of
// FileNames that exists. When none does it returns an *Error wrapping
// ErrNotFound whose Hint lists the names (and a docker-compose file found
// there, which is read only when given explicitly with -f).
func FindFile(dir string) (string, error) {
	for _, name := range FileNames {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err == nil && !st.IsDir() {
			return p, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("find constellation in %q: %w", dir, err)
		}
	}
	hint := "create " + strings.Join(FileNames, ", ") + " (looked up in that order), or pass -f FILE"
	for _, name := range dockerFileNames {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil && !st.IsDir() {
			hint = fmt.Sprintf("found %s: pass -f %s to use it (looked for %s)", name, name, strings.Join(FileNames, ", "))
			break
		}
	}
	return "", &Error{File: dir, Msg: ErrNotFound.Error(), Hint: hint, err: ErrNotFound}
}

// Load reads and parses the Constellation at path (see Parse).
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read constellation %q: %w", path, err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a Constellation (or a docker-compose file,
// whose services become containers). name is used in error messages only.
// Every error about the content is an *Error with the position in name;
// ignored docker-compose keys are listed in File.Warnings.
func Parse(name string, data []byte) (*File, error) {
	root, err := parseYAML(name, data)
	if err != nil {
		return nil, err
	}
	d := &decoder{file: name, pos: map[string]nodePos{}}
	var f *File
	if isDockerCompose(root) {
		d.docker = true
		f, err = d.dockerFile(root)
	} else {
		f, err = d.voltFile(root)
	}
	if err != nil {
		return nil, err
	}
	f.source, f.pos, f.Warnings = name, d.pos, d.warnings
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML returns the root node of the only document in data.
func parseYAML(name string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Msg: "empty file", Hint: "a Constellation starts with keys such as name:, containers:, vms:"}
		}
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: name, Line: extra.Line, Col: extra.Column, Msg: "more than one YAML document", Hint: "keep one document per file (remove the ---)"}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &Error{File: name, Msg: "empty file"}
	}
	root := doc.Content[0]
	if isNull(root) {
		return nil, &Error{File: name, Line: root.Line, Col: root.Column, Msg: "empty file",
			Hint: "a Constellation starts with keys such as name:, containers:, vms:"}
	}
	return root, nil
}

// yamlError turns a yaml syntax error into a positioned *Error.
func yamlError(name string, err error) *Error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: name, Line: line, Msg: "YAML syntax: " + m[2]}
	}
	return &Error{File: name, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}
