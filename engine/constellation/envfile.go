package constellation

import (
	"strings"
)

// ParseEnvFile parses an env file: one KEY=VALUE per line; blank lines and
// lines starting with # are skipped; an optional "export " prefix is
// dropped. VALUE may be unquoted (trimmed, " #..." starts a comment),
// 'single-quoted' (literal) or "double-quoted" (escapes \n \t \r \" \\ \$).
// A later KEY replaces an earlier one. Errors are *Error positioned in name.
func ParseEnvFile(name string, data []byte) (map[string]string, error) {
	env := map[string]string{}
	text := strings.TrimPrefix(string(data), "\ufeff")
	for i, line := range strings.Split(text, "\n") {
		lineNo := i + 1
		line = strings.TrimSuffix(line, "\r")
		indent := len(line) - len(strings.TrimLeft(line, " \t"))
		body := strings.TrimSpace(line)
		if body == "" || strings.HasPrefix(body, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(body, "export "); ok {
			indent += len(body) - len(strings.TrimLeft(rest, " \t"))
			body = strings.TrimLeft(rest, " \t")
		}
		errAt := func(col int, hint, msg string) error {
			return &Error{File: name, Line: lineNo, Col: col, Msg: msg, Hint: hint}
		}
		eq := strings.IndexByte(body, '=')
		if eq < 0 {
			return nil, errAt(indent+1, "write KEY=VALUE", "want KEY=VALUE, got "+quoteShort(body))
		}
		key := strings.TrimRight(body[:eq], " \t")
		if !envKeyRE.MatchString(key) {
			return nil, errAt(indent+1, "names are letters, digits and '_', not starting with a digit", "invalid variable name "+quoteShort(key))
		}
		raw := body[eq+1:]
		valCol := indent + eq + 2 + (len(raw) - len(strings.TrimLeft(raw, " \t")))
		raw = strings.TrimLeft(raw, " \t")
		val, msg, hint := envValue(raw)
		if msg != "" {
			return nil, errAt(valCol, hint, msg)
		}
		env[key] = val
	}
	return env, nil
}

// envValue decodes one value; it returns a message and a hint when the
// value is malformed.
func envValue(raw string) (val, msg, hint string) {
	const closeHint = "close the quote on the same line"
	if raw == "" {
		return "", "", ""
	}
	switch raw[0] {
	case '\'':
		end := strings.IndexByte(raw[1:], '\'')
		if end < 0 {
			return "", "unterminated single-quoted value", closeHint
		}
		if msg := trailing(raw[end+2:]); msg != "" {
			return "", msg, trailingHint
		}
		return raw[1 : end+1], "", ""
	case '"':
		var b strings.Builder
		for i := 1; i < len(raw); i++ {
			c := raw[i]
			switch {
			case c == '"':
				if msg := trailing(raw[i+1:]); msg != "" {
					return "", msg, trailingHint
				}
				return b.String(), "", ""
			case c == '\\' && i+1 < len(raw):
				i++
				switch raw[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case '"', '\\', '$':
					b.WriteByte(raw[i])
				default:
					b.WriteByte('\\')
					b.WriteByte(raw[i])
				}
			default:
				b.WriteByte(c)
			}
		}
		return "", "unterminated double-quoted value", closeHint
	}
	if i := strings.Index(raw, " #"); i >= 0 {
		raw = raw[:i]
	}
	if i := strings.Index(raw, "\t#"); i >= 0 {
		raw = raw[:i]
	}
	return strings.TrimRight(raw, " \t"), "", ""
}

const trailingHint = "remove the text after the closing quote"

// trailing checks what follows a closing quote: blanks and an optional comment.
func trailing(s string) string {
	s = strings.TrimLeft(s, " \t")
	if s == "" || s[0] == '#' {
		return ""
	}
	return "unexpected text after closing quote: " + quoteShort(s)
}

func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}
