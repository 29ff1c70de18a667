package repo

import (
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/token"
)

// CopiesAlert reports whether the unit reads the alert only by copying its
// strings into other strings (see copiesAlert).
func (u *Unit) CopiesAlert() bool { return copiesAlert(u.Files) }

// copiesAlert reports whether the syntax of a package reads the alert only
// by copying its strings into other strings, so that for every alert that
// has the fields read, the value of each field is a fixed function of
// those strings that never looks inside them. Then a field's value depends
// on the alert exactly when it contains one of the alert's strings, which
// lets render compile a playbook's plan to Go and validation tell with one
// evaluation what depends on the alert. It is a syntactic
// over-approximation; it refuses anything it does not know.
//
// The rules, in the unit's own files (the declaration of alert aside):
//
//   - alert appears only as alert.labels.N, alert.annotations.N,
//     alert.labels["N"] or alert.F for a top-level string field F, each
//     directly inside a string interpolation; such an interpolation is a
//     tainted string, and the fields that hold one, with every declaration
//     around them, are tainted names.
//   - A tainted string, and any reference to a tainted name, appears only
//     where its value is unified into a place: a field's value, an operand
//     of &, an embedding, a list element, a let. There CUE copies it; it
//     never computes with it, so the alert's strings reach a field's value
//     only as conjuncts of it, which the template compiler reads off the
//     evaluated value. Anything that references a tainted name is tainted
//     itself (a fixpoint over names, which also over-approximates scopes).
//   - No comprehensions, no computed labels, no disjunctions other than of
//     literal constraints, no `or`, no pattern constraint that carries
//     taint, and no other field named alert: nothing whose shape or
//     defaults could depend on the alert's values.
//   - No call unified into a tainted place, directly or through a
//     reference: it may be a validator that looks inside the place
//     (list.UniqueItems()), which the template compiler, reading only
//     each string's own conjuncts, would not see.
func copiesAlert(files []*ast.File) bool {
	_, ok := taintedNames(files)
	return ok
}

// taintedNames is copiesAlert that also returns the tainted names: every
// field, let and alias that may hold a string of the alert, or hold
// something that does.
func taintedNames(files []*ast.File) (map[string]bool, bool) {
	s := &syntaxScan{ok: true, tainted: map[string]bool{}}
	for _, f := range files {
		s.decls(f.Decls, nil, true, true)
		if !s.ok {
			return nil, false
		}
	}
	// Taint flows from what a declaration references to the declaration
	// and everything around it.
	for changed := true; changed; {
		changed = false
		for _, r := range s.refs {
			if !s.tainted[r.name] {
				continue
			}
			for _, n := range r.anc {
				if !s.tainted[n] {
					s.tainted[n] = true
					changed = true
				}
			}
		}
	}
	if s.tainted[patternName] {
		return nil, false
	}
	// A place where a call is unified may hold a validator, and so may
	// every place a reference copies it to: a reference to the place
	// itself, or one that selects into something around it (the copy of
	// something around it keeps the names inside). None may hold a string
	// of the alert. validated holds the places, by name; around, the names
	// of what holds one somewhere inside.
	validated, around := map[string]bool{}, map[string]bool{}
	grow := func(set map[string]bool, names ...string) bool {
		grew := false
		for _, n := range names {
			grew = grew || !set[n]
			set[n] = true
		}
		return grew
	}
	for _, anc := range s.calls {
		if len(anc) == 0 {
			return nil, false // on the package itself
		}
		grow(validated, anc[len(anc)-1])
		grow(around, anc...)
	}
	for changed := true; changed; {
		changed = false
		for _, r := range s.refs {
			if !r.copy || !around[r.name] {
				continue
			}
			if len(r.anc) == 0 {
				return nil, false
			}
			// What r copies holds a validator somewhere; when r is the
			// validated place itself, or selects into what holds one, the
			// copy may be one.
			if grow(around, r.anc...) {
				changed = true
			}
			if (validated[r.name] || r.selected) && grow(validated, r.anc[len(r.anc)-1]) {
				changed = true
			}
		}
	}
	for n := range validated {
		if s.tainted[n] {
			return nil, false
		}
	}
	for _, r := range s.refs {
		if s.tainted[r.name] && !r.copy {
			return nil, false
		}
	}
	return s.tainted, true
}

// patternName stands for the fields a pattern constraint applies to.
const patternName = "[pattern]"

