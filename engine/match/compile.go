package match

import (
	"fmt"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
)

// scope says which part of the alert a field constraint applies to.
type scope uint8

const (
	scopeTop scope = iota
	scopeLabels
	scopeAnnotations
)

// The alert's top-level fields, numbered as the bits of view.present and
// entry.disallowed.
const (
	fSource = iota
	fStatus
	fLabels
	fAnnotations
	fFingerprint
	fGeneratorURL
	fStartsAt
	fEndsAt
	fReceivedAt
	numTop
)

var topNames = [numTop]string{
	"source", "status", "labels", "annotations",
	"fingerprint", "generatorURL", "startsAt", "endsAt", "receivedAt",
}

func topIndex(name string) int {
	for i, n := range topNames {
		if n == name {
			return i
		}
	}
	return -1
}

// fieldPred is one field constraint of a match, compiled.
type fieldPred struct {
	scope scope
	top   int    // field number, when scope is scopeTop
	name  string // label or annotation name otherwise
	// absentOK says whether the alert may lack the field: only when the
	// field is optional. A regular or required field the alert lacks is
	// left in A & M, which then either is not concrete or is not A.
	absentOK bool
	cond     cond
}

// entry is one playbook's match, compiled.
type entry struct {
	// disallowed has a bit for each top-level alert field that a closed
	// match does not allow; an alert that has one of them never matches.
	disallowed uint16
	// preds must all hold. Without fallback they are the whole match;
	// with it they are necessary conditions checked before CUE runs.
	preds    []fieldPred
	fallback ast.Node
	// never is set for a match no alert is an instance of, whatever its
	// other fields say; see privateField.
	never bool
}

// compileEntry compiles e, or returns it as syntax for CUE to evaluate.
// It decides what to compile from two views of the same evaluated value:
// the syntax of the whole match, which shows every construct (patterns,
// embeddings, references between fields) but keeps references and
// unevaluated conjuncts, and the value API with each field's own syntax,
// which is evaluated but hides references. A field compiles only when
// both agree that it is one of the shapes parseCond knows.
func compileEntry(e Entry, res regexps) (entry, []cueerrors.Error) {
	m := e.Match
	if !m.Exists() {
		return entry{}, []cueerrors.Error{errorf(token.NoPos, "playbook %s: no match value", e.Name)}
	}
	if err := m.Err(); err != nil {
		// A bad regexp in a pattern constraint fails evaluation itself
		// (CUE applies [=~"("] to the match's own fields): say which.
		if errs := checkRegexps(e.Name, m, m.Syntax(cue.Raw()), res); errs != nil {
			return entry{}, errs
		}
		// What CUE makes of an erroneous match depends on how the error
		// came about (a closed match with a field the schema does not
		// allow matches alerts once unified, and exports as an open
		// struct), so there is no answer to translate or rebuild. A
		// playbook that passed validation never gets here.
		return entry{}, []cueerrors.Error{cueerrors.Wrap(errorf(m.Pos(), "playbook %s: invalid match", e.Name), err)}
	}
	node := m.Syntax()
	if errs := checkRegexps(e.Name, m, node, res); errs != nil {
		return entry{}, errs
	}
	if privateField(m) {
		return entry{never: true}, nil
	}

	a := &analyzer{
		consts:  map[string]bool{},
		names:   [3]map[string]bool{{}, {}, {}},
		structs: map[scope]cue.Value{},
	}
	a.root(node)
	if a.global {
		// Field constraints may depend on the alert's other fields, so not
		// even a prefilter is sound.
		return entry{fallback: node}, nil
	}
	preds, ok := a.fields(m, res)
	if !ok {
		return entry{fallback: node}, nil
	}
	// Cheap tests first: a regexp runs only if every equality passed.
	slices.SortStableFunc(preds, func(x, y fieldPred) int { return cost(x.cond) - cost(y.cond) })
	c := entry{preds: preds, fallback: node}
	if a.local {
		return c, nil
	}
	disallowed, ok := a.closedness(m)
	if !ok {
		return c, nil
	}
	c.disallowed = disallowed
	c.fallback = nil
	return c, nil
}

