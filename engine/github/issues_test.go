package github_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	fbgh "github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/github/githubtest"
)

func spec(id string) fbgh.IssueSpec {
	return fbgh.IssueSpec{
		IncidentID: id,
		Title:      "[critical] Checkout pods crash-looping (" + id + ")",
		Body:       "Summary of " + id + ".\n\nSee incidents/2024/06/" + id + ".md",
		Severity:   "critical",
		Owner:      "@acme/payments",
	}
}

func TestEnsureIssue(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	ctx := t.Context()
	n, err := c.EnsureIssue(ctx, fbgh.IssueSpec{IncidentID: "inc-1", Title: "Disk full\non db-1", Body: "body",
		Severity: "high", Owner: "@alice", Labels: []string{"db"}})
	if err != nil {
		t.Fatal(err)
	}
	is, ok := e.srv.Issue(n)
	if !ok {
		t.Fatalf("issue %d not on the server", n)
	}
	if is.Title != "Disk full on db-1" || !strings.HasSuffix(is.Body, "\n\n"+fbgh.IncidentMarker("inc-1")) {
		t.Errorf("title %q, body %q", is.Title, is.Body)
	}
	if want := []string{"incident", "severity/high", "owner/alice", "db"}; !slices.Equal(is.Labels, want) {
		t.Errorf("labels %q, want %q", is.Labels, want)
	}
	if !slices.Equal(is.Assignees, []string{"alice"}) {
		t.Errorf("assignees %q, want the owner user", is.Assignees)
	}
	for _, l := range e.srv.Labels() {
		if l.Color == "ededed" {
			t.Errorf("label %q was left to GitHub to create; firebreak creates its labels", l.Name)
		}
	}

	// A team owner assigns nobody; the same labels are not created again.
	before := len(e.srv.Requests())
	n2, err := c.EnsureIssue(ctx, spec("inc-2"))
	if err != nil {
		t.Fatal(err)
	}
	is2, _ := e.srv.Issue(n2)
	if len(is2.Assignees) != 0 || !slices.Equal(is2.Labels, []string{"incident", "severity/critical", "owner/acme/payments"}) {
		t.Errorf("team-owned issue: assignees %q, labels %q", is2.Assignees, is2.Labels)
	}
	for _, r := range e.srv.Requests()[before:] {
		if r.Path == "/repos/acme/ops/labels/incident" {
			t.Errorf("label incident looked up again")
		}
	}

	// Known to this client: no request at all. Known to the record: one GET.
	before = len(e.srv.Requests())
	if got, err := c.EnsureIssue(ctx, spec("inc-2")); err != nil || got != n2 {
		t.Fatalf("again: %d, %v", got, err)
	}
	if len(e.srv.Requests()) != before {
		t.Errorf("a cached issue cost requests")
	}
	hinted := spec("inc-2")
	hinted.Number = n2
	if got, err := e.client().EnsureIssue(ctx, hinted); err != nil || got != n2 {
		t.Fatalf("with the record's number: %d, %v", got, err)
	}
	if reqs := e.srv.Requests()[before:]; len(reqs) != 1 || reqs[0].Method != "GET" || reqs[0].Path != fmt.Sprintf("/repos/acme/ops/issues/%d", n2) {
		t.Errorf("with the record's number: %d requests, want one GET of the issue", len(reqs))
	}
	// A wrong number in the record falls back to the listing.
	hinted.Number = n
	if got, err := e.client().EnsureIssue(ctx, hinted); err != nil || got != n2 {
		t.Fatalf("with a wrong number: %d, %v", got, err)
	}
	if len(e.srv.Issues()) != 2 {
		t.Fatalf("%d issues, want 2", len(e.srv.Issues()))
	}
	e.noToken()
}

