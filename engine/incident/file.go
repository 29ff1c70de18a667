package incident

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Marshal returns in's file: a YAML front matter block, "---\n", the
// record, "---\n", then the readable body derived from the record (see
// EscapeMarkdown for how values are escaped there). The record is
// written in its Normalize form, keys in Incident's field order and maps
// sorted by key, so the same record always gives the same bytes and
// Unmarshal returns it unchanged. in itself is not modified.
//
// Every string that is not a short, plain word-like value is written
// double-quoted with escapes, so each value of the front matter is on
// one line and no value can end the block early. Marshal fails on an id
// that is not ValidID, a status that is not Valid, and a time outside
// the years 1 to 9999.
func Marshal(in *Incident) ([]byte, error) {
	c := in.Clone()
	c.Normalize()
	if err := c.check(); err != nil {
		return nil, err
	}
	fm, err := frontMatter(c, false)
	if err != nil {
		return nil, err
	}
	if !readsBack(fm, c) {
		// Not expected: quoting everything is the most robust form.
		if fm, err = frontMatter(c, true); err != nil {
			return nil, err
		}
		if !readsBack(fm, c) {
			return nil, fmt.Errorf("incident %s: front matter does not read back as written", c.ID)
		}
	}
	var b bytes.Buffer
	b.Grow(len(fm) * 2)
	b.WriteString(delimiter)
	b.Write(fm)
	b.WriteString(delimiter)
	b.WriteString("\n")
	writeBody(&b, c)
	return b.Bytes(), nil
}

const delimiter = "---\n"

// Unmarshal reads the record from the front matter of an incident file;
// the body is derived from it and ignored. The result is in Normalize
// form. An error is one line naming the file line at fault where there
// is one, e.g. "front matter: line 7: unknown field "owners"".
func Unmarshal(data []byte) (*Incident, error) {
	fm, err := split(data)
	if err != nil {
		return nil, err
	}
	// The tree first, to refuse what the record never holds before it is
	// expanded: aliases can make a small file decode into a huge record.
	var doc yaml.Node
	if err := yaml.Unmarshal(fm, &doc); err != nil {
		return nil, yamlError(nil, err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("front matter: empty")
	}
	if n := aliased(&doc); n != nil {
		return nil, fmt.Errorf("front matter: line %d: anchors and aliases are not allowed", n.Line+1)
	}
	if line := documentEnd(fm); line > 0 {
		return nil, fmt.Errorf("front matter: line %d: ... ends the YAML document before the closing ---", line+1)
	}
	if key := unknownKey(&doc, reflect.TypeFor[Incident]()); key != nil {
		return nil, fmt.Errorf("front matter: line %d: unknown field %s", key.Line+1, quote(key.Value))
	}
	var in Incident
	if err := doc.Decode(&in); err != nil {
		return nil, yamlError(&doc, err)
	}
	in.Normalize()
	if err := in.check(); err != nil {
		return nil, fmt.Errorf("front matter: %s%w", lineOf(&doc, err), err)
	}
	return &in, nil
}

var timeType = reflect.TypeFor[time.Time]()

// unknownKey returns the first mapping key in n that no yaml tag of the
// struct type t (or of the struct types its fields hold) names, or nil.
// A node of the wrong kind is left for decoding to report.
func unknownKey(n *yaml.Node, t reflect.Type) *yaml.Node {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	switch {
	case t == timeType:
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for _, c := range n.Content {
			if k := unknownKey(c, t.Elem()); k != nil {
				return k
			}
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			f, ok := fieldByTag(t, n.Content[i].Value)
			if !ok {
				return n.Content[i]
			}
			if k := unknownKey(n.Content[i+1], f.Type); k != nil {
				return k
			}
		}
	}
	return nil
}

// fieldByTag returns the field of struct type t whose yaml tag is name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// aliased returns the first node of n's tree that is an alias or has an
// anchor, or nil.
func aliased(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return n
	}
	for _, c := range n.Content {
		if a := aliased(c); a != nil {
			return a
		}
	}
	return nil
}

// documentEnd returns the line (from 1) of a "..." document end marker
// in fm, or 0.
func documentEnd(fm []byte) int {
	for i, line := range strings.Split(string(fm), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "..." || strings.HasPrefix(line, "... ") || strings.HasPrefix(line, "...\t") {
			return i + 1
		}
	}
	return 0
}

