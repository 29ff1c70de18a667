// Package render turns a matched playbook and an alert into concrete,
// typed steps by evaluating the playbook's CUE with the alert bound to
// `alert`.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"

	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

// DefaultMaxUses is how many renders one cue.Context serves before it is
// dropped. A cue.Context keeps everything it ever evaluated, so a server
// that plans for months must not keep one; rebuilding costs one schema
// compile plus one unit compile per playbook used, amortized over this
// many renders.
const DefaultMaxUses = 2000

// Renderer renders playbooks. It is safe for concurrent use: it keeps one
// generation per CPU and each render holds one generation exclusively.
type Renderer struct {
	maxUses int
	pool    chan *generation
	built   atomic.Int64 // generations built, for tests
}

// generation is a cue.Context with what was compiled in it.
type generation struct {
	ctx   *cue.Context
	defs  *schema.Defs
	units map[*repo.Unit]cue.Value
	uses  int
}

// New returns a Renderer; maxUses <= 0 means DefaultMaxUses.
func New(maxUses int) *Renderer {
	if maxUses <= 0 {
		maxUses = DefaultMaxUses
	}
	n := runtime.GOMAXPROCS(0)
	r := &Renderer{maxUses: maxUses, pool: make(chan *generation, n)}
	for range n {
		r.pool <- nil // built on first use
	}
	return r
}

// Plan is a playbook's steps rendered for one alert.
type Plan struct {
	Title     string
	Steps     []schema.Step
	OnFailure []schema.Step
}

var (
	alertPath     = cue.MakePath(cue.Str(repo.AlertName))
	stepsPath     = cue.ParsePath("steps")
	onFailurePath = cue.ParsePath("on_failure")
	titlePath     = cue.ParsePath("title")
)

// Render evaluates pb's steps and on_failure with a bound to alert.
func (r *Renderer) Render(pb *repo.Playbook, a *schema.Alert) (*Plan, error) {
	g := <-r.pool
	defer func() { r.pool <- g }()
	if g == nil || g.uses >= r.maxUses {
		var err error
		if g, err = newGeneration(); err != nil {
			return nil, err
		}
		r.built.Add(1)
	}
	g.uses++
	return g.render(pb, a)
}

func newGeneration() (*generation, error) {
	ctx := cuecontext.New()
	defs, err := schema.Compile(ctx)
	if err != nil {
		return nil, err
	}
	return &generation{ctx: ctx, defs: defs, units: map[*repo.Unit]cue.Value{}}, nil
}

func (g *generation) render(pb *repo.Playbook, a *schema.Alert) (*Plan, error) {
	u, ok := g.units[pb.Unit]
	if !ok {
		u = g.ctx.BuildInstance(pb.Unit.Instance())
		g.units[pb.Unit] = u
	}
	if err := u.Err(); err != nil {
		return nil, fmt.Errorf("playbook %s: %w", pb.Name, oneLine(err))
	}
	v := u.FillPath(alertPath, g.ctx.Encode(a.Data())).LookupPath(cue.MakePath(cue.Str(pb.Name)))
	steps, err := g.steps(v.LookupPath(stepsPath))
	if err != nil {
		return nil, fmt.Errorf("playbook %s: %w", pb.Name, err)
	}
	var onFailure []schema.Step
	if of := v.LookupPath(onFailurePath); of.Exists() {
		if onFailure, err = g.steps(of); err != nil {
			return nil, fmt.Errorf("playbook %s: %w", pb.Name, err)
		}
	}
	nameSteps(steps, onFailure)
	title, err := v.LookupPath(titlePath).String()
	if err != nil {
		return nil, fmt.Errorf("playbook %s: title: %w", pb.Name, oneLine(err))
	}
	return &Plan{Title: title, Steps: steps, OnFailure: onFailure}, nil
}

// steps validates a rendered list against the schema and decodes it.
func (g *generation) steps(v cue.Value) ([]schema.Step, error) {
	v = v.Unify(g.defs.Steps)
	if err := v.Validate(cue.Concrete(true)); err != nil {
		return nil, oneLine(err)
	}
	data, err := v.MarshalJSON()
	if err != nil {
		return nil, oneLine(err)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	out := make([]schema.Step, 0, len(raw))
	for i, m := range raw {
		s, err := decodeStep(m)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// decodeStep splits a step into its options and its one action.
func decodeStep(m map[string]json.RawMessage) (schema.Step, error) {
	var s schema.Step
	for _, a := range schema.Actions {
		raw, ok := m[a]
		if !ok {
			continue
		}
		if s.Action != "" {
			return s, fmt.Errorf("has two actions, %s and %s", s.Action, a)
		}
		s.Action = a
		params, err := decodeParams(raw)
		if err != nil {
			return s, err
		}
		s.Params = params
	}
	if s.Action == "" {
		return s, fmt.Errorf("has no action (want one of %s)", strings.Join(schema.Actions, ", "))
	}
	opts := struct {
		Name            string `json:"name"`
		Approval        string `json:"approval"`
		Timeout         string `json:"timeout"`
		ContinueOnError bool   `json:"continue_on_error"`
	}{}
	whole, _ := json.Marshal(m)
	if err := json.Unmarshal(whole, &opts); err != nil {
		return s, err
	}
	s.Name, s.Approval, s.Timeout, s.ContinueOnError = opts.Name, opts.Approval, opts.Timeout, opts.ContinueOnError
	return s, nil
}

// decodeParams decodes action parameters keeping integers integers: CUE
// tells int from float, and a test's `replicas: 12` must unify with the
// plan's.
func decodeParams(raw json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	for k, v := range m {
		m[k] = numbers(v)
	}
	return m, nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// nameSteps gives unnamed steps a name: the action, numbered when the
// list has the action more than once, and prefixed with "on_failure-" in
// on_failure, so that every step of a playbook has a name unique within it
// for `/approve NAME`.
func nameSteps(steps, onFailure []schema.Step) {
	name := func(list []schema.Step, prefix string) {
		count, seen := map[string]int{}, map[string]int{}
		for _, s := range list {
			count[s.Action]++
		}
		for i := range list {
			a := list[i].Action
			seen[a]++
			switch {
			case list[i].Name != "":
			case count[a] == 1:
				list[i].Name = prefix + a
			default:
				list[i].Name = fmt.Sprintf("%s%s-%d", prefix, a, seen[a])
			}
		}
	}
	name(steps, "")
	name(onFailure, "on_failure-")
}

// oneLine folds a CUE error list into one line: errors reach logs and
// one-line CLI messages.
func oneLine(err error) error {
	var parts []string
	for _, e := range errors.Errors(err) {
		parts = append(parts, strings.Join(strings.Fields(strings.TrimSuffix(e.Error(), ":")), " "))
	}
	if len(parts) == 0 {
		return err
	}
	return fmt.Errorf("%s", strings.Join(parts, "; "))
}
