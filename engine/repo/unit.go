package repo

import (
	"crypto/rand"
	"encoding/json"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/firebreak-dev/firebreak/schema"

	"cuelang.org/go/cue/parser"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/token"
)

// Unit is the syntax that evaluates one playbook on its own: a template,
// only ever read (see Instance). Evaluating a whole package of 1,000 playbooks to render one costs tens of
// milliseconds; a unit holds just the playbook's declarations, the
// package-level declarations they reference (transitively, by name), the
// ones that apply to every field (embeddings, patterns), the imports those
// use, and the declaration of alert. CUE resolves a reference by name
// through enclosing scopes only, so a reference-closed subset of a package
// evaluates each of its fields exactly as the whole package does.
type Unit struct {
	Files []*ast.File
	// Imports are the package's resolved imports (from cue/load), so that
	// a unit that imports a module package builds like the package.
	Imports []*build.Instance
}

// Instance returns a build instance of the unit for one cue.Context, with
// syntax of its own: name resolution, in AddSyntax and again when the
// instance is built, writes into the identifiers and the file's list of
// unresolved names, so instances built concurrently, or once per
// cue.Context for the life of a server, must not share a tree. Errors
// surface in BuildInstance.
func (u *Unit) Instance() *build.Instance {
	return u.syntax(nil).instance()
}

// unitSyntax is the syntax of a unit's instance, not yet resolved.
type unitSyntax struct {
	u     *Unit
	files []*ast.File
	own   map[ast.Decl]bool
}

// syntax makes the syntax of an instance of u: declarations copied, except
// those in own, which the caller has to itself for as long as the instance
// is in use. Copying reads declarations that other instances' resolution
// may write, so syntax must not run concurrently with instance for them.
func (u *Unit) syntax(own map[ast.Decl]bool) *unitSyntax {
	us := &unitSyntax{u: u, own: own}
	for _, f := range u.Files {
		decls := make([]ast.Decl, len(f.Decls))
		for i, d := range f.Decls {
			if own[d] {
				decls[i] = d
			} else {
				decls[i] = copyDecl(d)
			}
		}
		us.files = append(us.files, &ast.File{Filename: f.Filename, Decls: decls})
	}
	return us
}

// instance resolves the syntax into a build instance. The declarations in
// own are reset first: cue/load resolved them in the package's files, not
// in the unit's.
func (us *unitSyntax) instance() *build.Instance {
	inst := build.NewContext().NewInstance("playbooks", nil)
	inst.PkgName = "playbooks"
	inst.Imports = us.u.Imports
	for _, f := range us.files {
		for _, d := range f.Decls {
			if us.own[d] {
				unresolve(d)
			}
		}
		_ = inst.AddSyntax(f)
	}
	return inst
}

type declRef struct {
	file int
	decl ast.Decl
}

// units indexes a package's top-level declarations by name.
type units struct {
	inst  *build.Instance
	names []string // playbooks, in declaration order
	// byName holds fields and let clauses; a field may be declared in
	// several places and all of them count.
	byName map[string][]declRef
	// always holds declarations that affect every field.
	always    []declRef
	misplaced []token.Pos
	// refs holds the identifiers of each declaration, computed once:
	// unit is called for every playbook, concurrently.
	refs map[ast.Decl][]string
}

func newUnits(inst *build.Instance) *units {
	us := &units{inst: inst, byName: map[string][]declRef{}, refs: map[ast.Decl][]string{}}
	seen := map[string]bool{}
	for i, f := range inst.Files {
		ours := strings.HasSuffix(f.Filename, alertFile)
		for _, d := range f.Decls {
			ref := declRef{i, d}
			switch x := d.(type) {
			case *ast.Package, *ast.ImportDecl, *ast.CommentGroup, *ast.Attribute:
			case *ast.LetClause:
				us.byName[x.Ident.Name] = append(us.byName[x.Ident.Name], ref)
			case *ast.Field:
				name, ok := fieldName(x)
				if !ok {
					us.always = append(us.always, ref) // a pattern constraint
					continue
				}
				if name == AlertName && !ours {
					us.misplaced = append(us.misplaced, x.Pos())
					continue
				}
				us.byName[name] = append(us.byName[name], ref)
				regular := !strings.HasPrefix(name, "#") && !strings.HasPrefix(name, "_")
				if regular && name != AlertName && !seen[name] {
					seen[name] = true
					us.names = append(us.names, name)
				}
			default:
				us.always = append(us.always, ref)
			}
		}
	}
	// The identifiers of every declaration, on one goroutine per CPU: the
	// walks only read the syntax.
	var decls []ast.Decl
	for _, refs := range us.byName {
		for _, ref := range refs {
			decls = append(decls, ref.decl)
		}
	}
	for _, ref := range us.always {
		decls = append(decls, ref.decl)
	}
	ids := make([][]string, len(decls))
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(decls); i += workers {
				ids[i] = identifiers(decls[i])
			}
		})
	}
	wg.Wait()
	for i, d := range decls {
		us.refs[d] = ids[i]
	}
	return us
}

