package respond_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/actions/webclient"
	"github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/github/githubtest"
	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/engine/run"
)

// fastEngine is w.engine() with a GitHub client that gives up on an
// answer after 300 ms instead of 5 s, so that slow answers cost little;
// its retry waits are the harness's (1 to 10 ms, Retry-After capped at
// 1 s).
func fastEngine(t *testing.T, w *world) *respond.Engine {
	t.Helper()
	e := w.engine()
	sec := secrets.NewFromMap(map[string]string{"GITHUB_TOKEN": ghToken})
	gh, err := github.New(github.Options{
		Config: e.Repo.Config.GitHub, Secrets: sec, Log: e.Log,
		HTTP:           webclient.Options{RetryMax: 2, WaitMin: time.Millisecond, WaitMax: 10 * time.Millisecond, RetryAfterMax: time.Second},
		AttemptTimeout: 300 * time.Millisecond, MutationGap: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.GitHub = gh
	return e
}

// Paths of the GitHub REST API the faults are aimed at.
const (
	issuesPath   = `^/repos/acme/ops/issues$`
	issuePath    = `^/repos/acme/ops/issues/\d+$`
	commentsPath = `^/repos/acme/ops/issues/\d+/comments$`
	pullsPath    = `^/repos/acme/ops/pulls$`
	labelPath    = `^/repos/acme/ops/labels/`
)

// githubFaults are what GitHub does wrong in TestGitHubFaults: every
// create answered with an error or not at all after it took effect (a
// lost answer, after which a blind retry makes a duplicate), before it
// took effect, slowly, or with a rate limit; and lookups failing the same
// ways. A rule lets the matching requests through once its Times are
// used, so every fault happens once at least and the outbox can drain.
func githubFaults() []githubtest.Rule {
	slow := githubtest.Delayed(time.Second) // longer than the 300 ms attempt timeout
	return []githubtest.Rule{
		// Creating an issue.
		{Method: "POST", Path: issuesPath, Fault: githubtest.FailAfter(502)},
		{Method: "POST", Path: issuesPath, Fault: githubtest.DroppedAfter()},
		{Method: "POST", Path: issuesPath, Fault: slow},
		{Method: "POST", Path: issuesPath, Fault: githubtest.SecondaryLimit(1)},
		{Method: "POST", Path: issuesPath, Fault: githubtest.Fail(500)},
		{Method: "POST", Path: issuesPath, Fault: githubtest.Dropped()},
		// Looking for it.
		{Method: "GET", Path: issuesPath, Times: 3, Fault: githubtest.Fail(502)},
		{Method: "GET", Path: issuesPath, Skip: 2, Fault: githubtest.RateLimited(1)},
		{Method: "GET", Path: labelPath, Fault: githubtest.Fail(500)},
		// Comments.
		{Method: "POST", Path: commentsPath, Times: 2, Fault: githubtest.DroppedAfter()},
		{Method: "POST", Path: commentsPath, Fault: githubtest.FailAfter(500)},
		{Method: "POST", Path: commentsPath, Fault: githubtest.RateLimited(1)},
		{Method: "POST", Path: commentsPath, Fault: githubtest.SecondaryLimit(1)},
		{Method: "POST", Path: commentsPath, Fault: githubtest.Dropped()},
		{Method: "POST", Path: commentsPath, Skip: 3, Fault: slow},
		{Method: "POST", Path: commentsPath, Skip: 6, Times: 2, Fault: githubtest.FailAfter(502)},
		{Method: "GET", Path: commentsPath, Times: 3, Fault: githubtest.Fail(500)},
		{Method: "GET", Path: commentsPath, Skip: 4, Fault: githubtest.Dropped()},
		// Closing, and the postmortem pull request.
		{Method: "PATCH", Path: issuePath, Fault: githubtest.SecondaryLimit(1)},
		{Method: "PATCH", Path: issuePath, Fault: githubtest.Fail(502)},
		{Method: "POST", Path: pullsPath, Fault: githubtest.FailAfter(502)},
		{Method: "POST", Path: pullsPath, Fault: githubtest.DroppedAfter()},
		{Method: "GET", Path: pullsPath, Fault: githubtest.Fail(500)},
	}
}

// TestGitHubFaults handles six incidents while GitHub fails in every way
// the retrying client and the outbox must ride out (500, 502, 429 and 403
// secondary limit with Retry-After, answers slower than the client waits,
// dropped connections, each before and after the request took effect),
// flushing again and again, with restarts in between, until the outbox is
// empty. Then each incident has exactly one issue, every comment it was
// owed is there exactly once, each resolved incident has one postmortem
// pull request, and nothing was dropped as refused.
func TestGitHubFaults(t *testing.T) {
	w := newWorld(t, true)
	w.write("firebreak.cue", strings.Replace(readFile(t, w.dir, "firebreak.cue"), "runs_per_hour: 3", "runs_per_hour: 1000", 1))
	w.gitCLI("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "no run limit")
	w.gh.Inject(githubFaults()...)
	engines := 0
	next := func() *respond.Engine {
		engines++
		return fastEngine(t, w)
	}
	e := next()
	start := w.clock.Now().Add(-time.Minute)

	// Five chatty incidents (one step) and a burn incident that waits
	// for an approval; a first flush gets part of it through.
	var ids []string
	for _, svc := range []string{"a", "b", "c", "d", "e"} {
		ids = append(ids, one(t, handle(t, e, alertOf("Chatty", svc, "firing", "c-"+svc, start)), respond.Opened).Incident)
	}
	burn := one(t, handle(t, e, alertOf("Burn", "api", "firing", "b-api", start)), respond.Opened).Incident
	ids = append(ids, burn)
	var transient int // flushes that ended on a transient error
	flush := func(e *respond.Engine) {
		t.Helper()
		n, err := e.Flush(t.Context())
		t.Logf("flush: %d sent, %v", n, err)
		switch {
		case err == nil:
		case !github.IsTransient(err):
			t.Fatalf("flush: permanent error %v", err)
		default:
			transient++
			// go-github refuses requests itself until a rate limit's
			// Retry-After has passed: wait it out rather than spin.
			time.Sleep(min(github.RetryAfter(err), time.Second) + 10*time.Millisecond)
		}
	}
	flush(e)

	// The approval, and two incidents resolving, owe more.
	w.clock.advance(time.Minute)
	if res, err := e.Decide(t.Context(), respond.Decision{Incident: burn, Approve: true, By: "@alice"}); err != nil || res.Status != run.RunSucceeded {
		t.Fatalf("approve: %v %+v", err, res)
	}
	resolvedIDs := ids[:2]
	for i, svc := range []string{"a", "b"} {
		w.clock.advance(time.Minute)
		a := alertOf("Chatty", svc, "resolved", "c-"+svc, start)
		a.EndsAt = w.clock.Now()
		if o := one(t, handle(t, e, a), respond.Resolved); o.Incident != resolvedIDs[i] {
			t.Fatalf("resolved %s, want %s", o.Incident, resolvedIDs[i])
		}
	}

	// A storm: of the next 80 requests, whatever they are, three in four
	// fail, so that calls fail past the client's retries.
	var storm []githubtest.Fault
	for i := range 80 {
		storm = append(storm, []githubtest.Fault{githubtest.Fail(502), githubtest.DroppedAfter(), githubtest.Fail(500), {}}[i%4])
	}
	w.gh.Sequence(storm...)

	// Flush until nothing is owed; every other round is a restart.
	rounds := 0
	for w.gitCLI("ls-files", ".firebreak/outbox") != "" {
		rounds++
		if rounds > 40 {
			t.Fatalf("outbox not drained after 40 flushes: %s", w.gitCLI("ls-files", ".firebreak/outbox"))
		}
		if rounds%2 == 0 {
			e = next()
		}
		flush(e)
	}
	t.Logf("drained in %d more flushes with %d engines; %d flushes left something owed", rounds, engines, transient)
	if transient == 0 {
		t.Errorf("no flush left anything owed: the faults never reached the outbox")
	}

	// Every kind of fault happened.
	kinds := map[string]int{}
	for _, r := range w.gh.Requests() {
		kinds[r.Fault]++
	}
	for _, want := range []string{"500", "502", "502 after effect", "500 after effect", "429 retry-after 1", "403 secondary retry-after 1",
		"slow 1s", "drop", "drop after effect"} {
		if kinds[want] == 0 {
			t.Errorf("no request got fault %q: %v", want, kinds)
		}
	}

	// Exactly one issue per incident, the one its record names.
	issues := w.gh.Issues()
	if len(issues) != len(ids) {
		t.Errorf("%d issues for %d incidents", len(issues), len(ids))
	}
	keysOf := regexp.MustCompile(`<!-- firebreak:comment=(\S+) -->`)
	for _, id := range ids {
		var mine []githubtest.Issue
		for _, is := range issues {
			if strings.Contains(is.Body, github.IncidentMarker(id)) {
				mine = append(mine, is)
			}
		}
		if len(mine) != 1 {
			t.Errorf("incident %s: %d issues", id, len(mine))
			continue
		}
		is := mine[0]
		in := w.record(id)
		if in.Issue != is.Number {
			t.Errorf("incident %s: record names issue %d, its issue is %d", id, in.Issue, is.Number)
		}
		for _, ev := range in.Timeline {
			if strings.HasPrefix(ev.Text, "GitHub refused") {
				t.Errorf("incident %s: %s", id, ev.Text)
			}
		}

		// Every comment owed, exactly once, and no comment without its
		// marker.
		var keys []string
		for _, c := range is.Comments {
			m := keysOf.FindAllStringSubmatch(c.Body, -1)
			if len(m) != 1 {
				t.Errorf("incident %s: comment %d has %d markers: %.200q", id, c.ID, len(m), c.Body)
				continue
			}
			keys = append(keys, m[0][1])
		}
		slices.Sort(keys)
		want := owedComments(id, burn, resolvedIDs)
		if !slices.Equal(keys, want) {
			t.Errorf("incident %s: comments %q, want each of %q once", id, keys, want)
		}
		wantState := "open"
		if slices.Contains(resolvedIDs, id) {
			wantState = "closed"
		}
		if is.State != wantState {
			t.Errorf("incident %s: issue %s, want %s", id, is.State, wantState)
		}
	}

	// One postmortem pull request per resolved incident.
	pulls := w.gh.Pulls()
	if len(pulls) != len(resolvedIDs) {
		t.Errorf("%d pull requests, want %d", len(pulls), len(resolvedIDs))
	}
	for _, id := range resolvedIDs {
		n := 0
		for _, pr := range pulls {
			if strings.Contains(pr.Body, github.PullMarker(id)) {
				n++
				if w.record(id).PostmortemPR != pr.Number {
					t.Errorf("incident %s: record names pull request %d, its own is %d", id, w.record(id).PostmortemPR, pr.Number)
				}
			}
		}
		if n != 1 {
			t.Errorf("incident %s: %d postmortem pull requests", id, n)
		}
	}

	// A last flush, and one more after a restart, send nothing again.
	for _, e := range []*respond.Engine{e, next()} {
		if n, err := e.Flush(t.Context()); n != 0 || err != nil {
			t.Errorf("flush with nothing owed: %d sent, %v", n, err)
		}
	}
	if got := len(w.gh.Issues()); got != len(ids) {
		t.Errorf("%d issues after the last flushes", got)
	}
}

// owedComments are the comment keys incident id is owed in
// TestGitHubFaults, sorted.
func owedComments(id, burn string, resolved []string) []string {
	keys := []string{"mitigated", "step/notify/succeeded"}
	if id == burn {
		keys = []string{"approval/flip/approved", "mitigated", "step/flip/succeeded", "step/flip/waiting", "step/notify-1/succeeded", "step/notify-3/succeeded"}
	}
	if slices.Contains(resolved, id) {
		keys = append(keys, github.CloseKey, "postmortem")
	}
	slices.Sort(keys)
	return keys
}
