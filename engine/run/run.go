// Package run executes a playbook's rendered steps through the action
// library, inside the sandbox: the policy re-checked on the rendered
// values, a timeout per step and a deadline per run, the kill switch,
// approvals, continue_on_error and on_failure.
package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/schema"
)

// Step statuses.
const (
	Succeeded = "succeeded"
	Failed    = "failed"
	Refused   = "refused" // the sandbox said no; nothing changed
	Skipped   = "skipped" // not run: paused policy, or an earlier failure
	Waiting   = "waiting" // needs approval
	Denied    = "denied"  // approval refused; nothing changed
	Planned   = "planned" // dry run
	// Pending and Running are never returned by Run; they are what an
	// incident record holds for a step not started yet, and for one
	// started but not recorded finished (see Request.Progress).
	Pending = "pending"
	Running = "running"
)

// Run statuses.
const (
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunWaiting   = "waiting" // stopped at a step that needs approval
	RunDenied    = "denied"  // stopped at a step whose approval was refused
	RunPlanned   = "planned"
	// RunStopped: Progress refused to record a step, which was not run.
	RunStopped = "stopped"
)

// Runner runs steps. Its zero value is not usable: Env and Actions are
// required.
type Runner struct {
	Env *actions.Env
	// Actions is the registry: an action kind not in it is refused.
	Actions map[string]actions.Action
	DryRun  bool
	Log     *slog.Logger
}

// Request is one playbook run for one incident.
type Request struct {
	Incident  string
	Playbook  string
	Owner     string
	Steps     []schema.Step
	OnFailure []schema.Step
	// Approved names the steps that may run although they need approval.
	Approved map[string]bool
	// Denied names the steps whose approval was refused: the run stops
	// there, without on_failure (a person decided; nothing failed).
	Denied map[string]bool
	// Done holds steps finished in an earlier run of this incident, by
	// name; they are not run again.
	Done map[string]StepResult
	// Running names the steps the record already says are running (the
	// change that opened the incident said so, or a crash interrupted
	// them): they run without being reported running again.
	Running map[string]bool
	// Progress, when set, is told of each step about to run (status
	// Running) and of each step finished, before the run goes on: the
	// incident record is written there. An error for a step about to run
	// stops the run before the step, which is then reported Skipped with
	// the error; an error for a finished step stops the run after it.
	Progress func(StepResult) error
}

// StepResult is what happened to one step.
type StepResult struct {
	Name     string           `json:"name"`
	Action   string           `json:"action"`
	Target   string           `json:"target,omitempty"`
	Status   string           `json:"status"`
	Outcome  *actions.Outcome `json:"outcome,omitempty"`
	Error    string           `json:"error,omitempty"`
	Started  time.Time        `json:"started,omitzero"`
	Finished time.Time        `json:"finished,omitzero"`
}

// Result is the outcome of a run.
type Result struct {
	Status    string       `json:"status"`
	Steps     []StepResult `json:"steps"`
	OnFailure []StepResult `json:"on_failure,omitempty"`
}

// Run executes req's steps in order and, when one fails, its on_failure
// steps. It never panics on a misbehaving action and never returns early
// without a result for every step.
func (r *Runner) Run(ctx context.Context, req *Request) *Result {
	limits := r.Env.Config.Policy.Limits
	ctx, cancel := context.WithTimeout(ctx, duration(limits.RunTimeout, 30*time.Minute))
	defer cancel()

	res := &Result{Status: RunSucceeded}
	if r.DryRun {
		res.Status = RunPlanned
	}
	failed := false
	for _, s := range req.Steps {
		if failed || res.Status != RunSucceeded && res.Status != RunPlanned {
			res.Steps = append(res.Steps, StepResult{Name: s.Name, Action: s.Action, Target: target(s), Status: Skipped})
			continue
		}
		if done, ok := req.Done[s.Name]; ok && done.Status == Succeeded {
			res.Steps = append(res.Steps, done)
			continue
		}
		sr, ok := r.recorded(ctx, req, s)
		res.Steps = append(res.Steps, sr)
		if !ok {
			res.Status = RunStopped
			continue
		}
		switch sr.Status {
		case Waiting:
			res.Status = RunWaiting
		case Denied:
			res.Status = RunDenied
		case Failed, Refused:
			if !s.ContinueOnError {
				failed = true
			}
		}
	}
	if failed {
		res.Status = RunFailed
		for _, s := range req.OnFailure {
			if done, ok := req.Done[s.Name]; ok && done.Status == Succeeded {
				res.OnFailure = append(res.OnFailure, done)
				continue
			}
			sr, ok := r.recorded(ctx, req, s)
			res.OnFailure = append(res.OnFailure, sr)
			if !ok {
				break
			}
		}
	}
	return res
}

