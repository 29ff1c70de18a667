package repo

import (
	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"
)

// tests loads package tests from playbooks/tests. A repository without
// tests is valid; `firebreak test` says there are none.
func (l *loader) tests() []*Test {
	inst, err := l.sources(TestsDir, "tests", false)
	if err != nil || inst == nil {
		return nil
	}
	if inst.Err != nil {
		l.ds.cue(inst.Err, token.NoPos, TestsDir)
		return nil
	}
	pkg := l.ctx.BuildInstance(inst)
	if err := pkg.Err(); err != nil {
		l.ds.cue(err, token.NoPos, TestsDir)
		return nil
	}
	all := pkg.LookupPath(cue.ParsePath("tests"))
	if !all.Exists() {
		l.ds.add(Diagnostic{File: TestsDir, Message: "no tests: declare them as tests: NAME: {alert: ..., expect: ...}"})
		return nil
	}
	iter, err := all.Fields()
	if err != nil {
		l.ds.cue(err, all.Pos(), TestsDir)
		return nil
	}
	var out []*Test
	for iter.Next() {
		name, raw := iter.Selector().Unquoted(), iter.Value()
		pos := raw.Pos()
		file := l.ds.rel(pos.Filename())
		v := raw.Unify(l.defs.Test)
		if err := v.Validate(); err != nil {
			l.ds.cue(err, pos, file)
			continue
		}
		t := &Test{Name: name, File: file, Line: pos.Line(), Steps: v.LookupPath(cue.ParsePath("expect.steps"))}
		alert := v.LookupPath(cue.ParsePath("alert"))
		if err := alert.Validate(cue.Concrete(true)); err != nil {
			l.ds.cue(err, pos, file)
			continue
		}
		if err := decodeJSON(alert, &t.Alert); err != nil {
			l.ds.at(alert.Pos(), file, "tests.%s.alert: %v", name, err)
			continue
		}
		if err := decodeJSON(v.LookupPath(cue.ParsePath("expect.playbooks")), &t.Playbooks); err != nil {
			l.ds.cue(err, pos, file)
			continue
		}
		out = append(out, t)
	}
	return out
}