// privateField reports whether m has a hidden field or a definition of
// its own at the top, other than an optional one. A & M has that field too,
// and an alert, which is data, never does, so Equals fails on every alert.
// Deciding it from the value also means the syntax walk and standalone
// never meet such a field: they take an embedded `_#def` for the wrapper
// Syntax closes values with.
func privateField(m cue.Value) bool {
	it, err := m.Fields(cue.Hidden(true), cue.Definitions(true), cue.Optional(true))
	if err != nil {
		return false
	}
	for it.Next() {
		sel := it.Selector()
		if sel.LabelType() != cue.StringLabel && sel.ConstraintType() != cue.OptionalConstraint {
			return true
		}
	}
	return false
}

// closedness returns the top-level alert fields a fully understood match
// rejects. The syntax says which fields a closed match declares; the value
// must agree that it is closed and allows exactly those, or the entry is
// left to CUE. (Value.Allows alone is not enough: for a struct closed by
// two definitions it allows fields that unification rejects.)
func (a *analyzer) closedness(m cue.Value) (uint16, bool) {
	if m.IsClosed() != a.closed {
		return 0, false
	}
	var disallowed uint16
	for i, name := range topNames {
		allowed := !a.closed || a.names[scopeTop][name]
		if m.Allows(cue.Str(name)) != allowed {
			return 0, false
		}
		if !allowed {
			disallowed |= 1 << i
		}
	}
	for _, sc := range []scope{scopeLabels, scopeAnnotations} {
		v, ok := a.structs[sc]
		if !ok {
			continue
		}
		// Definitions close recursively, so a closed match has closed
		// labels, which allow every name only through [string]: string.
		if v.IsClosed() != a.closed || (a.closed && !a.allowAll[sc]) {
			return 0, false
		}
	}
	return disallowed, true
}

func cost(c cond) int {
	switch c.(type) {
	case condTrue, condEq, condNe, condIn:
		return 0
	case condRe:
		return 2
	}
	return 1
}

// analyzer walks the syntax of a whole match.
type analyzer struct {
	// consts are names bound outside the match's fields (imports, and
	// lets whose value uses no field), whose references cannot see the
	// alert.
	consts map[string]bool
	// names are the fields the syntax declares, per scope.
	names [3]map[string]bool
	// allowAll records a `[string]: string` pattern in labels or
	// annotations, which every alert value satisfies.
	allowAll [3]bool
	// local is set by a construct the compiler does not know but which
	// cannot change what other fields need; global by one that can.
	local, global bool
	// closed records the `_#def` wrapper CUE exports a closed value with.
	closed bool
	// structs are the values of labels and annotations, when declared.
	structs map[scope]cue.Value
}

var predeclared = map[string]bool{
	"_": true, "string": true, "bytes": true, "bool": true, "int": true,
	"float": true, "number": true, "null": true, "true": true, "false": true,
	"len": true, "close": true, "and": true, "or": true,
	"div": true, "mod": true, "quo": true, "rem": true,
}

func (a *analyzer) root(n ast.Node) {
	var decls []ast.Decl
	switch x := n.(type) {
	case *ast.StructLit:
		decls = x.Elts
	case *ast.File:
		// Syntax returns a file when the value needs imports or hoists
		// the definitions it references into lets.
		decls = x.Decls
		for _, d := range x.Decls {
			if imp, ok := d.(*ast.ImportDecl); ok {
				for _, spec := range imp.Specs {
					a.consts[importName(spec)] = true
				}
			}
		}
	default:
		a.global = true
		return
	}
	a.lets(decls)
	a.decls(decls, scopeTop)
}

func importName(s *ast.ImportSpec) string {
	if s.Name != nil {
		return s.Name.Name
	}
	p := strings.Trim(s.Path.Value, `"`)
	p = p[strings.LastIndex(p, "/")+1:]
	if i := strings.IndexAny(p, ":@"); i >= 0 {
		p = p[:i]
	}
	return p
}

// lets records the lets Syntax hoisted for values outside the match that
// do not refer to fields, until no more are found: one may refer to
// another. Syntax puts them all at the top level.
func (a *analyzer) lets(decls []ast.Decl) {
	var all []*ast.LetClause
	for _, d := range decls {
		if l, ok := d.(*ast.LetClause); ok && hoisted(l) {
			all = append(all, l)
		}
	}
	for changed := true; changed; {
		changed = false
		for _, l := range all {
			if !a.consts[l.Ident.Name] && a.constant(l.Expr) {
				a.consts[l.Ident.Name] = true
				changed = true
			}
		}
	}
}

