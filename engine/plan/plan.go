// Package plan decides which playbooks an alert matches and renders their
// steps for it. It has no side effects.
package plan

import (
	"fmt"

	"cuelang.org/go/cue"

	"github.com/firebreak-dev/firebreak/engine/match"
	"github.com/firebreak-dev/firebreak/engine/render"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

// Planner plans alerts against one loaded, valid repository. It is safe
// for concurrent use.
type Planner struct {
	// playbooks are the repository's, without their match values: those
	// belong to the cue.Context the repository was loaded in, which the
	// planner has no use for and must not keep alive.
	playbooks []*repo.Playbook
	byName    map[string]*repo.Playbook
	index     *match.Index
	renderer  *render.Renderer
	// cueOnly renders with CUE alone, never from templates, for tests that
	// compare the two.
	cueOnly bool
}

// New builds the match index of r's playbooks. r must be valid.
func New(r *repo.Repo) (*Planner, error) {
	if !r.Valid() {
		return nil, fmt.Errorf("playbook repository has %d problem(s); run firebreak validate", len(r.Diagnostics))
	}
	ix := r.Index()
	if ix == nil {
		return nil, fmt.Errorf("playbook repository has no match index")
	}
	p := &Planner{byName: map[string]*repo.Playbook{}, index: ix, renderer: render.New(0)}
	for _, pb := range r.Playbooks {
		c := *pb
		c.Match = cue.Value{}
		p.playbooks = append(p.playbooks, &c)
		p.byName[c.Name] = &c
	}
	return p, nil
}

// Warm compiles every playbook's plan to Go ahead of the first alert, so
// that no Plan waits for a compile (see render.Renderer.Warm). A server
// calls it at startup; without it, each playbook is compiled in the
// background after its first render.
func (p *Planner) Warm() error {
	return p.renderer.Warm(p.playbooks)
}

// Compiled returns how many playbooks render from a template, without CUE.
func (p *Planner) Compiled() int {
	n := 0
	for _, pb := range p.playbooks {
		if p.renderer.Compiled(pb) {
			n++
		}
	}
	return n
}

// Result is the plan for one alert: SPEC section 4's JSON.
type Result struct {
	Alert   schema.Alert `json:"alert"`
	Matches []Match      `json:"matches"`
}

// Match is one matched playbook and its concrete steps.
type Match struct {
	Playbook  string            `json:"playbook"`
	File      string            `json:"file"`
	Group     map[string]string `json:"group"`
	Steps     []schema.Step     `json:"steps"`
	OnFailure []schema.Step     `json:"on_failure,omitempty"`
	// Error says why the steps could not be rendered for this alert (a
	// label the playbook reads is missing, say); Steps is then empty.
	Error string `json:"error,omitempty"`
}

// Plan returns the playbooks a matches, in declaration order, with their
// steps rendered for a.
func (p *Planner) Plan(a *schema.Alert) Result {
	res := Result{Alert: *a, Matches: []Match{}}
	for _, i := range p.index.Match(a) {
		pb := p.playbooks[i]
		m := Match{Playbook: pb.Name, File: pb.File, Group: Group(pb, a), Steps: []schema.Step{}}
		if rendered, err := p.render(pb, a); err != nil {
			m.Error = err.Error()
		} else {
			m.Steps, m.OnFailure = rendered.Steps, rendered.OnFailure
		}
		res.Matches = append(res.Matches, m)
	}
	return res
}

// Matches returns the names of the playbooks a matches, in order.
func (p *Planner) Matches(a *schema.Alert) []string {
	var names []string
	for _, i := range p.index.Match(a) {
		names = append(names, p.playbooks[i].Name)
	}
	return names
}

// Render renders one playbook by name for a, whether it matches or not.
func (p *Planner) Render(name string, a *schema.Alert) (*render.Plan, error) {
	if pb, ok := p.byName[name]; ok {
		return p.render(pb, a)
	}
	return nil, fmt.Errorf("no playbook %q", name)
}

func (p *Planner) render(pb *repo.Playbook, a *schema.Alert) (*render.Plan, error) {
	if p.cueOnly {
		return p.renderer.RenderCUE(pb, a)
	}
	return p.renderer.Render(pb, a)
}

// Group returns the labels of a that pb groups incidents by; a label the
// alert lacks groups as "".
func Group(pb *repo.Playbook, a *schema.Alert) map[string]string {
	g := make(map[string]string, len(pb.GroupBy))
	for _, l := range pb.GroupBy {
		g[l] = a.Labels[l]
	}
	return g
}
