package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/format"
	"cuelang.org/go/cue/parser"

	"github.com/firebreak-dev/firebreak/engine/match"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

// A template is a playbook's plan compiled to Go by partial evaluation:
// the playbook's unit evaluated with the alert left open, every field of
// the plan either a constant or a string interpolation of the alert's
// strings, with the constraints that apply to it. Rendering a template
// copies the constants, fills in the strings and checks the constraints,
// which takes microseconds; CUE takes a millisecond and allocates in a
// cue.Context. The template gives exactly what CUE gives:
//
//   - repo.Unit.CopiesAlert admits only units in which the alert's
//     strings reach a field's value as conjuncts of that field and nothing
//     computes with them, so every field that does not read the alert has
//     the same value for every alert, and one that does is its
//     interpolation met with the other conjuncts of the field;
//   - compile reads those conjuncts off the open evaluation and compiles
//     the constraints among them with the match compiler, checked against
//     CUE on a set of strings; anything else leaves the playbook to CUE;
//   - compile renders the playbook with CUE for a probe alert and keeps
//     the template only when the template gives the same plan for it.
//
// An alert that lacks a field a template reads, or whose strings fail a
// constraint, is rendered by CUE, which says why.
type template struct {
	fields       []alertField // the alert's strings the template reads
	title        *strTemplate
	steps        []stepTemplate
	onFailure    []stepTemplate
	hasOnFailure bool
}

type fieldKind uint8

const (
	topField fieldKind = iota
	labelField
	annotationField
)

// alertField is one string of the alert: a top-level field, a label or an
// annotation.
type alertField struct {
	kind fieldKind
	name string
}

// value returns the field of a as CUE holds it after Encode.
func (f alertField) value(a *schema.Alert) (string, bool) {
	var s string
	var ok bool
	switch f.kind {
	case labelField:
		s, ok = a.Labels[f.name]
	case annotationField:
		s, ok = a.Annotations[f.name]
	default:
		s, ok = a.Field(f.name)
	}
	return match.Encoded(s), ok
}

// strTemplate is a string: literal text around holes filled with the
// alert's strings, and the constraints the result must satisfy.
type strTemplate struct {
	text  []string // len(holes)+1
	holes []int    // indexes into template.fields
	conds []match.StringConstraint
}

func (t *strTemplate) render(vals []string) (string, bool) {
	var s string
	if len(t.holes) == 0 {
		s = t.text[0]
	} else {
		n := 0
		for _, x := range t.text {
			n += len(x)
		}
		for _, h := range t.holes {
			n += len(vals[h])
		}
		var b strings.Builder
		b.Grow(n)
		b.WriteString(t.text[0])
		for i, h := range t.holes {
			b.WriteString(vals[h])
			b.WriteString(t.text[i+1])
		}
		s = b.String()
	}
	for _, c := range t.conds {
		if !c.Holds(s) {
			return "", false
		}
	}
	return s, true
}

// stepTemplate is one step. params holds the action's parameters as
// decodeParams decodes them, with *strTemplate for the strings that read
// the alert.
type stepTemplate struct {
	action                  string
	params                  map[string]any
	name, approval, timeout *strTemplate // nil when the step has none
	continueOnError         bool
}

// instantiate renders t for a; false means CUE must render it.
func (t *template) instantiate(a *schema.Alert) (*Plan, bool) {
	vals := make([]string, len(t.fields))
	for i, f := range t.fields {
		v, ok := f.value(a)
		if !ok {
			return nil, false
		}
		vals[i] = v
	}
	title, ok := t.title.render(vals)
	if !ok {
		return nil, false
	}
	steps, ok := instantiateSteps(t.steps, vals)
	if !ok {
		return nil, false
	}
	var onFailure []schema.Step
	if t.hasOnFailure {
		if onFailure, ok = instantiateSteps(t.onFailure, vals); !ok {
			return nil, false
		}
	}
	nameSteps(steps, onFailure)
	return &Plan{Title: title, Steps: steps, OnFailure: onFailure}, true
}