// split returns the front matter between the first line, "---", and the
// next line that is "---". A line may end in "\r\n"; a UTF-8 byte order
// mark before the first line is skipped.
func split(data []byte) ([]byte, error) {
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	first, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok || string(bytes.TrimSuffix(first, []byte("\r"))) != "---" {
		return nil, errors.New("front matter: line 1: want ---, the start of the front matter")
	}
	for off := 0; ; {
		line, _, found := bytes.Cut(rest[off:], []byte("\n"))
		if string(bytes.TrimSuffix(line, []byte("\r"))) == "---" {
			return rest[:off], nil
		}
		if !found {
			return nil, errors.New("front matter: no closing --- line")
		}
		off += len(line) + 1
	}
}

// fieldError is a check failure in the named front matter key.
type fieldError struct {
	key string // top-level key, for the line number
	msg string
}

func (e *fieldError) Error() string { return e.msg }

// check reports what Marshal cannot write and Unmarshal does not accept.
func (in *Incident) check() error {
	if !ValidID(in.ID) {
		return &fieldError{"id", fmt.Sprintf("id %s: want 1 to 128 lower-case letters, digits and dashes", quote(in.ID))}
	}
	if !in.Status.Valid() {
		return &fieldError{"status", fmt.Sprintf("status %s: want open, mitigated or resolved", quote(string(in.Status)))}
	}
	bad := func(key, name string, t time.Time) error {
		if t.IsZero() || t.Year() >= 1 && t.Year() <= 9999 {
			return nil
		}
		return &fieldError{key, fmt.Sprintf("%s: year %d out of range 1 to 9999", name, t.Year())}
	}
	ts := in.Timestamps
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"detected", ts.Detected}, {"opened", ts.Opened}, {"acknowledged", ts.Acknowledged}, {"mitigated", ts.Mitigated}, {"resolved", ts.Resolved}} {
		if err := bad("timestamps", "timestamps."+f.name, f.t); err != nil {
			return err
		}
	}
	for i, a := range in.Alerts {
		for _, err := range []error{bad("alerts", fmt.Sprintf("alerts[%d].starts_at", i), a.StartsAt), bad("alerts", fmt.Sprintf("alerts[%d].ends_at", i), a.EndsAt)} {
			if err != nil {
				return err
			}
		}
	}
	for i, s := range in.Steps {
		for _, err := range []error{bad("steps", fmt.Sprintf("steps[%d].started", i), s.Started), bad("steps", fmt.Sprintf("steps[%d].finished", i), s.Finished), bad("steps", fmt.Sprintf("steps[%d].approved_at", i), s.ApprovedAt)} {
			if err != nil {
				return err
			}
		}
	}
	for i, e := range in.Timeline {
		if err := bad("timeline", fmt.Sprintf("timeline[%d].at", i), e.At); err != nil {
			return err
		}
	}
	return nil
}

// quote quotes a value for an error message, shortened: errors are one
// short line.
func quote(s string) string {
	if len(s) > 64 {
		s = clean(s[:64]) + "…"
	}
	return strconv.Quote(s)
}

// lineOf returns "line N: " for the top-level key err names, counted in
// the whole file, or "".
func lineOf(doc *yaml.Node, err error) string {
	var fe *fieldError
	if !errors.As(err, &fe) || len(doc.Content) == 0 {
		return ""
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == fe.key {
			return fmt.Sprintf("line %d: ", m.Content[i].Line+1)
		}
	}
	return ""
}

var yamlLine = regexp.MustCompile(`\bline (\d+)\b`)

