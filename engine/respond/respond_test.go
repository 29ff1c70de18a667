package respond_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/github/githubtest"
	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/schema"
)

func handle(t *testing.T, e *respond.Engine, alerts ...schema.Alert) []respond.Outcome {
	t.Helper()
	out, err := e.Handle(t.Context(), alerts)
	if err != nil {
		t.Fatalf("handle: %v", err)
	}
	return out
}

func one(t *testing.T, out []respond.Outcome, what string) respond.Outcome {
	t.Helper()
	if len(out) != 1 || out[0].What != what {
		t.Fatalf("outcomes %+v, want one %s", out, what)
	}
	return out[0]
}

// TestLifecycle follows one incident from the first alert to the
// postmortem pull request: opened, the rollback on the real git server,
// the notify delivery, each state change one commit in the playbook
// repository, the GitHub issue with a comment per step, then resolved by
// the alert: the issue closed, the postmortem on its branch and its pull
// request with the owner as reviewer.
func TestLifecycle(t *testing.T) {
	w := newWorld(t, true)
	e := w.engine()
	start := w.clock.Now().Add(-3 * time.Minute)
	before := w.git.Head("deploy")
	commitsBefore := strings.Count(w.gitCLI("log", "--oneline"), "\n")

	o := one(t, handle(t, e, alertOf("CrashLoop", "api", "firing", "fp-api", start)), respond.Opened)
	if o.Result.Status != run.RunSucceeded {
		t.Fatalf("run: %+v", o.Result)
	}
	in := w.record(o.Incident)
	if in.Status != incident.Mitigated || stepStatuses(in) != "rollback=succeeded notify=succeeded" {
		t.Fatalf("record: status %s, steps %s", in.Status, stepStatuses(in))
	}
	if in.Timestamps.Detected != start || in.Timestamps.Opened != w.clock.Now() || in.Timestamps.Mitigated.IsZero() {
		t.Errorf("timestamps %+v", in.Timestamps)
	}
	if in.Steps[0].Commit == "" || w.git.Head("deploy") == before {
		t.Errorf("rollback: commit %q, remote head moved %v", in.Steps[0].Commit, w.git.Head("deploy") != before)
	}
	if got := w.git.Clone("deploy").File("apps/api/deployment.yaml"); got != "image: api:v1\n" {
		t.Errorf("remote after rollback: %q", got)
	}
	if got := w.hooks.all(); !slices.Equal(got, []string{"rolled back api"}) {
		t.Errorf("webhook deliveries %q", got)
	}
	// opened, rollback running, rollback done, notify running, notify
	// done, mitigated: one commit each.
	if n := strings.Count(w.gitCLI("log", "--oneline"), "\n") - commitsBefore; n != 6 {
		t.Errorf("%d commits for the run, want 6:\n%s", n, w.gitCLI("log", "--format=%s"))
	}
	if st := w.gitCLI("status", "--porcelain"); st != "" {
		t.Errorf("worktree not clean after the commits:\n%s", st)
	}

	// GitHub: what the outbox owes is sent.
	if n, err := e.Flush(t.Context()); err != nil || n != 4 {
		t.Fatalf("flush: %d sent, %v", n, err)
	}
	issues := w.gh.Issues()
	if len(issues) != 1 {
		t.Fatalf("%d issues", len(issues))
	}
	is := issues[0]
	if !strings.Contains(is.Title, o.Incident) || !strings.Contains(is.Title, "critical") || !strings.Contains(is.Body, github.IncidentMarker(o.Incident)) {
		t.Errorf("issue %q\n%s", is.Title, is.Body)
	}
	for _, l := range []string{"incident", "severity/critical", "owner/acme/payments"} {
		if !slices.Contains(is.Labels, l) {
			t.Errorf("issue labels %v lack %s", is.Labels, l)
		}
	}
	if len(is.Comments) != 3 { // two steps, mitigated
		t.Errorf("%d comments: %+v", len(is.Comments), is.Comments)
	}
	if w.record(o.Incident).Issue != is.Number {
		t.Errorf("record issue %d, want %d", w.record(o.Incident).Issue, is.Number)
	}
	if w.gitCLI("ls-files", ".firebreak/outbox") != "" {
		t.Errorf("outbox not empty after a flush: %s", w.gitCLI("ls-files", ".firebreak/outbox"))
	}

	// The alert resolves.
	w.clock.advance(10 * time.Minute)
	resolved := alertOf("CrashLoop", "api", "resolved", "fp-api", start)
	resolved.EndsAt = w.clock.Now()
	one(t, handle(t, e, resolved), respond.Resolved)
	in = w.record(o.Incident)
	if in.Status != incident.Resolved || in.Timestamps.Resolved != w.clock.Now() {
		t.Fatalf("after resolve: %s %v", in.Status, in.Timestamps.Resolved)
	}
	if got := in.Durations().Recover; got != 13*time.Minute {
		t.Errorf("time to recover %s, want 13m", got)
	}
	draft := w.gitCLI("show", "postmortem/"+o.Incident+":postmortems/"+o.Incident+".md")
	for _, want := range []string{o.Incident, "Root cause", "rollback"} {
		if !strings.Contains(draft, want) {
			t.Errorf("postmortem draft lacks %q:\n%s", want, draft)
		}
	}
	if n, err := e.Flush(t.Context()); err != nil || n != 2 {
		t.Fatalf("flush after resolve: %d sent, %v", n, err)
	}
	is, _ = w.gh.Issue(is.Number)
	if is.State != "closed" || !strings.Contains(is.Comments[len(is.Comments)-1].Body, "#") {
		t.Errorf("issue after resolve: %s, last comment %q", is.State, is.Comments[len(is.Comments)-1].Body)
	}
	pulls := w.gh.Pulls()
	if len(pulls) != 1 || pulls[0].Pull.Head != "postmortem/"+o.Incident || pulls[0].Pull.Base != "main" {
		t.Fatalf("pulls %+v", pulls)
	}
	if !slices.Contains(pulls[0].Pull.RequestedTeams, "payments") {
		t.Errorf("reviewers %v %v", pulls[0].Pull.RequestedReviewers, pulls[0].Pull.RequestedTeams)
	}
	if w.record(o.Incident).PostmortemPR != pulls[0].Number {
		t.Errorf("record postmortem_pr %d", w.record(o.Incident).PostmortemPR)
	}
	// Nothing is sent twice.
	if n, err := e.Flush(t.Context()); err != nil || n != 0 {
		t.Errorf("third flush: %d sent, %v", n, err)
	}
}