// closers returns the names of the hidden definitions CUE exports a
// closed value with: `{_#def, _#def: {...}}`. (A match that declares a
// hidden definition itself never gets this far: see privateField.)
func closers(decls []ast.Decl) map[string]bool {
	names := map[string]bool{}
	for _, d := range decls {
		if e, ok := d.(*ast.EmbedDecl); ok {
			if id, ok := e.Expr.(*ast.Ident); ok && strings.HasPrefix(id.Name, "_#") {
				names[id.Name] = true
			}
		}
	}
	return names
}

// hoisted reports whether l is a let that Syntax added for a value the
// match refers to but does not contain (a definition elsewhere in the
// file, say); Syntax marks each with a //cue:path: comment. A let the
// playbook declares inside its match is different: it is one of the
// match's fields, see decls.
func hoisted(l *ast.LetClause) bool {
	for _, cg := range ast.Comments(l) {
		for _, c := range cg.List {
			if strings.HasPrefix(c.Text, "//cue:path:") {
				return true
			}
		}
	}
	return false
}

// decls walks the declarations of a struct in scope sc.
func (a *analyzer) decls(decls []ast.Decl, sc scope) {
	// Closedness itself is read from the value.
	var wrappers map[string]bool
	if sc == scopeTop {
		wrappers = closers(decls)
	}
	for _, d := range decls {
		switch d := d.(type) {
		case *ast.CommentGroup, *ast.Attribute, *ast.ImportDecl, *ast.Package:
		case *ast.LetClause:
			// A let of the match's own is, like a hidden field, a field
			// of A & M that no alert has, so the match never matches; the
			// value does not show lets, and CUE says so cheaply enough for
			// a construct this rare.
			if !hoisted(d) || !a.consts[d.Ident.Name] {
				a.global = true
			}
		case *ast.EmbedDecl:
			switch x := d.Expr.(type) {
			case *ast.Ident:
				if !wrappers[x.Name] {
					a.global = true
				}
			case *ast.StructLit:
				a.decls(x.Elts, sc)
			default:
				a.unknown(x)
			}
		case *ast.Field:
			a.field(d, sc, wrappers)
		case *ast.Ellipsis:
			a.unknown(d)
		default:
			a.global = true
		}
	}
}

func (a *analyzer) field(f *ast.Field, sc scope, wrappers map[string]bool) {
	if l, ok := f.Label.(*ast.ListLit); ok {
		if sc != scopeTop && allStrings(l, f.Value) {
			a.allowAll[sc] = true
			return
		}
		a.unknown(l)
		a.unknown(f.Value)
		return
	}
	name, ok := regularLabel(f.Label)
	if !ok {
		if id, isIdent := f.Label.(*ast.Ident); isIdent && wrappers[id.Name] {
			if s, isStruct := f.Value.(*ast.StructLit); isStruct {
				a.closed = true
				a.decls(s.Elts, scopeTop)
				return
			}
		}
		// Hidden fields and definitions below the top (fields no alert
		// has, see privateField), aliases and computed labels.
		a.global = true
		return
	}
	a.names[sc][name] = true
	if sc != scopeTop {
		a.site(f.Value)
		return
	}
	switch name {
	case "labels", "annotations":
		if s, ok := f.Value.(*ast.StructLit); ok {
			a.decls(s.Elts, scopeOf(name))
			return
		}
		a.unknown(f.Value)
	default:
		if topIndex(name) >= 0 {
			a.site(f.Value)
			return
		}
		a.unknown(f.Value)
	}
}

func scopeOf(name string) scope {
	if name == "labels" {
		return scopeLabels
	}
	return scopeAnnotations
}

// site checks the syntax of a field's value. A reference to another field
// there (`b: a`) makes the field depend on the alert: {a: string, b: a}
// needs b only when the alert lacks a, which the value of b alone, string,
// does not say.
func (a *analyzer) site(x ast.Expr) {
	if !a.constant(x) {
		a.global = true
	}
}

func (a *analyzer) unknown(n ast.Node) {
	if a.constant(n) {
		a.local = true
	} else {
		a.global = true
	}
}

// allStrings reports whether a pattern constraint is [string]: string (or
// _), which alert labels, all strings, always satisfy.
func allStrings(l *ast.ListLit, v ast.Expr) bool {
	if len(l.Elts) != 1 {
		return false
	}
	if id, ok := l.Elts[0].(*ast.Ident); !ok || id.Name != "string" {
		return false
	}
	id, ok := v.(*ast.Ident)
	return ok && (id.Name == "string" || id.Name == "_")
}