// TestLookupPaginates: the marker is found on the last page of the
// listing; with Opened, the listing stops at issues older than the
// incident.
func TestLookupPaginates(t *testing.T) {
	e := newEnv(t)
	old := time.Now().Add(-48 * time.Hour)
	e.srv.SetClock(func() time.Time { return old })
	target := e.srv.AddIssue("firebreak-bot", "old incident", "x\n\n"+fbgh.IncidentMarker("inc-old"), "incident")
	for i := range 230 {
		e.srv.AddIssue("someone", fmt.Sprint("noise ", i), "<!-- firebreak:incident=inc-ol -->", "incident")
	}
	e.srv.SetClock(time.Now)
	for i := range 20 {
		e.srv.AddIssue("someone", fmt.Sprint("recent ", i), "", "incident")
	}
	pages := func(from int) []string {
		var p []string
		for _, r := range e.srv.Requests()[from:] {
			if r.Method == "GET" && r.Path == "/repos/acme/ops/issues" {
				p = append(p, r.Query.Get("page"))
			}
		}
		return p
	}
	n, err := e.client().EnsureIssue(t.Context(), spec("inc-old"))
	if err != nil || n != target {
		t.Fatalf("found %d (%v), want %d", n, err, target)
	}
	if got := pages(0); !slices.Equal(got, []string{"", "2", "3"}) {
		t.Errorf("pages listed %q, want all three", got)
	}
	before := len(e.srv.Requests())
	s := spec("inc-new")
	s.Opened = time.Now()
	if _, err := e.client().EnsureIssue(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	// One page with the label, one page of every issue since it opened
	// (in case GitHub dropped the labels): both ask only for recent ones.
	if got := pages(before); !slices.Equal(got, []string{"", ""}) {
		t.Errorf("with Opened, pages listed %q, want the first of two listings", got)
	}
	for _, r := range e.srv.Requests()[before:] {
		if r.Method == "GET" && r.Path == "/repos/acme/ops/issues" && r.Query.Get("since") == "" {
			t.Errorf("listing without since: %v", r.Query)
		}
	}
	if len(e.issuesFor("inc-old")) != 1 || len(e.issuesFor("inc-new")) != 1 {
		t.Fatal("an incident has not exactly one issue")
	}
}

// TestLabelsDropped: a token without push access gets its issue's labels
// silently dropped; the lookup since the incident opened still finds it.
func TestLabelsDropped(t *testing.T) {
	srv := githubtest.New(t, githubtest.Config{Token: token, NoPush: true})
	e := newEnv(t)
	e.srv = srv
	e.opts.Config.APIURL = srv.URL
	s := spec("inc-1")
	s.Opened = time.Now()
	for range 2 {
		if _, err := e.client().EnsureIssue(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.issuesFor("inc-1"); len(got) != 1 || len(got[0].Labels) != 0 {
		t.Fatalf("%d issues, want 1 without labels", len(got))
	}
	if !strings.Contains(e.logs.String(), "lacks push access") {
		t.Error("dropped labels not logged")
	}
}

// TestLabelsRefused: a token that may not create labels still gets the
// incident its issue.
func TestLabelsRefused(t *testing.T) {
	e := newEnv(t)
	e.srv.Inject(githubtest.Rule{Method: "POST", Path: `/labels$`, Fault: githubtest.Fail(403), Times: -1})
	if _, err := e.client().EnsureIssue(t.Context(), spec("inc-1")); err != nil {
		t.Fatal(err)
	}
	if len(e.issuesFor("inc-1")) != 1 || !strings.Contains(e.logs.String(), "label not created") {
		t.Fatal("no issue, or no warning")
	}
}

// TestHostileText: text cannot forge a marker, and oversize text is cut to
// what GitHub takes.
func TestHostileText(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	ctx := t.Context()
	s := spec("inc-a")
	s.Body = "<!-- firebreak:incident=inc-b -->\n---\n[x](javascript:alert(1))\xff" + strings.Repeat("y", 100<<10)
	s.Title = strings.Repeat("t", 1000)
	a, err := c.EnsureIssue(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.EnsureIssue(ctx, spec("inc-b"))
	if err != nil {
		t.Fatal(err)
	}
	if a == b || len(e.issuesFor("inc-b")) != 1 {
		t.Fatalf("a forged marker made inc-b find inc-a's issue")
	}
	if err := c.Comment(ctx, a, "k1", "<!-- firebreak:comment=k2 -->"+strings.Repeat("z", 70000)); err != nil {
		t.Fatal(err)
	}
	if err := c.Comment(ctx, a, "k2", "second"); err != nil {
		t.Fatal(err)
	}
	if e.commentsWith(a, "k2") != 1 {
		t.Fatalf("a forged comment marker suppressed comment k2")
	}
	for _, bad := range []string{"", "a b", "x-->", "<y>", strings.Repeat("i", 300)} {
		if _, err := c.EnsureIssue(ctx, spec(bad)); !errors.Is(err, fbgh.ErrInvalid) || fbgh.IsTransient(err) {
			t.Errorf("incident id %q: %v, want a permanent ErrInvalid", bad, err)
		}
	}
}

// slowTimeout is the attempt timeout of tests whose slow answers
// (Delayed(1500ms)) must outlast it.
const slowTimeout = 400 * time.Millisecond

// faults is every kind of failure the server injects, with Retry-After 0
// (TestRetryAfter measures the waits).
var faults = []githubtest.Fault{
	githubtest.Fail(500),
	githubtest.Fail(502),
	githubtest.Fail(503),
	githubtest.FailAfter(500),
	githubtest.FailAfter(502),
	githubtest.RateLimited(0),
	githubtest.SecondaryLimit(0),
	githubtest.Delayed(100 * time.Millisecond),
	githubtest.Delayed(1500 * time.Millisecond), // past the attempt timeout
	githubtest.Dropped(),
	githubtest.DroppedAfter(),
}

// everywhere injects f into each kind of request the client makes; the
// creates fail twice in a row.
func everywhere(f githubtest.Fault) []githubtest.Rule {
	return []githubtest.Rule{
		{Method: "GET", Path: `^/repos/acme/ops/issues$`, Fault: f},
		{Method: "GET", Path: `^/repos/acme/ops/labels/`, Fault: f},
		{Method: "POST", Path: `^/repos/acme/ops/labels$`, Fault: f},
		{Method: "GET", Path: `^/repos/acme/ops/assignees/`, Fault: f},
		{Method: "POST", Path: `^/repos/acme/ops/issues$`, Fault: f, Times: 2},
		{Method: "GET", Path: `^/repos/acme/ops/issues/\d+/comments$`, Fault: f},
		{Method: "POST", Path: `^/repos/acme/ops/issues/\d+/comments$`, Fault: f, Times: 2},
		{Method: "PATCH", Path: `^/repos/acme/ops/issues/\d+$`, Fault: f},
		{Method: "GET", Path: `^/repos/acme/ops/pulls$`, Fault: f},
		{Method: "POST", Path: `^/repos/acme/ops/pulls$`, Fault: f, Times: 2},
		{Method: "GET", Path: `^/repos/acme/ops/pulls/\d+/reviews$`, Fault: f},
		{Method: "POST", Path: `^/repos/acme/ops/pulls/\d+/requested_reviewers$`, Fault: f},
	}
}

// TestFailureMatrix runs the whole GitHub side of one incident with each
// kind of failure injected into every kind of request, then again from a
// fresh client (a restart): one issue, each comment once, one pull
// request with its reviewers, all without help from an outbox.
func TestFailureMatrix(t *testing.T) {
	for _, f := range faults {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.opts.AttemptTimeout = slowTimeout
			e.srv.Inject(everywhere(f)...)
			s := spec("inc-7")
			s.Owner = "@bob"
			pr := fbgh.PRSpec{IncidentID: "inc-7", Head: "postmortem/inc-7", Base: "main",
				Title: "Postmortem inc-7", Body: "draft", Reviewers: []string{"@acme/payments", "@carol", "@firebreak-bot"}}
			var number, pull int
			for round, c := range []*fbgh.Client{e.client(), e.client()} {
				ctx := t.Context()
				n, err := c.EnsureIssue(ctx, s)
				if err != nil {
					t.Fatalf("round %d: ensure issue: %v", round, err)
				}
				if round == 1 && n != number {
					t.Fatalf("round 1 found issue %d, round 0 made %d", n, number)
				}
				number = n
				for _, key := range []string{"step/notify", "step/rollback", "step/verify"} {
					if err := c.Comment(ctx, n, key, "finished "+key); err != nil {
						t.Fatalf("round %d: comment %s: %v", round, key, err)
					}
				}
				if err := c.CloseIssue(ctx, n, "Resolved after 12m."); err != nil {
					t.Fatalf("round %d: close: %v", round, err)
				}
				p, err := c.EnsurePullRequest(ctx, pr)
				if err != nil {
					t.Fatalf("round %d: pull request: %v", round, err)
				}
				if round == 1 && p != pull {
					t.Fatalf("round 1 found pull request %d, round 0 made %d", p, pull)
				}
				pull = p
			}
			if got := e.issuesFor("inc-7"); len(got) != 1 {
				t.Fatalf("%d issues for the incident, want 1", len(got))
			}
			is, _ := e.srv.Issue(number)
			if is.State != "closed" || is.StateReason != "completed" || !slices.Equal(is.Assignees, []string{"bob"}) {
				t.Errorf("issue state %s/%s, assignees %q", is.State, is.StateReason, is.Assignees)
			}
			for _, key := range []string{"step/notify", "step/rollback", "step/verify", fbgh.CloseKey} {
				if n := e.commentsWith(number, key); n != 1 {
					t.Errorf("comment %s posted %d times, want 1", key, n)
				}
			}
			pulls := e.srv.Pulls()
			if len(pulls) != 1 {
				t.Fatalf("%d pull requests, want 1", len(pulls))
			}
			if p := pulls[0].Pull; !slices.Equal(p.RequestedTeams, []string{"payments"}) || !slices.Equal(p.RequestedReviewers, []string{"carol"}) {
				t.Errorf("reviewers %q, teams %q; want carol and payments", p.RequestedReviewers, p.RequestedTeams)
			}
			if n := injected(e.srv); n < 10 {
				t.Errorf("only %d faults injected", n)
			}
			e.noToken()
		})
	}
}

// TestRandomFailures runs several incidents through a random sequence of
// faults, the caller retrying transient errors as the outbox will (from a
// fresh client now and then, as after a restart), then once more without
// faults: each incident has one issue, each owed comment is there once.
func TestRandomFailures(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 42))
			e := newEnv(t)
			e.opts.AttemptTimeout = slowTimeout
			e.opts.HTTP.RetryMax = 1 // leave more to the outbox
			var seq []githubtest.Fault
			for range 200 {
				f := githubtest.Fault{}
				if rng.IntN(100) < 50 {
					f = faults[rng.IntN(len(faults))]
				}
				seq = append(seq, f)
			}
			e.srv.Sequence(seq...)
			c := e.client()
			owed := 0 // calls that failed and were left to the outbox
			outbox := func(what string, op func(*fbgh.Client) error) {
				t.Helper()
				for try := 0; ; try++ {
					err := op(c)
					if err == nil {
						return
					}
					if !fbgh.IsTransient(err) || try == 30 {
						t.Fatalf("%s: %v (transient %v)", what, err, fbgh.IsTransient(err))
					}
					owed++
					if rng.IntN(3) == 0 {
						c = e.client()
					}
				}
			}
			ids := []string{"inc-a", "inc-b", "inc-c"}
			numbers := map[string]int{}
			for pass := range 2 {
				if pass == 1 {
					e.srv.ClearFaults()
					c = e.client()
				}
				for _, id := range ids {
					outbox("issue "+id, func(c *fbgh.Client) error {
						n, err := c.EnsureIssue(t.Context(), spec(id))
						numbers[id] = n
						return err
					})
					for _, step := range []string{"notify", "rollback"} {
						outbox("comment "+id+" "+step, func(c *fbgh.Client) error {
							return c.Comment(t.Context(), numbers[id], "step/"+step, step+" done")
						})
					}
				}
				outbox("close inc-a", func(c *fbgh.Client) error {
					return c.CloseIssue(t.Context(), numbers["inc-a"], "resolved")
				})
				outbox("pull request inc-a", func(c *fbgh.Client) error {
					_, err := c.EnsurePullRequest(t.Context(), fbgh.PRSpec{IncidentID: "inc-a", Head: "postmortem/inc-a",
						Base: "main", Title: "Postmortem", Reviewers: []string{"@acme/payments"}})
					return err
				})
			}
			for _, id := range ids {
				if got := e.issuesFor(id); len(got) != 1 {
					t.Errorf("%s: %d issues, want 1", id, len(got))
				}
				for _, key := range []string{"step/notify", "step/rollback"} {
					if n := e.commentsWith(numbers[id], key); n != 1 {
						t.Errorf("%s: comment %s %d times, want 1", id, key, n)
					}
				}
			}
			t.Logf("%d faults injected, %d calls retried by the outbox", injected(e.srv), owed)
			if owed == 0 {
				t.Error("nothing was left to the outbox: the sequence is too kind")
			}
			if e.commentsWith(numbers["inc-a"], fbgh.CloseKey) != 1 || len(e.srv.Pulls()) != 1 {
				t.Errorf("close comment %d, pull requests %d; want 1 and 1", e.commentsWith(numbers["inc-a"], fbgh.CloseKey), len(e.srv.Pulls()))
			}
			e.noToken()
		})
	}
}

