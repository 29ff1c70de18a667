// Package schema holds firebreak's CUE schema, the only definition of a
// valid playbook, config and test, and the Go types its values decode into.
package schema

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/parser"
)

//go:embed *.cue
var files embed.FS

// Source returns the schema's CUE source, files in name order.
func Source() string {
	var b strings.Builder
	for i, name := range fileNames() {
		data, _ := files.ReadFile(name)
		if i > 0 {
			// Drop the repeated package clause so the result is one file.
			data = []byte(strings.TrimPrefix(string(data), "package schema\n"))
		}
		b.Write(data)
	}
	return b.String()
}

func fileNames() []string {
	names, _ := fs.Glob(files, "*.cue")
	sort.Strings(names)
	return names
}

// Defs are the schema's definitions, compiled in one cue.Context.
type Defs struct {
	Playbook cue.Value
	Step     cue.Value
	Steps    cue.Value // [...#Step]
	Alert    cue.Value
	Config   cue.Value
	Test     cue.Value
}

// Compile builds the schema in ctx. Values of one context must not be mixed
// with another's, so each context that checks user input compiles its own.
func Compile(ctx *cue.Context) (*Defs, error) {
	inst := build.NewContext().NewInstance("firebreak.schema", nil)
	for _, name := range fileNames() {
		data, _ := files.ReadFile(name)
		f, err := parser.ParseFile("schema/"+name, data, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("parse schema: %w", err)
		}
		if err := inst.AddSyntax(f); err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
	}
	v := ctx.BuildInstance(inst)
	if err := v.Err(); err != nil {
		return nil, fmt.Errorf("build schema: %w", err)
	}
	d := &Defs{
		Playbook: v.LookupPath(cue.ParsePath("#Playbook")),
		Step:     v.LookupPath(cue.ParsePath("#Step")),
		Steps:    v.LookupPath(cue.ParsePath("#Steps")),
		Alert:    v.LookupPath(cue.ParsePath("#Alert")),
		Config:   v.LookupPath(cue.ParsePath("#Config")),
		Test:     v.LookupPath(cue.ParsePath("#Test")),
	}
	return d, nil
}

// IsSchemaFile reports whether a CUE position belongs to the embedded
// schema rather than the user's repository.
func IsSchemaFile(filename string) bool {
	return strings.HasPrefix(filename, "schema/")
}
