package incident

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// emit writes the front matter's node tree byte for byte as yaml.v3's
// encoder does (indent 2), for the trees frontMatter builds; ok is false
// for the few it does not, which yaml.v3 then writes.
//
// yaml.v3's emitter keeps every event of a document in a slice that only
// grows: encoding a storm's incident records was 41 % of everything the
// server allocated, and a third of the committer's CPU. Marshal still
// reads what it wrote back with yaml.v3 before keeping it.
func emit(doc *yaml.Node) (out []byte, ok bool) {
	e := emitter{b: make([]byte, 0, 4096)}
	if doc.Kind != yaml.MappingNode || len(doc.Content) == 0 || !e.mapping(doc, 0) {
		return nil, false
	}
	return e.b, true
}

type emitter struct{ b []byte }

// mapping writes a non-empty block mapping whose keys start at column
// indent; the first key goes where the cursor is (after "- " in a
// sequence, or at the start of a line).
func (e *emitter) mapping(n *yaml.Node, indent int) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if i > 0 {
			e.indent(indent)
		}
		k, v := n.Content[i], n.Content[i+1]
		// yaml.v3 writes a key longer than 128, or with a line break
		// (YAML's: \r, \n, NEL, LS, PS), as an explicit "? " key.
		if k.Kind != yaml.ScalarNode || len(k.Value) > 100 || strings.ContainsAny(k.Value, "\r\n\u0085\u2028\u2029") || !e.scalar(k) {
			return false
		}
		e.b = append(e.b, ':')
		switch {
		case v.Kind == yaml.ScalarNode:
			e.b = append(e.b, ' ')
			if !e.scalar(v) {
				return false
			}
			e.b = append(e.b, '\n')
		case len(v.Content) == 0 && v.Kind == yaml.MappingNode:
			e.b = append(e.b, " {}\n"...)
		case len(v.Content) == 0 && v.Kind == yaml.SequenceNode:
			e.b = append(e.b, " []\n"...)
		case v.Kind == yaml.MappingNode:
			e.b = append(e.b, '\n')
			e.indent(indent + 2)
			if !e.mapping(v, indent+2) {
				return false
			}
		case v.Kind == yaml.SequenceNode:
			e.b = append(e.b, '\n')
			for _, item := range v.Content {
				if item.Kind != yaml.MappingNode || len(item.Content) == 0 {
					return false
				}
				e.indent(indent + 2)
				e.b = append(e.b, "- "...)
				if !e.mapping(item, indent+4) {
					return false
				}
			}
		default:
			return false
		}
	}
	return true
}

func (e *emitter) indent(n int) {
	for range n {
		e.b = append(e.b, ' ')
	}
}

// scalar writes a plain scalar as it is and a double-quoted one with
// yaml.v3's escapes; false for what it does not write as yaml.v3 does
// (invalid UTF-8, a leading BOM) and for styles frontMatter does not use.
func (e *emitter) scalar(n *yaml.Node) bool {
	switch n.Style {
	case 0:
		for i := range len(n.Value) {
			if c := n.Value[i]; c < 0x20 || c > 0x7e {
				return false
			}
		}
		if n.Value == "" {
			return false // yaml.v3 quotes it
		}
		e.b = append(e.b, n.Value...)
		return true
	case yaml.DoubleQuotedStyle:
		v := n.Value
		if strings.HasPrefix(v, "\uFEFF") {
			return false // yaml.v3 then escapes every character
		}
		e.b = append(e.b, '"')
		for i := 0; i < len(v); {
			c := v[i]
			if c < 0x80 {
				switch {
				case c == '"' || c == '\\':
					e.b = append(e.b, '\\', c)
				case c >= 0x20 && c < 0x7f:
					e.b = append(e.b, c)
				case c < 0x20 && escapes[c] != 0:
					e.b = append(e.b, '\\', escapes[c])
				default:
					e.escape(rune(c))
				}
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(v[i:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			switch {
			case r == 0x85:
				e.b = append(e.b, '\\', 'N')
			case r == 0x2028:
				e.b = append(e.b, '\\', 'L')
			case r == 0x2029:
				e.b = append(e.b, '\\', 'P')
			case printable(r):
				e.b = append(e.b, v[i:i+size]...)
			default:
				e.escape(r)
			}
			i += size
		}
		e.b = append(e.b, '"')
		return true
	}
	return false
}

// printable is yaml.v3's test of what a double-quoted scalar holds as it
// is, for characters past ASCII: it escapes the C1 controls, the BOM,
// U+FFFE and U+FFFF, and everything beyond the Basic Multilingual Plane.
func printable(r rune) bool {
	return r >= 0xa0 && r <= 0xfffd && r != 0xfeff
}

// escape writes r as \xXX, \uXXXX or \UXXXXXXXX, as yaml.v3 does.
func (e *emitter) escape(r rune) {
	letter, digits := byte('U'), 8
	switch {
	case r <= 0xff:
		letter, digits = 'x', 2
	case r <= 0xffff:
		letter, digits = 'u', 4
	}
	e.b = append(e.b, '\\', letter)
	for k := (digits - 1) * 4; k >= 0; k -= 4 {
		e.b = append(e.b, hexDigits[(r>>k)&0xf])
	}
}

// escapes are the control characters yaml.v3 writes as a letter.
var escapes = [0x20]byte{0: '0', 0x07: 'a', 0x08: 'b', '\t': 't', '\n': 'n', 0x0b: 'v', 0x0c: 'f', '\r': 'r', 0x1b: 'e'}

const hexDigits = "0123456789ABCDEF"

// yamlEncode is yaml.v3's encoder, for what emit does not write.
func yamlEncode(doc *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