// TestRetryAfter measures, on the server's own arrival times, the wait
// between a rate-limited request and its repeat: what Retry-After asked,
// whether webclient repeats it (a listing) or this package does (a
// create). A 500 is repeated after the short backoff, for contrast.
func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		fault  githubtest.Fault
		min    time.Duration
		max    time.Duration
	}{
		{"429 on a listing", "GET", `^/repos/acme/ops/issues$`, githubtest.RateLimited(1), time.Second, 2 * time.Second},
		{"403 secondary on a listing", "GET", `^/repos/acme/ops/issues$`, githubtest.SecondaryLimit(1), time.Second, 2 * time.Second},
		{"429 on a create", "POST", `^/repos/acme/ops/issues$`, githubtest.RateLimited(1), time.Second, 2 * time.Second},
		{"403 secondary on a create", "POST", `^/repos/acme/ops/issues$`, githubtest.SecondaryLimit(1), time.Second, 2 * time.Second},
		{"500 on a listing", "GET", `^/repos/acme/ops/issues$`, githubtest.Fail(500), 0, 500 * time.Millisecond},
		{"500 on a create", "POST", `^/repos/acme/ops/issues$`, githubtest.Fail(500), 0, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.srv.Inject(githubtest.Rule{Method: tt.method, Path: tt.path, Fault: tt.fault})
			if _, err := e.client().EnsureIssue(t.Context(), spec("inc-1")); err != nil {
				t.Fatal(err)
			}
			reqs := e.srv.Requests()
			i := slices.IndexFunc(reqs, func(r githubtest.Request) bool { return r.Fault != "none" })
			if i < 0 {
				t.Fatal("no fault injected")
			}
			j := slices.IndexFunc(reqs[i+1:], func(r githubtest.Request) bool {
				return r.Method == reqs[i].Method && r.Path == reqs[i].Path
			})
			if j < 0 {
				t.Fatalf("%s %s never repeated", reqs[i].Method, reqs[i].Path)
			}
			gap := reqs[i+1+j].At.Sub(reqs[i].At)
			if gap < tt.min || gap > tt.max {
				t.Errorf("repeated after %v, want between %v and %v", gap, tt.min, tt.max)
			}
			if len(e.issuesFor("inc-1")) != 1 {
				t.Fatal("not exactly one issue")
			}
		})
	}
}

