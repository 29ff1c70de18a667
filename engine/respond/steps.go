package respond

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/render"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/schema"
)

// runSteps runs the incident's steps as p rendered them. Each step is
// recorded running before it starts and recorded again when it finishes:
// a crash in between leaves it running in the record, and Resume runs it
// again (idempotently). Steps the record says succeeded are not run; the
// record's approvals and denials decide the steps that need one.
func (e *Engine) runSteps(ctx context.Context, id string, pb *repo.Playbook, p *render.Plan) (*run.Result, error) {
	return e.runStepsOf(ctx, nil, id, pb, p)
}

// runStepsOf is runSteps given the incident's record, or nil to read it.
func (e *Engine) runStepsOf(ctx context.Context, in *incident.Incident, id string, pb *repo.Playbook, p *render.Plan) (*run.Result, error) {
	if in == nil {
		var err error
		if in, err = e.Get(ctx, id); err != nil {
			return nil, err
		}
	}
	req := &run.Request{
		Incident: id, Playbook: pb.Name, Owner: pb.Owner,
		Steps: p.Steps, OnFailure: p.OnFailure,
		Approved: map[string]bool{}, Denied: map[string]bool{}, Done: map[string]run.StepResult{}, Running: map[string]bool{},
	}
	for _, s := range in.Steps {
		if s.Status == run.Running {
			req.Running[s.Name] = true
		}
		switch {
		case s.Status == run.Succeeded:
			req.Done[s.Name] = run.StepResult{Name: s.Name, Action: s.Action, Target: s.Target, Status: s.Status, Started: s.Started, Finished: s.Finished}
		case s.Status == run.Denied:
			req.Denied[s.Name] = true
		case s.ApprovedBy != "":
			req.Approved[s.Name] = true
		}
		if s.Status == run.Skipped && len(s.Error) >= len(heldBack) && s.Error[:len(heldBack)] == heldBack {
			return &run.Result{Status: run.RunStopped}, nil
		}
	}
	// A step's start and end are applied to the log before the run goes
	// on; with a Recorder they are committed behind it.
	req.Progress = func(sr run.StepResult) error {
		_, err := changeNow(ctx, e, func(t *tx, _ *struct{}) error {
			in, p, err := t.byID(id)
			if err != nil {
				return err
			}
			if sr.Status == run.Running && in.Status == incident.Resolved {
				// The resolution skipped the steps not started yet; only
				// one it found running (and a crash interrupted) runs on.
				if s := in.StepByName(sr.Name); s == nil || s.Status != run.Running {
					return errResolvedFirst
				}
			}
			in.SetStep(sr)
			t.put(p, in)
			t.note("incident %s: step %s %s", id, sr.Name, sr.Status)
			if sr.Status == run.Running {
				return nil
			}
			in.Record(incident.Event{At: e.now(), Kind: incident.EventStep, Text: stepText(sr)})
			if e.GitHub != nil {
				return t.owe(id, stepKey(sr.Name, sr.Status))
			}
			return nil
		})
		return err
	}
	res := e.Runner.Run(ctx, req)
	if e.Runner.DryRun {
		return res, nil
	}
	_, err := changeNow(ctx, e, func(t *tx, _ *struct{}) error {
		in, p, err := t.byID(id)
		if err != nil {
			return err
		}
		now := e.now()
		// Steps the run skipped after a failure or a denial are over;
		// those after a step waiting for approval stay pending.
		if res.Status != run.RunWaiting && res.Status != run.RunStopped {
			for _, sr := range append(slices.Clone(res.Steps), res.OnFailure...) {
				if s := in.StepByName(sr.Name); sr.Status == run.Skipped && (s == nil || s.Status == run.Pending) {
					in.SetStep(sr)
					t.put(p, in)
				}
			}
		}
		if in.Status == incident.Open && mitigated(res) {
			in.Status = incident.Mitigated
			in.Timestamps.Mitigated = now
			in.Record(incident.Event{At: now, Kind: incident.EventMitigated, Text: "mitigated: " + mitigation(res)})
			t.put(p, in)
			t.note("incident %s: mitigated", id)
			if e.GitHub != nil {
				return t.owe(id, keyMitigated)
			}
		}
		return nil
	})
	return res, err
}

