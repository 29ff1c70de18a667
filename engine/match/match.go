// Package match decides which playbooks an alert matches.
//
// The definition is CUE's: a playbook matches an alert when the alert is
// an instance of the match. With A the alert as data (schema.Alert.Data)
// and M the playbook's match, R := A & M must validate as concrete (no
// conflict, nothing left open) and equal A (cue.Value.Equals, which skips
// optional fields): the match constrains the alert and adds nothing to it.
// So a regular or required field of the match that the alert lacks never
// matches, whatever its constraint or default, because R would have it and
// A has not; an optional field `x?: C` constrains x only when the alert has
// it. Equals also compares lets, hidden fields and definitions, which an
// alert never has: a match that declares one matches nothing.
//
// Unifying costs tens to hundreds of microseconds per pair, so Compile
// translates the common shapes of a match into Go predicates that give the
// same answer on every alert, indexes playbooks by alertname, and leaves
// the rest to CUE in a private, periodically discarded cue.Context.
package match

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/format"
	"cuelang.org/go/cue/parser"
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
	// byName lists, per alertname, the entries whose match requires the
	// alertname label and one of finitely many values for it, so that an
	// alert without the label matches none of them; always lists the
	// others but those that never match. Lists are ascending and always is
	// disjoint from the others.
	byName map[string][]int
	always []int
	// needs has a bit for each top-level alert field some entry reads, so
	// that Match asks the alert for no others.
	needs uint16
	fb    *fallback
}

// Compile builds an index of entries. Every invalid regular expression is
// reported as a *RegexpError, all of them in one cue/errors list, together
// with matches that are errors by themselves and matches that would need
// CUE but do not survive export to another context.
//
// Entries whose matches belong to different cue.Contexts are compiled in
// parallel, the entries of one context on one goroutine, since a context
// is not safe for concurrent use.
func Compile(entries []Entry) (*Index, error) {
	compiled := make([]entry, len(entries))
	compileErrs := make([][]cueerrors.Error, len(entries))
	byContext := map[*cue.Context][]int{}
	for i, e := range entries {
		var ctx *cue.Context
		if e.Match.Exists() {
			ctx = e.Match.Context()
		}
		byContext[ctx] = append(byContext[ctx], i)
	}
	var wg sync.WaitGroup
	for _, idx := range byContext {
		wg.Go(func() {
			res := regexps{}
			for _, i := range idx {
				compiled[i], compileErrs[i] = compileEntry(entries[i], res)
			}
		})
	}
	wg.Wait()
	return join(&Part{entries: entries, compiled: compiled, errs: compileErrs})
}

// Part is entries compiled ahead of Join, each on the goroutine that
// uses its cue.Context, so that the compiling is done where the values
// are made, in parallel with other parts.
type Part struct {
	entries  []Entry
	compiled []entry
	errs     [][]cueerrors.Error
}

// CompilePart compiles entries for Join. Their matches must belong to
// cue.Contexts that nothing else uses meanwhile.
func CompilePart(entries []Entry) *Part {
	p := &Part{entries: entries, compiled: make([]entry, len(entries)), errs: make([][]cueerrors.Error, len(entries))}
	res := regexps{}
	for i, e := range entries {
		p.compiled[i], p.errs[i] = compileEntry(e, res)
	}
	return p
}

// Join builds the index of the entries of parts, in order, as Compile
// does of all of them.
func Join(parts ...*Part) (*Index, error) {
	all := &Part{}
	for _, p := range parts {
		all.entries = append(all.entries, p.entries...)
		all.compiled = append(all.compiled, p.compiled...)
		all.errs = append(all.errs, p.errs...)
	}
	return join(all)
}

