package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// Error is a decoding error and where in the input it was found.
type Error struct {
	Name   string // the name given to the decoder
	Line   int    // 1-based
	Column int    // 1-based, in bytes
	Path   string // the field, such as alerts[0].labels.severity; empty at the top level
	Msg    string // what is wrong, without position or path
}

// Error formats e as name:line:col: path: message.
func (e *Error) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s:%d:%d: %s", e.Name, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.Name, e.Line, e.Column, e.Path, e.Msg)
}

// The decoder checks the syntax of the whole document once, up front, with
// encoding/json. After that it walks the document itself, as spans of bytes:
// knowing where each value starts is what lets every error say line:col, and
// reading keys itself is what makes field names exact (encoding/json would
// match "LABELS" to labels, keep the last of two equal keys, and not say
// where an unknown field is). The walk can be simple because the syntax is
// known to be valid.

// decoder holds one document being decoded.
type decoder struct {
	name    string
	data    []byte
	source  string            // the source of a normalized alert that names none
	strs    map[string]string // see intern
	scratch []member          // see strMap
}

// span is the JSON value data[off:end].
type span struct{ off, end int }

// member is one key and value of a JSON object.
type member struct {
	key    string
	keyOff int
	val    span
}

// skip is a json.Unmarshaler that ignores its value: decoding into it only
// checks the syntax and finds the end.
type skip struct{}

func (*skip) UnmarshalJSON([]byte) error { return nil }

// parse checks that data holds exactly one JSON value and returns its span.
func parse(name string, data []byte) (*decoder, span, error) {
	d := &decoder{name: name, data: data, source: "generic"}
	start := skipSpace(data, 0)
	if start == len(data) {
		return nil, span{}, d.errorf(0, "", "empty input")
	}
	if json.Valid(data) {
		// One value and white space: it ends where the space after it
		// begins, without a walk to find out.
		end := len(data)
		for end > start && bytes.IndexByte([]byte(" \t\r\n"), data[end-1]) >= 0 {
			end--
		}
		return d, span{start, end}, nil
	}
	// Invalid: find out where, and whether the first value is fine and
	// only followed by more.
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(new(skip)); err != nil {
		return nil, span{}, d.syntaxError(err)
	}
	rest := skipSpace(data, int(dec.InputOffset()))
	return nil, span{}, d.errorf(rest, "", "invalid JSON: unexpected data after the top-level value")
}

// syntaxError turns an error of json.Decoder.Decode on the whole document
// into an Error at the offending byte.
func (d *decoder) syntaxError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return d.errorf(len(d.data), "", "invalid JSON: unexpected end of input")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// The scanner counts the offending byte before it complains.
		off := min(max(int(se.Offset)-1, 0), len(d.data))
		return d.errorf(off, "", "invalid JSON: %s", se.Error())
	}
	return d.errorf(0, "", "invalid JSON: %s", err.Error())
}

