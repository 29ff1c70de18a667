package github_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/firebreak-dev/firebreak/actions/secrets"
	fbgh "github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/github/githubtest"
	"github.com/firebreak-dev/firebreak/schema"
)

func TestEnsurePullRequest(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	spec := fbgh.PRSpec{IncidentID: "inc-9", Head: "postmortem/inc-9", Base: "main", Title: "Postmortem: inc-9",
		Body: "draft", Reviewers: []string{"@acme/payments", "@bob", "carol", "@firebreak-bot", "@other/team"}}
	n, err := e.client().EnsurePullRequest(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	pulls := e.srv.Pulls()
	if len(pulls) != 1 || pulls[0].Number != n {
		t.Fatalf("%d pull requests", len(pulls))
	}
	p := pulls[0].Pull
	if p.Head != "postmortem/inc-9" || p.Base != "main" || !strings.HasSuffix(pulls[0].Body, fbgh.PullMarker("inc-9")) {
		t.Errorf("pull request %+v", pulls[0])
	}
	if !slices.Equal(p.RequestedReviewers, []string{"bob", "carol"}) || !slices.Equal(p.RequestedTeams, []string{"payments"}) {
		t.Errorf("reviewers %q, teams %q", p.RequestedReviewers, p.RequestedTeams)
	}

	// bob reviews; ensuring again (after a restart) asks nobody again.
	e.srv.AddReview(n, "bob", "APPROVED")
	before := len(e.srv.Requests())
	if again, err := e.client().EnsurePullRequest(ctx, spec); err != nil || again != n {
		t.Fatalf("again: %d, %v", again, err)
	}
	for _, r := range e.srv.Requests()[before:] {
		if r.Method != "GET" {
			t.Errorf("ensuring again sent %s %s", r.Method, r.Path)
		}
	}

	// A create whose answer is lost is found by the lookup; a lookup that
	// lags behind makes a create that GitHub refuses (422 "already
	// exists"), and a second lookup finds the first.
	spec2 := spec
	spec2.IncidentID, spec2.Head = "inc-10", "postmortem/inc-10"
	e.srv.Inject(githubtest.Rule{Method: "POST", Path: `^/repos/acme/ops/pulls$`, Fault: githubtest.DroppedAfter()})
	n2, err := e.client().EnsurePullRequest(ctx, spec2)
	if err != nil || n2 == n {
		t.Fatalf("second pull request: %d, %v", n2, err)
	}
	e.srv.Inject(githubtest.Rule{Method: "GET", Path: `^/repos/acme/ops/pulls$`, Fault: githubtest.Fault{Kind: githubtest.Stale}})
	if again, err := e.client().EnsurePullRequest(ctx, spec2); err != nil || again != n2 {
		t.Fatalf("behind a lagging lookup: %d, %v; want %d", again, err, n2)
	}
	if got := len(e.srv.Pulls()); got != 2 {
		t.Fatalf("%d pull requests, want 2", got)
	}
	refused := slices.ContainsFunc(e.srv.Requests(), func(r githubtest.Request) bool {
		return r.Method == "POST" && r.Path == "/repos/acme/ops/pulls" && r.Status == 422
	})
	if !refused {
		t.Error("the lagging lookup did not lead to a refused create")
	}
	e.noToken()
}

// TestConcurrentCalls: callers racing on one incident in one process make
// one issue and one comment.
func TestConcurrentCalls(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	var wg sync.WaitGroup
	numbers := make([]int, 8)
	for i := range numbers {
		wg.Go(func() {
			n, err := c.EnsureIssue(t.Context(), spec("inc-race"))
			if err != nil {
				t.Error(err)
				return
			}
			numbers[i] = n
			if err := c.Comment(t.Context(), n, "step/one", "once"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(e.issuesFor("inc-race")) != 1 || e.commentsWith(numbers[0], "step/one") != 1 {
		t.Fatalf("%d issues, %d comments; want 1 and 1", len(e.issuesFor("inc-race")), e.commentsWith(numbers[0], "step/one"))
	}
}

// TestCommenter: notify's github channel through the adapter, keyed by
// notify's delivery marker.
func TestCommenter(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	ctx := t.Context()
	n, err := c.EnsureIssue(ctx, spec("inc-1"))
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(_ context.Context, incident string) (int, error) {
		if incident == "inc-1" {
			return n, nil
		}
		return 0, nil
	}
	cm := c.Commenter(lookup)
	body := "**Rolling back**\n\nRolling back checkout-api\n\n<!-- firebreak:notify inc-1/notify-1 -->"
	for range 2 {
		if err := cm.Comment(ctx, "inc-1", body); err != nil {
			t.Fatal(err)
		}
		if err := e.client().Commenter(lookup).Comment(ctx, "inc-1", "plain text"); err != nil {
			t.Fatal(err)
		}
	}
	is, _ := e.srv.Issue(n)
	if len(is.Comments) != 2 {
		t.Fatalf("%d comments, want 2", len(is.Comments))
	}
	if want := "**Rolling back**\n\nRolling back checkout-api\n\n" + fbgh.CommentMarker("notify/inc-1/notify-1"); is.Comments[0].Body != want {
		t.Errorf("comment %q, want %q", is.Comments[0].Body, want)
	}
	err = cm.Comment(ctx, "inc-2", "x")
	if !errors.Is(err, fbgh.ErrNoIssue) || !fbgh.IsTransient(err) {
		t.Errorf("no issue yet: %v, want a transient ErrNoIssue", err)
	}
}

func TestNew(t *testing.T) {
	sec := secrets.NewFromMap(map[string]string{"GITHUB_TOKEN": token})
	tests := []struct {
		name string
		cfg  *schema.GitHub
		sec  *secrets.Store
		want error
	}{
		{"no config", nil, sec, fbgh.ErrInvalid},
		{"no secrets", &schema.GitHub{Owner: "a", Repo: "b", Token: schema.Secret{Secret: "GITHUB_TOKEN"}}, nil, fbgh.ErrInvalid},
		{"missing secret", &schema.GitHub{Owner: "a", Repo: "b", Token: schema.Secret{Secret: "NOPE"}}, sec, secrets.ErrNotFound},
		{"bad api_url", &schema.GitHub{Owner: "a", Repo: "b", APIURL: "ftp://x", Token: schema.Secret{Secret: "GITHUB_TOKEN"}}, sec, fbgh.ErrInvalid},
		{"default api_url", &schema.GitHub{Owner: "a", Repo: "b", Token: schema.Secret{Secret: "GITHUB_TOKEN"}}, sec, nil},
	}
	for _, tt := range tests {
		_, err := fbgh.New(fbgh.Options{Config: tt.cfg, Secrets: tt.sec})
		if !errors.Is(err, tt.want) || (err != nil && strings.Contains(err.Error(), token)) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestEnterpriseURL: a non-default api_url is reached under /api/v3, and
// requests go nowhere else.
func TestEnterpriseURL(t *testing.T) {
	e := newEnv(t)
	if _, err := e.client().EnsureIssue(t.Context(), spec("inc-1")); err != nil {
		t.Fatal(err)
	}
	if len(e.srv.Requests()) == 0 {
		t.Fatal("no request reached the server")
	}
	e.opts.HTTP.AllowedHosts = []string{"example.com"}
	_, err := e.client().EnsureIssue(t.Context(), spec("inc-2"))
	if err == nil || fbgh.IsTransient(err) {
		t.Fatalf("undeclared host: %v, want a permanent error", err)
	}
}
