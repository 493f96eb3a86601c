package constellation

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// nodePos is where an entry's key and value were found.
type nodePos struct{ key, val Pos }

// aliasBudget bounds alias and merge-key expansion so hostile input
// ("billion laughs") cannot make decoding exponential.
const aliasBudget = 10000

// decoder walks a yaml.Node tree into the model, recording positions.
type decoder struct {
	file     string
	docker   bool // reading a docker-compose file
	pos      map[string]nodePos
	warnings []string
	aliases  int
}

// pair is one key/value of a mapping after merge keys are applied.
type pair struct {
	key  *yaml.Node
	name string
	val  *yaml.Node
}

func posOf(n *yaml.Node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{Line: n.Line, Col: n.Column}
}

func (d *decoder) errAt(n *yaml.Node, hint, format string, args ...any) *Error {
	p := posOf(n)
	return &Error{File: d.file, Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

func (d *decoder) warn(n *yaml.Node, format string, args ...any) {
	d.warnings = append(d.warnings, d.errAt(n, "", format, args...).Error())
}

// resolve follows aliases, charging the alias budget.
func (d *decoder) resolve(n *yaml.Node) (*yaml.Node, error) {
	for n != nil && n.Kind == yaml.AliasNode {
		d.aliases++
		if d.aliases > aliasBudget {
			return nil, d.errAt(n, "", "too many alias expansions (more than %d)", aliasBudget)
		}
		if n.Alias == nil {
			return nil, d.errAt(n, "", "unknown alias %q", n.Value)
		}
		n = n.Alias
	}
	return n, nil
}

// kindName describes a node for "want X, got Y" messages.
func kindName(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		default:
			return "a string"
		}
	}
	return "a document"
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// pairs returns a mapping's entries (merge keys expanded, explicit keys
// winning, "x-" extension keys dropped, duplicates rejected). Null is an
// empty mapping.
func (d *decoder) pairs(n *yaml.Node, path, want string) ([]pair, error) {
	n, err := d.resolve(n)
	if err != nil {
		return nil, err
	}
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, d.errAt(n, "", "%swant %s, got %s", label(path), want, kindName(n))
	}
	var out []pair
	seen := map[string]*yaml.Node{}
	var merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, d.errAt(k, "", "%skeys must be strings, got %s", label(path), kindName(k))
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			m, err := d.mergeSources(v, path, want)
			if err != nil {
				return nil, err
			}
			merged = append(merged, m...)
			continue
		}
		if prev, ok := seen[k.Value]; ok {
			return nil, d.errAt(k, "", "%skey %q repeated (first at line %d)", label(path), k.Value, prev.Line)
		}
		seen[k.Value] = k
		if strings.HasPrefix(k.Value, "x-") {
			continue
		}
		out = append(out, pair{key: k, name: k.Value, val: v})
	}
	for _, m := range merged {
		if _, ok := seen[m.name]; ok {
			continue
		}
		seen[m.name] = m.key
		out = append(out, m)
	}
	return out, nil
}

// mergeSources expands the value of a "<<" key: a mapping or a list of them.
func (d *decoder) mergeSources(v *yaml.Node, path, want string) ([]pair, error) {
	v, err := d.resolve(v)
	if err != nil {
		return nil, err
	}
	if v.Kind == yaml.SequenceNode {
		var out []pair
		for _, item := range v.Content {
			p, err := d.pairs(item, path, want)
			if err != nil {
				return nil, err
			}
			out = append(out, p...)
		}
		return out, nil
	}
	return d.pairs(v, path, want)
}

// fields decodes a mapping with a fixed key set. ignored keys are accepted
// with a warning; any other unknown key is an error with a "did you mean" hint.
func (d *decoder) fields(n *yaml.Node, path, want string, known, ignored []string, set func(key, path string, v *yaml.Node) error) error {
	ps, err := d.pairs(n, path, want)
	if err != nil {
		return err
	}
	for _, p := range ps {
		sub := join(path, p.name)
		if !contains(known, p.name) {
			if contains(ignored, p.name) {
				d.warn(p.key, "%s: not supported by Volt; ignored", sub)
				continue
			}
			return d.errAt(p.key, didYouMean(p.name, known), "%sunknown key %q", label(path), p.name)
		}
		d.record(sub, p.key, p.val)
		if err := set(p.name, sub, p.val); err != nil {
			return err
		}
	}
	return nil
}

