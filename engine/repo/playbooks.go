package repo

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cuelang.org/go/cue/cuecontext"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/engine/match"
	"github.com/firebreak-dev/firebreak/schema"
)

// playbooks loads package playbooks and validates each playbook against
// the schema and, when cfg is valid, the policy.
func (l *loader) playbooks(cfg *schema.Config) []*Playbook {
	inst, err := l.sources(PlaybooksDir, "playbooks", true)
	switch {
	case err != nil:
		l.ds.add(Diagnostic{File: PlaybooksDir, Message: "missing: a playbook repository keeps its playbooks in playbooks/"})
		return nil
	case inst == nil:
		l.ds.add(Diagnostic{File: PlaybooksDir, Message: "no playbooks (*.cue, *.yaml, *.json)"})
		return nil
	case inst.Err != nil:
		l.ds.cue(inst.Err, token.NoPos, PlaybooksDir)
		return nil
	}
	units := newUnits(inst)
	for _, pos := range units.misplaced {
		l.ds.at(pos, PlaybooksDir, "%s is declared by firebreak: it is the triggering alert; rename this field", AlertName)
	}
	out, parts := l.validateAll(units, cfg)
	// Regular expressions are compiled where matching compiles them, so
	// validate and the engine can never disagree on one.
	ix, err := match.Join(parts...)
	if err != nil {
		l.ds.cue(err, token.NoPos, PlaybooksDir)
	}
	l.index = ix
	return out
}

// validateAll validates every playbook, in parallel: the playbooks are
// split into one group per CPU, and each group is evaluated as its own
// unit in its own cue.Context (a context is not safe for concurrent use).
// Small repositories stay on one goroutine.
//
// Each group also compiles its playbooks' matches (match.CompilePart), in
// the context they were evaluated in, for playbooks to join into an index.
func (l *loader) validateAll(units *units, cfg *schema.Config) ([]*Playbook, []*match.Part) {
	workers := min(runtime.GOMAXPROCS(0), 1+len(units.names)/100)
	groups := make([][]string, workers)
	for i, name := range units.names {
		w := i * workers / len(units.names)
		groups[w] = append(groups[w], name)
	}
	// Each group's syntax is made here, before any group resolves names
	// in it: a group's own playbooks are its alone, and everything else its
	// unit holds (the declaration of alert, definitions, helpers, a playbook
	// that one of the group's builds on) may be in other groups' units too,
	// so it is copied.
	syntax := make([]*unitSyntax, workers)
	for w, names := range groups {
		own := map[ast.Decl]bool{}
		for _, name := range names {
			for _, ref := range units.byName[name] {
				own[ref.decl] = true
			}
		}
		syntax[w] = units.unit(names...).syntax(own)
	}
	results := make([][]*Playbook, workers)
	parts := make([]*match.Part, workers)
	subs := make([]*loader, workers)
	var wg sync.WaitGroup
	for w := range groups {
		sub := l
		if w > 0 {
			sub = &loader{ctx: cuecontext.New(), dir: l.dir, ds: &diags{dir: l.dir}}
		}
		subs[w] = sub
		wg.Go(func() {
			results[w] = sub.validateGroup(units, groups[w], syntax[w].instance(), cfg)
			entries := make([]match.Entry, len(results[w]))
			for i, pb := range results[w] {
				entries[i] = match.Entry{Name: pb.Name, Match: pb.Match}
			}
			parts[w] = match.CompilePart(entries)
		})
	}
	wg.Wait()
	var out []*Playbook
	for w, sub := range subs {
		if sub != l {
			for _, d := range sub.ds.list {
				l.ds.add(d)
			}
		}
		out = append(out, results[w]...)
	}
	return out, parts
}