// errorf returns an Error at byte offset off of the document.
func (d *decoder) errorf(off int, path, format string, args ...any) error {
	before := d.data[:off]
	line := 1 + bytes.Count(before, []byte{'\n'})
	col := off - bytes.LastIndexByte(before, '\n')
	return &Error{Name: d.name, Line: line, Column: col, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// kind names the JSON type of v, as its first byte tells.
func (d *decoder) kind(v span) string {
	switch d.data[v.off] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// end returns the offset just past the value that starts at off.
func (d *decoder) end(off int) int {
	switch d.data[off] {
	case '"':
		return d.strEnd(off)
	case '{', '[':
		depth := 0
		for i := off; ; i++ {
			switch d.data[i] {
			case '"':
				i = d.strEnd(i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
	}
	// A number, true, false or null: it runs to the next delimiter.
	i := off
	for i < len(d.data) && !bytes.ContainsRune([]byte(",}] \t\r\n"), rune(d.data[i])) {
		i++
	}
	return i
}

// strEnd returns the offset just past the string that starts at off. It
// jumps from quote to quote (most of a body's bytes are in strings): a
// quote ends the string unless an odd run of backslashes escapes it.
func (d *decoder) strEnd(off int) int {
	for i := off + 1; ; {
		j := i + bytes.IndexByte(d.data[i:], '"') // valid: there is one
		k := j
		for k > i && d.data[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 {
			return j + 1
		}
		i = j + 1
	}
}

// members returns the keys and values of the object v, in order. A key that
// appears twice is an error: encoding/json would keep the last silently.
func (d *decoder) members(v span, path string) ([]member, error) {
	return d.membersInto(make([]member, 0, 8), v, path)
}

// membersInto is members appending to ms.
func (d *decoder) membersInto(ms []member, v span, path string) ([]member, error) {
	var seen map[string]bool // only for large objects: most are small
	for i := d.next(v.off + 1); d.data[i] != '}'; {
		keyEnd := d.strEnd(i)
		key := d.unquote(i, keyEnd)
		if len(ms) == 16 {
			seen = make(map[string]bool, 32)
			for _, m := range ms {
				seen[m.key] = true
			}
		}
		if seen != nil && seen[key] || seen == nil && has(ms, key) {
			return nil, d.errorf(i, path, "duplicate key %s", quote(key))
		}
		if seen != nil {
			seen[key] = true
		}
		valOff := d.next(keyEnd)
		valEnd := d.end(valOff)
		ms = append(ms, member{key: key, keyOff: i, val: span{valOff, valEnd}})
		i = d.next(valEnd)
	}
	return ms, nil
}

// elements returns the values of the array v. Every array it walks is a
// list of alerts, so it stops at MaxAlerts.
func (d *decoder) elements(v span, path string) ([]span, error) {
	var elems []span
	for i := d.next(v.off + 1); d.data[i] != ']'; {
		if len(elems) == MaxAlerts {
			return nil, d.errorf(i, path, "more than %d alerts", MaxAlerts)
		}
		end := d.end(i)
		elems = append(elems, span{i, end})
		i = d.next(end)
	}
	return elems, nil
}

// unquote returns the string data[off:end], a JSON string literal.
func (d *decoder) unquote(off, end int) string {
	raw := d.data[off+1 : end-1]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return d.intern(raw)
	}
	// Escapes or invalid UTF-8, which encoding/json turns into U+FFFD.
	var s string
	_ = json.Unmarshal(d.data[off:end], &s) // valid: parse checked it
	return s
}

// intern returns raw as a string, the same string for the same bytes
// within a document: a webhook repeats its keys and most of its values
// (label names, "firing", the alert name) in every alert, and a string
// each was most of the decoder's allocations. Long strings, and any past
// the first internMax, are not kept.
func (d *decoder) intern(raw []byte) string {
	if len(raw) > 64 {
		return string(raw)
	}
	if s, ok := d.strs[string(raw)]; ok {
		return s
	}
	s := string(raw)
	if d.strs == nil {
		d.strs = make(map[string]string, 64)
	}
	if len(d.strs) < internMax {
		d.strs[s] = s
	}
	return s
}

const internMax = 4096

// str decodes the string v, the field key of path.
func (d *decoder) str(v span, path, key string) (string, error) {
	if k := d.kind(v); k != "string" {
		return "", d.errorf(v.off, join(path, key), "want string, got %s", k)
	}
	return d.unquote(v.off, v.end), nil
}

// strMap decodes the object v of strings, such as labels, the field key of
// path.
func (d *decoder) strMap(v span, path, key string) (map[string]string, error) {
	path = join(path, key)
	if k := d.kind(v); k != "object" {
		return nil, d.errorf(v.off, path, "want object, got %s", k)
	}
	// The members are not kept past the loop below, which decodes no
	// object: they can go in the decoder's scratch.
	ms, err := d.membersInto(d.scratch[:0], v, path)
	d.scratch = ms[:0]
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(ms))
	for _, mem := range ms {
		if k := d.kind(mem.val); k != "string" {
			return nil, d.errorf(mem.val.off, keyPath(path, mem.key), "want string, got %s", k)
		}
		m[mem.key] = d.unquote(mem.val.off, mem.val.end)
	}
	return m, nil
}

// count decodes a non-negative integer, the field key of path.
func (d *decoder) count(v span, path, key string) (int, error) {
	if k := d.kind(v); k != "number" {
		return 0, d.errorf(v.off, join(path, key), "want integer, got %s", k)
	}
	raw := string(d.data[v.off:v.end])
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 {
		return 0, d.errorf(v.off, join(path, key), "want a non-negative integer, got %s", clip(raw))
	}
	return n, nil
}

// next returns the offset of the next token at or after off, past spaces and
// the separators that json.Decoder's offsets leave in front of it.
func (d *decoder) next(off int) int {
	for off < len(d.data) {
		switch d.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

// skipSpace returns the offset of the first byte at or after off that is not
// JSON white space.
func skipSpace(data []byte, off int) int {
	for off < len(data) {
		switch data[off] {
		case ' ', '\t', '\r', '\n':
			off++
		default:
			return off
		}
	}
	return off
}

// join appends the field key to path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// keyPath appends a map key, such as a label name, to path: plainly when it
// is a short identifier, quoted in brackets otherwise.
func keyPath(path, key string) string {
	if len(key) > 0 && len(key) <= 32 && isIdent(key) {
		return join(path, key)
	}
	return path + "[" + quote(key) + "]"
}

func isIdent(s string) bool {
	for i, c := range []byte(s) {
		letter := c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// maxEcho is the most bytes of the input an error repeats: no error quotes
// more than one key or value.
const maxEcho = 32

// quote quotes s for an error message, cut to maxEcho bytes.
func quote(s string) string {
	if len(s) <= maxEcho {
		return strconv.Quote(s)
	}
	return strconv.Quote(cut(s)) + "…"
}

// clip cuts s, which is not quoted, to maxEcho bytes.
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	return cut(s) + "…"
}

// cut returns the longest prefix of s of at most maxEcho bytes that ends on
// a rune boundary.
func cut(s string) string {
	n := maxEcho
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// has reports whether ms has the key.
func has(ms []member, key string) bool {
	for _, m := range ms {
		if m.key == key {
			return true
		}
	}
	return false
}

// object is a JSON object read field by field, for bodies whose fields are
// fixed (PagerDuty's, GitHub's). Fields it is not asked for are ignored, and
// null stands for an absent field.
type object struct {
	d    *decoder
	v    span
	path string
	ms   []member
}

// object returns the object v at path, or an error naming what v is instead.
func (d *decoder) object(v span, path string) (*object, error) {
	if k := d.kind(v); k != "object" {
		return nil, d.errorf(v.off, path, "want object, got %s", k)
	}
	ms, err := d.members(v, path)
	if err != nil {
		return nil, err
	}
	return &object{d: d, v: v, path: path, ms: ms}, nil
}

// get returns the value of key, unless it is absent or null.
func (o *object) get(key string) (span, bool) {
	for _, m := range o.ms {
		if m.key == key {
			return m.val, o.d.kind(m.val) != "null"
		}
	}
	return span{}, false
}

// missing is the error for a required field that is absent or null.
func (o *object) missing(key string) error {
	return o.d.errorf(o.v.off, o.path, "missing field %s", quote(key))
}

// str returns the string field key, or "" when it is absent and not
// required.
func (o *object) str(key string, required bool) (string, error) {
	v, ok := o.get(key)
	if !ok {
		if required {
			return "", o.missing(key)
		}
		return "", nil
	}
	return o.d.str(v, o.path, key)
}

// obj returns the object field key, or nil when it is absent and not
// required.
func (o *object) obj(key string, required bool) (*object, error) {
	v, ok := o.get(key)
	if !ok {
		if required {
			return nil, o.missing(key)
		}
		return nil, nil
	}
	return o.d.object(v, join(o.path, key))
}

// integer returns the non-negative integer field key, or 0 and false when it is
// absent and not required.
func (o *object) integer(key string, required bool) (int64, bool, error) {
	v, ok := o.get(key)
	if !ok {
		if required {
			return 0, false, o.missing(key)
		}
		return 0, false, nil
	}
	path := join(o.path, key)
	if k := o.d.kind(v); k != "number" {
		return 0, false, o.d.errorf(v.off, path, "want integer, got %s", k)
	}
	raw := string(o.d.data[v.off:v.end])
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return 0, false, o.d.errorf(v.off, path, "want a non-negative integer, got %s", clip(raw))
	}
	return n, true, nil
}

// time returns the RFC3339 time field key in UTC, or the zero time when it
// is absent.
func (o *object) time(key string) (time.Time, error) {
	v, ok := o.get(key)
	if !ok {
		return time.Time{}, nil
	}
	return o.d.time(v, o.path, key)
}

// nested returns the string field key of o (a nested object such as
// service.summary), or "" when either is absent.
func (o *object) nested(key, field string) (string, error) {
	sub, err := o.obj(key, false)
	if err != nil || sub == nil {
		return "", err
	}
	return sub.str(field, false)
}
