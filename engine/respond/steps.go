package respond

import (
	"context"
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
	in, err := e.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	req := &run.Request{
		Incident: id, Playbook: pb.Name, Owner: pb.Owner,
		Steps: p.Steps, OnFailure: p.OnFailure,
		Approved: map[string]bool{}, Denied: map[string]bool{}, Done: map[string]run.StepResult{},
	}
	for _, s := range in.Steps {
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
	req.Progress = func(sr run.StepResult) error {
		_, err := e.change(ctx, func(t *tx) error {
			in, p, err := t.byID(id)
			if err != nil {
				return err
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
	_, err = e.change(ctx, func(t *tx) error {
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
// does when it starts, since no other runner is at work.
func (e *Engine) Recover(ctx context.Context) ([]Outcome, error) {
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
			if unfinished(in) {
				ids = append(ids, in.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []Outcome
	for _, id := range ids {
		res, err := e.Resume(ctx, id)
		o := Outcome{Incident: id, What: Resumed, Result: res}
		if err != nil {
			o.What, o.Reason = Failed, err.Error()
		}
		out = append(out, o)
	}
	return out, nil
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
