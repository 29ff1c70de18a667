package match

import (
	"regexp"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"
)

// cond is the compiled form of one field's constraint, applied to the
// field's value when the alert has the field. A string s satisfies the CUE
// constraint c exactly when s & c is s rather than an error, and for the
// shapes parseCond accepts that is a boolean formula over s. Defaults play
// no part: they only fill in a field the alert lacks, and whether the alert
// may lack it is fieldPred.absentOK's business.
type cond interface {
	holds(s string) bool
}

type (
	condTrue struct{}           // string, _
	condEq   struct{ s string } // "s"
	condNe   struct{ s string } // !="s"
	condIn   map[string]bool    // "a" | "b" | ...
	condRe   struct {           // =~"re", !~"re"
		re  *regexp.Regexp
		neg bool
	}
	condAnd []cond
	condOr  []cond
)

func (condTrue) holds(string) bool   { return true }
func (c condEq) holds(s string) bool { return s == c.s }
func (c condNe) holds(s string) bool { return s != c.s }
func (c condIn) holds(s string) bool { return c[s] }
func (c condRe) holds(s string) bool { return c.re.MatchString(s) != c.neg }

func (c condAnd) holds(s string) bool {
	for _, x := range c {
		if !x.holds(s) {
			return false
		}
	}
	return true
}

func (c condOr) holds(s string) bool {
	for _, x := range c {
		if x.holds(s) {
			return true
		}
	}
	return false
}

// literals returns the finite set of values that satisfy c, when c admits
// only finitely many; the index uses it to bucket playbooks by alertname.
func literals(c cond) ([]string, bool) {
	switch c := c.(type) {
	case condEq:
		return []string{c.s}, true
	case condIn:
		out := make([]string, 0, len(c))
		for s := range c {
			out = append(out, s)
		}
		slices.Sort(out)
		return out, true
	case condOr:
		var out []string
		for _, x := range c {
			l, ok := literals(x)
			if !ok {
				return nil, false
			}
			out = append(out, l...)
		}
		slices.Sort(out)
		return slices.Compact(out), true
	case condAnd:
		// One finite operand bounds the conjunction; the others filter it.
		for _, x := range c {
			l, ok := literals(x)
			if !ok {
				continue
			}
			return slices.DeleteFunc(l, func(s string) bool { return !c.holds(s) }), true
		}
	}
	return nil, false
}

// regexps compiles each distinct pattern once for all entries of an index.
type regexps map[string]*regexp.Regexp

func (r regexps) compile(pattern string) (*regexp.Regexp, error) {
	if re, ok := r[pattern]; ok {
		return re, nil
	}
	// CUE evaluates =~ and !~ with Go's regexp.Compile and MatchString, so
	// the same call gives the same answer on every input.
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	r[pattern] = re
	return re, nil
}

// parseCond compiles the syntax CUE exports for one evaluated field value.
// It accepts only string literals, string, _, =~, !~, != on string
// literals, & and |, default markers, parentheses and the `{ x }` embedding
// CUE emits for a value with several conjuncts; anything else returns false
// and the entry falls back to CUE.
func parseCond(e ast.Expr, res regexps) (cond, bool) {
	switch x := e.(type) {
	case *ast.ParenExpr:
		return parseCond(x.X, res)
	case *ast.BasicLit:
		s, ok := stringLit(x)
		if !ok {
			return nil, false
		}
		return condEq{s}, true
	case *ast.Ident:
		switch x.Name {
		case "string", "_":
			// Alert values are always strings, so both only ask for the
			// field to exist.
			return condTrue{}, true
		}
		return nil, false
	case *ast.StructLit:
		if len(x.Elts) != 1 {
			return nil, false
		}
		emb, ok := x.Elts[0].(*ast.EmbedDecl)
		if !ok {
			return nil, false
		}
		return parseCond(emb.Expr, res)
	case *ast.UnaryExpr:
		if x.Op == token.MUL {
			// A default marker matters only when the field is absent,
			// which never matches unless the field is optional.
			return parseCond(x.X, res)
		}
		lit, ok := x.X.(*ast.BasicLit)
		if !ok {
			return nil, false
		}
		s, ok := stringLit(lit)
		if !ok {
			return nil, false
		}
		switch x.Op {
		case token.NEQ:
			return condNe{s}, true
		case token.MAT, token.NMAT:
			re, err := res.compile(s)
			if err != nil {
				// Reported by Compile, which checks every regexp first.
				return nil, false
			}
			return condRe{re: re, neg: x.Op == token.NMAT}, true
		}
		return nil, false
	case *ast.BinaryExpr:
		l, ok := parseCond(x.X, res)
		if !ok {
			return nil, false
		}
		r, ok := parseCond(x.Y, res)
		if !ok {
			return nil, false
		}
		switch x.Op {
		case token.AND:
			return and(l, r), true
		case token.OR:
			return or(l, r), true
		}
	}
	return nil, false
}

func and(l, r cond) cond {
	if _, ok := l.(condTrue); ok {
		return r
	}
	if _, ok := r.(condTrue); ok {
		return l
	}
	var out condAnd
	for _, c := range []cond{l, r} {
		if a, ok := c.(condAnd); ok {
			out = append(out, a...)
		} else {
			out = append(out, c)
		}
	}
	return out
}

func or(l, r cond) cond {
	var out condOr
	for _, c := range []cond{l, r} {
		if o, ok := c.(condOr); ok {
			out = append(out, o...)
		} else {
			out = append(out, c)
		}
	}
	// A disjunction of literals is a set lookup instead of a scan.
	set := condIn{}
	for _, c := range out {
		switch c := c.(type) {
		case condEq:
			set[c.s] = true
		case condIn:
			for s := range c {
				set[s] = true
			}
		default:
			return out
		}
	}
	return set
}

// stringLit unquotes a CUE string literal; byte literals ('...') are not
// strings and would conflict with every alert value.
func stringLit(x *ast.BasicLit) (string, bool) {
	if x.Kind != token.STRING || !strings.HasPrefix(strings.TrimLeft(x.Value, "#"), `"`) {
		return "", false
	}
	s, err := literal.Unquote(x.Value)
	if err != nil {
		return "", false
	}
	return s, true
}

// StringConstraint is a CUE constraint on strings compiled to Go.
type StringConstraint struct{ c cond }

// Holds reports whether s & the constraint is s rather than an error.
func (c StringConstraint) Holds(s string) bool { return c.c.holds(s) }

// CompileStringConstraint compiles v, an evaluated constraint that refers
// to nothing, into a predicate that holds for exactly the strings s for
// which s & v is s. It accepts the shapes the match compiler does (string
// literals, string, _, =~, !~, != on literals, & and |, defaults) and
// returns false for anything else.
func CompileStringConstraint(v cue.Value) (StringConstraint, bool) {
	if v.Err() != nil {
		return StringConstraint{}, false
	}
	e, ok := v.Syntax().(ast.Expr)
	if !ok {
		return StringConstraint{}, false
	}
	return CompileStringSyntax(e)
}

// CompileStringSyntax is CompileStringConstraint for the syntax of an
// evaluated constraint, as cue.Value.Syntax gives it.
func CompileStringSyntax(e ast.Expr) (StringConstraint, bool) {
	c, ok := parseCond(e, regexps{})
	if !ok {
		return StringConstraint{}, false
	}
	return StringConstraint{c}, true
}

// Encoded returns s as CUE holds it after cue.Context.Encode, which
// replaces each run of invalid UTF-8 with U+FFFD.
func Encoded(s string) string { return clean(s) }
