// Package flag is the flag action's flagd driver: in the flagd flag file
// of a flagd target (a file in a git target) it makes a variant the flag's
// defaultVariant and the flag ENABLED, editing only those values so the
// rest of the file keeps its bytes, and pushes the result as one commit
// naming the incident and the playbook.
//
// A flag key the file does not define and a variant the flag does not
// define are refused: flagd would otherwise serve an error, or the code
// default, for every evaluation.
package flag

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/gitstep"
)

// Action is the flag action.
type Action struct{}

type params struct {
	Target string `json:"target"`
	Key    string `json:"key"`
	To     string `json:"to"`
}

// Validate checks flag's parameters without I/O. A parameter absent at
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
	for _, f := range []struct{ name, value string }{{"target", p.Target}, {"key", p.Key}, {"to", p.To}} {
		if _, ok := raw[f.name]; (ok || runtime) && f.value == "" {
			return p, fmt.Errorf("parameters: %s is required and may not be empty", f.name)
		}
	}
	return p, nil
}

// step is one rendered flag change, checked against the sandbox.
type step struct {
	params
	// text redacts known secret values from what leaves the step.
	text  func(string) string
	file  string
	repo  *gitrepo.Repo
	stamp gitrepo.Stamp
	done  *gitrepo.Commit
}

func prepare(env *actions.Env, req *actions.Request) (*step, error) {
	if err := gitstep.Guard(env, req); err != nil {
		return nil, err
	}
	p, err := decode(req.Step.Params, true)
	if err != nil {
		return nil, gitstep.Refused(err)
	}
	t := env.Config.Targets[p.Target].Flagd
	if t == nil {
		return nil, actions.Refusef("target %q is not a flagd target", p.Target)
	}
	file, err := gitrepo.CleanPath(t.File)
	if err != nil {
		return nil, fmt.Errorf("%w: target %q: file: %w", actions.ErrRefused, p.Target, err)
	}
	repo, err := gitstep.Open(env, "flag", t.Repo)
	if err != nil {
		return nil, err
	}
	return &step{params: p, file: file, repo: repo, text: gitrepo.Redactor(env.Config, env.Secrets), stamp: gitstep.Stamp(req)}, nil
}

// change makes the step's change in tx, or records that it is done.
func (s *step) change(tx *gitrepo.Tx) error {
	s.done = nil
	if c, ok, err := tx.Stamped(s.file, s.stamp); err != nil {
		return err
	} else if ok {
		s.done = &c
		return nil
	}
	data, err := tx.ReadFile(s.file)
	if errors.Is(err, fs.ErrNotExist) {
		return actions.Refusef("flag file %s of target %q is not in its repository", s.file, s.Target)
	} else if err != nil {
		return err
	}
	out, changed, err := setDefault(data, s.Key, s.To)
	switch {
	case errors.Is(err, errNoFlag), errors.Is(err, errNoVariant):
		return actions.Refusef("flag file %s: %v", s.file, err)
	case err != nil:
		return fmt.Errorf("flag file %s: %w", s.file, err)
	case !changed:
		return nil
	}
	if err := tx.WriteFile(s.file, out); err != nil {
		return err
	}
	tx.SetMessage(s.text(s.stamp.Message(
		fmt.Sprintf("set flag %s to %s", s.Key, s.To),
		fmt.Sprintf("Makes %q the default variant of flag %q in %s, and the flag ENABLED.", s.To, s.Key, s.file),
	)))
	return nil
}

func (s *step) summary() string {
	return fmt.Sprintf("flag %s of %s serves %q", s.Key, s.Target, s.To)
}

// Plan returns the diff the flag change would push; it pushes nothing.
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
		out.Summary = "already: " + s.summary()
	default:
		out.Summary = "would make " + s.summary()
	}
	out.Summary, out.Diff = s.text(out.Summary), s.text(out.Diff)
	return out, nil
}

// Execute pushes the flag change, or does nothing when it is in place.
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
		out.Summary = "already: " + s.summary()
	default:
		out.Summary = s.summary() + ": commit " + gitstep.Short(commit)
	}
	out.Summary, out.Diff = s.text(out.Summary), s.text(out.Diff)
	return out, nil
}