// validateGroup validates the playbooks names, evaluated together as one
// unit. An error in one playbook poisons the package value, so each
// playbook is checked on its own and the package error is reported only
// when no playbook explains it.
func (l *loader) validateGroup(units *units, names []string, inst *build.Instance, cfg *schema.Config) []*Playbook {
	if l.defs == nil {
		defs, err := schema.Compile(l.ctx)
		if err != nil {
			l.ds.add(Diagnostic{File: PlaybooksDir, Message: err.Error()})
			return nil
		}
		l.defs = defs
	}
	// Under copiesAlert, one evaluation does, unless a match may hold a
	// string of the alert.
	if tainted, ok := taintedNames(inst.Files); ok && !tainted["match"] && !noQuick {
		return l.validateQuick(units, names, inst, cfg)
	}
	pkg := l.ctx.BuildInstance(inst)
	// The same playbooks once more with alert bound to a probe: every label
	// and annotation they read set to a placeholder, so that values computed
	// from the alert are concrete and a missing field shows as incomplete.
	// One evaluation of the package, as cue vet does, not one per playbook.
	probed := l.ctx.BuildInstance(withProbe(inst, placeholders, schemaFile(inst.PkgName)))
	before := len(l.ds.list)
	var out []*Playbook
	for _, name := range names {
		l.ds.prefer = units.decls(name)
		pb := l.playbook(pkg, probed, name, cfg)
		l.ds.prefer = nil
		if pb != nil {
			pb.Unit = units.unit(name)
			out = append(out, pb)
		}
	}
	if err := pkg.Err(); err != nil && len(l.ds.list) == before {
		l.ds.cue(err, token.NoPos, PlaybooksDir)
	}
	return out
}

// noQuick turns validateQuick off, for tests that compare it with the
// two evaluations it replaces.
var noQuick = false

// quickVouched counts the playbooks validateQuick vouched for, for tests.
var quickVouched atomic.Int64

// validateQuick validates playbooks whose package reads the alert only by
// copying its strings (copiesAlert), and whose matches hold none of them,
// with one evaluation instead of validateGroup's two. The probe alert's
// strings are a token nobody can write, so a value depends on the alert
// exactly when it contains the token, which is what playbook learns from
// the evaluation without the probe; the match, which does not depend on
// the alert, is read from the same evaluation, under a schema that leaves
// it open (quickSchemaFile). quick vouches for the playbooks that have no
// problem at all; every other is checked by playbook, exactly as
// validateGroup does, against evaluations made only then, so that every
// message is the one validateGroup gives.
func (l *loader) validateQuick(units *units, names []string, inst *build.Instance, cfg *schema.Config) []*Playbook {
	tok := probeToken()
	probed := l.ctx.BuildInstance(withProbe(inst, tok, quickSchemaFile(inst.PkgName)))
	// validateGroup's two evaluations, for the playbooks quick cannot
	// vouch for.
	var pkg, full cue.Value
	built := false
	slow := func() (cue.Value, cue.Value) {
		if !built {
			pkg = l.ctx.BuildInstance(inst)
			full = l.ctx.BuildInstance(withProbe(inst, placeholders, schemaFile(inst.PkgName)))
			built = true
		}
		return pkg, full
	}
	before := len(l.ds.list)
	q := newQuick(l, tok.token, cfg)
	var out []*Playbook
	for _, name := range names {
		l.ds.prefer = units.decls(name)
		pb := q.playbook(probed, name)
		if pb != nil {
			quickVouched.Add(1)
		} else {
			pkg, full := slow()
			pb = l.playbook(pkg, full, name, cfg)
		}
		l.ds.prefer = nil
		if pb != nil {
			pb.Unit = units.unit(name)
			out = append(out, pb)
		}
	}
	// As in validateGroup, a package error no playbook explains. The
	// package has none when this evaluation, of the same files and more,
	// has none.
	if len(l.ds.list) == before && probed.Err() != nil {
		if pkg, _ := slow(); pkg.Err() != nil {
			l.ds.cue(pkg.Err(), token.NoPos, PlaybooksDir)
		}
	}
	return out
}

