package respond

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/incident"
)

// Outbox keys: what GitHub is owed for one incident, sent in order. A key
// names an intent, not a message: what is sent is derived from the record
// when it is sent, and every send is idempotent (the github package finds
// its own earlier issue, comment or pull request by a hidden marker), so
// sending a key twice after a crash changes nothing.
const (
	keyIssue     = "issue"
	keyMitigated = "mitigated"
	keyClose     = "close"
	keyPR        = "pr"
	// step/<name>/<status> and approval/<step>/<verdict> are comments.
)

func stepKey(name, status string) string { return "step/" + name + "/" + status }

// Flush sends what GitHub is owed, oldest incident first, and records what
// got through. It stops an incident's sends at the first transient
// failure (GitHub down, rate-limited: later keys may need the issue) and
// keeps the rest owed; a permanent failure (bad credentials, 404, 422) is
// logged, noted in the record's timeline and dropped, since sending again
// cannot help. It returns how many keys were sent and the first transient
// error.
func (e *Engine) Flush(ctx context.Context) (int, error) {
	if e.GitHub == nil {
		return 0, nil
	}
	files, err := e.Ledger.List(ctx, outboxDir)
	if err != nil {
		return 0, err
	}
	sent := 0
	var firstErr error
	for _, f := range files {
		id := strings.TrimSuffix(path.Base(f), ".json")
		n, err := e.flushIncident(ctx, id)
		sent += n
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return sent, firstErr
}

// delivery is what one flush of an incident got through.
type delivery struct {
	done    []string
	dropped map[string]string // key → why
	notes   []string          // for the timeline
	issue   int
	pr      int
}

func (e *Engine) flushIncident(ctx context.Context, id string) (int, error) {
	var keys []string
	var in *incident.Incident
	if _, err := e.change(ctx, func(t *tx) error {
		var err error
		if keys, err = t.outbox(id); err != nil {
			return err
		}
		in, _, err = t.byID(id)
		return err
	}); err != nil {
		return 0, err
	}
	d := delivery{dropped: map[string]string{}, issue: in.Issue, pr: in.PostmortemPR}
	var transient error
	for _, key := range keys {
		err := e.send(ctx, in, key, &d)
		switch {
		case err == nil:
			d.done = append(d.done, key)
		case github.IsTransient(err) || ctx.Err() != nil:
			transient = err
		default:
			e.log().Error("GitHub refused; not sending again", "incident", id, "what", key, "error", err)
			d.dropped[key] = err.Error()
		}
		if transient != nil {
			break
		}
	}
	if len(d.done) == 0 && len(d.dropped) == 0 {
		return 0, transient
	}
	_, err := e.change(ctx, func(t *tx) error {
		in, p, err := t.byID(id)
		if err != nil {
			return err
		}
		paid := append([]string{}, d.done...)
		for k := range d.dropped {
			paid = append(paid, k)
		}
		if err := t.paid(id, paid...); err != nil {
			return err
		}
		now := e.now()
		if d.issue != 0 && in.Issue != d.issue {
			in.Issue = d.issue
			in.Record(incident.Event{At: now, Kind: incident.EventIssue, Text: fmt.Sprintf("GitHub issue #%d", d.issue)})
			t.put(p, in)
			if idx, err := t.index(); err == nil {
				if entry, ok := idx.Open[in.GroupKey]; ok && entry.ID == in.ID {
					entry.Issue = d.issue
					idx.Open[in.GroupKey] = entry
					t.touchIndex()
				}
			}
		}
		if d.pr != 0 && in.PostmortemPR != d.pr {
			in.PostmortemPR = d.pr
			in.Record(incident.Event{At: now, Kind: incident.EventPostmortem, Text: fmt.Sprintf("postmortem pull request #%d", d.pr)})
			t.put(p, in)
		}
		for k, why := range d.dropped {
			in.Record(incident.Event{At: now, Kind: incident.EventNote, Text: "GitHub refused " + k + ": " + why})
			t.put(p, in)
		}
		for _, note := range d.notes {
			in.Record(incident.Event{At: now, Kind: incident.EventNote, Text: note})
			t.put(p, in)
		}
		t.note("incident %s: GitHub sent %s", id, strings.Join(paid, ", "))
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(d.done), transient
}

// send delivers one key for in.
func (e *Engine) send(ctx context.Context, in *incident.Incident, key string, d *delivery) error {
	issue := func() (int, error) {
		if d.issue != 0 {
			return d.issue, nil
		}
		n, err := e.GitHub.EnsureIssue(ctx, e.issueSpec(in, 0))
		if err == nil {
			d.issue = n
		}
		return n, err
	}
	switch {
	case key == keyIssue:
		n, err := e.GitHub.EnsureIssue(ctx, e.issueSpec(in, d.issue))
		if err == nil {
			d.issue = n
		}
		return err
	case key == keyClose:
		n, err := issue()
		if err != nil {
			return err
		}
		return e.GitHub.CloseIssue(ctx, n, closeComment(in))
	case key == keyPR:
		n, err := e.GitHub.EnsurePullRequest(ctx, e.prSpec(in))
		switch {
		case err != nil && (n == 0 || github.IsTransient(err)):
			return err // sent again: the pull request is found, not opened twice
		case err != nil:
			// The pull request is open; GitHub refused only its
			// reviewers (a team that is not a collaborator, say). The
			// record and the issue still get its number.
			e.log().Warn("postmortem pull request opened; GitHub refused its reviewers", "incident", in.ID, "pull", n, "error", err)
			d.notes = append(d.notes, fmt.Sprintf("GitHub refused the reviewers of pull request #%d: %v", n, err))
		}
		d.pr = n
		if num, err := issue(); err == nil {
			return e.GitHub.Comment(ctx, num, "postmortem", fmt.Sprintf("Postmortem draft for review: #%d", n))
		} else {
			return err
		}
	default:
		n, err := issue()
		if err != nil {
			return err
		}
		body, ok := commentBody(in, key)
		if !ok {
			return nil // nothing left to say about it: the record moved on
		}
		return e.GitHub.Comment(ctx, n, key, body)
	}
}
