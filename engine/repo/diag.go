package repo

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"github.com/firebreak-dev/firebreak/schema"
)

// Diagnostic is one problem in a playbook repository, located in the
// user's own file (never the embedded schema).
type Diagnostic struct {
	File    string `json:"file"` // relative to the repository root, slash-separated
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
}

func (d Diagnostic) String() string {
	if d.Line == 0 {
		return d.File + ": " + d.Message
	}
	return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Line, d.Col, d.Message)
}

// diags collects diagnostics, relative to dir, without duplicates.
type diags struct {
	dir  string
	list []Diagnostic
	seen map[Diagnostic]bool
	// prefer holds the declarations of the playbook being checked: of the
	// positions an error has, one inside them is the one to show.
	prefer []ast.Node
}

func (ds *diags) add(d Diagnostic) {
	if ds.seen == nil {
		ds.seen = map[Diagnostic]bool{}
	}
	// A message is one line: CUE sometimes folds values over several.
	d.Message = strings.Join(strings.Fields(d.Message), " ")
	if ds.seen[d] {
		return
	}
	ds.seen[d] = true
	ds.list = append(ds.list, d)
}

// at adds a diagnostic at pos; an invalid pos falls back to file alone.
func (ds *diags) at(pos token.Pos, fallbackFile, format string, args ...any) {
	d := Diagnostic{File: fallbackFile, Message: fmt.Sprintf(format, args...)}
	if pos.IsValid() && !schema.IsSchemaFile(pos.Filename()) {
		d.File, d.Line, d.Col = ds.rel(pos.Filename()), pos.Line(), pos.Column()
	}
	ds.add(d)
}

// cue adds every error in err at its first position in a user file.
// CUE reports a value outside a disjunction as "N errors in empty
// disjunction" plus one conflict per alternative; those are folded into
// one line that names the value and the alternatives.
func (ds *diags) cue(err error, fallback token.Pos, fallbackFile string) {
	type conflict struct {
		pos        token.Pos
		a, b       []string
		firstIndex int
	}
	var order []string
	conflicts := map[string]*conflict{}
	disjunction, others := map[string]bool{}, map[string]bool{}
	for _, e := range errors.Errors(err) {
		path := strings.Join(e.Path(), ".")
		format, args := e.Msg()
		pos := ds.userPos(e, fallback)
		switch {
		case strings.HasSuffix(format, "errors in empty disjunction:"):
			disjunction[path] = true
			continue
		case format == "conflicting values %s and %s" && len(args) == 2:
			c := conflicts[path]
			if c == nil {
				c = &conflict{pos: pos, firstIndex: len(order)}
				conflicts[path] = c
				order = append(order, path)
			}
			c.a = append(c.a, fmt.Sprint(args[0]))
			c.b = append(c.b, fmt.Sprint(args[1]))
			continue
		}
		others[path] = true
		ds.at(pos, fallbackFile, "%s", strings.TrimSuffix(e.Error(), ":"))
	}
	for _, path := range order {
		c := conflicts[path]
		if disjunction[path] && others[path] {
			// A value that failed every alternative of a disjunction
			// with a default: the other error says why; the conflict
			// with the default says nothing more.
			continue
		}
		prefix := ""
		if path != "" {
			prefix = path + ": "
		}
		switch {
		case !disjunction[path] || len(c.a) == 1:
			for i := range c.a {
				ds.at(c.pos, fallbackFile, "%sconflicting values %s and %s", prefix, c.a[i], c.b[i])
			}
		case allSame(c.b):
			ds.at(c.pos, fallbackFile, "%s%s is not one of %s", prefix, c.b[0], strings.Join(c.a, " | "))
		case allSame(c.a):
			ds.at(c.pos, fallbackFile, "%s%s is not one of %s", prefix, c.a[0], strings.Join(c.b, " | "))
		default:
			for i := range c.a {
				ds.at(c.pos, fallbackFile, "%sconflicting values %s and %s", prefix, c.a[i], c.b[i])
			}
		}
	}
}

// declared is the position of the first declaration of the playbook
// being checked, or fallback. A playbook's file is where it is declared:
// its value's position can be that of a pattern constraint in another
// file that applies to it.
func (ds *diags) declared(fallback token.Pos) token.Pos {
	if len(ds.prefer) > 0 {
		if p := ds.prefer[0].Pos(); p.IsValid() {
			return p
		}
	}
	return fallback
}

// userPos is the position of e to show: the first inside the preferred
// declarations, else the first in a user file, not the schema.
func (ds *diags) userPos(e errors.Error, fallback token.Pos) token.Pos {
	all := append([]token.Pos{e.Position()}, e.InputPositions()...)
	for _, p := range all {
		for _, n := range ds.prefer {
			if p.IsValid() && p.Filename() == n.Pos().Filename() && p.Offset() >= n.Pos().Offset() && p.Offset() < n.End().Offset() {
				return p
			}
		}
	}
	for _, p := range all {
		if p.IsValid() && !schema.IsSchemaFile(p.Filename()) {
			return p
		}
	}
	return fallback
}

func allSame(xs []string) bool {
	for _, x := range xs {
		if x != xs[0] {
			return false
		}
	}
	return true
}

func (ds *diags) rel(name string) string {
	if r, err := filepath.Rel(ds.dir, name); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return filepath.ToSlash(name)
}

func (ds *diags) sorted() []Diagnostic {
	out := slices.Clone(ds.list)
	slices.SortStableFunc(out, func(a, b Diagnostic) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	return out
}
