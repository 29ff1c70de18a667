package repo

import (
	"reflect"

	"cuelang.org/go/cue/ast"
)

// copyDecl returns a deep copy of d with every identifier unresolved.
//
// Name resolution writes into the identifiers of the tree it resolves
// (which file or field a reference points to), so every build of a unit
// gets a tree of its own. Positions, and the comments attached to nodes,
// are shared: nothing writes them.
func copyDecl(d ast.Decl) ast.Decl {
	return deepCopy(reflect.ValueOf(d)).Interface().(ast.Decl)
}

var (
	nodeType  = reflect.TypeFor[ast.Node]()
	identType = reflect.TypeFor[ast.Ident]()
)

func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(deepCopy(v.Elem()))
		return out
	case reflect.Pointer:
		if v.IsNil() || v.Elem().Kind() != reflect.Struct || !v.Type().Implements(nodeType) {
			return v
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(v.Elem()) // the unexported parts: positions, comments
		if v.Type().Elem() == identType {
			id := out.Interface().(*ast.Ident)
			id.Node, id.Scope = nil, nil // references, not children
			return out
		}
		for i := range out.Elem().NumField() {
			f := out.Elem().Field(i)
			if f.CanSet() {
				f.Set(deepCopy(f))
			}
		}
		return out
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	}
	return v
}

// unresolve clears what name resolution wrote into the identifiers of d.
func unresolve(d ast.Decl) {
	ast.Walk(d, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			id.Node, id.Scope = nil, nil
		}
		return true
	}, nil)
}