// parserProblems are the messages of yaml.v3's parser errors, which
// count lines from 0 where its scanner's count from 1.
var parserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// yamlError turns a yaml.v3 error into one line whose line numbers count
// from the top of the file (the front matter starts on line 2).
func yamlError(doc *yaml.Node, err error) error {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	offset := 1
	if m := yamlLine.FindStringIndex(msg); m != nil && m[0] == 0 {
		rest := strings.TrimLeft(msg[m[1]:], ": ")
		for _, p := range parserProblems {
			if strings.HasPrefix(rest, p) {
				offset = 2
			}
		}
	} else if m == nil {
		// A value's own decoding (a time's, say) failed: find where.
		if line, key, value := badTime(doc); line > 0 {
			msg = fmt.Sprintf("line %d: %s: %s is not a time, want RFC 3339 such as 2026-11-21T09:12:03Z", line, key, quote(value))
		}
	}
	msg = yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(m[len("line "):])
		return "line " + strconv.Itoa(n+offset)
	})
	// The message may quote the file, which may hold anything: keep it
	// one line of printable text.
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || bidi(r) {
			return utf8.RuneError
		}
		return r
	}, strings.Join(strings.Fields(strings.ToValidUTF8(msg, "\uFFFD")), " "))
	if len(msg) > 300 {
		msg = clean(msg[:300]) + "…"
	}
	return errors.New("front matter: " + msg)
}

// timeKeys are the keys whose values are times.
var timeKeys = map[string]bool{
	"detected": true, "opened": true, "acknowledged": true, "mitigated": true, "resolved": true,
	"starts_at": true, "ends_at": true, "started": true, "finished": true, "approved_at": true, "at": true,
}

// badTime returns the yaml line (from 1), key and value of the first
// time in doc that does not decode, or 0.
func badTime(doc *yaml.Node) (line int, key, value string) {
	if doc == nil {
		return 0, "", ""
	}
	var walk func(n *yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				var t time.Time
				if k, v := n.Content[i], n.Content[i+1]; timeKeys[k.Value] && v.Kind == yaml.ScalarNode && v.Decode(&t) != nil {
					line, key, value = v.Line, k.Value, v.Value
					return true
				}
			}
		}
		for _, c := range n.Content {
			if walk(c) {
				return true
			}
		}
		return false
	}
	walk(doc)
	return line, key, value
}

// readsBack reports whether fm decodes to exactly in.
func readsBack(fm []byte, in *Incident) bool {
	for _, line := range strings.Split(string(fm), "\n") {
		if strings.TrimSuffix(line, "\r") == "---" || strings.HasPrefix(line, "...") {
			return false
		}
	}
	var got Incident
	if err := yaml.Unmarshal(fm, &got); err != nil {
		return false
	}
	got.Normalize()
	return reflect.DeepEqual(&got, in)
}

// frontMatter writes the record as YAML, building the node tree by hand
// so that the key order and every scalar's style are decided here.
func frontMatter(in *Incident, quoteAll bool) ([]byte, error) {
	doc := frontMatterNode(in, quoteAll)
	if !quoteAll { // the retry of a record that did not read back is yaml.v3's
		if out, ok := emit(doc); ok {
			return out, nil
		}
	}
	out, err := yamlEncode(doc)
	if err != nil {
		return nil, fmt.Errorf("incident %s: encode front matter: %w", in.ID, err)
	}
	return out, nil
}

func frontMatterNode(in *Incident, quoteAll bool) *yaml.Node {
	w := writer{quoteAll: quoteAll}
	ts := in.Timestamps
	doc := mapping(
		"id", w.str(in.ID),
		"title", w.str(in.Title),
		"status", w.str(string(in.Status)),
		"severity", w.str(in.Severity),
		"playbook", w.str(in.Playbook),
		"playbooks_commit", w.str(in.PlaybooksCommit),
		"owner", w.str(in.Owner),
		"group_key", w.str(in.GroupKey),
		"group", w.labels(in.Group),
		"timestamps", mapping(
			"detected", timeNode(ts.Detected),
			"opened", timeNode(ts.Opened),
			"acknowledged", timeNode(ts.Acknowledged),
			"mitigated", timeNode(ts.Mitigated),
			"resolved", timeNode(ts.Resolved),
		),
		"issue", intNode(in.Issue),
		"postmortem_pr", intNode(in.PostmortemPR),
	)
	alerts := sequence()
	for _, a := range in.Alerts {
		m := mapping(
			"fingerprint", w.str(a.Fingerprint),
			"status", w.str(a.Status),
			"starts_at", timeNode(a.StartsAt),
			"ends_at", timeNode(a.EndsAt),
		)
		if len(a.Labels) > 0 {
			add(m, "labels", w.labels(a.Labels))
		}
		if len(a.Annotations) > 0 {
			add(m, "annotations", w.labels(a.Annotations))
		}
		alerts.Content = append(alerts.Content, m)
	}
	steps := sequence()
	for _, s := range in.Steps {
		steps.Content = append(steps.Content, mapping(
			"name", w.str(s.Name),
			"action", w.str(s.Action),
			"target", w.optional(s.Target),
			"status", w.str(s.Status),
			"started", timeNode(s.Started),
			"finished", timeNode(s.Finished),
			"result", w.optional(s.Result),
			"commit", w.optional(s.Commit),
			"error", w.optional(s.Error),
			"approved_by", w.optional(s.ApprovedBy),
			"approved_at", timeNode(s.ApprovedAt),
		))
	}
	timeline := sequence()
	for _, e := range in.Timeline {
		timeline.Content = append(timeline.Content, mapping(
			"at", timeNode(e.At),
			"kind", w.str(e.Kind),
			"text", w.str(e.Text),
		))
	}
	add(doc, "alerts", flowIfEmpty(alerts))
	add(doc, "steps", flowIfEmpty(steps))
	add(doc, "timeline", flowIfEmpty(timeline))
	return doc
}