// mitigated: every step succeeded, or a verify step held. A run whose
// steps were skipped (policy.paused) or failed with continue_on_error
// mitigated nothing by itself.
func mitigated(res *run.Result) bool {
	return allSucceeded(res) || verifyHeld(res)
}

func allSucceeded(res *run.Result) bool {
	for _, s := range res.Steps {
		if s.Status != run.Succeeded {
			return false
		}
	}
	return len(res.Steps) > 0
}

func verifyHeld(res *run.Result) bool {
	for _, s := range res.Steps {
		if s.Action == "verify" && s.Status == run.Succeeded {
			return true
		}
	}
	return false
}

func mitigation(res *run.Result) string {
	if allSucceeded(res) {
		return "every step succeeded"
	}
	return "a verify step held"
}

func stepText(sr run.StepResult) string {
	text := fmt.Sprintf("step %s (%s) %s", sr.Name, sr.Action, sr.Status)
	switch {
	case sr.Error != "":
		text += ": " + sr.Error
	case sr.Status == run.Waiting:
		text += ": approve with /approve " + sr.Name
	case sr.Outcome != nil && sr.Outcome.Summary != "":
		text += ": " + sr.Outcome.Summary
	}
	return text
}

// Resume runs the unfinished steps of an open incident again, planned
// afresh for its first firing alert: after a restart, and after an
// approval. Steps recorded succeeded are not run again.
func (e *Engine) Resume(ctx context.Context, id string) (*run.Result, error) {
	in, err := e.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if in.Status == incident.Resolved {
		return nil, fmt.Errorf("incident %s is resolved", id)
	}
	pb := e.playbook(in.Playbook)
	if pb == nil {
		return nil, fmt.Errorf("incident %s: playbook %s is no longer in the repository", id, in.Playbook)
	}
	a := alertOf(in)
	if a == nil {
		return nil, fmt.Errorf("incident %s records no firing alert to plan for", id)
	}
	p, err := e.Planner.Render(pb.Name, a)
	if err != nil {
		return nil, err
	}
	return e.runSteps(ctx, id, pb, p)
}

// Recover resumes every open incident with unfinished steps: what a server
// does when it starts, since no other runner is at work. It is Unfinished
// then Finish.
func (e *Engine) Recover(ctx context.Context) ([]Outcome, error) {
	ids, err := e.Unfinished(ctx)
	if err != nil {
		return nil, err
	}
	return e.Finish(ctx, ids), nil
}

// Unfinished returns the incidents a runner that is gone left unfinished:
// the open ones with steps pending or running, or whose every step
// succeeded with the mitigation not recorded; and, among those resolved
// recently (the index's runs), the ones with a step left running or no
// postmortem drafted — a crash came between a commit and the next. A
// server takes this list before it handles any alert, so that it never
// finishes an incident its own workers are running.
func (e *Engine) Unfinished(ctx context.Context) ([]string, error) {
	var ids []string
	_, err := e.change(ctx, func(t *tx) error {
		ids = ids[:0]
		idx, err := t.index()
		if err != nil {
			return err
		}
		for _, entry := range idx.Open {
			in, err := t.record(entry.Path)
			if err != nil || in == nil {
				continue
			}
			if unfinished(in) || unmitigated(in) {
				ids = append(ids, in.ID)
			}
		}
		for _, r := range idx.Runs {
			p, err := pathOf(t.dir, r.ID)
			if err != nil {
				continue
			}
			in, err := t.record(p)
			if err != nil || in == nil || in.Status != incident.Resolved || slices.Contains(ids, in.ID) {
				continue
			}
			if interrupted(in) || !drafted(in) {
				ids = append(ids, in.ID)
			}
		}
		return nil
	})
	return ids, err
}