func instantiateSteps(ts []stepTemplate, vals []string) ([]schema.Step, bool) {
	out := make([]schema.Step, 0, len(ts))
	for i := range ts {
		st := &ts[i]
		params, ok := fill(st.params, vals)
		if !ok {
			return nil, false
		}
		s := schema.Step{Action: st.action, Params: params.(map[string]any), ContinueOnError: st.continueOnError}
		for _, f := range []struct {
			t   *strTemplate
			dst *string
		}{{st.name, &s.Name}, {st.approval, &s.Approval}, {st.timeout, &s.Timeout}} {
			if f.t == nil {
				continue
			}
			if *f.dst, ok = f.t.render(vals); !ok {
				return nil, false
			}
		}
		out = append(out, s)
	}
	return out, true
}

// fill copies a decoded value, rendering the strings that read the alert.
func fill(v any, vals []string) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			f, ok := fill(e, vals)
			if !ok {
				return nil, false
			}
			m[k] = f
		}
		return m, true
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			f, ok := fill(e, vals)
			if !ok {
				return nil, false
			}
			l[i] = f
		}
		return l, true
	case *strTemplate:
		return x.render(vals)
	}
	return v, true
}

// compile compiles pb's plan to a template in g, or returns nil when only
// CUE can render it.
func (g *generation) compile(pb *repo.Playbook) *template {
	if !pb.Unit.CopiesAlert() || !schemaHasNoCalls() {
		return nil
	}
	u, err := g.unit(pb)
	if err != nil {
		return nil
	}
	c := &compiler{g: g, index: map[alertField]int{}}
	v := u.LookupPath(cue.MakePath(cue.Str(pb.Name)))
	t := &template{}
	var ok bool
	if t.steps, ok = c.steps(v.LookupPath(stepsPath)); !ok {
		return nil
	}
	if of := v.LookupPath(onFailurePath); of.Exists() {
		t.hasOnFailure = true
		if t.onFailure, ok = c.steps(of); !ok {
			return nil
		}
	}
	if t.title, ok = c.str(v.LookupPath(titlePath)); !ok {
		return nil
	}
	t.fields = c.fields
	// The same plan as CUE's for a probe alert, or no template.
	probe := t.probe()
	want, err := g.render(pb, probe)
	if err != nil {
		return nil
	}
	got, ok := t.instantiate(probe)
	if !ok || !reflect.DeepEqual(got, want) {
		return nil
	}
	return t
}

// schemaHasNoCalls reports whether firebreak's schema, which render meets
// with the steps, calls nothing: a call could be a validator of a list or
// a struct of the plan (list.UniqueItems()), which the compiler, reading
// only each string's own conjuncts, would not see.
var schemaHasNoCalls = sync.OnceValue(func() bool {
	f, err := parser.ParseFile("schema.cue", schema.Source())
	if err != nil {
		return false
	}
	calls := false
	ast.Walk(f, func(n ast.Node) bool {
		_, ok := n.(*ast.CallExpr)
		calls = calls || ok
		return !calls
	}, nil)
	return !calls
})

// probe returns an alert with a distinct value for every field t reads.
func (t *template) probe() *schema.Alert {
	a := &schema.Alert{Source: "generic", Status: "firing", Labels: map[string]string{}, Annotations: map[string]string{}}
	for i, f := range t.fields {
		v := fmt.Sprintf("probe%d", i)
		switch f.kind {
		case labelField:
			a.Labels[f.name] = v
		case annotationField:
			a.Annotations[f.name] = v
		default:
			at := time.Date(2006, 1, 2, 15, 4, 5, i+1, time.UTC)
			switch f.name {
			case "source":
				a.Source = v
			case "status":
				a.Status = v
			case "fingerprint":
				a.Fingerprint = v
			case "generatorURL":
				a.GeneratorURL = v
			case "startsAt":
				a.StartsAt = at
			case "endsAt":
				a.EndsAt = at
			case "receivedAt":
				a.ReceivedAt = at
			}
		}
	}
	return a
}

// compiler reads a plan off the open evaluation of a unit.
type compiler struct {
	g      *generation
	fields []alertField
	index  map[alertField]int
}