type writer struct{ quoteAll bool }

// str is a string scalar: plain when it is a short word-like value that
// every YAML reader (1.1 or 1.2) takes for that string, double-quoted
// otherwise. A double-quoted scalar escapes line breaks and every
// character that is not printable, so it is always one line.
func (w writer) str(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if w.quoteAll || !plain(s) {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// optional is str, or nil (the key is left out) for "".
func (w writer) optional(s string) *yaml.Node {
	if s == "" {
		return nil
	}
	return w.str(s)
}

// labels is a map of strings, sorted by key.
func (w writer) labels(m map[string]string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, k := range sortedKeys(m) {
		n.Content = append(n.Content, w.str(k), w.str(m[k]))
	}
	return flowIfEmpty(n)
}

// plainWord is what may be written unquoted, before checking that YAML
// does not read it as another type: it cannot start with an indicator,
// hold ": " or " #", or end in a space.
var plainWord = regexp.MustCompile(`^[A-Za-z0-9_/][A-Za-z0-9_./@+=,()-]*(?: [A-Za-z0-9_./@+=,()-]+)*$`)

// yaml11Words are read as booleans or null by YAML 1.1 readers (yaml.v3
// is 1.2 and reads them as strings; others, such as PyYAML, do not).
var yaml11Words = map[string]bool{
	"y": true, "yes": true, "n": true, "no": true, "true": true, "false": true,
	"on": true, "off": true, "null": true,
}

func plain(s string) bool {
	if len(s) > 200 || !plainWord.MatchString(s) || yaml11Words[strings.ToLower(s)] {
		return false
	}
	// yaml.v3 drops underscores before it tries a number: 0B0_ is 0.
	num := strings.ReplaceAll(s, "_", "")
	if _, err := strconv.ParseFloat(num, 64); err == nil {
		return false
	}
	if _, err := strconv.ParseInt(num, 0, 64); err == nil {
		return false
	}
	if _, err := strconv.ParseUint(num, 0, 64); err == nil {
		return false
	}
	// A date or a time: digits and dashes, say 2026-11-21. Ids start
	// with one too but go on with letters; YAML's timestamp needs only
	// digits, dashes and (excluded above) colons before any letter T.
	if unicode.IsDigit(rune(s[0])) && strings.Trim(s, "0123456789-") == "" {
		return false
	}
	return true
}

func timeNode(t time.Time) *yaml.Node {
	if t.IsZero() {
		return nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!timestamp", Value: t.UTC().Format(time.RFC3339Nano)}
}

func intNode(n int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(n)}
}

// mapping builds a block mapping of key, value pairs, leaving out pairs
// whose value is nil.
func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(kv); i += 2 {
		if v := kv[i+1].(*yaml.Node); v != nil {
			add(n, kv[i].(string), v)
		}
	}
	return n
}

func add(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

func sequence() *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
}

// flowIfEmpty writes an empty collection as [] or {}.
func flowIfEmpty(n *yaml.Node) *yaml.Node {
	if len(n.Content) == 0 {
		n.Style = yaml.FlowStyle
	}
	return n
}