// TestLongRetryAfter: a wait longer than RetryAfterMax is not slept
// through: the error goes back at once, transient, with GitHub's wait for
// the outbox.
func TestLongRetryAfter(t *testing.T) {
	for _, f := range []githubtest.Fault{githubtest.RateLimited(30), githubtest.SecondaryLimit(30), {Kind: githubtest.Secondary}} {
		t.Run(f.String(), func(t *testing.T) {
			e := newEnv(t)
			e.srv.Inject(githubtest.Rule{Method: "GET", Path: `^/repos/acme/ops/issues$`, Fault: f})
			start := time.Now()
			_, err := e.client().EnsureIssue(t.Context(), spec("inc-1"))
			if err == nil {
				t.Fatal("no error")
			}
			want := 30 * time.Second
			if f.RetryAfter == "" {
				want = time.Minute // GitHub's advice when it names no wait
			}
			if !fbgh.IsTransient(err) || fbgh.RetryAfter(err) < want-2*time.Second || fbgh.RetryAfter(err) > want {
				t.Errorf("%v: transient %v, retry after %v; want transient, %v", err, fbgh.IsTransient(err), fbgh.RetryAfter(err), want)
			}
			if n := len(e.srv.Requests()); n != 1 || time.Since(start) > time.Second {
				t.Errorf("%d requests in %v, want 1 at once", n, time.Since(start))
			}
			e.noToken(err.Error())
		})
	}
}

