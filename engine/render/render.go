// Package render turns a matched playbook and an alert into concrete,
// typed steps: what evaluating the playbook's CUE with the alert bound to
// `alert` gives. Playbooks whose steps only copy the alert's strings are
// compiled to templates that give exactly that without CUE (template.go);
// the others, and alerts a template cannot take, are evaluated.
package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"

	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

// DefaultMaxUses is how many renders one cue.Context serves before it is
// dropped. A cue.Context keeps everything it ever evaluated, so a server
// that plans for months must not keep one; rebuilding costs one schema
// compile plus one unit compile per playbook used, amortized over this
// many renders.
const DefaultMaxUses = 2000

// Renderer renders playbooks. It is safe for concurrent use: templates
// are immutable once compiled, and for CUE it keeps one generation per
// CPU, each render holding one generation exclusively.
type Renderer struct {
	maxUses int
	pool    chan *generation
	built   atomic.Int64 // generations built, for tests
	// templates maps a *repo.Playbook to its *template, to a nil one when
	// only CUE can render it (see template.go), or to queued while it waits
	// to be compiled.
	templates sync.Map

	mu        sync.Mutex
	queue     []*repo.Playbook
	compiling bool // a goroutine is compiling the queue
}

// queued marks a playbook whose template is being compiled.
var queued = &template{}

// generation is a cue.Context with what was compiled in it.
type generation struct {
	ctx   *cue.Context
	defs  *schema.Defs
	units map[*repo.Unit]cue.Value
	uses  int
	// checked holds the constraints compile checked against CUE, by
	// their syntax.
	checked map[string]checkedConstraint
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

// Render evaluates pb's steps and on_failure with a bound to alert: from
// pb's template when it has one and a has what it reads, else with CUE.
// The first time, it queues pb's template to be compiled off the request
// path (see Warm to have them all ready).
func (r *Renderer) Render(pb *repo.Playbook, a *schema.Alert) (*Plan, error) {
	if t := r.template(pb); t != nil {
		if p, ok := t.instantiate(a); ok {
			return p, nil
		}
	} else {
		r.schedule(pb)
	}
	return r.RenderCUE(pb, a)
}

// template returns pb's template, or nil while it has none.
func (r *Renderer) template(pb *repo.Playbook) *template {
	if t, ok := r.templates.Load(pb); ok && t.(*template) != queued {
		return t.(*template)
	}
	return nil
}

// schedule queues pb's template to be compiled off the request path, by
// a goroutine in a cue.Context of its own that ends with the queue.
func (r *Renderer) schedule(pb *repo.Playbook) {
	if _, decided := r.templates.LoadOrStore(pb, queued); decided {
		return
	}
	r.mu.Lock()
	r.queue = append(r.queue, pb)
	start := !r.compiling
	r.compiling = true
	r.mu.Unlock()
	if start {
		go r.compileQueue()
	}
}

func (r *Renderer) compileQueue() {
	var g *generation
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.compiling = false
			r.mu.Unlock()
			return
		}
		pb := r.queue[0]
		r.queue = r.queue[1:]
		r.mu.Unlock()
		if g == nil || g.uses >= r.maxUses {
			var err error
			if g, err = newGeneration(); err != nil {
				r.templates.Store(pb, (*template)(nil))
				continue
			}
		}
		g.uses++
		r.templates.Store(pb, g.compile(pb))
	}
}

// RenderCUE renders pb with CUE alone, never from a template: what
// templates are checked against.
func (r *Renderer) RenderCUE(pb *repo.Playbook, a *schema.Alert) (*Plan, error) {
	return r.withGeneration(func(g *generation) (*Plan, error) { return g.render(pb, a) })
}

// Compiled reports whether pb renders from a template.
func (r *Renderer) Compiled(pb *repo.Playbook) bool {
	return r.template(pb) != nil
}

// Warm compiles the templates of pbs ahead of their first render, on one
// goroutine per CPU, each in a cue.Context of its own that is dropped
// afterwards: a server calls it at startup so that no alert waits for a
// compile.
func (r *Renderer) Warm(pbs []*repo.Playbook) error {
	var next atomic.Int64
	workers := min(cap(r.pool), len(pbs))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var g *generation
			for {
				i := int(next.Add(1)) - 1
				if i >= len(pbs) {
					return
				}
				pb := pbs[i]
				if t, done := r.templates.Load(pb); done && t.(*template) != queued {
					continue
				}
				if g == nil || g.uses >= r.maxUses {
					var err error
					if g, err = newGeneration(); err != nil {
						errs[w] = err
						return
					}
				}
				g.uses++
				r.templates.Store(pb, g.compile(pb))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Renderer) withGeneration(f func(*generation) (*Plan, error)) (*Plan, error) {
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
	return f(g)
}

func newGeneration() (*generation, error) {
	ctx := cuecontext.New()
	defs, err := schema.Compile(ctx)
	if err != nil {
		return nil, err
	}
	return &generation{ctx: ctx, defs: defs, units: map[*repo.Unit]cue.Value{}, checked: map[string]checkedConstraint{}}, nil
}

// unit returns pb's unit built in g.
func (g *generation) unit(pb *repo.Playbook) (cue.Value, error) {
	u, ok := g.units[pb.Unit]
	if !ok {
		u = g.ctx.BuildInstance(pb.Unit.Instance())
		g.units[pb.Unit] = u
	}
	if err := u.Err(); err != nil {
		return u, fmt.Errorf("playbook %s: %w", pb.Name, oneLine(err))
	}
	return u, nil
}

func (g *generation) render(pb *repo.Playbook, a *schema.Alert) (*Plan, error) {
	u, err := g.unit(pb)
	if err != nil {
		return nil, err
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
	for _, e := range cueerrors.Errors(err) {
		parts = append(parts, strings.Join(strings.Fields(strings.TrimSuffix(e.Error(), ":")), " "))
	}
	if len(parts) == 0 {
		return err
	}
	return fmt.Errorf("%s", strings.Join(parts, "; "))
}