// Finish finishes the incidents Unfinished listed, as they are now: an
// open one resumes; in a resolved one, a step left running runs to its
// end, as the runner would have finished it (the actions are idempotent;
// the steps the resolution skipped stay skipped), and a postmortem not
// drafted yet is drafted.
func (e *Engine) Finish(ctx context.Context, ids []string) []Outcome {
	var out []Outcome
	for _, id := range ids {
		in, err := e.Get(ctx, id)
		if err != nil {
			out = append(out, Outcome{Incident: id, What: Failed, Reason: err.Error()})
			continue
		}
		var res *run.Result
		switch {
		case in.Status != incident.Resolved && (unfinished(in) || unmitigated(in)):
			res, err = e.Resume(ctx, id)
		case in.Status == incident.Resolved && interrupted(in):
			res, err = e.finishInterrupted(ctx, id)
		}
		if res != nil || err != nil {
			o := Outcome{Incident: id, What: Resumed, Result: res}
			if err != nil {
				o.What, o.Reason = Failed, err.Error()
			}
			out = append(out, o)
		}
		if in.Status == incident.Resolved && !drafted(in) {
			if _, err := e.Postmortem(ctx, id); err != nil {
				out = append(out, Outcome{Incident: id, What: Failed, Reason: "postmortem draft: " + err.Error()})
			}
		}
	}
	return out
}

// unmitigated: every step of open incident in succeeded, yet it is not
// mitigated — a crash came before the run's end was recorded. Resuming it
// runs nothing and records the mitigation.
func unmitigated(in *incident.Incident) bool {
	if in.Status != incident.Open || len(in.Steps) == 0 {
		return false
	}
	for _, s := range in.Steps {
		if s.Status != run.Succeeded {
			return false
		}
	}
	return true
}

// interrupted: a step of in is still recorded running.
func interrupted(in *incident.Incident) bool {
	return slices.ContainsFunc(in.Steps, func(s incident.Step) bool { return s.Status == run.Running })
}

// drafted: in's postmortem was drafted.
func drafted(in *incident.Incident) bool {
	return slices.ContainsFunc(in.Timeline, func(ev incident.Event) bool { return ev.Kind == incident.EventPostmortem })
}

// errResolvedFirst stops a run at a step the incident's resolution skipped.
var errResolvedFirst = errors.New("the incident resolved first")

// finishInterrupted runs the steps of resolved incident id that a crash
// left running, planned afresh for its first alert; the steps its
// resolution skipped stay skipped (Progress refuses them).
func (e *Engine) finishInterrupted(ctx context.Context, id string) (*run.Result, error) {
	in, err := e.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	pb := e.playbook(in.Playbook)
	if pb == nil {
		return nil, fmt.Errorf("incident %s: playbook %s is no longer in the repository", id, in.Playbook)
	}
	if len(in.Alerts) == 0 {
		return nil, fmt.Errorf("incident %s records no alert to plan for", id)
	}
	a := in.Alerts[0]
	p, err := e.Planner.Render(pb.Name, &schema.Alert{
		Source: "record", Status: "firing", Fingerprint: a.Fingerprint,
		Labels: a.Labels, Annotations: a.Annotations,
		StartsAt: a.StartsAt, EndsAt: a.EndsAt, ReceivedAt: time.Now().UTC(),
	})
	if err != nil {
		return nil, err
	}
	return e.runSteps(ctx, id, pb, p)
}

// unfinished reports whether in has steps pending or running and none
// waiting for a person.
func unfinished(in *incident.Incident) bool {
	open := false
	for _, s := range in.Steps {
		switch s.Status {
		case run.Waiting:
			return false
		case run.Pending, run.Running:
			open = true
		}
	}
	return open
}

// alertOf rebuilds the first firing alert of in from its record.
func alertOf(in *incident.Incident) *schema.Alert {
	for _, a := range in.Alerts {
		if a.Status != "firing" {
			continue
		}
		return &schema.Alert{
			Source: "record", Status: "firing", Fingerprint: a.Fingerprint,
			Labels: a.Labels, Annotations: a.Annotations,
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, ReceivedAt: time.Now().UTC(),
		}
	}
	return nil
}
