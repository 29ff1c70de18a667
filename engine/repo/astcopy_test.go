package repo

import (
	"testing"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/ast/astutil"
	"cuelang.org/go/cue/format"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
)

func TestCopyDeclIsDeepAndUnresolved(t *testing.T) {
	f, err := parser.ParseFile("x.cue", `package p
let base = {a: 1}
x: base & {b: [for k, v in base {"\(k)": v}], c: *"d" | string}
`)
	if err != nil {
		t.Fatal(err)
	}
	astutil.Resolve(f, func(_ token.Pos, msg string, _ ...any) { t.Error(msg) })
	before, _ := format.Node(f)
	var copies []ast.Decl
	for _, d := range f.Decls {
		copies = append(copies, copyDecl(d))
	}
	after, _ := format.Node(&ast.File{Decls: copies})
	if string(before) != string(after) {
		t.Fatalf("copy differs:\n%s\nwant\n%s", after, before)
	}
	// No node of the copy is a node of the original, and every identifier
	// of the copy is unresolved.
	orig := map[ast.Node]bool{}
	for _, d := range f.Decls {
		ast.Walk(d, func(n ast.Node) bool { orig[n] = true; return true }, nil)
	}
	for _, d := range copies {
		ast.Walk(d, func(n ast.Node) bool {
			if orig[n] {
				t.Errorf("node %T at %v is shared with the original", n, n.Pos())
			}
			if id, ok := n.(*ast.Ident); ok && (id.Node != nil || id.Scope != nil) {
				t.Errorf("identifier %s at %v is still resolved", id.Name, id.Pos())
			}
			return true
		}, nil)
	}
}