// decls returns the declarations of name.
func (us *units) decls(name string) []ast.Node {
	var out []ast.Node
	for _, ref := range us.byName[name] {
		out = append(out, ref.decl)
	}
	return out
}

func fieldName(f *ast.Field) (string, bool) {
	label := f.Label
	if a, ok := label.(*ast.Alias); ok {
		if l, ok := a.Expr.(ast.Label); ok {
			label = l
		}
	}
	name, isIdent, err := ast.LabelName(label)
	if err != nil {
		return "", false
	}
	_ = isIdent
	return name, true
}

// unit returns the unit of the playbooks named: what evaluates them
// together exactly as the whole package does.
func (us *units) unit(playbooks ...string) *Unit {
	included := map[ast.Decl]bool{}
	names := map[string]bool{}
	queue := append([]string{AlertName}, playbooks...)
	add := func(ref declRef) {
		if included[ref.decl] {
			return
		}
		included[ref.decl] = true
		for _, id := range us.refs[ref.decl] {
			if !names[id] {
				queue = append(queue, id)
			}
		}
	}
	for _, ref := range us.always {
		add(ref)
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if names[n] {
			continue
		}
		names[n] = true
		for _, ref := range us.byName[n] {
			add(ref)
		}
	}
	u := &Unit{Imports: us.inst.Imports}
	for _, f := range us.inst.Files {
		var decls []ast.Decl
		for _, d := range f.Decls {
			switch x := d.(type) {
			case *ast.Package:
				decls = append(decls, d)
			case *ast.ImportDecl:
				if imp := usedImports(x, names); imp != nil {
					decls = append(decls, imp)
				}
			default:
				if included[d] {
					decls = append(decls, d)
				}
			}
		}
		if hasBody(decls) {
			u.Files = append(u.Files, &ast.File{Filename: f.Filename, Decls: decls})
		}
	}
	return u
}

func hasBody(decls []ast.Decl) bool {
	for _, d := range decls {
		switch d.(type) {
		case *ast.Package, *ast.ImportDecl:
		default:
			return true
		}
	}
	return false
}

// usedImports keeps the imports whose name is referenced: CUE rejects an
// import that is not used.
func usedImports(d *ast.ImportDecl, names map[string]bool) *ast.ImportDecl {
	out := &ast.ImportDecl{Import: d.Import, Lparen: d.Lparen, Rparen: d.Rparen}
	for _, s := range d.Specs {
		if names[importName(s)] {
			out.Specs = append(out.Specs, s)
		}
	}
	if len(out.Specs) == 0 {
		return nil
	}
	return out
}

func importName(s *ast.ImportSpec) string {
	if s.Name != nil {
		return s.Name.Name
	}
	p, err := strconv.Unquote(s.Path.Value)
	if err != nil {
		return ""
	}
	if i := strings.LastIndexByte(p, ':'); i >= 0 {
		return p[i+1:]
	}
	if i := strings.IndexByte(p, '@'); i >= 0 {
		p = p[:i]
	}
	return p[strings.LastIndexByte(p, '/')+1:]
}

// identifiers returns every identifier name in n, once each: an
// over-approximation of what it references, which only ever adds
// declarations to a unit.
func identifiers(n ast.Node) []string {
	var ids []string
	seen := map[string]bool{}
	ast.Walk(n, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && !seen[id.Name] {
			seen[id.Name] = true
			ids = append(ids, id.Name)
		}
		return true
	}, nil)
	return ids
}

// withProbe returns inst with alert bound to a probe alert in which every
// label and annotation that any file reads is set, so that validation can
// tell a missing field from one the alert will fill in, and with the
// schema file sf joined to the package.
func withProbe(inst *build.Instance, pv probe, sf *ast.File) *build.Instance {
	out := build.NewContext().NewInstance(inst.Dir, nil)
	out.PkgName, out.Imports = inst.PkgName, inst.Imports
	for _, f := range inst.Files {
		if !strings.HasSuffix(f.Filename, alertFile) {
			// Resolved when inst was made: AddSyntax would only walk it
			// again.
			out.Files = append(out.Files, f)
			continue
		}
		data, _ := json.Marshal(pv.alert(inst.Files))
		decl, err := parser.ParseFile(f.Filename, "package "+inst.PkgName+"\n\nalert: close("+string(data)+")\n")
		if err != nil {
			panic(err) // the JSON of a map is CUE
		}
		_ = out.AddSyntax(decl)
	}
	// The schema joins the package, so that the one evaluation of the
	// package checks every playbook against it, as cue vet does; its
	// definitions are renamed so they cannot meet the user's own.
	_ = out.AddSyntax(sf)
	return out
}