// TestRepeatJoins: Alertmanager repeats a firing alert, a new alert of the
// same group fires, a second engine (a restart) gets the same alert: all
// join the open incident and nothing runs again.
func TestRepeatJoins(t *testing.T) {
	w := newWorld(t, false)
	e := w.engine()
	start := w.clock.Now()
	o := one(t, handle(t, e, alertOf("CrashLoop", "api", "firing", "fp-1", start)), respond.Opened)
	head, hooks := w.git.Head("deploy"), len(w.hooks.all())
	log := w.gitCLI("log", "--oneline")

	w.clock.advance(time.Minute)
	j := one(t, handle(t, e, alertOf("CrashLoop", "api", "firing", "fp-1", start)), respond.Joined)
	if j.Incident != o.Incident || j.Result != nil || w.gitCLI("log", "--oneline") != log {
		t.Fatalf("repeat: %+v; a commit was made: %v", j, w.gitCLI("log", "--oneline") != log)
	}
	j = one(t, handle(t, w.engine(), alertOf("CrashLoop", "api", "firing", "fp-2", start.Add(time.Minute))), respond.Joined)
	if in := w.record(o.Incident); len(in.Alerts) != 2 || j.Incident != o.Incident {
		t.Fatalf("second alert: %d alerts in the record, outcome %+v", len(in.Alerts), j)
	}
	if w.git.Head("deploy") != head || len(w.hooks.all()) != hooks {
		t.Errorf("a join ran steps again")
	}
	// Another group opens its own incident.
	if o2 := one(t, handle(t, e, alertOf("CrashLoop", "web", "firing", "fp-3", start)), respond.Opened); o2.Incident == o.Incident {
		t.Errorf("web joined api's incident")
	}
	if files := w.incidentFiles(); len(files) != 2 {
		t.Errorf("incident files %v", files)
	}
}

