package respond

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/run"
)

// Get reads incident id at the head of the repository.
func (e *Engine) Get(ctx context.Context, id string) (*incident.Incident, error) {
	p, err := pathOf(e.dir(), id)
	if err != nil {
		return nil, err
	}
	if e.Recorder != nil {
		in, err := e.Recorder.get(p)
		if in == nil && err == nil {
			err = fmt.Errorf("incident %s: %w", id, ErrNotFound)
		}
		return in, err
	}
	data, err := e.Ledger.Read(ctx, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("incident %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	in, err := incident.Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return in, nil
}

// resolveGroup records resolved alerts in their open incident, resolving
// it when none of its alerts fires any more.
func (e *Engine) resolveGroup(ctx context.Context, g *group, o Outcome) (Outcome, error) {
	now := e.now()
	_, err := e.change(ctx, func(t *tx) error {
		o.Incident, o.What, o.Reason = "", Ignored, "no open incident of this group"
		idx, err := t.index()
		if err != nil {
			return err
		}
		entry, ok := idx.Open[g.key]
		if !ok {
			return nil
		}
		in, err := t.record(entry.Path)
		if err != nil || in == nil {
			return err
		}
		o.Incident, o.What, o.Reason = in.ID, Joined, ""
		if err := e.join(t, entry.Path, in, g, now); err != nil {
			return err
		}
		if in.Status == incident.Resolved {
			o.What = Resolved
		}
		return nil
	})
	if err != nil || o.What != Resolved {
		return o, err
	}
	if _, err := e.Postmortem(ctx, o.Incident); err != nil {
		e.log().Error("postmortem draft failed", "incident", o.Incident, "error", err)
	}
	return o, nil
}

// maybeResolve resolves in when every one of its alerts has resolved.
func (e *Engine) maybeResolve(t *tx, p string, in *incident.Incident, now time.Time, why string) error {
	if in.Status == incident.Resolved || len(in.Alerts) == 0 {
		return nil
	}
	for _, a := range in.Alerts {
		if a.Status == "firing" {
			return nil
		}
	}
	return e.resolve(t, p, in, now, why)
}

func (e *Engine) resolve(t *tx, p string, in *incident.Incident, now time.Time, why string) error {
	in.Status = incident.Resolved
	in.Timestamps.Resolved = now
	for i := range in.Steps {
		if s := &in.Steps[i]; s.Status == run.Pending || s.Status == run.Waiting {
			s.Status = run.Skipped
			if s.Error == "" {
				s.Error = "not run: the incident resolved first"
			}
		}
	}
	in.Record(incident.Event{At: now, Kind: incident.EventResolved, Text: "resolved: " + why})
	t.put(p, in)
	idx, err := t.index()
	if err != nil {
		return err
	}
	if cur, ok := idx.Open[in.GroupKey]; ok && cur.ID == in.ID {
		delete(idx.Open, in.GroupKey)
		t.touchIndex()
	}
	// The subject line says the most important thing the commit did.
	t.msgs = append([]string{fmt.Sprintf("incident %s: resolved", in.ID)}, t.msgs...)
	if e.GitHub != nil {
		return t.owe(in.ID, keyClose)
	}
	return nil
}

// Resolve resolves an open incident by hand and drafts its postmortem.
// Resolving a resolved incident changes nothing.
func (e *Engine) Resolve(ctx context.Context, id, by string) error {
	now := e.now()
	changed, err := e.change(ctx, func(t *tx) error {
		in, p, err := t.byID(id)
		if err != nil || in.Status == incident.Resolved {
			return err
		}
		acknowledge(in, now)
		return e.resolve(t, p, in, now, "by "+by)
	})
	if err != nil || !changed {
		return err
	}
	_, err = e.Postmortem(ctx, id)
	return err
}

// Decision is a person's answer to a step waiting for approval.
type Decision struct {
	Incident string
	// Step is the step's name; empty means the one step waiting.
	Step    string
	Approve bool
	// By is who decided ("@login", or the local user for the CLI), Via
	// why they may, At when.
	By, Via string
	At      time.Time
}

// ErrNotWaiting: the step named is not waiting for approval.
var ErrNotWaiting = errors.New("not waiting for approval")

// Decide records an approval or denial and runs the incident on: an
// approved step runs now, a denied one stops the run there.
func (e *Engine) Decide(ctx context.Context, d Decision) (*run.Result, error) {
	if d.At.IsZero() {
		d.At = e.now()
	}
	_, err := e.change(ctx, func(t *tx) error {
		in, p, err := t.byID(d.Incident)
		if err != nil {
			return err
		}
		if in.Status == incident.Resolved {
			return fmt.Errorf("incident %s is resolved", in.ID)
		}
		s, err := waitingStep(in, d.Step)
		if err != nil {
			return err
		}
		s.ApprovedBy, s.ApprovedAt = d.By, d.At.UTC()
		verdict := "approved"
		if !d.Approve {
			verdict = "denied"
			s.Status, s.Finished = run.Denied, d.At.UTC()
		}
		acknowledge(in, d.At)
		text := fmt.Sprintf("step %s %s by %s", s.Name, verdict, d.By)
		if d.Via != "" {
			text += " (" + d.Via + ")"
		}
		in.Record(incident.Event{At: d.At.UTC(), Kind: incident.EventApproval, Text: text})
		t.put(p, in)
		t.note("incident %s: %s", in.ID, text)
		if e.GitHub != nil {
			return t.owe(in.ID, "approval/"+s.Name+"/"+verdict)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e.Resume(ctx, d.Incident)
}

func waitingStep(in *incident.Incident, name string) (*incident.Step, error) {
	var waiting []string
	for i := range in.Steps {
		s := &in.Steps[i]
		if s.Status == run.Waiting {
			waiting = append(waiting, s.Name)
		}
		if name != "" && strings.EqualFold(s.Name, name) {
			if s.Status != run.Waiting {
				return nil, fmt.Errorf("incident %s: step %s is %s, %w", in.ID, s.Name, s.Status, ErrNotWaiting)
			}
			return s, nil
		}
	}
	switch {
	case name != "":
		return nil, fmt.Errorf("incident %s has no step %q", in.ID, name)
	case len(waiting) == 1:
		return in.StepByName(waiting[0]), nil
	case len(waiting) == 0:
		return nil, fmt.Errorf("incident %s: no step is waiting for approval", in.ID)
	}
	return nil, fmt.Errorf("incident %s: steps %s wait for approval; name one", in.ID, strings.Join(waiting, ", "))
}

// acknowledge stamps the first time a person acted on in.
func acknowledge(in *incident.Incident, at time.Time) {
	if in.Timestamps.Acknowledged.IsZero() {
		in.Timestamps.Acknowledged = at.UTC()
		in.Record(incident.Event{At: at.UTC(), Kind: incident.EventAcknowledged, Text: "acknowledged"})
	}
}

// IncidentOfIssue returns the open incident whose GitHub issue is number.
func (e *Engine) IncidentOfIssue(ctx context.Context, number int) (string, error) {
	var id string
	_, err := e.change(ctx, func(t *tx) error {
		idx, err := t.index()
		if err != nil {
			return err
		}
		entry, ok := idx.issueOf(number)
		if !ok {
			return fmt.Errorf("issue #%d: %w", number, ErrNotFound)
		}
		id = entry.ID
		return nil
	})
	return id, err
}

// List reads every incident record, newest first by path. Files it cannot
// read are reported in errs, not fatal.
func (e *Engine) List(ctx context.Context) (ins []*incident.Incident, errs []error, err error) {
	var files []string
	if e.Recorder != nil {
		// What the log has applied, committed or not, as Get reads it.
		files, err = e.Recorder.paths(ctx, e.dir())
	} else {
		files, err = e.Ledger.List(ctx, e.dir())
	}
	if err != nil {
		return nil, nil, err
	}
	for i := len(files) - 1; i >= 0; i-- {
		p := files[i]
		if path.Ext(p) != ".md" {
			continue
		}
		if e.Recorder != nil {
			in, err := e.Recorder.get(p)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: %w", p, err))
			case in != nil:
				ins = append(ins, in)
			}
			continue
		}
		data, err := e.Ledger.Read(ctx, p)
		if err == nil {
			var in *incident.Incident
			if in, err = incident.Unmarshal(data); err == nil {
				ins = append(ins, in)
				continue
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", p, err))
	}
	return ins, errs, nil
}
