package repo

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"

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
	inst := build.NewContext().NewInstance("playbooks", nil)
	inst.PkgName = "playbooks"
	inst.Imports = u.Imports
	for _, f := range u.Files {
		decls := make([]ast.Decl, len(f.Decls))
		for i, d := range f.Decls {
			decls[i] = copyDecl(d)
		}
		_ = inst.AddSyntax(&ast.File{Filename: f.Filename, Decls: decls})
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
}

func newUnits(inst *build.Instance) *units {
	us := &units{inst: inst, byName: map[string][]declRef{}}
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
		for id := range identifiers(ref.decl) {
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

// identifiers returns every identifier name in n: an over-approximation of
// what it references, which only ever adds declarations to a unit.
func identifiers(n ast.Node) map[string]bool {
	ids := map[string]bool{}
	ast.Walk(n, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			ids[id.Name] = true
		}
		return true
	}, nil)
	return ids
}

// withProbe returns inst with alert bound to a probe alert in which every
// label and annotation that any file reads is set, so that validation can
// tell a missing field from one the alert will fill in.
func withProbe(inst *build.Instance) *build.Instance {
	out := build.NewContext().NewInstance(inst.Dir, nil)
	out.PkgName, out.Imports = inst.PkgName, inst.Imports
	for _, f := range inst.Files {
		if strings.HasSuffix(f.Filename, alertFile) {
			data, _ := json.Marshal(probeAlert(inst.Files))
			decl, err := parser.ParseFile(f.Filename, "package "+inst.PkgName+"\n\nalert: close("+string(data)+")\n")
			if err != nil {
				panic(err) // the JSON of a map is CUE
			}
			f = decl
		}
		_ = out.AddSyntax(f)
	}
	// The schema joins the package, so that the one evaluation of the
	// package checks every playbook against it, as cue vet does; its
	// definitions are renamed so they cannot meet the user's own.
	_ = out.AddSyntax(schemaFile(inst.PkgName))
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

// probeAlert is an alert with every label and annotation files read set
// to a placeholder.
func probeAlert(files []*ast.File) map[string]any {
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
				labels[key] = "probe"
			case "annotations":
				annotations[key] = "probe"
			}
			return true
		}, nil)
	}
	const ts = "2006-01-02T15:04:05Z"
	return map[string]any{
		"source": "generic", "status": "firing", "fingerprint": "probe",
		"labels": labels, "annotations": annotations,
		"startsAt": ts, "endsAt": ts, "receivedAt": ts, "generatorURL": "http://probe",
	}
}