// TestStatusTable pins down what is retried and how each answer is
// classified for the outbox.
func TestStatusTable(t *testing.T) {
	tests := []struct {
		fault     githubtest.Fault
		retried   bool
		transient bool
	}{
		{githubtest.Fail(400), false, false},
		{githubtest.Fail(401), false, false},
		{githubtest.Fail(403), false, false},
		{githubtest.Fail(404), false, false},
		{githubtest.Fail(410), false, false},
		{githubtest.Fail(422), false, false},
		{githubtest.Fail(500), true, true},
		{githubtest.Fail(501), false, false},
		{githubtest.Fail(502), true, true},
		{githubtest.Fail(503), true, true},
		{githubtest.Fail(504), true, true},
		{githubtest.RateLimited(0), true, true},
		{githubtest.SecondaryLimit(0), true, true},
		{githubtest.Dropped(), true, true},
		{githubtest.Delayed(1500 * time.Millisecond), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.fault.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.opts.HTTP.RetryMax = 1
			if tt.fault.Kind == githubtest.Slow {
				e.opts.AttemptTimeout = slowTimeout
			}
			e.srv.Inject(githubtest.Rule{Method: "GET", Path: `^/repos/acme/ops/issues$`, Fault: tt.fault, Times: -1})
			_, err := e.client().EnsureIssue(t.Context(), spec("inc-1"))
			if err == nil {
				t.Fatal("no error")
			}
			want := 1
			if tt.retried {
				want = 2
			}
			if n := len(e.srv.Requests()); n != want {
				t.Errorf("%d requests, want %d", n, want)
			}
			if fbgh.IsTransient(err) != tt.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", err, !tt.transient, tt.transient)
			}
			var ge *fbgh.Error
			if !errors.As(err, &ge) {
				t.Fatalf("%T is not an *Error", err)
			}
			if tt.fault.Kind == githubtest.Status && ge.Status != tt.fault.Code {
				t.Errorf("Status %d, want %d", ge.Status, tt.fault.Code)
			}
		})
	}
}

