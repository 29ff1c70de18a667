// Package match decides which playbooks an alert matches.
//
// The definition is CUE's: a playbook matches an alert when the alert as
// data (schema.Alert.Data), unified with the playbook's match, validates as
// concrete. Unifying costs tens of microseconds per pair, so Compile
// translates the common shapes of a match into Go predicates that give the
// same answer on every alert, indexes playbooks by alertname, and leaves
// the rest to CUE in a private, periodically discarded cue.Context.
package match

import (
	"bytes"
	"slices"
	"strings"
	"unicode/utf8"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/format"
	"github.com/firebreak-dev/firebreak/schema"
)

// Entry is one playbook's match constraint, evaluated (non-concrete) in
// some load context.
type Entry struct {
	Name  string
	Match cue.Value
}

// Index answers Match for a fixed list of entries. It is safe for
// concurrent use: compiled predicates are immutable and the CUE fallback
// is guarded by a mutex.
type Index struct {
	entries []entry
	// byName lists, per alertname, the entries whose match requires that
	// alertname when the alert has one; absent lists those that can match
	// an alert without an alertname label; always lists the entries that
	// say nothing bucketable about alertname. Lists are ascending and
	// always is disjoint from the others.
	byName map[string][]int
	absent []int
	always []int
	fb     *fallback
}

// Compile builds an index of entries. Every invalid regular expression is
// reported as a *RegexpError, all of them in one cue/errors list.
func Compile(entries []Entry) (*Index, error) {
	res := regexps{}
	ix := &Index{
		entries: make([]entry, len(entries)),
		byName:  map[string][]int{},
	}
	var errs cueerrors.Error
	syntax := map[int]ast.Node{}
	for i, e := range entries {
		c, cerrs := compileEntry(e, res)
		for _, err := range cerrs {
			errs = cueerrors.Append(errs, err)
		}
		ix.entries[i] = c
		if c.fallback != nil {
			syntax[i] = c.fallback
		}
	}
	if errs != nil {
		return nil, errs
	}
	if len(syntax) > 0 {
		if err := checkRebuild(entries, syntax); err != nil {
			return nil, err
		}
		ix.fb = newFallback(syntax)
	}
	for i := range ix.entries {
		ix.bucket(i)
	}
	return ix, nil
}

// checkRebuild makes sure every fallback match means the same when built
// from its syntax in another context: formatting the rebuilt value must
// give the syntax back. Syntax is documented as possibly inexact, and a
// fallback that silently differs from the definition is worse than a
// playbook that fails to load.
func checkRebuild(entries []Entry, syntax map[int]ast.Node) error {
	ctx := cuecontext.New()
	var errs cueerrors.Error
	for i, n := range syntax {
		m := entries[i].Match
		v := build(ctx, n)
		if (v.Err() == nil) != (m.Err() == nil) {
			errs = cueerrors.Append(errs, errorf(m.Pos(), "playbook %s: match does not rebuild outside its load context: %v", entries[i].Name, v.Err()))
			continue
		}
		if m.Err() != nil {
			continue
		}
		want, err1 := format.Node(normalize(n))
		got, err2 := format.Node(normalize(v.Syntax()))
		if err1 != nil || err2 != nil || !bytes.Equal(want, got) {
			errs = cueerrors.Append(errs, errorf(m.Pos(), "playbook %s: match does not rebuild outside its load context", entries[i].Name))
		}
	}
	if errs != nil {
		return errs
	}
	return nil
}

// normalize drops comments and moves lets and imports ahead of other
// declarations, in place: Syntax hoists the definitions a value refers to
// into lets after the fields, marked with comments, and exports a rebuilt
// value with the lets first.
func normalize(n ast.Node) ast.Node {
	rank := func(d ast.Decl) int {
		switch d.(type) {
		case *ast.Package, *ast.ImportDecl:
			return 0
		case *ast.LetClause:
			return 1
		}
		return 2
	}
	byRank := func(x, y ast.Decl) int { return rank(x) - rank(y) }
	ast.Walk(n, func(n ast.Node) bool {
		ast.SetComments(n, nil)
		switch x := n.(type) {
		case *ast.File:
			slices.SortStableFunc(x.Decls, byRank)
		case *ast.StructLit:
			slices.SortStableFunc(x.Elts, byRank)
		}
		return true
	}, nil)
	return n
}

func (ix *Index) bucket(i int) {
	e := &ix.entries[i]
	for _, p := range e.preds {
		if p.scope != scopeLabels || p.name != "alertname" {
			continue
		}
		names, ok := literals(p.cond)
		if !ok {
			break
		}
		for _, n := range names {
			ix.byName[n] = append(ix.byName[n], i)
		}
		if p.absentOK {
			ix.absent = append(ix.absent, i)
		}
		return
	}
	ix.always = append(ix.always, i)
}

// Match returns the indexes (into the entries given to Compile, ascending,
// so in declaration order) of the playbooks the alert matches.
func (ix *Index) Match(a *schema.Alert) []int {
	v := newView(a)
	first := ix.absent
	if name, ok := a.Labels["alertname"]; ok {
		first = ix.byName[clean(name)]
	}
	var out, pending []int
	for i, j := 0, 0; i < len(first) || j < len(ix.always); {
		var k int
		if j == len(ix.always) || (i < len(first) && first[i] < ix.always[j]) {
			k, i = first[i], i+1
		} else {
			k, j = ix.always[j], j+1
		}
		e := &ix.entries[k]
		if !e.admits(&v) {
			continue
		}
		if e.fallback == nil {
			out = append(out, k)
		} else {
			pending = append(pending, k)
		}
	}
	if len(pending) == 0 {
		return out
	}
	return merge(out, ix.fb.match(a, pending))
}

// Stats says how many entries compiled fully to Go and how many need the
// CUE fallback.
func (ix *Index) Stats() (compiled, fallback int) {
	for i := range ix.entries {
		if ix.entries[i].fallback == nil {
			compiled++
		} else {
			fallback++
		}
	}
	return compiled, fallback
}

func merge(a, b []int) []int {
	out := make([]int, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0] < b[0] {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// view is an alert's fields as CUE sees them, computed once per Match.
type view struct {
	a       *schema.Alert
	top     [numTop]string
	present uint16
}

func newView(a *schema.Alert) view {
	v := view{a: a, present: 1<<fLabels | 1<<fAnnotations}
	for i, name := range topNames {
		if i == fLabels || i == fAnnotations {
			continue
		}
		if s, ok := a.Field(name); ok {
			v.top[i] = clean(s)
			v.present |= 1 << i
		}
	}
	return v
}

// clean turns s into the string CUE holds after Encode, which replaces
// each run of invalid UTF-8 with U+FFFD. Map keys are kept as they are.
func clean(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, string(utf8.RuneError))
}

// admits reports whether every compiled predicate of e holds for v.
func (e *entry) admits(v *view) bool {
	if v.present&e.disallowed != 0 {
		return false
	}
	for i := range e.preds {
		p := &e.preds[i]
		var s string
		var ok bool
		switch p.scope {
		case scopeTop:
			s, ok = v.top[p.top], v.present&(1<<p.top) != 0
		case scopeLabels:
			s, ok = v.a.Labels[p.name]
			s = clean(s)
		case scopeAnnotations:
			s, ok = v.a.Annotations[p.name]
			s = clean(s)
		}
		if !ok {
			if !p.absentOK {
				return false
			}
			continue
		}
		if !p.cond.holds(s) {
			return false
		}
	}
	return true
}