// regularLabel returns the name of a regular (not hidden, not definition)
// field with a constant label.
func regularLabel(l ast.Label) (string, bool) {
	switch x := l.(type) {
	case *ast.Ident:
		if strings.HasPrefix(x.Name, "_") || strings.HasPrefix(x.Name, "#") {
			return "", false
		}
		return x.Name, true
	case *ast.BasicLit:
		return stringLit(x)
	}
	return "", false
}

// constant reports whether n refers to nothing but predeclared identifiers
// and consts, so that its value cannot depend on the alert.
func (a *analyzer) constant(n ast.Node) bool {
	switch x := n.(type) {
	case nil:
		return true
	case *ast.BasicLit, *ast.BottomLit:
		return true
	case *ast.Ident:
		return predeclared[x.Name] || a.consts[x.Name]
	case *ast.SelectorExpr:
		return a.constant(x.X)
	case *ast.IndexExpr:
		return a.constant(x.X) && a.constant(x.Index)
	case *ast.SliceExpr:
		return a.constant(x.X) && a.constant(x.Low) && a.constant(x.High)
	case *ast.ParenExpr:
		return a.constant(x.X)
	case *ast.UnaryExpr:
		return a.constant(x.X)
	case *ast.BinaryExpr:
		return a.constant(x.X) && a.constant(x.Y)
	case *ast.Ellipsis:
		return a.constant(x.Type)
	case *ast.Interpolation:
		for _, e := range x.Elts {
			if !a.constant(e) {
				return false
			}
		}
		return true
	case *ast.ListLit:
		for _, e := range x.Elts {
			if !a.constant(e) {
				return false
			}
		}
		return true
	case *ast.CallExpr:
		if !a.constant(x.Fun) {
			return false
		}
		for _, e := range x.Args {
			if !a.constant(e) {
				return false
			}
		}
		return true
	case *ast.StructLit:
		for _, d := range x.Elts {
			switch d := d.(type) {
			case *ast.CommentGroup, *ast.Attribute:
			case *ast.Field:
				switch l := d.Label.(type) {
				case *ast.Ident, *ast.BasicLit:
				default:
					if !a.constant(l) {
						return false
					}
				}
				if !a.constant(d.Value) {
					return false
				}
			case *ast.EmbedDecl:
				if !a.constant(d.Expr) {
					return false
				}
			case *ast.Ellipsis:
				if !a.constant(d.Type) {
					return false
				}
			default:
				return false
			}
		}
		return true
	}
	return false
}

// fields compiles the fields of m that the syntax walk found, checking
// that the value declares exactly those. It returns false when the two
// disagree: then the syntax walk missed something and only CUE can say.
func (a *analyzer) fields(m cue.Value, res regexps) ([]fieldPred, bool) {
	top, ok := fieldsOf(m)
	if !ok || !sameNames(top, a.names[scopeTop]) {
		return nil, false
	}
	var preds []fieldPred
	for name, f := range top {
		switch name {
		case "labels", "annotations":
			sc := scopeOf(name)
			a.structs[sc] = f.v
			sub, ok := fieldsOf(f.v)
			if !ok || !sameNames(sub, a.names[sc]) {
				return nil, false
			}
			for name, g := range sub {
				p, ok := leaf(g, res)
				if !ok {
					a.local = true
					continue
				}
				p.scope, p.name = sc, name
				preds = appendPred(preds, p)
			}
		default:
			p, ok := leaf(f, res)
			if !ok {
				a.local = true
				continue
			}
			p.scope, p.top = scopeTop, topIndex(name)
			preds = appendPred(preds, p)
		}
	}
	// Map order must not leak into the order preds are tried in.
	slices.SortFunc(preds, func(x, y fieldPred) int {
		if x.scope != y.scope {
			return int(x.scope) - int(y.scope)
		}
		if x.top != y.top {
			return x.top - y.top
		}
		return strings.Compare(x.name, y.name)
	})
	return preds, true
}

// appendPred leaves out predicates that always hold, such as the
// schema's `fingerprint?: string`.
func appendPred(preds []fieldPred, p fieldPred) []fieldPred {
	if _, ok := p.cond.(condTrue); ok && p.absentOK {
		return preds
	}
	return append(preds, p)
}

type field struct {
	v  cue.Value
	ct cue.SelectorType
}