// playbook validates one playbook and decodes what the engine needs of it.
func (l *loader) playbook(pkg, probed cue.Value, name string, cfg *schema.Config) (pb *Playbook) {
	sel := cue.MakePath(cue.Str(name))
	raw := pkg.LookupPath(sel)
	pos := raw.Pos()
	file := l.ds.rel(pos.Filename())
	if !playbookName.MatchString(name) {
		l.ds.at(pos, file, "playbook name %q: use letters, digits and _ and start with a letter", name)
		return nil
	}
	// Checked with the probe alert; only when that finds something other
	// than a missing value is the playbook checked again without it,
	// because the probe's placeholders may be what conflicts, and that
	// pass's errors are the ones reported. Schema errors do not stop the
	// checks below: every problem of the playbook is reported in one run.
	v := probed.LookupPath(sel)
	var concreteErrs []error
	conflict := false
	check := func(err error) {
		if err == nil {
			return
		}
		concreteErrs = append(concreteErrs, err)
		for _, e := range cueerrors.Errors(err) {
			conflict = conflict || !isIncomplete(e)
		}
	}
	iter, _ := v.Fields()
	for iter.Next() {
		switch iter.Selector().Unquoted() {
		case "match":
			check(iter.Value().Validate()) // a constraint on alerts, not a value
		case "steps", "on_failure":
			// Element by element: CUE reports one error per list.
			for _, e := range elements(iter.Value()) {
				check(e.Validate(cue.Concrete(true)))
			}
		default:
			check(iter.Value().Validate(cue.Concrete(true)))
		}
	}
	var schemaErr error
	if conflict {
		v = raw.Unify(l.defs.Playbook)
		if schemaErr = v.Validate(); schemaErr != nil {
			l.ds.cue(schemaErr, pos, file)
		}
	}
	for _, err := range concreteErrs {
		l.missing(pkg, err, pos, file)
	}
	at := l.ds.declared(pos)
	pb = &Playbook{Name: name, File: l.ds.rel(at.Filename()), Line: at.Line(), Match: raw.LookupPath(l.sel("match"))}
	var meta struct {
		Title    string   `json:"title"`
		Owner    string   `json:"owner"`
		Severity string   `json:"severity"`
		GroupBy  []string `json:"group_by"`
		Cooldown string   `json:"cooldown"`
	}
	metaOK := true
	for _, f := range []struct {
		path string
		dst  any
	}{{"title", &meta.Title}, {"owner", &meta.Owner}, {"severity", &meta.Severity}, {"group_by", &meta.GroupBy}, {"cooldown", &meta.Cooldown}} {
		fv, rv := v.LookupPath(l.sel(f.path)), raw.LookupPath(l.sel(f.path))
		literal := !rv.Exists() || rv.Validate(cue.Concrete(true)) == nil
		if f.path == "title" && !literal {
			continue // a title may name the alert; render fills it in
		}
		if err := fv.Validate(cue.Concrete(true)); err != nil || !literal {
			if schemaErr == nil && rv.Exists() && !literal {
				l.ds.at(rv.Pos(), file, "%s.%s: must be a literal value, not computed from the alert", name, f.path)
			}
			metaOK = false
			continue
		}
		if err := decodeJSON(fv, f.dst); err != nil {
			l.ds.at(fv.Pos(), file, "%s.%s: %v", name, f.path, err)
			metaOK = false
		}
	}
	if !metaOK {
		cfg = nil // the policy cannot be checked without an owner
	}
	pb.Title, pb.Owner, pb.Severity, pb.GroupBy = meta.Title, meta.Owner, meta.Severity, meta.GroupBy
	if metaOK {
		cooldown, err := time.ParseDuration(meta.Cooldown)
		if err != nil {
			l.ds.at(v.LookupPath(l.sel("cooldown")).Pos(), file, "%s.cooldown: %v", name, err)
		}
		pb.Cooldown = cooldown
	}
	ownerPos := v.LookupPath(l.sel("owner")).Pos()
	if cfg != nil && pb.Owner != "" {
		if _, ok := cfg.Policy.Owners[pb.Owner]; !ok {
			l.ds.at(ownerPos, file, "%s.owner: owner %s has no policy in firebreak.cue", name, pb.Owner)
			cfg = nil // every step would repeat it
		}
	}
	names := map[string]token.Pos{}
	defer func() {
		if !metaOK || schemaErr != nil {
			pb = nil // reported; the engine gets only valid playbooks
		}
	}()
	for _, list := range []string{"steps", "on_failure"} {
		// The raw value: a schema error in one step must not hide the others.
		for i, sv := range elements(raw.LookupPath(l.sel(list))) {
			l.step(sv, fmt.Sprintf("%s.%s.%d", name, list, i), file, pb.Owner, cfg, names)
		}
	}
	return pb
}

