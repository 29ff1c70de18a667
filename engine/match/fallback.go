package match

import (
	"fmt"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	"github.com/firebreak-dev/firebreak/schema"
)

// rotateAfter is how many unifications one private cue.Context serves
// before it is dropped: a context keeps everything it ever evaluated, so a
// server that kept one would grow by kilobytes per alert forever.
const rotateAfter = 1000

// fallback evaluates the matches the compiler could not translate, with
// CUE itself. It holds them as syntax, because values belong to the
// context that built them, and rebuilds them in a fresh context every
// rotateAfter unifications. Contexts are not safe for concurrent use, so
// mu guards all of it.
type fallback struct {
	mu     sync.Mutex
	syntax map[int]*ast.File // by entry index, see standalone
	limit  int

	ctx   *cue.Context
	built map[int]cue.Value
	uses  int
	// rotations counts the contexts created; tests read it.
	rotations int
}

func newFallback(syntax map[int]*ast.File) *fallback {
	return &fallback{syntax: syntax, limit: rotateAfter}
}

// rotate replaces the context; the old one, with everything it grew, is
// left to the garbage collector.
func (f *fallback) rotate() {
	f.ctx = cuecontext.New()
	f.built = make(map[int]cue.Value, len(f.syntax))
	f.uses = 0
	f.rotations++
}

func (f *fallback) value(k int) cue.Value {
	if v, ok := f.built[k]; ok {
		return v
	}
	v := build(f.ctx, f.syntax[k]).LookupPath(matchPath)
	f.built[k] = v
	return v
}

// matchPath is where a fallback file holds the match. A quoted label binds
// no identifier, so nothing in the match can refer to it by accident.
var matchPath = cue.MakePath(cue.Str("match"))

func build(ctx *cue.Context, n ast.Node) cue.Value {
	switch n := n.(type) {
	case *ast.File:
		return ctx.BuildFile(n)
	case ast.Expr:
		return ctx.BuildExpr(n)
	}
	// Syntax returns an expression or a file; anything else is not a
	// value and must not match.
	return ctx.CompileString("_|_")
}

// standalone turns the syntax of a match into a file that holds the match
// in field "match", parsed afresh from its text as reparse does.
//
// The definition compares A & M with A arc by arc, lets and hidden fields
// included, so the rebuilt match must have the original's arcs and no
// others. What Syntax adds around a match would be arcs of it if built in
// place: the lets it hoists for values the match refers to outside itself,
// and the `_#def: {...}` it wraps a closed value in. They go to the top of
// the file, where the match still sees them; the `_#def` embedding stays
// and keeps the match closed. Nothing else is at the top of a wrapped
// value (checked), and a hoisted let refers to nothing in the match, so
// every name resolves as before.
func standalone(n ast.Node) (*ast.File, error) {
	var decls []ast.Decl
	switch x := n.(type) {
	case *ast.File:
		decls = x.Decls
	case *ast.StructLit:
		decls = x.Elts
	case ast.Expr:
		decls = []ast.Decl{&ast.EmbedDecl{Expr: x}}
	default:
		return nil, fmt.Errorf("unexpected syntax %T", n)
	}
	wrappers := closers(decls)
	var top, body []ast.Decl
	for _, d := range decls {
		outside := false
		switch d := d.(type) {
		case *ast.Package, *ast.ImportDecl:
			outside = true
		case *ast.LetClause:
			outside = hoisted(d)
		case *ast.Field:
			id, ok := d.Label.(*ast.Ident)
			outside = ok && wrappers[id.Name]
		}
		if outside {
			top = append(top, d)
		} else {
			body = append(body, d)
		}
	}
	if len(wrappers) > 0 {
		for _, d := range body {
			if e, ok := d.(*ast.EmbedDecl); !ok || !isIdent(e.Expr, wrappers) {
				return nil, fmt.Errorf("closed match exported in an unexpected form")
			}
		}
	}
	top = append(top, &ast.Field{Label: ast.NewString("match"), Value: &ast.StructLit{Elts: body}})
	f, err := reparse(&ast.File{Decls: top})
	if err != nil {
		return nil, err
	}
	return f.(*ast.File), nil
}

func isIdent(x ast.Expr, names map[string]bool) bool {
	id, ok := x.(*ast.Ident)
	return ok && names[id.Name]
}

// match returns the entries of idx, ascending, whose match the alert is an
// instance of: the definition of a match.
func (f *fallback) match(a *schema.Alert, idx []int) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Rotate between alerts, not during one, so that an alert is encoded
	// once; a context grows by at most one alert's fallbacks past limit.
	if f.ctx == nil || f.uses >= f.limit {
		f.rotate()
	}
	av := f.ctx.Encode(a.Data())
	var out []int
	for _, k := range idx {
		f.uses++
		if instance(av, f.value(k)) {
			out = append(out, k)
		}
	}
	return out
}

// instance reports whether the alert av is an instance of the match m:
// unified, they validate as concrete and the result is av itself, with
// nothing added.
func instance(av, m cue.Value) bool {
	r := av.Unify(m)
	return r.Validate(cue.Concrete(true)) == nil && r.Equals(av)
}
