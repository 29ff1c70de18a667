// Package scale is the scale action's git driver: it sets spec.replicas of
// one resource in a Kubernetes manifest in a git target, editing only the
// bytes of that number so comments, key order and the rest of the file stay
// as they were, and pushes the result as one commit naming the incident and
// the playbook.
//
// The policy's bounds are checked again against the replicas the manifest
// really holds at the head the commit is built on: max_replicas on the
// result, max_factor on the ratio to the current value.
package scale

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/gitstep"
	"github.com/firebreak-dev/firebreak/schema"
)

// Action is the scale action.
type Action struct{}

type params struct {
	Target   string   `json:"target"`
	Path     string   `json:"path"`
	Resource string   `json:"resource,omitempty"`
	Replicas *int     `json:"replicas,omitempty"`
	Factor   *float64 `json:"factor,omitempty"`
}

// Validate checks scale's parameters without I/O. A parameter absent at
// validate time (it depends on the alert) is not checked.
func (Action) Validate(raw map[string]any) error {
	_, err := decode(raw, false)
	return err
}

func decode(raw map[string]any, runtime bool) (params, error) {
	var p params
	if err := actions.DecodeParams(raw, &p); err != nil {
		return p, err
	}
	if runtime && (p.Target == "" || p.Path == "") {
		return p, errors.New("parameters: target and path are required")
	}
	if _, ok := raw["path"]; ok {
		clean, err := gitrepo.CleanPath(p.Path)
		if err != nil {
			return p, fmt.Errorf("%w: %w", actions.ErrRefused, err)
		}
		p.Path = clean
	}
	_, hasReplicas := raw["replicas"]
	_, hasFactor := raw["factor"]
	switch {
	case hasReplicas && hasFactor:
		return p, errors.New("parameters: replicas and factor exclude each other")
	case runtime && p.Replicas == nil && p.Factor == nil:
		return p, errors.New("parameters: one of replicas or factor is required")
	case p.Replicas != nil && *p.Replicas < 0:
		return p, fmt.Errorf("replicas: %d is negative", *p.Replicas)
	case p.Factor != nil && (*p.Factor <= 0 || math.IsInf(*p.Factor, 0) || math.IsNaN(*p.Factor)):
		return p, fmt.Errorf("factor: %g is not a positive number", *p.Factor)
	}
	if p.Resource != "" {
		kind, name, ok := strings.Cut(p.Resource, "/")
		if !ok || kind == "" || name == "" || strings.Contains(name, "/") {
			return p, fmt.Errorf("resource: %q is not Kind/name", p.Resource)
		}
	}
	return p, nil
}

// step is one rendered scale, checked against the sandbox.
type step struct {
	params
	// text redacts known secret values from what leaves the step.
	text   func(string) string
	repo   *gitrepo.Repo
	stamp  gitrepo.Stamp
	bounds *schema.ScalePolicy
	owner  string
	done   *gitrepo.Commit
	from   int
	to     int
	what   string
}

func prepare(env *actions.Env, req *actions.Request) (*step, error) {
	if err := gitstep.Guard(env, req); err != nil {
		return nil, err
	}
	p, err := decode(req.Step.Params, true)
	if err != nil {
		return nil, gitstep.Refused(err)
	}
	repo, err := gitstep.Open(env, "scale", p.Target)
	if err != nil {
		return nil, err
	}
	return &step{
		params: p, repo: repo, owner: req.Owner, text: gitrepo.Redactor(env.Config, env.Secrets),
		bounds: env.Config.Policy.Owners[req.Owner].Scale,
		stamp:  gitstep.Stamp(req),
	}, nil
}

