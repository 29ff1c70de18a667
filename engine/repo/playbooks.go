package repo

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/engine/match"
	"github.com/firebreak-dev/firebreak/schema"
)

var checkConfig = actions.CheckConfig

func jsonUnmarshal(data []byte, dst any) error { return json.Unmarshal(data, dst) }

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
	// An error in one playbook poisons the package value, so each playbook
	// is checked on its own and the package error is reported only when no
	// playbook explains it.
	pkg := l.ctx.BuildInstance(inst)
	before := len(l.ds.list)
	defer func() {
		if err := pkg.Err(); err != nil && len(l.ds.list) == before {
			l.ds.cue(err, token.NoPos, PlaybooksDir)
		}
	}()
	var out []*Playbook
	for _, name := range units.names {
		unit := units.unit(name)
		if pb := l.playbook(pkg, name, unit, cfg); pb != nil {
			pb.Unit = unit
			out = append(out, pb)
		}
	}
	// Regular expressions are compiled where matching compiles them, so
	// validate and the engine can never disagree on one.
	entries := make([]match.Entry, len(out))
	for i, pb := range out {
		entries[i] = match.Entry{Name: pb.Name, Match: pb.Match}
	}
	if _, err := match.Compile(entries); err != nil {
		l.ds.cue(err, token.NoPos, PlaybooksDir)
	}
	return out
}

// playbook validates one playbook and decodes what the engine needs of it.
func (l *loader) playbook(pkg cue.Value, name string, unit *Unit, cfg *schema.Config) (pb *Playbook) {
	raw := pkg.LookupPath(cue.MakePath(cue.Str(name)))
	pos := raw.Pos()
	file := l.ds.rel(pos.Filename())
	if !playbookName.MatchString(name) {
		l.ds.at(pos, file, "playbook name %q: use letters, digits and _ and start with a letter", name)
		return nil
	}
	// Schema errors do not stop the checks below: every problem of the
	// playbook is reported in one run.
	v := raw.Unify(l.defs.Playbook)
	schemaErr := v.Validate()
	if schemaErr != nil {
		l.ds.cue(schemaErr, pos, file)
	}
	// Concrete validation finds missing required fields; values computed
	// from the alert are filled with a probe so they do not count as missing.
	// The probe fills the playbook's unit, not the package: filling the
	// package re-evaluates every playbook in it, for each playbook.
	probe := l.ctx.Encode(probeAlert(unit))
	probed := l.ctx.BuildInstance(unit.Instance()).FillPath(cue.MakePath(cue.Str(AlertName)), probe).LookupPath(cue.MakePath(cue.Str(name))).Unify(l.defs.Playbook)
	iter, _ := probed.Fields()
	for iter.Next() {
		switch iter.Selector().Unquoted() {
		case "match":
			continue // a constraint on alerts, not a value
		case "steps", "on_failure":
			// Element by element: CUE reports one error per list.
			for _, e := range elements(iter.Value()) {
				if err := e.Validate(cue.Concrete(true)); err != nil {
					l.missing(pkg, err, pos, file)
				}
			}
		default:
			if err := iter.Value().Validate(cue.Concrete(true)); err != nil {
				l.missing(pkg, err, pos, file)
			}
		}
	}
	pb = &Playbook{Name: name, File: file, Line: pos.Line(), Match: raw.LookupPath(cue.ParsePath("match"))}
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
		fv := v.LookupPath(cue.ParsePath(f.path))
		if f.path == "title" && fv.Validate() == nil && fv.Validate(cue.Concrete(true)) != nil {
			continue // a title may name the alert; render fills it in
		}
		if err := fv.Validate(cue.Concrete(true)); err != nil {
			if schemaErr == nil && fv.Exists() {
				l.ds.at(fv.Pos(), file, "%s.%s: must be a literal value, not computed from the alert", name, f.path)
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
			l.ds.at(v.LookupPath(cue.ParsePath("cooldown")).Pos(), file, "%s.cooldown: %v", name, err)
		}
		pb.Cooldown = cooldown
	}
	ownerPos := v.LookupPath(cue.ParsePath("owner")).Pos()
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
		for i, sv := range elements(raw.LookupPath(cue.ParsePath(list))) {
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
	if n := sv.LookupPath(cue.ParsePath("name")); n.Exists() {
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
		a, b := av.LookupPath(cue.ParsePath(pair[0])).Exists(), av.LookupPath(cue.ParsePath(pair[1])).Exists()
		if a == b {
			l.ds.at(av.Pos(), file, "%s.%s: set exactly one of %s or %s", path, action, pair[0], pair[1])
		}
		if action == "verify" && a && !av.LookupPath(cue.ParsePath("datasource")).Exists() {
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

// missing reports the errors of a concrete pass that say a value is
// missing. With the probe alert filled in, any other error is the probe's
// doing, and real conflicts were already reported by the non-concrete pass.
// A field absent from the user's playbook is reported at its parent.
func (l *loader) missing(pkg cue.Value, err error, fallback token.Pos, file string) {
	for _, e := range cueerrors.Errors(err) {
		if msg := e.Error(); !strings.Contains(msg, "incomplete value") && !strings.Contains(msg, "non-concrete") {
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