// entries decodes a mapping of named entries (containers, networks, ...).
func (d *decoder) entries(n *yaml.Node, path, want string, each func(name, path string, k, v *yaml.Node) error) error {
	ps, err := d.pairs(n, path, want)
	if err != nil {
		return err
	}
	for _, p := range ps {
		sub := join(path, p.name)
		d.record(sub, p.key, p.val)
		if err := each(p.name, sub, p.key, p.val); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) record(path string, k, v *yaml.Node) {
	rv, err := d.resolve(v)
	if err != nil || rv == nil {
		rv = v
	}
	if k == nil {
		k = rv
	}
	d.pos[path] = nodePos{key: posOf(k), val: posOf(rv)}
}

// label prefixes a message with its path ("containers.web: "), if any.
func label(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// str decodes a scalar as a string (numbers and booleans keep their text).
func (d *decoder) str(n *yaml.Node, path string) (string, error) {
	n, err := d.resolve(n)
	if err != nil {
		return "", err
	}
	if isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", d.errAt(n, "", "%s: want a string, got %s", path, kindName(n))
	}
	return n.Value, nil
}

// scalarAs decodes a scalar into out (an *int, *float64 or *bool).
func (d *decoder) scalarAs(n *yaml.Node, path, want string, tags []string, out any) error {
	n, err := d.resolve(n)
	if err != nil {
		return err
	}
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.ScalarNode || !contains(tags, n.ShortTag()) {
		return d.errAt(n, "", "%s: want %s, got %s", path, want, kindName(n))
	}
	if err := n.Decode(out); err != nil {
		return d.errAt(n, "", "%s: want %s, got %q", path, want, n.Value)
	}
	return nil
}

func (d *decoder) integer(n *yaml.Node, path string) (int, error) {
	var v int
	err := d.scalarAs(n, path, "an integer", []string{"!!int"}, &v)
	return v, err
}

func (d *decoder) number(n *yaml.Node, path string) (float64, error) {
	var v float64
	err := d.scalarAs(n, path, "a number", []string{"!!int", "!!float"}, &v)
	return v, err
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, error) {
	var v bool
	err := d.scalarAs(n, path, "true or false", []string{"!!bool"}, &v)
	return v, err
}

// list calls each for every item of a sequence; null is an empty list.
func (d *decoder) list(n *yaml.Node, path, want string, each func(i int, path string, item *yaml.Node) error) error {
	n, err := d.resolve(n)
	if err != nil {
		return err
	}
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return d.errAt(n, "", "%s: want %s, got %s", path, want, kindName(n))
	}
	for i, item := range n.Content {
		sub := fmt.Sprintf("%s[%d]", path, i)
		d.record(sub, nil, item)
		if err := each(i, sub, item); err != nil {
			return err
		}
	}
	return nil
}

// strList decodes a list of scalars; want describes the expected form.
func (d *decoder) strList(n *yaml.Node, path, want string) ([]string, error) {
	var out []string
	err := d.list(n, path, want, func(_ int, sub string, item *yaml.Node) error {
		item, err := d.resolve(item)
		if err != nil {
			return err
		}
		if item.Kind != yaml.ScalarNode || isNull(item) {
			return d.errAt(item, "", "%s: want %s, got %s", path, want, kindName(item))
		}
		out = append(out, item.Value)
		return nil
	})
	return nilIfEmpty(out), err
}

// command decodes a list, or a string run as ["/bin/sh", "-c", string].
func (d *decoder) command(n *yaml.Node, path string) ([]string, error) {
	r, err := d.resolve(n)
	if err != nil {
		return nil, err
	}
	if r != nil && r.Kind == yaml.ScalarNode && !isNull(r) {
		if d.docker {
			words, err := shellSplit(r.Value)
			if err != nil {
				return nil, d.errAt(r, "close the quote, or write the command as a list", "%s: %v", path, err)
			}
			return words, nil
		}
		return []string{"/bin/sh", "-c", r.Value}, nil
	}
	return d.strList(r, path, `a list of strings like ["/bin/app", "-v"] or one shell command string`)
}

