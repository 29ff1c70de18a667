package flag

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// member is one "key": value of a JSON object, located in the file.
type member struct {
	key      string
	keyStart int // the opening quote of the key
	sep      string
	valStart int
	valEnd   int
}

// object is a JSON object of the file, its members in file order.
type object struct {
	start, end int // the braces, end exclusive
	members    []member
}

func (o object) get(key string) (member, bool) {
	for _, m := range o.members {
		if m.key == key {
			return m, true
		}
	}
	return member{}, false
}

// parseObject reads the object that is data[start:end], recording where
// each member and value lies.
func parseObject(data []byte, start, end int) (object, error) {
	obj := object{start: start, end: end}
	dec := json.NewDecoder(bytes.NewReader(data[start:end]))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return obj, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return obj, errors.New("not an object")
	}
	seen := map[string]bool{}
	for dec.More() {
		prev := start + int(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return obj, err
		}
		key, _ := tok.(string)
		keyEnd := start + int(dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return obj, err
		}
		valEnd := start + int(dec.InputOffset())
		valStart := valEnd - len(raw)
		if !bytes.Equal(data[valStart:valEnd], raw) {
			return obj, fmt.Errorf("cannot locate the value of %q", key)
		}
		keyStart := prev + bytes.IndexByte(data[prev:keyEnd], '"')
		if seen[key] {
			return obj, fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		obj.members = append(obj.members, member{
			key: key, keyStart: keyStart, valStart: valStart, valEnd: valEnd,
			sep: string(data[keyEnd:valStart]),
		})
	}
	return obj, nil
}

func (m member) object(data []byte) (object, error) {
	o, err := parseObject(data, m.valStart, m.valEnd)
	if err != nil {
		return o, fmt.Errorf("%q: %w", m.key, err)
	}
	return o, nil
}

// edit is a replacement of data[start:end].
type edit struct {
	start, end int
	text       string
}

// errNoFlag and errNoVariant mark a request the file cannot satisfy.
var (
	errNoFlag    = errors.New("no such flag")
	errNoVariant = errors.New("no such variant")
)

// setDefault returns the file with flag key's defaultVariant set to variant
// and its state ENABLED, every other byte as it was; changed is false when
// both already held.
func setDefault(data []byte, key, variant string) (out []byte, changed bool, err error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(data) {
		return nil, false, errors.New("not a valid JSON object")
	}
	root, err := parseObject(data, bytes.IndexByte(data, '{'), bytes.LastIndexByte(data, '}')+1)
	if err != nil {
		return nil, false, err
	}
	fm, ok := root.get("flags")
	if !ok {
		return nil, false, errors.New(`has no "flags" object`)
	}
	flags, err := fm.object(data)
	if err != nil {
		return nil, false, err
	}
	m, ok := flags.get(key)
	if !ok {
		names := make([]string, len(flags.members))
		for i, m := range flags.members {
			names[i] = m.key
		}
		return nil, false, fmt.Errorf("%w %q (the file defines %s)", errNoFlag, key, list(names))
	}
	flag, err := m.object(data)
	if err != nil {
		return nil, false, err
	}
	vm, ok := flag.get("variants")
	if !ok {
		return nil, false, fmt.Errorf("flag %q has no variants", key)
	}
	var variants map[string]json.RawMessage
	if err := json.Unmarshal(data[vm.valStart:vm.valEnd], &variants); err != nil {
		return nil, false, fmt.Errorf("flag %q: variants: %w", key, err)
	}
	if _, ok := variants[variant]; !ok {
		names := make([]string, 0, len(variants))
		for n := range variants {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, false, fmt.Errorf("%w: flag %q has no variant %q (it has %s)", errNoVariant, key, variant, list(names))
	}

	var edits []edit
	for _, want := range []struct{ key, value string }{{"state", "ENABLED"}, {"defaultVariant", variant}} {
		text := quote(want.value)
		if cur, ok := flag.get(want.key); ok {
			var v any
			if json.Unmarshal(data[cur.valStart:cur.valEnd], &v) == nil && v == want.value {
				continue
			}
			edits = append(edits, edit{cur.valStart, cur.valEnd, text})
			continue
		}
		edits = append(edits, flag.insertion(data, want.key, text))
	}
	if len(edits) == 0 {
		return data, false, nil
	}
	slices.SortStableFunc(edits, func(a, b edit) int { return b.start - a.start })
	out = slices.Clone(data)
	for _, e := range edits {
		out = slices.Concat(out[:e.start], []byte(e.text), out[e.end:])
	}
	if !json.Valid(out) {
		return nil, false, errors.New("the edit would not be valid JSON")
	}
	return out, true, nil
}

// insertion adds "key": value after the object's last member, laid out
// as that member is: on its own line with its indentation, or inline.
func (o object) insertion(data []byte, key, value string) edit {
	last := o.members[len(o.members)-1]
	lineStart := bytes.LastIndexByte(data[:last.keyStart], '\n') + 1
	indent := string(data[lineStart:last.keyStart])
	text := ", " + quote(key) + last.sep + value
	if lineStart > o.start && strings.Trim(indent, " \t") == "" {
		nl := "\n"
		if lineStart >= 2 && data[lineStart-2] == '\r' {
			nl = "\r\n"
		}
		text = "," + nl + indent + quote(key) + last.sep + value
	}
	return edit{last.valEnd, last.valEnd, text}
}

func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