// steps compiles a list of steps as generation.steps decodes it.
func (c *compiler) steps(v cue.Value) ([]stepTemplate, bool) {
	v = v.Unify(c.g.defs.Steps)
	if v.Err() != nil {
		return nil, false
	}
	it, err := v.List()
	if err != nil {
		return nil, false
	}
	var out []stepTemplate
	for it.Next() {
		s, ok := c.step(it.Value())
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func (c *compiler) step(v cue.Value) (stepTemplate, bool) {
	var s stepTemplate
	if v.Err() != nil || v.IncompleteKind() != cue.StructKind {
		return s, false
	}
	it, err := v.Fields()
	if err != nil {
		return s, false
	}
	for it.Next() {
		key, fv := it.Selector().Unquoted(), it.Value()
		var ok bool
		switch key {
		case "name":
			s.name, ok = c.str(fv)
		case "approval":
			s.approval, ok = c.str(fv)
		case "timeout":
			s.timeout, ok = c.str(fv)
		case "continue_on_error":
			s.continueOnError, ok = constant[bool](fv)
		default:
			if !slices.Contains(schema.Actions, key) || s.action != "" || fv.IncompleteKind() != cue.StructKind {
				return s, false // decodeStep fails on it
			}
			s.action = key
			var p any
			p, ok = c.value(fv)
			s.params, _ = p.(map[string]any)
		}
		if !ok {
			return s, false
		}
	}
	return s, s.action != "" && s.params != nil
}

// value compiles a value as decodeParams decodes it.
func (c *compiler) value(v cue.Value) (any, bool) {
	switch v.IncompleteKind() {
	case cue.StructKind:
		if v.Err() != nil {
			return nil, false
		}
		it, err := v.Fields()
		if err != nil {
			return nil, false
		}
		m := map[string]any{}
		for it.Next() {
			x, ok := c.value(it.Value())
			if !ok {
				return nil, false
			}
			m[it.Selector().Unquoted()] = x
		}
		return m, true
	case cue.ListKind:
		if v.Err() != nil {
			return nil, false
		}
		it, err := v.List()
		if err != nil {
			return nil, false
		}
		l := []any{}
		for it.Next() {
			x, ok := c.value(it.Value())
			if !ok {
				return nil, false
			}
			l = append(l, x)
		}
		return l, true
	}
	if v.Validate(cue.Concrete(true)) == nil {
		data, err := v.MarshalJSON()
		if err != nil {
			return nil, false
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var x any
		if err := dec.Decode(&x); err != nil {
			return nil, false
		}
		return numbers(x), true
	}
	return c.hole(v)
}

// constant decodes a concrete value.
func constant[T any](v cue.Value) (T, bool) {
	var x T
	if v.Validate(cue.Concrete(true)) != nil {
		return x, false
	}
	return x, v.Decode(&x) == nil
}

// str compiles a string: a constant or a hole. (Err reports a hole's
// incompleteness, so holes are told by what Expr says.)
func (c *compiler) str(v cue.Value) (*strTemplate, bool) {
	if v.Validate(cue.Concrete(true)) == nil {
		s, err := v.String()
		if err != nil {
			return nil, false
		}
		return &strTemplate{text: []string{s}}, true
	}
	return c.hole(v)
}

// hole compiles a value that reads the alert: one string interpolation of
// the alert's strings and of constants, met with constraints on strings.
func (c *compiler) hole(v cue.Value) (*strTemplate, bool) {
	var parts, cons []cue.Value
	for _, x := range conjuncts(v, 0) {
		op, args := x.Expr()
		if op != cue.InterpolationOp {
			cons = append(cons, x)
			continue
		}
		if parts != nil {
			return nil, false
		}
		parts = args
	}
	if len(parts)%2 != 1 {
		return nil, false
	}
	t := &strTemplate{}
	var text strings.Builder
	for i, p := range parts {
		if i%2 == 1 {
			if f, ok := alertRef(p); ok {
				t.text = append(t.text, text.String())
				text.Reset()
				t.holes = append(t.holes, c.field(f))
				continue
			}
		}
		// Literal text, or a value computed without the alert.
		if p.Validate(cue.Concrete(true)) != nil || p.Kind() != cue.StringKind {
			return nil, false
		}
		s, err := p.String()
		if err != nil {
			return nil, false
		}
		text.WriteString(s)
	}
	t.text = append(t.text, text.String())
	if len(t.holes) == 0 {
		return nil, false
	}
	for _, cv := range cons {
		sc, ok := c.constraint(cv)
		if !ok {
			return nil, false
		}
		t.conds = append(t.conds, sc)
	}
	return t, true
}

// conjuncts returns the conjuncts of v, nested conjunctions flattened
// and references to other fields followed (copiesAlert admits a reference
// to a tainted field only where its value is unified into place).
func conjuncts(v cue.Value, depth int) []cue.Value {
	if depth > 8 {
		return []cue.Value{v}
	}
	op, args := v.Expr()
	if op != cue.AndOp {
		if _, path := v.ReferencePath(); len(path.Selectors()) > 0 && path.Selectors()[0].String() != repo.AlertName {
			return conjuncts(cue.Dereference(v), depth+1)
		}
		return []cue.Value{v}
	}
	var out []cue.Value
	for _, a := range args {
		out = append(out, conjuncts(a, depth+1)...)
	}
	return out
}

// constraintProbes are strings each compiled constraint must judge as CUE
// does: empty, paths, separators, case, non-ASCII.
var constraintProbes = []string{
	"", "a", "A", "0", "probe0", " ", "a b", "-", "_", ".", "..", "/", "/a", "a/", "a/b",
	"a/../b", "a/..", "../a", "a.b", "5m", "1h30m", "x5", "Deployment/a", "@a/b", "é", "\x00", "\n",
	"https://x", "auto", "required",
}

// constraint compiles one constraint on a hole, checked against CUE.
// Playbooks share their constraints (the schema's, mostly), so each is
// compiled and checked once per generation, by its syntax.
func (c *compiler) constraint(v cue.Value) (match.StringConstraint, bool) {
	if v.Err() != nil {
		return match.StringConstraint{}, false
	}
	e, ok := v.Syntax().(ast.Expr)
	if !ok {
		return match.StringConstraint{}, false
	}
	src, err := format.Node(e)
	if err != nil {
		return match.StringConstraint{}, false
	}
	key := string(src)
	if cc, seen := c.g.checked[key]; seen {
		return cc.sc, cc.ok
	}
	sc, ok := match.CompileStringSyntax(e)
	for _, s := range constraintProbes {
		if !ok {
			break
		}
		cueHolds := v.Unify(c.g.ctx.Encode(s)).Validate(cue.Concrete(true)) == nil
		ok = cueHolds == sc.Holds(s)
	}
	c.g.checked[key] = checkedConstraint{sc, ok}
	return sc, ok
}

// checkedConstraint is a compiled constraint and whether it may be used.
type checkedConstraint struct {
	sc match.StringConstraint
	ok bool
}

// alertRef says which of the alert's strings p refers to, if any.
func alertRef(p cue.Value) (alertField, bool) {
	_, path := p.ReferencePath()
	sels := path.Selectors()
	if len(sels) < 2 || sels[0].String() != repo.AlertName {
		return alertField{}, false
	}
	switch {
	case len(sels) == 2 && repo.AlertScalars[sels[1].String()]:
		return alertField{kind: topField, name: sels[1].String()}, true
	case len(sels) == 3 && sels[2].LabelType() == cue.StringLabel:
		switch sels[1].String() {
		case "labels":
			return alertField{kind: labelField, name: sels[2].Unquoted()}, true
		case "annotations":
			return alertField{kind: annotationField, name: sels[2].Unquoted()}, true
		}
	}
	return alertField{}, false
}

func (c *compiler) field(f alertField) int {
	if i, ok := c.index[f]; ok {
		return i
	}
	c.index[f] = len(c.fields)
	c.fields = append(c.fields, f)
	return len(c.fields) - 1
}
