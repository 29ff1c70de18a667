// Package gitstep holds what every action that commits to a git target
// does before and after its own change: the kill switch and the policy
// check, opening the target's repository, the stamp that makes a re-run
// find its own commit, and redaction of what leaves the step.
package gitstep

import (
	"errors"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
)

// Guard refuses the step when the kill switch is on or the owner's policy
// does not allow it with these parameters. It runs at execution, whatever
// validation said.
func Guard(env *actions.Env, req *actions.Request) error {
	if env.Config.Policy.Paused {
		return actions.Refusef("policy.paused is set: firebreak changes nothing")
	}
	if v := actions.Check(env.Config, req.Owner, req.Step.Action, req.Step.Params); len(v) > 0 {
		errs := make([]error, len(v))
		for i := range v {
			errs[i] = v[i]
		}
		return actions.Refusef("%s", errors.Join(errs...))
	}
	return nil
}

// Refused marks a parameter error as a refusal, keeping one that already is.
func Refused(err error) error {
	if err == nil || errors.Is(err, actions.ErrRefused) {
		return err
	}
	return actions.Refusef("%v", err)
}

// Open opens the repository of the git target named target.
func Open(env *actions.Env, action, target string) (*gitrepo.Repo, error) {
	if env.Git == nil {
		return nil, errors.New(action + ": no git store")
	}
	remote, err := gitrepo.RemoteOf(env.Config, env.Secrets, target)
	if err != nil {
		return nil, err
	}
	return env.Git.Open(remote)
}

// Stamp names req's step in the trailers of the commit it makes.
func Stamp(req *actions.Request) gitrepo.Stamp {
	name := req.Step.Name
	if name == "" {
		name = req.Step.Action
	}
	return gitrepo.Stamp{Incident: req.Incident, Playbook: req.Playbook, Step: name}
}

// Redact removes secret values from err's message.
func Redact(env *actions.Env, err error) error {
	if env.Secrets == nil {
		return err
	}
	return env.Secrets.RedactError(err)
}

// Short abbreviates a commit hash for summaries.
func Short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