// TestCooldownAndRunsPerHour: limits hold across engines (restarts)
// because they are read from the repository.
func TestCooldownAndRunsPerHour(t *testing.T) {
	w := newWorld(t, false)
	start := w.clock.Now()
	o := one(t, handle(t, w.engine(), alertOf("CrashLoop", "api", "firing", "fp-1", start)), respond.Opened)
	w.clock.advance(5 * time.Minute)
	one(t, handle(t, w.engine(), alertOf("CrashLoop", "api", "resolved", "fp-1", start)), respond.Resolved)

	// Fires again 10 minutes after the first run: within the 30m cooldown.
	w.clock.advance(5 * time.Minute)
	head := w.git.Head("deploy")
	h := one(t, handle(t, w.engine(), alertOf("CrashLoop", "api", "firing", "fp-1", w.clock.Now())), respond.Held)
	if !strings.Contains(h.Reason, "cooldown") || !strings.Contains(h.Reason, o.Incident) || h.Incident == o.Incident {
		t.Errorf("held: %+v", h)
	}
	if in := w.record(h.Incident); in.Status != incident.Open || !strings.HasPrefix(in.Steps[0].Error, "held back: cooldown") {
		t.Errorf("held record: %s %+v", in.Status, in.Steps)
	}
	if w.git.Head("deploy") != head {
		t.Error("a held incident ran its rollback")
	}

	// runs_per_hour is 3: chatty's fourth group within the hour is held.
	for i, svc := range []string{"a", "b", "c", "d"} {
		w.clock.advance(time.Minute)
		want := respond.Opened
		if i == 3 {
			want = respond.Held
		}
		got := one(t, handle(t, w.engine(), alertOf("Chatty", svc, "firing", "c-"+svc, w.clock.Now())), want)
		if i == 3 && !strings.Contains(got.Reason, "runs_per_hour") {
			t.Errorf("fourth run: %+v", got)
		}
	}
	// An hour later it runs again.
	w.clock.advance(61 * time.Minute)
	one(t, handle(t, w.engine(), alertOf("Chatty", "e", "firing", "c-e", w.clock.Now())), respond.Opened)
}

// TestApproval: a step with approval "required" waits; approving it runs
// it and the rest; who approved goes into the record. A denial stops the
// run there.
func TestApproval(t *testing.T) {
	w := newWorld(t, false)
	e := w.engine()
	o := one(t, handle(t, e, alertOf("Burn", "api", "firing", "b-1", w.clock.Now())), respond.Opened)
	if o.Result.Status != run.RunWaiting {
		t.Fatalf("run %s", o.Result.Status)
	}
	if got := stepStatuses(w.record(o.Incident)); got != "notify-1=succeeded flip=waiting notify-3=pending" {
		t.Fatalf("steps %s", got)
	}
	if _, err := w.engine().Decide(t.Context(), respond.Decision{Incident: o.Incident, Step: "notify-1", Approve: true, By: "@alice"}); err == nil || !strings.Contains(err.Error(), "not waiting") {
		t.Errorf("approving a finished step: %v", err)
	}
	w.clock.advance(2 * time.Minute)
	res, err := w.engine().Decide(t.Context(), respond.Decision{Incident: o.Incident, Approve: true, By: "@alice", Via: "member of @acme/payments"})
	if err != nil || res.Status != run.RunSucceeded {
		t.Fatalf("approve: %v %+v", err, res)
	}
	in := w.record(o.Incident)
	flip := in.StepByName("flip")
	if stepStatuses(in) != "notify-1=succeeded flip=succeeded notify-3=succeeded" || flip.ApprovedBy != "@alice" || flip.ApprovedAt != w.clock.Now() {
		t.Errorf("after approval: %s, %+v", stepStatuses(in), flip)
	}
	if in.Status != incident.Mitigated || in.Timestamps.Acknowledged != w.clock.Now() {
		t.Errorf("status %s, acknowledged %v", in.Status, in.Timestamps.Acknowledged)
	}
	if got := w.hooks.all(); !slices.Equal(got, []string{"burning api", "flip api", "done api"}) {
		t.Errorf("deliveries %q (the first step must not run twice)", got)
	}

	o = one(t, handle(t, e, alertOf("Burn", "web", "firing", "b-2", w.clock.Now())), respond.Opened)
	res, err = e.Decide(t.Context(), respond.Decision{Incident: o.Incident, Step: "FLIP", Approve: false, By: "@bob"})
	if err != nil || res.Status != run.RunDenied {
		t.Fatalf("deny: %v %+v", err, res)
	}
	if got := stepStatuses(w.record(o.Incident)); got != "notify-1=succeeded flip=denied notify-3=skipped" {
		t.Errorf("after denial: %s", got)
	}
}