// recorded runs one step between the two Progress reports; ok is false
// when a report failed and the run must stop.
func (r *Runner) recorded(ctx context.Context, req *Request, s schema.Step) (StepResult, bool) {
	if req.Progress == nil || r.DryRun {
		return r.step(ctx, req, s), true
	}
	if s.Approval == "required" && !req.Approved[s.Name] {
		// It waits or is denied: nothing runs, so nothing can be left
		// half done; only the outcome is reported.
		sr := r.step(ctx, req, s)
		return sr, req.Progress(sr) == nil
	}
	start := StepResult{Name: s.Name, Action: s.Action, Target: target(s), Status: Running, Started: r.now()}
	// A step the record says is running already is not reported again.
	if !req.Running[s.Name] {
		if err := req.Progress(start); err != nil {
			start.Status, start.Error = Skipped, "not run: "+r.Env.Secrets.RedactError(err).Error()
			start.Started = time.Time{}
			return start, false
		}
	}
	sr := r.step(ctx, req, s)
	if err := req.Progress(sr); err != nil {
		r.log().Error("step finished but not recorded; it runs again when the incident resumes",
			"incident", req.Incident, "step", s.Name, "error", r.Env.Secrets.RedactError(err).Error())
		return sr, false
	}
	return sr, true
}

// step runs one step inside the sandbox.
func (r *Runner) step(ctx context.Context, req *Request, s schema.Step) StepResult {
	sr := StepResult{Name: s.Name, Action: s.Action, Target: target(s), Started: r.now()}
	log := r.log().With("incident", req.Incident, "playbook", req.Playbook, "step", s.Name, "action", s.Action)
	finish := func(status string, out *actions.Outcome, err error) StepResult {
		sr.Status, sr.Outcome, sr.Finished = status, out, r.now()
		if err != nil {
			sr.Error = r.Env.Secrets.RedactError(err).Error()
			log.Warn("step "+status, "target", sr.Target, "error", sr.Error)
		} else if out != nil {
			log.Info("step "+status, "target", sr.Target, "changed", out.Changed, "commit", out.Commit, "summary", r.Env.Secrets.Redact(out.Summary))
		} else {
			log.Info("step " + status)
		}
		return sr
	}

	a, ok := r.Actions[s.Action]
	if !ok {
		return finish(Refused, nil, actions.Refusef("no action %q in the action library", s.Action))
	}
	if r.Env.Config.Policy.Paused && s.Action != "notify" {
		return finish(Skipped, nil, actions.Refusef("policy.paused is set: only notify runs"))
	}
	if vs := actions.Check(r.Env.Config, req.Owner, s.Action, s.Params); len(vs) > 0 {
		return finish(Refused, nil, actions.Refusef("%v", vs[0]))
	}
	if err := a.Validate(s.Params); err != nil {
		if !errors.Is(err, actions.ErrRefused) {
			err = actions.Refusef("%v", err)
		}
		return finish(Refused, nil, err)
	}
	if s.Approval == "required" && req.Denied[s.Name] && !r.DryRun {
		return finish(Denied, nil, nil)
	}
	if s.Approval == "required" && !req.Approved[s.Name] && !r.DryRun {
		return finish(Waiting, nil, nil)
	}

	timeout := duration(r.Env.Config.Policy.Limits.StepTimeout, 5*time.Minute)
	if s.Timeout != "" {
		timeout = duration(s.Timeout, timeout)
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	areq := &actions.Request{Incident: req.Incident, Playbook: req.Playbook, Owner: req.Owner, Step: s}

	out, err := r.call(sctx, a, areq)
	if err != nil && errors.Is(sctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("step timed out after %s: %w", timeout, err)
	}
	switch {
	case err != nil && errors.Is(err, actions.ErrRefused):
		return finish(Refused, out, err)
	case err != nil:
		return finish(Failed, out, err)
	case r.DryRun:
		return finish(Planned, out, nil)
	}
	return finish(Succeeded, out, nil)
}

// call runs Plan or Execute, turning a panic in an action into a failure.
func (r *Runner) call(ctx context.Context, a actions.Action, req *actions.Request) (out *actions.Outcome, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("action %s panicked: %v", req.Step.Action, p)
		}
	}()
	if r.DryRun {
		return a.Plan(ctx, r.Env, req)
	}
	return a.Execute(ctx, r.Env, req)
}

func (r *Runner) now() time.Time {
	if r.Env.Now != nil {
		return r.Env.Now()
	}
	return time.Now().UTC()
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

// target is the step's target or channel, for logs and records.
func target(s schema.Step) string {
	for _, k := range []string{"target", "channel", "datasource", "url"} {
		if v, ok := s.Params[k].(string); ok {
			return v
		}
	}
	return ""
}

func duration(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	return def
}
