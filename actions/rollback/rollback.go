// Package rollback is the rollback action's git driver: in a git target it
// reverts the newest commit that touched a path, or restores the path to a
// named revision, and pushes the result as one commit naming the incident
// and the playbook.
//
// A revert applies only while the files it restores are as the reverted
// commit left them; when someone changed them since (seen on a push that
// lost a race), the step is refused and nothing is pushed. A re-run finds
// its own commit by the trailers of its message and changes nothing.
package rollback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/gitstep"
)

// Action is the rollback action.
type Action struct{}

type params struct {
	Target string `json:"target"`
	Path   string `json:"path"`
	To     string `json:"to,omitempty"`
}

// Validate checks rollback's parameters without I/O. A parameter absent
// at validate time (it depends on the alert) is not checked.
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
	if strings.HasPrefix(p.To, "-") || strings.ContainsAny(p.To, " \n\t") {
		return p, fmt.Errorf("to: %q is not a revision", p.To)
	}
	return p, nil
}

// step is one rendered rollback, checked against the sandbox.
type step struct {
	params
	// text redacts known secret values from what leaves the step.
	text  func(string) string
	repo  *gitrepo.Repo
	stamp gitrepo.Stamp
	// reverting is the commit the step undoes, chosen on the first look
	// and kept when a lost push race makes Update look again.
	reverting *gitrepo.Commit
	// done is this step's own earlier commit, when it is on the remote.
	done *gitrepo.Commit
	// verb, past and what say what the step does: "revert", "reverted",
	// "X under Y in Z".
	verb, past, what string
	summary          string
}

func prepare(env *actions.Env, req *actions.Request) (*step, error) {
	if err := gitstep.Guard(env, req); err != nil {
		return nil, err
	}
	p, err := decode(req.Step.Params, true)
	if err != nil {
		return nil, gitstep.Refused(err)
	}
	repo, err := gitstep.Open(env, "rollback", p.Target)
	if err != nil {
		return nil, err
	}
	return &step{params: p, repo: repo, text: gitrepo.Redactor(env.Config, env.Secrets), stamp: gitstep.Stamp(req)}, nil
}

// change makes the step's change in tx, or records that it is done.
func (s *step) change(tx *gitrepo.Tx) error {
	s.done = nil
	if c, ok, err := tx.Stamped(s.Path, s.stamp); err != nil {
		return err
	} else if ok {
		s.done = &c
		s.summary = fmt.Sprintf("already done by %s (%s)", gitstep.Short(c.Hash), c.Subject())
		return nil
	}
	if s.To != "" {
		return s.restore(tx)
	}
	return s.revert(tx)
}

func (s *step) restore(tx *gitrepo.Tx) error {
	to, err := tx.Resolve(s.To)
	if err != nil {
		return fmt.Errorf("%w: %w", actions.ErrRefused, err)
	}
	if err := tx.Restore(to, s.Path); err != nil {
		return err
	}
	s.verb, s.past, s.what = "restore", "restored", fmt.Sprintf("%s in %s to %s", s.Path, s.Target, gitstep.Short(to))
	tx.SetMessage(s.text(s.stamp.Message(
		fmt.Sprintf("restore %s to %s", s.Path, gitstep.Short(to)),
		fmt.Sprintf("Restores %s to revision %s (asked for %q).", s.Path, to, s.To),
	)))
	return nil
}

func (s *step) revert(tx *gitrepo.Tx) error {
	if s.reverting == nil {
		cs, err := tx.Commits(s.Path, 1)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return actions.Refusef("no commit on branch touched %s: nothing to revert", s.Path)
		}
		if len(cs[0].Parents) == 0 {
			return actions.Refusef("the newest commit touching %s is %s, the first of the branch: nothing to revert to", s.Path, gitstep.Short(cs[0].Hash))
		}
		s.reverting = &cs[0]
	}
	c := s.reverting
	parent := c.Parents[0]
	files, err := tx.Changed(parent, c.Hash, s.Path)
	if err != nil {
		return err
	}
	var moved []string
	for _, f := range files {
		same, err := unchangedSince(tx, c.Hash, f)
		if err != nil {
			return err
		}
		if !same {
			moved = append(moved, f)
		}
	}
	if len(moved) > 0 {
		return actions.Refusef("revert of %s does not apply: %s changed since; nothing pushed",
			gitstep.Short(c.Hash), strings.Join(moved, ", "))
	}
	for _, f := range files {
		if err := tx.Restore(parent, f); err != nil {
			return err
		}
	}
	s.verb, s.past, s.what = "revert", "reverted", fmt.Sprintf("%s (%s) under %s in %s", gitstep.Short(c.Hash), c.Subject(), s.Path, s.Target)
	tx.SetMessage(s.text(s.stamp.Message(
		fmt.Sprintf("revert %s under %s", gitstep.Short(c.Hash), s.Path),
		fmt.Sprintf("Reverts %s (%q) under %s.", c.Hash, c.Subject(), s.Path),
	)))
	return nil
}

// unchangedSince reports whether file f is now as commit rev left it.
func unchangedSince(tx *gitrepo.Tx, rev, f string) (bool, error) {
	then, errThen := tx.FileAt(rev, f)
	now, errNow := tx.ReadFile(f)
	for _, err := range []error{errThen, errNow} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	return (errThen == nil) == (errNow == nil) && bytes.Equal(then, now), nil
}

// Plan returns the diff the rollback would push; it pushes nothing.
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
		out.Summary, out.Commit = s.summary, s.done.Hash
	case diff == "":
		out.Summary = fmt.Sprintf("%s in %s is already as the rollback would leave it", s.Path, s.Target)
	default:
		out.Summary = "would " + s.verb + " " + s.what
	}
	out.Summary, out.Diff = s.text(out.Summary), s.text(out.Diff)
	return out, nil
}

// Execute pushes the rollback, or does nothing when it is already done.
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
		out.Summary, out.Commit = s.summary, s.done.Hash
	case !changed:
		out.Summary = fmt.Sprintf("%s in %s is already as the rollback would leave it", s.Path, s.Target)
	default:
		out.Summary = s.past + " " + s.what + ": commit " + gitstep.Short(commit)
	}
	out.Summary, out.Diff = s.text(out.Summary), s.text(out.Diff)
	return out, nil
}