type syntaxScan struct {
	ok      bool
	tainted map[string]bool
	refs    []syntaxRef
	// calls are where a call is unified into place: the names around each.
	// A call there may be a validator (list.UniqueItems()) that looks at
	// every value of the place, alert's strings included.
	calls [][]string
}

// syntaxRef is one reference by name: where it is (the names of the
// declarations around it), whether its value is only copied, and whether
// it selects something inside what it names (x.y, x[0]).
type syntaxRef struct {
	name     string
	anc      []string
	copy     bool
	selected bool
}

func (s *syntaxScan) fail() { s.ok = false }

func (s *syntaxScan) taint(anc []string) {
	if len(anc) == 0 {
		s.fail() // a tainted string the package itself embeds
		return
	}
	for _, n := range anc {
		s.tainted[n] = true
	}
}

func with(anc []string, names ...string) []string {
	out := make([]string, 0, len(anc)+len(names))
	return append(append(out, anc...), names...)
}

// decls scans the declarations of a file or struct; cp says whether the
// struct's value is only copied.
func (s *syntaxScan) decls(decls []ast.Decl, anc []string, cp, top bool) {
	for _, d := range decls {
		if !s.ok {
			return
		}
		switch x := d.(type) {
		case *ast.Package, *ast.ImportDecl, *ast.CommentGroup, *ast.Attribute:
		case *ast.Field:
			s.field(x, anc, cp, top)
		case *ast.LetClause:
			if x.Ident.Name == AlertName {
				s.fail()
				return
			}
			s.expr(x.Expr, with(anc, x.Ident.Name), cp)
		case *ast.EmbedDecl:
			s.expr(x.Expr, anc, cp)
		case *ast.Ellipsis:
			s.expr(x.Type, anc, cp)
		default:
			s.fail() // comprehensions and anything unknown
		}
	}
}

func (s *syntaxScan) field(f *ast.Field, anc []string, cp, top bool) {
	if f.Alias != nil {
		s.fail()
		return
	}
	label := f.Label
	var names []string
	if a, ok := label.(*ast.Alias); ok {
		if a.Ident.Name == AlertName {
			s.fail()
			return
		}
		names = append(names, a.Ident.Name)
		l, ok := a.Expr.(ast.Label)
		if !ok {
			s.fail()
			return
		}
		label = l
	}
	switch l := label.(type) {
	case *ast.Ident, *ast.BasicLit:
		name, _, err := ast.LabelName(l)
		if err != nil {
			s.fail()
			return
		}
		if name == AlertName {
			if top {
				return // firebreak's declaration; repo rejects a user's
			}
			s.fail()
			return
		}
		names = append(names, name)
	case *ast.ListLit:
		// A pattern constraint: its label is a constraint on names, its
		// value goes to every field it matches.
		for _, e := range l.Elts {
			s.expr(e, anc, false)
		}
		names = append(names, patternName)
	default:
		s.fail() // a computed label
		return
	}
	s.expr(f.Value, with(anc, names...), cp)
}

// expr scans an expression; cp says whether its value is only copied.
func (s *syntaxScan) expr(e ast.Expr, anc []string, cp bool) {
	if !s.ok {
		return
	}
	switch x := e.(type) {
	case nil, *ast.BasicLit, *ast.BottomLit:
	case *ast.Ident:
		if x.Name == AlertName {
			s.fail() // alert other than a string copied into a string
			return
		}
		s.refs = append(s.refs, syntaxRef{name: x.Name, anc: anc, copy: cp})
	case *ast.Interpolation:
		s.interpolation(x, anc, cp)
	case *ast.ParenExpr:
		s.expr(x.X, anc, cp)
	case *ast.Alias:
		if x.Ident.Name == AlertName {
			s.fail()
			return
		}
		s.expr(x.Expr, with(anc, x.Ident.Name), cp)
	case *ast.SelectorExpr:
		s.selected(x.X, anc, cp)
	case *ast.IndexExpr:
		if _, ok := x.Index.(*ast.BasicLit); ok {
			s.selected(x.X, anc, cp)
			return
		}
		s.expr(x.X, anc, false)
		s.expr(x.Index, anc, false)
	case *ast.SliceExpr:
		s.expr(x.X, anc, false)
		s.expr(x.Low, anc, false)
		s.expr(x.High, anc, false)
	case *ast.CallExpr:
		if id, ok := x.Fun.(*ast.Ident); ok && id.Name == "or" {
			s.fail()
			return
		}
		if cp {
			s.calls = append(s.calls, anc)
		}
		s.expr(x.Fun, anc, false)
		for _, a := range x.Args {
			s.expr(a, anc, false)
		}
	case *ast.UnaryExpr:
		s.expr(x.X, anc, false)
	case *ast.BinaryExpr:
		switch x.Op {
		case token.AND:
			s.expr(x.X, anc, cp)
			s.expr(x.Y, anc, cp)
		case token.OR:
			if !literalConstraint(x) {
				s.fail()
			}
		default:
			s.expr(x.X, anc, false)
			s.expr(x.Y, anc, false)
		}
	case *ast.StructLit:
		s.decls(x.Elts, anc, cp, false)
	case *ast.ListLit:
		for _, e := range x.Elts {
			s.expr(e, anc, cp)
		}
	case *ast.Ellipsis:
		s.expr(x.Type, anc, cp)
	default:
		s.fail() // comprehensions, functions and anything unknown
	}
}