// step checks one step: exactly one action, literal targets and channels,
// a unique name, and what the owner's policy allows.
func (l *loader) step(sv cue.Value, path, file, owner string, cfg *schema.Config, names map[string]token.Pos) {
	var present []string
	for _, a := range schema.Actions {
		if sv.LookupPath(cue.MakePath(cue.Str(a))).Exists() {
			present = append(present, a)
		}
	}
	if len(present) != 1 {
		what := "none"
		if len(present) > 1 {
			what = strings.Join(present, ", ")
		}
		l.ds.at(sv.Pos(), file, "%s: a step has exactly one action (%s); this one has %s", path, strings.Join(schema.Actions, ", "), what)
		return
	}
	action := present[0]
	av := sv.LookupPath(cue.MakePath(cue.Str(action)))
	if n := sv.LookupPath(l.sel("name")); n.Exists() {
		if s, err := n.String(); err == nil {
			if prev, dup := names[s]; dup {
				l.ds.at(n.Pos(), file, "%s.name: step name %q is already used at line %d", path, s, prev.Line())
			}
			names[s] = n.Pos()
		}
	}
	params := map[string]any{}
	iter, _ := av.Fields()
	for iter.Next() {
		key, fv := iter.Selector().Unquoted(), iter.Value()
		if fv.Validate(cue.Concrete(true)) != nil {
			if key == "target" || key == "channel" || key == "datasource" {
				l.ds.at(fv.Pos(), file, "%s.%s.%s: must be a literal name, not computed from the alert: the sandbox checks it before any alert arrives", path, action, key)
			}
			continue
		}
		var x any
		if err := decodeJSON(fv, &x); err == nil {
			params[key] = x
		}
	}
	oneOf := map[string][2]string{"scale": {"replicas", "factor"}, "verify": {"query", "url"}}
	if pair, ok := oneOf[action]; ok {
		a, b := av.LookupPath(l.sel(pair[0])).Exists(), av.LookupPath(l.sel(pair[1])).Exists()
		if a == b {
			l.ds.at(av.Pos(), file, "%s.%s: set exactly one of %s or %s", path, action, pair[0], pair[1])
		}
		if action == "verify" && a && !av.LookupPath(l.sel("datasource")).Exists() {
			l.ds.at(av.Pos(), file, "%s.verify: a query needs a datasource (a prometheus target)", path)
		}
	}
	if cfg == nil {
		return
	}
	for _, v := range actions.Check(cfg, owner, action, params) {
		pos := av.Pos()
		field := path + "." + action
		if v.Field != "" {
			pos = av.LookupPath(cue.MakePath(cue.Str(v.Field))).Pos()
			field += "." + v.Field
		}
		l.ds.at(pos, file, "%s: %s", field, v.Message)
	}
}

// isIncomplete reports whether a CUE error says a value is missing rather
// than wrong.
func isIncomplete(e cueerrors.Error) bool {
	msg := e.Error()
	return strings.Contains(msg, "incomplete value") || strings.Contains(msg, "non-concrete")
}

// missing reports the errors of a concrete pass that say a value is
// missing. With the probe alert filled in, any other error is the probe's
// doing, and real conflicts were already reported by the non-concrete pass.
// A field absent from the user's playbook is reported at its parent.
func (l *loader) missing(pkg cue.Value, err error, fallback token.Pos, file string) {
	for _, e := range cueerrors.Errors(err) {
		if !isIncomplete(e) {
			continue
		}
		path := e.Path()
		if pkg.LookupPath(makePath(path)).Exists() {
			l.ds.cue(e, fallback, file)
			continue
		}
		pos := fallback
		for i := len(path) - 1; i > 0; i-- {
			if p := pkg.LookupPath(makePath(path[:i])); p.Exists() {
				pos = p.Pos()
				break
			}
		}
		l.ds.at(pos, file, "%s: missing required field", strings.Join(path, "."))
	}
}

// makePath turns the path of a CUE error back into a cue.Path.
func makePath(elems []string) cue.Path {
	sels := make([]cue.Selector, len(elems))
	for i, e := range elems {
		if n, err := strconv.Atoi(e); err == nil {
			sels[i] = cue.Index(n)
		} else if u, err := strconv.Unquote(e); err == nil {
			sels[i] = cue.Str(u)
		} else {
			sels[i] = cue.Str(e)
		}
	}
	return cue.MakePath(sels...)
}

// elements returns the elements of list value v. Value.List fails as a
// whole when one element has an error; lookups by index do not.
func elements(v cue.Value) []cue.Value {
	var out []cue.Value
	for i := 0; ; i++ {
		e := v.LookupPath(cue.MakePath(cue.Index(i)))
		if !e.Exists() {
			return out
		}
		out = append(out, e)
	}
}

// sel returns the parsed path p. Parsing showed up in profiles of
// validating 1,000 playbooks, so paths are parsed once per load.
func (l *loader) sel(p string) cue.Path {
	if cp, ok := l.paths[p]; ok {
		return cp
	}
	if l.paths == nil {
		l.paths = map[string]cue.Path{}
	}
	cp := cue.ParsePath(p)
	l.paths[p] = cp
	return cp
}