func join(p *Part) (*Index, error) {
	entries := p.entries
	ix := &Index{
		entries: make([]entry, len(entries)),
		byName:  map[string][]int{},
	}
	var errs cueerrors.Error
	// whole is each fallback match's exported syntax as it is, which
	// checkRebuild compares; syntax is the same split for the fallback.
	whole := map[int]ast.Node{}
	syntax := map[int]*ast.File{}
	for i, e := range entries {
		c, cerrs := p.compiled[i], p.errs[i]
		for _, err := range cerrs {
			errs = cueerrors.Append(errs, err)
		}
		if c.fallback != nil {
			n, err := reparse(c.fallback)
			var f *ast.File
			if err == nil {
				f, err = standalone(c.fallback)
			}
			if err != nil {
				errs = cueerrors.Append(errs, errorf(e.Match.Pos(), "playbook %s: match: %v", e.Name, err))
				continue
			}
			c.fallback = f
			whole[i], syntax[i] = n, f
		}
		ix.entries[i] = c
	}
	if errs == nil && len(syntax) > 0 {
		errs = checkRebuild(entries, whole)
		ix.fb = newFallback(syntax)
	}
	if errs != nil {
		return nil, errs
	}
	for i := range ix.entries {
		ix.bucket(i)
		e := &ix.entries[i]
		ix.needs |= e.disallowed
		for _, p := range e.preds {
			if p.scope == scopeTop {
				ix.needs |= 1 << p.top
			}
		}
	}
	return ix, nil
}

// reparse turns exported syntax into freshly parsed syntax. Building the
// exported tree itself can resolve identifiers differently from its text:
// with CUE v0.17.1 a closed definition reached through a let that Syntax
// hoisted lost its closedness. The text is what checkRebuild compares, so
// the text is what the fallback keeps.
func reparse(n ast.Node) (ast.Node, error) {
	b, err := format.Node(n)
	if err != nil {
		return nil, err
	}
	if _, ok := n.(*ast.File); ok {
		return parser.ParseFile("match.cue", b)
	}
	return parser.ParseExpr("match.cue", b)
}

// checkRebuild makes sure every fallback match means the same when built
// from its syntax in another context: exporting the rebuilt value must
// give the original's export back. Syntax is documented as possibly
// inexact, and a fallback that silently differs from the definition is
// worse than a playbook that fails to load. (The fallback builds the same
// text split by standalone, which moves declarations without changing
// what they mean.)
func checkRebuild(entries []Entry, syntax map[int]ast.Node) cueerrors.Error {
	ctx := cuecontext.New()
	var errs cueerrors.Error
	for _, i := range slices.Sorted(maps.Keys(syntax)) {
		n, m := syntax[i], entries[i].Match
		v := build(ctx, n)
		want, err1 := format.Node(normalize(m.Syntax()))
		got, err2 := format.Node(normalize(v.Syntax()))
		if (v.Err() == nil) != (m.Err() == nil) || err1 != nil || err2 != nil || !bytes.Equal(want, got) {
			errs = cueerrors.Append(errs, errorf(m.Pos(), "playbook %s: match does not rebuild outside its load context", entries[i].Name))
		}
	}
	return errs
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
	if e.never {
		return
	}
	for _, p := range e.preds {
		if p.scope != scopeLabels || p.name != "alertname" {
			continue
		}
		names, ok := literals(p.cond)
		if !ok || p.absentOK {
			break
		}
		for _, n := range names {
			ix.byName[n] = append(ix.byName[n], i)
		}
		return
	}
	ix.always = append(ix.always, i)
}

// Match returns the indexes (into the entries given to Compile, ascending,
// so in declaration order) of the playbooks the alert matches.
func (ix *Index) Match(a *schema.Alert) []int {
	v := newView(a, ix.needs)
	var named []int
	if name, ok := a.Labels["alertname"]; ok {
		named = ix.byName[clean(name)]
	}
	var out, pending []int
	for i, j := 0, 0; i < len(named) || j < len(ix.always); {
		var k int
		if j == len(ix.always) || (i < len(named) && named[i] < ix.always[j]) {
			k, i = named[i], i+1
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

// newView reads the top-level fields in needs through Alert.Field, the
// schema's own account of which fields CUE sees; labels and annotations
// are always there.
func newView(a *schema.Alert, needs uint16) view {
	v := view{a: a, present: 1<<fLabels | 1<<fAnnotations}
	for i, name := range topNames {
		if i == fLabels || i == fAnnotations || needs&(1<<i) == 0 {
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