func fieldsOf(v cue.Value) (map[string]field, bool) {
	if v.Err() != nil || v.IncompleteKind() != cue.StructKind {
		return nil, false
	}
	it, err := v.Fields(cue.Optional(true))
	if err != nil {
		return nil, false
	}
	out := map[string]field{}
	for it.Next() {
		sel := it.Selector()
		if !sel.IsString() {
			return nil, false
		}
		out[sel.Unquoted()] = field{v: it.Value(), ct: sel.ConstraintType()}
	}
	return out, true
}

func sameNames(fs map[string]field, names map[string]bool) bool {
	if len(fs) != len(names) {
		return false
	}
	for n := range names {
		if _, ok := fs[n]; !ok {
			return false
		}
	}
	return true
}

// leaf compiles one field's evaluated value.
func leaf(f field, res regexps) (fieldPred, bool) {
	v := f.v
	if v.Err() != nil {
		return fieldPred{}, false
	}
	var p fieldPred
	if v.IsConcrete() {
		s, err := v.String()
		if err != nil {
			return fieldPred{}, false
		}
		p.cond = condEq{s}
	} else {
		e, ok := v.Syntax().(ast.Expr)
		if !ok {
			return fieldPred{}, false
		}
		c, ok := parseCond(e, res)
		if !ok {
			return fieldPred{}, false
		}
		p.cond = c
	}
	// Defaults do not matter: a default fills in a field the alert lacks,
	// and A & M then has a field that A has not.
	p.absentOK = f.ct == cue.OptionalConstraint
	return p, true
}

// checkRegexps compiles every regexp literal of the match, also the ones
// the compiler leaves to CUE, so that a typo fails loading rather than
// never matching.
func checkRegexps(name string, m cue.Value, node ast.Node, res regexps) []cueerrors.Error {
	if node == nil {
		return nil
	}
	var errs []cueerrors.Error
	seen := map[string]bool{}
	ast.Walk(node, func(n ast.Node) bool {
		u, ok := n.(*ast.UnaryExpr)
		if !ok || (u.Op != token.MAT && u.Op != token.NMAT) {
			return true
		}
		lit, ok := u.X.(*ast.BasicLit)
		if !ok {
			return true
		}
		pattern, ok := stringLit(lit)
		if !ok || seen[pattern] {
			return true
		}
		seen[pattern] = true
		if _, err := res.compile(pattern); err != nil {
			errs = append(errs, &RegexpError{
				Playbook: name,
				Pos:      regexpPos(m, pattern),
				Regexp:   pattern,
				Message:  regexpMessage(err),
			})
		}
		return true
	}, nil)
	return errs
}

// regexpMessage drops the "error parsing regexp: " prefix RegexpError
// already says.
func regexpMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// regexpPos finds the field whose value applies pattern: the syntax CUE
// exports has no positions, but the conjuncts behind a field's value do.
func regexpPos(m cue.Value, pattern string) token.Pos {
	var inExpr func(v cue.Value, depth int) (token.Pos, bool)
	inExpr = func(v cue.Value, depth int) (token.Pos, bool) {
		if depth > 8 {
			return token.NoPos, false
		}
		op, args := v.Expr()
		switch op {
		case cue.RegexMatchOp, cue.NotRegexMatchOp:
			if len(args) == 1 {
				if s, err := args[0].String(); err == nil && s == pattern {
					return v.Pos(), true
				}
			}
			return token.NoPos, false
		case cue.AndOp, cue.OrOp:
			for _, x := range args {
				if p, ok := inExpr(x, depth+1); ok {
					return p, true
				}
			}
		}
		return token.NoPos, false
	}
	var inFields func(v cue.Value, depth int) (token.Pos, bool)
	inFields = func(v cue.Value, depth int) (token.Pos, bool) {
		fs, ok := fieldsOf(v)
		if !ok || depth > 3 {
			return token.NoPos, false
		}
		names := make([]string, 0, len(fs))
		for n := range fs {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			f := fs[n].v
			if p, ok := inExpr(f, 0); ok && p.IsValid() {
				return p, true
			}
			if p, ok := inFields(f, depth+1); ok {
				return p, true
			}
		}
		return token.NoPos, false
	}
	if p, ok := inFields(m, 0); ok {
		return p
	}
	return m.Pos()
}

// errorf is a CUE error for problems other than regexps.
func errorf(pos token.Pos, format string, args ...any) cueerrors.Error {
	return cueerrors.Newf(pos, "%s", fmt.Sprintf(format, args...))
}
