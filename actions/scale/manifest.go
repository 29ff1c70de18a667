package scale

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// replicas is where a resource's spec.replicas is in a manifest file, and
// how to change it without touching any other byte.
type replicas struct {
	resource string // "Kind/name"
	current  int
	// present: the value's bytes are data[start:end]. Absent: a line
	// "replicas: N" goes in at insert, before spec's first key.
	present    bool
	start, end int
	insert     int
	indent     string
	newline    string
}

// document is one resource of a manifest file.
type document struct {
	kind, name string
	root       *yaml.Node
}

func (d document) id() string { return d.kind + "/" + d.name }

// locate finds spec.replicas of resource ("Kind/name"; may be empty when
// the file holds one resource) in a manifest file of one or more YAML
// documents.
func locate(data []byte, resource string) (*replicas, error) {
	var docs []document
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not valid YAML: %w", err)
		}
		if n.Kind != yaml.DocumentNode || len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
			continue
		}
		root := n.Content[0]
		d := document{kind: scalar(get(root, "kind")), root: root}
		d.name = scalar(get(get(root, "metadata"), "name"))
		if d.kind != "" {
			docs = append(docs, d)
		}
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.id()
	}
	var doc *document
	switch {
	case resource == "" && len(docs) == 1:
		doc = &docs[0]
	case resource == "" && len(docs) == 0:
		return nil, errors.New("holds no Kubernetes resource")
	case resource == "":
		return nil, fmt.Errorf("holds %d resources (%s): name one with resource: \"Kind/name\"", len(docs), strings.Join(ids, ", "))
	default:
		kind, name, _ := strings.Cut(resource, "/")
		for i, d := range docs {
			if strings.EqualFold(d.kind, kind) && d.name == name {
				if doc != nil {
					return nil, fmt.Errorf("holds %s twice", resource)
				}
				doc = &docs[i]
			}
		}
		if doc == nil {
			return nil, fmt.Errorf("has no %s (it holds %s)", resource, strings.Join(ids, ", "))
		}
	}

	r := &replicas{resource: doc.id()}
	spec := get(doc.root, "spec")
	if spec == nil || spec.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s has no spec mapping", r.resource)
	}
	v := get(spec, "replicas")
	if v == nil {
		if !defaultsToOne[doc.kind] {
			return nil, fmt.Errorf("%s has no spec.replicas", r.resource)
		}
		return r, r.insertion(data, spec)
	}
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
		return nil, fmt.Errorf("%s: spec.replicas at line %d is not an integer", r.resource, v.Line)
	}
	n, err := strconv.Atoi(v.Value)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%s: spec.replicas at line %d is not a count: %q", r.resource, v.Line, v.Value)
	}
	r.current, r.present = n, true
	off, ok := offset(data, v.Line, v.Column)
	if !ok {
		return nil, fmt.Errorf("%s: spec.replicas: line %d column %d is outside the file", r.resource, v.Line, v.Column)
	}
	if v.Style != 0 || !bytes.HasPrefix(data[off:], []byte(v.Value)) {
		return nil, fmt.Errorf("%s: spec.replicas at line %d is written in a form firebreak does not edit", r.resource, v.Line)
	}
	r.start, r.end = off, off+len(v.Value)
	return r, nil
}

// defaultsToOne lists the kinds whose spec.replicas may be left out and
// then means 1; only to these is a missing replicas added.
var defaultsToOne = map[string]bool{
	"Deployment": true, "StatefulSet": true, "ReplicaSet": true, "ReplicationController": true, "Rollout": true,
}

// insertion prepares a new "replicas:" line before the first key of a
// block-style spec; a resource without one runs 1 replica.
func (r *replicas) insertion(data []byte, spec *yaml.Node) error {
	if spec.Style&yaml.FlowStyle != 0 || len(spec.Content) == 0 {
		return fmt.Errorf("%s has no spec.replicas and its spec is not a block mapping to add it to", r.resource)
	}
	key := spec.Content[0]
	off, ok := offset(data, key.Line, key.Column)
	if !ok {
		return fmt.Errorf("%s: spec at line %d is outside the file", r.resource, key.Line)
	}
	lineStart := bytes.LastIndexByte(data[:off], '\n') + 1
	indent := string(data[lineStart:off])
	if strings.Trim(indent, " ") != "" {
		return fmt.Errorf("%s has no spec.replicas and its spec is not laid out one key per line", r.resource)
	}
	r.current, r.insert, r.indent, r.newline = 1, off, indent, "\n"
	if end := bytes.IndexByte(data[off:], '\n'); end > 0 && data[off+end-1] == '\r' {
		r.newline = "\r\n"
	}
	return nil
}

// set returns data with replicas set to n; every other byte is kept.
func (r *replicas) set(data []byte, n int) []byte {
	num := strconv.Itoa(n)
	var out bytes.Buffer
	if r.present {
		out.Write(data[:r.start])
		out.WriteString(num)
		out.Write(data[r.end:])
		return out.Bytes()
	}
	out.Write(data[:r.insert])
	out.WriteString("replicas: " + num + r.newline + r.indent)
	out.Write(data[r.insert:])
	return out.Bytes()
}

// offset turns yaml.v3's 1-based line and column (counted in characters)
// into a byte offset.
func offset(data []byte, line, col int) (int, bool) {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return 0, false
		}
		off += i + 1
	}
	for c := 1; c < col; c++ {
		if off >= len(data) || data[off] == '\n' {
			return 0, false
		}
		_, size := utf8.DecodeRune(data[off:])
		off += size
	}
	return off, off <= len(data)
}

// get returns the value of key in a mapping node, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}
