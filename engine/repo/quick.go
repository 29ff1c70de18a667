package repo

import (
	"strings"
	"time"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/schema"
)

// quick checks a playbook as loader.playbook does, from validateQuick's
// one evaluation: the package with the probe alert's strings set to tok
// and the schema joined as quickSchemaFile has it. It never reports: it
// returns the playbook when playbook would report nothing and return the
// same, and nil otherwise, for playbook to say why.
//
// Under copiesAlert, a field of the evaluation that does not contain tok
// has the value it has without the probe, and one that contains it is not
// concrete without the probe; the match holds no string of the alert
// (validateGroup checks). So playbook's reading of the evaluation without
// the probe (raw) is, field for field: a field exists in raw when the user
// declares it, which for a step's fields and a parameter is when it exists
// here (the schema gives them no defaults), and raw's value is concrete
// exactly when this one is concrete and holds no tok.
//
// quick looks a step's fields up by the names the schema declares rather
// than iterating them: iteration orders fields, which costs more than the
// checks.
type quick struct {
	l   *loader
	tok string
	cfg *schema.Config
	// params are the parameters of each action, by the schema.
	params map[string][]cue.Path
}

func newQuick(l *loader, tok string, cfg *schema.Config) *quick {
	q := &quick{l: l, tok: tok, cfg: cfg, params: map[string][]cue.Path{}}
	// The fields a definition declares, optional ones too.
	fields := func(v cue.Value) (names []string, values map[string]cue.Value) {
		values = map[string]cue.Value{}
		iter, _ := v.Fields(cue.Optional(true))
		for iter.Next() {
			names = append(names, iter.Selector().Unquoted())
			values[iter.Selector().Unquoted()] = iter.Value()
		}
		return names, values
	}
	_, step := fields(l.defs.Step)
	for _, a := range schema.Actions {
		names, _ := fields(step[a])
		for _, p := range names {
			q.params[a] = append(q.params[a], cue.MakePath(cue.Str(p)))
		}
	}
	return q
}

func (q *quick) playbook(probed cue.Value, name string) *Playbook {
	l := q.l
	if !playbookName.MatchString(name) {
		return nil
	}
	v := probed.LookupPath(cue.MakePath(cue.Str(name)))
	// What playbook checks first: every field valid, the match against the
	// schema too (in matchCheck), and concrete but for the match. A field
	// the schema does not have is not valid. One validation reports all of
	// it; the match's constraints show in it as incomplete values.
	if err := v.Validate(cue.Concrete(true)); err != nil {
		for _, e := range cueerrors.Errors(err) {
			path := e.Path()
			if len(path) < 2 || (path[1] != "match" && path[1] != matchCheck) || !isIncomplete(e) {
				return nil
			}
		}
	}
	mv := v.LookupPath(l.sel("match"))
	var meta struct {
		Title, Owner, Severity, Cooldown string
		GroupBy                          []string
	}
	for _, f := range []struct {
		path string
		dst  *string
	}{{"title", &meta.Title}, {"owner", &meta.Owner}, {"severity", &meta.Severity}, {"cooldown", &meta.Cooldown}} {
		s, err := v.LookupPath(l.sel(f.path)).String()
		if err != nil {
			return nil
		}
		*f.dst = s
	}
	meta.GroupBy = []string{}
	for _, g := range elements(v.LookupPath(l.sel("group_by"))) {
		s, err := g.String()
		if err != nil || q.holds(s) {
			return nil // must be a literal
		}
		meta.GroupBy = append(meta.GroupBy, s)
	}
	if q.holds(meta.Owner) || q.holds(meta.Severity) || q.holds(meta.Cooldown) {
		return nil // must be a literal
	}
	if q.holds(meta.Title) {
		meta.Title = "" // a title may name the alert; render fills it in
	}
	cooldown, err := time.ParseDuration(meta.Cooldown)
	if err != nil {
		return nil
	}
	if q.cfg != nil && meta.Owner != "" {
		if _, ok := q.cfg.Policy.Owners[meta.Owner]; !ok {
			return nil
		}
	}
	names := map[string]bool{}
	for _, list := range []string{"steps", "on_failure"} {
		for _, sv := range elements(v.LookupPath(l.sel(list))) {
			if !q.step(sv, meta.Owner, names) {
				return nil
			}
		}
	}
	pos := l.ds.declared(v.Pos())
	return &Playbook{
		Name: name, File: l.ds.rel(pos.Filename()), Line: pos.Line(), Match: mv,
		Title: meta.Title, Owner: meta.Owner, Severity: meta.Severity, GroupBy: meta.GroupBy, Cooldown: cooldown,
	}
}

// step checks a step as loader.step does.
func (q *quick) step(sv cue.Value, owner string, names map[string]bool) bool {
	l := q.l
	var action string
	for _, a := range schema.Actions {
		if sv.LookupPath(l.sel(a)).Exists() {
			if action != "" {
				return false
			}
			action = a
		}
	}
	if action == "" {
		return false
	}
	if n := sv.LookupPath(l.sel("name")); n.Exists() {
		s, err := n.String()
		if err != nil {
			return false
		}
		if !q.holds(s) {
			if names[s] {
				return false
			}
			names[s] = true
		}
	}
	av := sv.LookupPath(l.sel(action))
	params := map[string]any{}
	has := map[string]bool{}
	for _, p := range q.params[action] {
		fv := av.LookupPath(p)
		if !fv.Exists() {
			continue
		}
		key := p.Selectors()[0].Unquoted()
		has[key] = true
		x, ok := scalar(fv)
		if !ok {
			if err := decodeJSON(fv, &x); err != nil {
				return false
			}
		}
		if q.holds(x) {
			if key == "target" || key == "channel" || key == "datasource" {
				return false // must be a literal name
			}
			continue
		}
		params[key] = x
	}
	oneOf := map[string][2]string{"scale": {"replicas", "factor"}, "verify": {"query", "url"}}
	if pair, ok := oneOf[action]; ok {
		a, b := has[pair[0]], has[pair[1]]
		if a == b {
			return false
		}
		if action == "verify" && a && !has["datasource"] {
			return false
		}
	}
	return q.cfg == nil || len(actions.Check(q.cfg, owner, action, params)) == 0
}

// scalar decodes a concrete string, number or bool as decodeJSON does,
// without the JSON.
func scalar(v cue.Value) (any, bool) {
	switch v.Kind() {
	case cue.StringKind:
		s, err := v.String()
		return s, err == nil
	case cue.IntKind:
		i, err := v.Int64()
		return float64(i), err == nil && i >= -1<<53 && i <= 1<<53
	case cue.FloatKind:
		f, err := v.Float64()
		return f, err == nil
	case cue.BoolKind:
		b, err := v.Bool()
		return b, err == nil
	}
	return nil, false
}

// holds reports whether a decoded value holds the token anywhere.
func (q *quick) holds(x any) bool {
	switch x := x.(type) {
	case string:
		return strings.Contains(x, q.tok)
	case map[string]any:
		for _, e := range x {
			if q.holds(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if q.holds(e) {
				return true
			}
		}
	}
	return false
}