var schemaDef = regexp.MustCompile(`#([A-Z][A-Za-z]*)`)

// schemaFile is firebreak's schema in package pkg, with every definition
// #X renamed #FirebreakX, constraining every playbook.
func schemaFile(pkg string) *ast.File {
	src := strings.Replace(schema.Source(), "package schema", "package "+pkg, 1)
	src = schemaDef.ReplaceAllString(src, "#Firebreak$1")
	src += "\n[!=\"" + AlertName + "\"]: #FirebreakPlaybook\n"
	f, err := parser.ParseFile("schema/firebreak.cue", src)
	if err != nil {
		panic(err) // the embedded schema parses; a test loads it
	}
	return f
}

// matchCheck is the hidden field of a playbook in which quickSchemaFile
// meets its match with the schema's constraint.
const matchCheck = "_firebreakMatchCheck"

// quickSchemaFile is schemaFile for validateQuick's one evaluation, with
// no constraint on a playbook's match, which is then the user's own
// constraint, as evaluated without the schema. Playbooks are constrained
// by #Playbook's fields, match: _ in place of its match, closed with
// close, which unlike a definition does not close the match; the schema's
// constraint on the match is met in the hidden field matchCheck instead,
// where the evaluation reports its errors.
func quickSchemaFile(pkg string) *ast.File {
	f := schemaFile(pkg)
	var elts []ast.Decl
	for _, d := range f.Decls {
		pf, ok := d.(*ast.Field)
		if !ok {
			continue
		}
		st, ok := pf.Value.(*ast.StructLit)
		if name, _, _ := ast.LabelName(pf.Label); !ok || name != "#FirebreakPlaybook" {
			continue
		}
		for _, e := range st.Elts {
			e = copyDecl(e)
			if mf, ok := e.(*ast.Field); ok {
				if name, _, _ := ast.LabelName(mf.Label); name == "match" {
					mf.Value = ast.NewIdent("_")
				}
			}
			elts = append(elts, e)
		}
	}
	pattern, ok := f.Decls[len(f.Decls)-1].(*ast.Field)
	if !ok || len(elts) == 0 {
		panic("schema: no #Playbook") // a test loads it
	}
	check, err := parser.ParseExpr("schema/firebreak.cue", "#FirebreakPlaybook.match & match")
	if err != nil {
		panic(err)
	}
	elts = append(elts, &ast.Field{Label: ast.NewIdent(matchCheck), Value: check})
	pattern.Value = &ast.CallExpr{Fun: ast.NewIdent("close"), Args: []ast.Expr{&ast.StructLit{Elts: elts}}}
	return f
}

// probe says what the probe alert holds: placeholders, or, with a token,
// the token in every string.
type probe struct{ token string }

// placeholders is the probe alert of playbook: the reading of values that
// depend on the alert does not matter, only that they are concrete.
var placeholders = probe{}

// probeToken returns a probe whose token no playbook can contain: random
// per load, of letters and digits so that it passes the schema's
// constraints on names and paths as a placeholder does.
func probeToken() probe {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return probe{token: "fb" + string(b)}
}

// alert is an alert with every label and annotation files read set.
func (pv probe) alert(files []*ast.File) map[string]any {
	placeholder, ts := "probe", "2006-01-02T15:04:05Z"
	source, status, fingerprint, url := "generic", "firing", "probe", "http://probe"
	if pv.token != "" {
		placeholder, ts = pv.token, pv.token
		source, status, fingerprint, url = pv.token, pv.token, pv.token, pv.token
	}
	labels, annotations := map[string]any{}, map[string]any{}
	for _, f := range files {
		ast.Walk(f, func(n ast.Node) bool {
			var inner ast.Expr
			var key string
			switch x := n.(type) {
			case *ast.SelectorExpr:
				inner = x.X
				key, _, _ = ast.LabelName(x.Sel)
			case *ast.IndexExpr:
				inner = x.X
				if lit, ok := x.Index.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					key, _ = strconv.Unquote(lit.Value)
				}
			default:
				return true
			}
			sel, ok := inner.(*ast.SelectorExpr)
			if !ok || key == "" {
				return true
			}
			if root, ok := sel.X.(*ast.Ident); !ok || root.Name != AlertName {
				return true
			}
			switch field, _, _ := ast.LabelName(sel.Sel); field {
			case "labels":
				labels[key] = placeholder
			case "annotations":
				annotations[key] = placeholder
			}
			return true
		}, nil)
	}
	return map[string]any{
		"source": source, "status": status, "fingerprint": fingerprint,
		"labels": labels, "annotations": annotations,
		"startsAt": ts, "endsAt": ts, "receivedAt": ts, "generatorURL": url,
	}
}