// TestTokenNeverLeaks: an answer that quotes the Authorization header, a
// wrong token, and the retry logs keep the token out.
func TestTokenNeverLeaks(t *testing.T) {
	e := newEnv(t)
	e.srv.Inject(githubtest.Rule{Method: "POST", Path: `^/repos/acme/ops/issues$`, Fault: githubtest.Fault{Kind: githubtest.EchoAuth}})
	e.srv.Inject(githubtest.Rule{Path: `/labels`, Fault: githubtest.Fail(502), Times: 3})
	_, err := e.client().EnsureIssue(t.Context(), spec("inc-1"))
	if err == nil || fbgh.IsTransient(err) {
		t.Fatalf("err = %v, want a permanent error", err)
	}
	if !strings.Contains(err.Error(), "[redacted") {
		t.Errorf("the echoed header is not redacted: %v", err)
	}
	e.noToken(err.Error(), fmt.Sprintf("%+v %#v", err, err), chain(err))

	wrong := "ghp_wr0ngT0ken5555"
	srv := githubtest.New(t, githubtest.Config{Token: token})
	e.opts.Config.APIURL = srv.URL
	e.opts.Secrets = secretsWith(wrong)
	_, err = e.client().EnsureIssue(t.Context(), spec("inc-1"))
	var ge *fbgh.Error
	if !errors.As(err, &ge) || ge.Status != http.StatusUnauthorized || fbgh.IsTransient(err) {
		t.Fatalf("wrong token: %v, want a permanent 401", err)
	}
	if strings.Contains(err.Error()+e.logs.String(), wrong) {
		t.Fatalf("the wrong token leaked: %v", err)
	}
}

func injected(s *githubtest.Server) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Fault != "none" {
			n++
		}
	}
	return n
}

func chain(err error) string {
	var b strings.Builder
	for err != nil {
		b.WriteString(err.Error() + "\n")
		err = errors.Unwrap(err)
	}
	return b.String()
}