// change makes the step's change in tx, or records that it is done.
func (s *step) change(tx *gitrepo.Tx) error {
	s.done = nil
	if c, ok, err := tx.Stamped(s.Path, s.stamp); err != nil {
		return err
	} else if ok {
		s.done = &c
		return nil
	}
	data, err := tx.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return actions.Refusef("manifest %s is not in %s", s.Path, s.Target)
	} else if err != nil {
		return err
	}
	r, err := locate(data, s.Resource)
	if err != nil {
		return actions.Refusef("manifest %s: %v", s.Path, err)
	}
	s.from, s.what = r.current, r.resource
	if s.Replicas != nil {
		s.to = *s.Replicas
	} else {
		// Round up, forgiving the float error of products like 10 × 0.3.
		s.to = int(math.Ceil(float64(r.current)**s.Factor - 1e-9))
	}
	if err := s.checkBounds(); err != nil {
		return err
	}
	if s.to == s.from {
		return nil
	}
	if err := tx.WriteFile(s.Path, r.set(data, s.to)); err != nil {
		return err
	}
	how := fmt.Sprintf("to %d", s.to)
	if s.Factor != nil {
		how = fmt.Sprintf("by a factor of %g", *s.Factor)
	}
	tx.SetMessage(s.text(s.stamp.Message(
		fmt.Sprintf("scale %s from %d to %d replicas", s.what, s.from, s.to),
		fmt.Sprintf("Scales %s in %s %s.", s.what, s.Path, how),
	)))
	return nil
}

// checkBounds holds the result to the owner's policy, against the value
// the manifest really holds.
func (s *step) checkBounds() error {
	if s.bounds == nil {
		return actions.Refusef("policy for %s does not allow scale", s.owner)
	}
	if m := s.bounds.MaxReplicas; m != nil && s.to > *m {
		return actions.Refusef("scaling %s from %d to %d replicas exceeds max_replicas %d of %s", s.what, s.from, s.to, *m, s.owner)
	}
	m := s.bounds.MaxFactor
	switch {
	case m == nil:
	case s.Factor != nil && *s.Factor > *m:
		return actions.Refusef("factor %g exceeds max_factor %g of %s", *s.Factor, *m, s.owner)
	case s.Factor == nil && s.from > 0 && float64(s.to)/float64(s.from) > *m+1e-9:
		// From zero replicas there is no ratio; max_replicas still holds.
		return actions.Refusef("scaling %s from %d to %d replicas is a factor of %.3g, beyond max_factor %g of %s",
			s.what, s.from, s.to, float64(s.to)/float64(s.from), *m, s.owner)
	}
	return nil
}

func (s *step) summary(verb string) string {
	return fmt.Sprintf("%s %s in %s:%s from %d to %d replicas", verb, s.what, s.Target, s.Path, s.from, s.to)
}

// Plan returns the diff the scale would push; it pushes nothing.
func (Action) Plan(ctx context.Context, env *actions.Env, req *actions.Request) (*actions.Outcome, error) {
	s, err := prepare(env, req)
	if err != nil {
		return nil, gitstep.Redact(env, err)
	}
	diff, err := s.repo.Preview(ctx, s.change)
	if err != nil {
		return nil, gitstep.Redact(env, err)
	}
	out := &actions.Outcome{Target: s.Target, Diff: diff, Changed: diff != ""}
	switch {
	case s.done != nil:
		out.Summary, out.Commit = "already done by "+gitstep.Short(s.done.Hash), s.done.Hash
	case diff == "":
		out.Summary = fmt.Sprintf("%s in %s:%s already has %d replicas", s.what, s.Target, s.Path, s.to)
	default:
		out.Summary = s.summary("would scale")
	}
	out.Summary, out.Diff = s.text(out.Summary), s.text(out.Diff)
	return out, nil
}

// Execute pushes the new replica count, or does nothing when the step is
// already done.
func (Action) Execute(ctx context.Context, env *actions.Env, req *actions.Request) (*actions.Outcome, error) {
	s, err := prepare(env, req)
	if err != nil {
		return nil, gitstep.Redact(env, err)
	}
	commit, changed, err := s.repo.Update(ctx, "", s.change)
	if err != nil {
		return nil, gitstep.Redact(env, err)
	}
	out := &actions.Outcome{Target: s.Target, Commit: commit, Changed: changed}
	switch {
	case s.done != nil:
		out.Summary, out.Commit = "already done by "+gitstep.Short(s.done.Hash), s.done.Hash
	case !changed:
		out.Summary = fmt.Sprintf("%s in %s:%s already has %d replicas", s.what, s.Target, s.Path, s.to)
	default:
		out.Summary = s.summary("scaled") + ": commit " + gitstep.Short(commit)
	}
	out.Summary, out.Diff = s.text(out.Summary), s.text(out.Diff)
	return out, nil
}
