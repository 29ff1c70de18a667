package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/firebreak-dev/firebreak/engine/alert"
	"github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/engine/run"
)

// job is a journal entry to handle: entry is the one accepted, or nil for
// one left by the last process, read from the journal.
type job struct {
	id    string
	entry *Entry
}

// worker handles journal entries until the queue closes or ctx ends.
func (s *Server) worker(ctx context.Context) {
	for j := range s.queue {
		s.take(ctx, j)
	}
}

// take handles entry j unless the server is shutting down, when it stays
// in the journal for the next start.
func (s *Server) take(ctx context.Context, j job) {
	if ctx.Err() != nil {
		s.release()
		return
	}
	s.handle(ctx, j)
}

// release frees the queue slot of an entry that is no longer pending.
func (s *Server) release() {
	<-s.slots
	s.m.queueDepth.Set(float64(len(s.slots)))
}

// handle takes one entry through the engine: the worker waits while its
// alerts are decided and applied to the incident log, in the order the
// entries came; the steps started then, and the retries when the log
// cannot take the entry, go on in the background, so the next entry does
// not wait for them. The accepted alerts are never dropped.
func (s *Server) handle(ctx context.Context, j job) {
	id, entry := j.id, j.entry
	fresh := entry != nil // accepted by this process, not left by the last
	if entry == nil {
		var err error
		if entry, err = s.cfg.Journal.Read(id); err != nil {
			s.log.Error("unreadable journal entry; left in place for a person", "id", id, "error", err)
			s.release()
			return
		}
	}
	e := s.engine.Load()
	h := e.Start(ctx, entry.Alerts)
	if fresh {
		s.m.decideSeconds.Observe(time.Since(entry.Received).Seconds())
	}
	s.inflight.Go(func() {
		for attempt := 1; ; attempt++ {
			outcomes, err := h.Wait()
			s.observe(entry, outcomes)
			if err == nil {
				s.done(ctx, e, id)
				return
			}
			s.m.journalRetries.Inc()
			s.log.Warn("alerts not recorded yet; trying again", "id", id, "attempt", attempt, "error", err)
			wait := min(time.Duration(attempt)*time.Second, 30*time.Second)
			select {
			case <-ctx.Done():
				s.release()
				return
			case <-time.After(wait):
			}
			e = s.engine.Load()
			h = e.Start(ctx, entry.Alerts)
		}
	})
}

// done removes entry id from the journal once everything the engine
// applied so far, which includes all the entry did, is committed.
func (s *Server) done(ctx context.Context, e *respond.Engine, id string) {
	finish := func() {
		if err := s.cfg.Journal.Done(id); err != nil {
			s.log.Error("cannot remove a handled journal entry", "id", id, "error", err)
		}
		s.release()
		s.kickFlush()
	}
	r := e.Recorder
	if r == nil {
		finish()
		return
	}
	if err := r.Wait(ctx, r.Applied()); err != nil {
		s.release() // shutting down: the entry stays for the next start
		return
	}
	finish()
}

// observe counts what the engine did.
func (s *Server) observe(entry *Entry, outcomes []respond.Outcome) {
	for _, o := range outcomes {
		s.m.incidents.WithLabelValues(o.What).Inc()
		if o.Result == nil {
			continue
		}
		first := true
		for _, sr := range append(o.Result.Steps, o.Result.OnFailure...) {
			if sr.Started.IsZero() {
				continue
			}
			if first && o.What == respond.Opened {
				s.m.firstAction.Observe(sr.Started.Sub(entry.Received).Seconds())
				first = false
			}
			s.m.steps.WithLabelValues(sr.Action, sr.Status).Inc()
			if !sr.Finished.IsZero() && sr.Status != run.Waiting {
				s.m.stepSeconds.WithLabelValues(sr.Action).Observe(sr.Finished.Sub(sr.Started).Seconds())
			}
		}
	}
}

func (s *Server) kickFlush() {
	select {
	case s.flushC <- struct{}{}:
	default:
	}
}

// flusher sends what GitHub is owed, after work and every FlushEvery.
func (s *Server) flusher(ctx context.Context) {
	t := time.NewTicker(s.cfg.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.flushC:
		}
		fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		if n, err := s.engine.Load().Flush(fctx); err != nil {
			s.log.Warn("GitHub did not take everything; it stays owed", "sent", n, "error", err)
		}
		cancel()
	}
}

