// Package playtest runs a repository's playbook tests: each test's alert
// must match exactly the expected playbooks, in order, and the plan of the
// first must unify with the expected steps.
package playtest

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"

	"cuelang.org/go/cue/errors"

	"github.com/firebreak-dev/firebreak/engine/plan"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

// Result is the outcome of one test.
type Result struct {
	Name     string   `json:"name"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Passed   bool     `json:"passed"`
	Failures []string `json:"failures,omitempty"`
}

// Run runs the tests whose name matches filter (all when nil), in order.
func Run(p *plan.Planner, r *repo.Repo, filter *regexp.Regexp) []Result {
	var out []Result
	for _, t := range r.Tests {
		if filter != nil && !filter.MatchString(t.Name) {
			continue
		}
		out = append(out, run(p, r, t))
	}
	return out
}

func run(p *plan.Planner, r *repo.Repo, t *repo.Test) Result {
	res := Result{Name: t.Name, File: t.File, Line: t.Line}
	got := p.Matches(&t.Alert)
	if !slices.Equal(got, t.Playbooks) {
		res.Failures = append(res.Failures, fmt.Sprintf("playbooks: want %s, got %s", list(t.Playbooks), list(got)))
	}
	if t.Steps.Exists() {
		if len(got) == 0 {
			res.Failures = append(res.Failures, "steps: expected a plan, but no playbook matches")
		} else if rendered, err := p.Render(got[0], &t.Alert); err != nil {
			res.Failures = append(res.Failures, "steps: "+err.Error())
		} else {
			res.Failures = append(res.Failures, compareSteps(r, t, rendered.Steps)...)
		}
	}
	res.Passed = len(res.Failures) == 0
	return res
}

// compareSteps unifies the plan, written back in playbook syntax, with the
// expectation; each conflict names the step and shows both values.
func compareSteps(r *repo.Repo, t *repo.Test, steps []schema.Step) []string {
	actual := make([]map[string]any, len(steps))
	for i, s := range steps {
		m := map[string]any{"name": s.Name, "approval": s.Approval, "continue_on_error": s.ContinueOnError, s.Action: s.Params}
		if s.Timeout != "" {
			m["timeout"] = s.Timeout
		}
		actual[i] = m
	}
	av := t.Steps.Context().Encode(actual)
	err := t.Steps.Unify(av).Validate()
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range errors.Errors(err) {
		msg := "steps: " + strings.Join(strings.Fields(strings.TrimSuffix(e.Error(), ":")), " ")
		if rel, ok := relPath(e.Path()); ok {
			want, got := t.Steps.LookupPath(rel), av.LookupPath(rel)
			if want.Exists() && got.Exists() {
				msg = fmt.Sprintf("steps%s: want %s, got %s", rel, oneLine(want), oneLine(got))
			}
		}
		if pos := expectPos(r, e); pos != "" {
			msg = pos + ": " + msg
		}
		out = append(out, msg)
	}
	return out
}

// relPath turns the path of an error inside tests.NAME.expect.steps into
// a path within the steps list.
func relPath(path []string) (cue.Path, bool) {
	for i := 0; i+1 < len(path); i++ {
		if path[i] == "expect" && path[i+1] == "steps" {
			var sels []cue.Selector
			for _, p := range path[i+2:] {
				if n, err := strconv.Atoi(p); err == nil {
					sels = append(sels, cue.Index(n))
				} else {
					sels = append(sels, cue.Str(p))
				}
			}
			return cue.MakePath(sels...), len(sels) > 0
		}
	}
	return cue.Path{}, false
}

func oneLine(v cue.Value) string {
	return strings.Join(strings.Fields(fmt.Sprint(v)), " ")
}

// expectPos is the position of the expectation that conflicts, relative
// to the repository.
func expectPos(r *repo.Repo, e errors.Error) string {
	for _, p := range e.InputPositions() {
		if p.IsValid() && strings.HasPrefix(p.Filename(), r.Dir) {
			rel := strings.TrimPrefix(strings.TrimPrefix(p.Filename(), r.Dir), "/")
			return fmt.Sprintf("%s:%d:%d", rel, p.Line(), p.Column())
		}
	}
	return ""
}

func list(names []string) string {
	if len(names) == 0 {
		return "[]"
	}
	return "[" + strings.Join(names, ", ") + "]"
}