// selected scans the operand of a selector or an index: a reference there
// is to something inside what it names.
func (s *syntaxScan) selected(x ast.Expr, anc []string, cp bool) {
	n := len(s.refs)
	s.expr(x, anc, cp)
	if len(s.refs) == n+1 {
		if _, ok := x.(*ast.Ident); ok {
			s.refs[n].selected = true
		}
	}
}

// interpolation scans a string interpolation; one that reads the alert is
// a tainted string.
func (s *syntaxScan) interpolation(x *ast.Interpolation, anc []string, cp bool) {
	reads := false
	for i, e := range x.Elts {
		if i%2 == 0 {
			continue // literal text
		}
		if isAlertString(e) {
			reads = true
			continue
		}
		s.expr(e, anc, false)
	}
	if !reads {
		return
	}
	if !cp || !isString(x) {
		s.fail()
		return
	}
	s.taint(anc)
}

// isString reports whether an interpolation is a string, not bytes.
func isString(x *ast.Interpolation) bool {
	if len(x.Elts) == 0 {
		return false
	}
	lit, ok := x.Elts[0].(*ast.BasicLit)
	return ok && strings.HasPrefix(strings.TrimLeft(lit.Value, "#"), `"`)
}

// AlertScalars are the top-level string fields of the alert.
var AlertScalars = map[string]bool{
	"source": true, "status": true, "fingerprint": true, "generatorURL": true,
	"startsAt": true, "endsAt": true, "receivedAt": true,
}

// isAlertString reports whether e is alert.F, alert.labels.N,
// alert.annotations.N or the same with ["N"].
func isAlertString(e ast.Expr) bool {
	var inner ast.Expr
	switch x := e.(type) {
	case *ast.SelectorExpr:
		name, _, err := ast.LabelName(x.Sel)
		if err != nil {
			return false
		}
		if id, ok := x.X.(*ast.Ident); ok && id.Name == AlertName {
			return AlertScalars[name]
		}
		inner = x.X
	case *ast.IndexExpr:
		lit, ok := x.Index.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return false
		}
		inner = x.X
	default:
		return false
	}
	sel, ok := inner.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	if !ok || id.Name != AlertName {
		return false
	}
	name, _, err := ast.LabelName(sel.Sel)
	return err == nil && (name == "labels" || name == "annotations")
}

// literalConstraint reports whether e constrains a scalar by literals
// only: a disjunction of these cannot select a struct or a default by
// anything the alert brings.
func literalConstraint(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.BasicLit, *ast.BottomLit:
		return true
	case *ast.Ident:
		switch x.Name {
		case "_", "string", "bytes", "bool", "int", "float", "number", "null":
			return true
		}
	case *ast.ParenExpr:
		return literalConstraint(x.X)
	case *ast.UnaryExpr:
		switch x.Op {
		case token.MUL:
			return literalConstraint(x.X)
		case token.NEQ, token.MAT, token.NMAT, token.LSS, token.LEQ, token.GTR, token.GEQ:
			_, ok := x.X.(*ast.BasicLit)
			return ok
		}
	case *ast.BinaryExpr:
		return (x.Op == token.OR || x.Op == token.AND) && literalConstraint(x.X) && literalConstraint(x.Y)
	}
	return false
}