// shellSplit splits s into words the way a POSIX shell would without
// expanding anything: blanks separate words, '...' is literal, "..." and
// unquoted text honour backslash escapes. docker-compose reads string
// commands this way.
func shellSplit(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" quote")
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// image decodes a path or a map platform -> path.
func (d *decoder) image(n *yaml.Node, path string) (ImageRef, error) {
	r, err := d.resolve(n)
	if err != nil {
		return ImageRef{}, err
	}
	if r != nil && r.Kind == yaml.MappingNode {
		m := map[string]string{}
		err := d.entries(r, path, "a map", func(name, sub string, _, v *yaml.Node) error {
			s, err := d.str(v, sub)
			m[name] = s
			return err
		})
		if len(m) == 0 {
			m = nil
		}
		return ImageRef{PerPlatform: m}, err
	}
	if r != nil && r.Kind == yaml.ScalarNode {
		s, err := d.str(r, path)
		return ImageRef{Single: s}, err
	}
	return ImageRef{}, d.errAt(r, `write "image: images/web" or "image: {linux/amd64: images/web-amd64.tar}"`,
		"%s: want a path or a map from platform to path, got %s", path, kindName(r))
}

// environment decodes a map or a list of "K=V". A bare "K" (list) or a null
// value (map) means "take K from the deploy environment" and becomes "${K}".
func (d *decoder) environment(n *yaml.Node, path string) (map[string]string, error) {
	r, err := d.resolve(n)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	if r != nil && r.Kind == yaml.SequenceNode {
		err = d.list(r, path, "", func(_ int, sub string, item *yaml.Node) error {
			s, err := d.str(item, sub)
			if err != nil {
				return err
			}
			k, v, ok := strings.Cut(s, "=")
			if !ok {
				v = "${" + k + "}"
			}
			if k == "" {
				return d.errAt(item, `write "KEY=value"`, "%s: empty variable name", sub)
			}
			d.record(join(path, k), item, item)
			env[k] = v
			return nil
		})
	} else if r == nil || r.Kind == yaml.MappingNode || isNull(r) {
		err = d.entries(r, path, "a map", func(name, sub string, _, v *yaml.Node) error {
			rv, err := d.resolve(v)
			if err != nil {
				return err
			}
			if isNull(rv) {
				env[name] = "${" + name + "}"
				return nil
			}
			s, err := d.str(rv, sub)
			env[name] = s
			return err
		})
	} else {
		return nil, d.errAt(r, `write "environment: {KEY: value}" or "environment: [KEY=value]"`,
			"%s: want a map or a list of \"KEY=value\", got %s", path, kindName(r))
	}
	if len(env) == 0 {
		env = nil
	}
	return env, err
}

// dependsOn decodes a list of names or a map name -> {condition}.
func (d *decoder) dependsOn(n *yaml.Node, path string) (map[string]Dependency, error) {
	r, err := d.resolve(n)
	if err != nil {
		return nil, err
	}
	deps := map[string]Dependency{}
	switch {
	case r != nil && r.Kind == yaml.SequenceNode:
		err := d.list(r, path, "a list of service names", func(_ int, sub string, item *yaml.Node) error {
			name, err := d.str(item, sub)
			if err != nil {
				return err
			}
			d.record(join(path, name), item, item)
			deps[name] = Dependency{Condition: ServiceStarted}
			return nil
		})
		if err != nil {
			return nil, err
		}
	case isNull(r) || r.Kind == yaml.MappingNode:
		ignored := []string(nil)
		if d.docker {
			ignored = []string{"restart", "required"}
		}
		err = d.entries(r, path, "a map", func(name, sub string, _, v *yaml.Node) error {
			dep := Dependency{Condition: ServiceStarted}
			err := d.fields(v, sub, "a map like {condition: service_healthy}", []string{"condition"}, ignored,
				func(_, p string, v *yaml.Node) error {
					c, err := d.str(v, p)
					if c != "" {
						dep.Condition = c
					}
					return err
				})
			deps[name] = dep
			return err
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, d.errAt(r, `write "depends_on: [db]" or "depends_on: {db: {condition: service_healthy}}"`,
			"%s: want a list of names or a map of name to {condition}, got %s", path, kindName(r))
	}
	if len(deps) == 0 {
		deps = nil
	}
	return deps, nil
}
