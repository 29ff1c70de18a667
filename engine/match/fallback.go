package match

import (
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
	syntax map[int]ast.Node // by entry index
	limit  int

	ctx   *cue.Context
	built map[int]cue.Value
	uses  int
	// rotations counts the contexts created; tests read it.
	rotations int
}

func newFallback(syntax map[int]ast.Node) *fallback {
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
	v := build(f.ctx, f.syntax[k])
	f.built[k] = v
	return v
}

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

// match returns the entries of idx, ascending, whose match unifies with a
// into a concrete value without error: the definition of a match.
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
		if av.Unify(f.value(k)).Validate(cue.Concrete(true)) == nil {
			out = append(out, k)
		}
	}
	return out
}