func (s *Server) poller(ctx context.Context) {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reload(ctx, "poll")
		}
	}
}

// reload loads the playbooks again and swaps them in when they are valid;
// an invalid set is refused and the running one stays.
func (s *Server) reload(ctx context.Context, why string) error {
	s.reloadM.Lock()
	defer s.reloadM.Unlock()
	e, err := s.cfg.Load(ctx)
	if err != nil {
		s.m.reloads.WithLabelValues("invalid").Inc()
		s.log.Error("playbook reload refused; the running playbooks stay", "trigger", why, "error", err)
		return err
	}
	old := s.engine.Swap(e)
	if old != nil && old.PlaybooksCommit == e.PlaybooksCommit && why == "poll" {
		return nil
	}
	s.m.reloads.WithLabelValues("ok").Inc()
	s.log.Info("playbooks reloaded", "trigger", why, "commit", e.PlaybooksCommit, "playbooks", len(e.Repo.Playbooks))
	return nil
}

// github takes GitHub webhooks: issue comments (approvals) and pushes
// (reloads). Both are acted on in the background: GitHub waits 10 s.
func (s *Server) github(w http.ResponseWriter, r *http.Request) {
	body, ok := s.body(w, r, "github")
	if !ok {
		return
	}
	if len(s.cfg.GitHubSecret) == 0 && !s.cfg.Insecure {
		fail(w, http.StatusUnauthorized, "no GitHub webhook secret configured (FIREBREAK_SECRET_GITHUB_WEBHOOK_SECRET)")
		return
	}
	if !s.verify(w, "github", alert.VerifyGitHub(s.cfg.GitHubSecret, body, r.Header.Get("X-Hub-Signature-256"))) {
		return
	}
	kind := r.Header.Get("X-GitHub-Event")
	if kind == "ping" {
		io.WriteString(w, "pong\n")
		return
	}
	in, err := alert.DecodeGitHub(kind, "request body", body)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := context.WithoutCancel(r.Context())
	switch {
	case in.Push != nil:
		if in.Push.Ref != "refs/heads/"+s.cfg.Branch {
			fmt.Fprintf(w, "push to %s: not the playbook branch\n", in.Push.Ref)
			return
		}
		go s.reload(ctx, "push "+in.Push.After)
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "reloading\n")
	case in.Comment != nil:
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "checking\n")
		go s.approval(ctx, body, in.Comment)
	case len(in.Alerts) > 0:
		fail(w, http.StatusBadRequest, "send alerts to /v1/alerts/*; repository_dispatch is for firebreak run --event")
	default:
		fmt.Fprintf(w, "nothing to do: %s\n", cmp.Or(in.Ignored, kind))
	}
}

// approval acts on an /approve or /deny comment on an incident's issue.
func (s *Server) approval(ctx context.Context, event []byte, c *alert.Comment) {
	e := s.engine.Load()
	if e.GitHub == nil {
		return
	}
	if _, _, ok := github.ParseCommand(c.Body); !ok {
		return
	}
	id, err := e.IncidentOfIssue(ctx, c.IssueNumber)
	if err != nil {
		s.log.Info("approval comment on an issue of no open incident", "issue", c.IssueNumber)
		return
	}
	in, err := e.Get(ctx, id)
	if err != nil {
		s.log.Error("cannot read the incident of an approval", "incident", id, "error", err)
		return
	}
	var approvers []string
	if p, ok := e.Repo.Config.Policy.Owners[in.Owner]; ok {
		approvers = p.Approvers
	}
	d, err := e.GitHub.Approval(ctx, github.ApprovalRequest{Event: event, Owner: in.Owner, Approvers: approvers})
	if err != nil {
		level := s.log.Warn
		if errors.Is(err, github.ErrNotApproval) {
			level = s.log.Info
		}
		level("approval comment not acted on", "incident", id, "issue", c.IssueNumber, "by", c.Login, "error", err)
		return
	}
	res, err := e.Decide(ctx, respond.Decision{Incident: id, Step: d.Step, Approve: d.Verdict == github.Approve, By: "@" + d.By, Via: d.Via, At: d.At})
	if err != nil {
		s.log.Warn("approval not applied", "incident", id, "step", d.Step, "error", err)
		return
	}
	s.log.Info("approval applied", "incident", id, "step", d.Step, "verdict", d.Verdict, "by", d.By, "run", res.Status)
	s.kickFlush()
}