// TestResumeAfterCrash: a runner died after the rollback reached the
// remote but before it was recorded finished. The record says running;
// Recover plans the step again and the rollback, idempotent, pushes
// nothing; the record ends succeeded.
func TestResumeAfterCrash(t *testing.T) {
	w := newWorld(t, false)
	e := w.engine()
	o := one(t, handle(t, e, alertOf("CrashLoop", "api", "firing", "fp-1", w.clock.Now())), respond.Opened)
	head := w.git.Head("deploy")

	// Put the record back to mid-run: the crash.
	in := w.record(o.Incident)
	in.Status = incident.Open
	in.Timestamps.Mitigated = time.Time{}
	in.Steps[0].Status, in.Steps[0].Finished, in.Steps[0].Commit, in.Steps[0].Result = run.Running, time.Time{}, "", ""
	in.Steps[1] = incident.Step{Name: in.Steps[1].Name, Action: "notify", Target: "hook", Status: run.Pending}
	data, err := incident.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	w.write(strings.TrimPrefix(incident.Path("incidents", in), ""), string(data))
	w.gitCLI("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "crash")

	out, err := w.engine().Recover(t.Context())
	if err != nil || len(out) != 1 || out[0].Result.Status != run.RunSucceeded {
		t.Fatalf("recover: %v %+v", err, out)
	}
	if w.git.Head("deploy") != head {
		t.Errorf("the rollback was applied twice: remote head moved")
	}
	in = w.record(o.Incident)
	if in.Status != incident.Mitigated || stepStatuses(in) != "rollback=succeeded notify=succeeded" || in.Steps[0].Commit == "" {
		t.Errorf("after recover: %s %s %+v", in.Status, stepStatuses(in), in.Steps[0])
	}
	// Nothing left to recover.
	if out, err := w.engine().Recover(t.Context()); err != nil || len(out) != 0 {
		t.Errorf("second recover: %v %+v", err, out)
	}
}

// TestResolveByHand: firebreak resolve ID.
func TestResolveByHand(t *testing.T) {
	w := newWorld(t, false)
	e := w.engine()
	o := one(t, handle(t, e, alertOf("Burn", "api", "firing", "b-1", w.clock.Now())), respond.Opened)
	w.clock.advance(time.Minute)
	if err := e.Resolve(t.Context(), o.Incident, "carol"); err != nil {
		t.Fatal(err)
	}
	in := w.record(o.Incident)
	if in.Status != incident.Resolved || in.StepByName("flip").Status != run.Skipped || in.Timestamps.Acknowledged.IsZero() {
		t.Errorf("resolved by hand: %s %s %v", in.Status, stepStatuses(in), in.Timestamps)
	}
	if !strings.Contains(w.gitCLI("branch", "--list"), "postmortem/"+o.Incident) {
		t.Errorf("no postmortem branch: %s", w.gitCLI("branch", "--list"))
	}
	if err := e.Resolve(t.Context(), o.Incident, "carol"); err != nil {
		t.Errorf("resolving twice: %v", err)
	}
	if _, err := e.Decide(t.Context(), respond.Decision{Incident: o.Incident, Approve: true, By: "x"}); err == nil {
		t.Error("approved a step of a resolved incident")
	}
	if err := e.Resolve(t.Context(), "2026-11-21-nope-00000000", "x"); err == nil || !strings.Contains(err.Error(), "no such incident") {
		t.Errorf("unknown id: %v", err)
	}
	if err := e.Resolve(t.Context(), "../../etc/passwd", "x"); err == nil || !strings.Contains(err.Error(), "not an incident id") {
		t.Errorf("hostile id: %v", err)
	}
}

// TestGitHubDownOutbox: GitHub answers 502 and 429 for a while. The
// incident goes on regardless; the outbox holds what is owed; once GitHub
// answers, one issue is created and every comment is sent exactly once.
func TestGitHubDownOutbox(t *testing.T) {
	w := newWorld(t, true)
	e := w.engine()
	w.gh.Inject(githubtest.Rule{Times: -1, Fault: githubtest.Fail(502)})
	o := one(t, handle(t, e, alertOf("CrashLoop", "api", "firing", "fp-1", w.clock.Now())), respond.Opened)
	if w.record(o.Incident).Status != incident.Mitigated {
		t.Fatalf("the incident did not go on while GitHub was down")
	}
	if n, err := e.Flush(t.Context()); n != 0 || !github.IsTransient(err) {
		t.Fatalf("flush while down: %d, %v", n, err)
	}
	if got := w.gitCLI("ls-files", ".firebreak/outbox"); !strings.Contains(got, o.Incident) {
		t.Fatalf("outbox: %q", got)
	}
	w.gh.ClearFaults()
	// The issue is created but its answer lost, then a rate limit.
	w.gh.Sequence(githubtest.FailAfter(502), githubtest.RateLimited(1))
	for i := 0; i < 5; i++ {
		if _, err := w.engine().Flush(t.Context()); err == nil {
			break
		}
	}
	if w.gitCLI("ls-files", ".firebreak/outbox") != "" {
		t.Fatalf("outbox not drained")
	}
	issues := w.gh.Issues()
	if len(issues) != 1 || len(issues[0].Comments) != 3 {
		t.Fatalf("%d issues, comments %+v", len(issues), issues)
	}
}

// TestReviewersRefused: GitHub opens the postmortem pull request but
// refuses its reviewers (422: a team that is not a collaborator). The
// pull request is not opened again, and the record and the issue still
// name it; the refusal is in the timeline.
func TestReviewersRefused(t *testing.T) {
	w := newWorld(t, true)
	e := w.engine()
	start := w.clock.Now().Add(-3 * time.Minute)
	o := one(t, handle(t, e, alertOf("CrashLoop", "api", "firing", "fp-api", start)), respond.Opened)
	if _, err := e.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.gh.Inject(githubtest.Rule{Method: "POST", Path: `^/repos/acme/ops/pulls/\d+/requested_reviewers$`, Times: -1, Fault: githubtest.Fail(422)})
	w.clock.advance(10 * time.Minute)
	resolved := alertOf("CrashLoop", "api", "resolved", "fp-api", start)
	resolved.EndsAt = w.clock.Now()
	one(t, handle(t, e, resolved), respond.Resolved)
	for range 2 {
		if _, err := e.Flush(t.Context()); err != nil {
			t.Fatalf("flush: %v", err)
		}
	}
	pulls := w.gh.Pulls()
	if len(pulls) != 1 {
		t.Fatalf("%d pull requests, want 1", len(pulls))
	}
	in := w.record(o.Incident)
	if in.PostmortemPR != pulls[0].Number {
		t.Errorf("record postmortem_pr %d, want %d", in.PostmortemPR, pulls[0].Number)
	}
	noted := false
	for _, ev := range in.Timeline {
		noted = noted || strings.Contains(ev.Text, "refused the reviewers of pull request")
	}
	if !noted {
		t.Errorf("the timeline does not say the reviewers were refused: %+v", in.Timeline)
	}
	is := w.gh.Issues()[0]
	if last := is.Comments[len(is.Comments)-1].Body; !strings.Contains(last, fmt.Sprintf("#%d", pulls[0].Number)) {
		t.Errorf("the issue's last comment does not link the pull request: %q", last)
	}
	if got := w.gitCLI("ls-files", ".firebreak/outbox"); got != "" {
		t.Errorf("outbox: %q", got)
	}
}

// TestRaceOneIncident: two engines (two processes) on one repository get
// the same alert at once: one incident, its steps run once.
func TestRaceOneIncident(t *testing.T) {
	w := newWorld(t, false)
	a, b := w.engine(), w.engine()
	alert := alertOf("Chatty", "api", "firing", "fp-1", w.clock.Now())
	var wg sync.WaitGroup
	outs := make([][]respond.Outcome, 2)
	for i, e := range []*respond.Engine{a, b} {
		wg.Go(func() {
			out, err := e.Handle(context.Background(), []schema.Alert{alert})
			if err != nil {
				t.Error(err)
			}
			outs[i] = out
		})
	}
	wg.Wait()
	whats := []string{outs[0][0].What, outs[1][0].What}
	slices.Sort(whats)
	if !slices.Equal(whats, []string{respond.Joined, respond.Opened}) && !slices.Equal(whats, []string{respond.Ignored, respond.Opened}) {
		t.Errorf("outcomes %v", whats)
	}
	if files := w.incidentFiles(); len(files) != 1 || len(w.hooks.all()) != 1 {
		t.Errorf("%d incident files, %d deliveries", len(files), len(w.hooks.all()))
	}
}

// TestManyIncidentsTwoWriters: two engines open 60 incidents at once on one
// repository: every file is there, none clobbered, and the index lists
// them all.
func TestManyIncidentsTwoWriters(t *testing.T) {
	w := newWorld(t, false)
	// No run limit for this one.
	w.write("firebreak.cue", strings.Replace(readFile(t, w.dir, "firebreak.cue"), "runs_per_hour: 3", "runs_per_hour: 1000", 1))
	w.gitCLI("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "limit")
	engines := []*respond.Engine{w.engine(), w.engine()}
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Go(func() {
			for j := range 30 {
				svc := fmt.Sprintf("svc-%d-%d", i, j)
				if _, err := e.Handle(context.Background(), []schema.Alert{alertOf("Chatty", svc, "firing", svc, w.clock.Now())}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	files := w.incidentFiles()
	if len(files) != 60 {
		t.Fatalf("%d incident files, want 60", len(files))
	}
	for _, f := range files {
		if in := w.record(strings.TrimSuffix(f[strings.LastIndex(f, "/")+1:], ".md")); in.Status != incident.Mitigated {
			t.Errorf("%s: %s", f, in.Status)
		}
	}
	if got := len(w.hooks.all()); got != 60 {
		t.Errorf("%d deliveries, want 60", got)
	}
}
