package github_test

import (
	"errors"
	"slices"
	"testing"

	fbgh "github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/github/githubtest"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		body    string
		verdict fbgh.Verdict
		step    string
		ok      bool
	}{
		{"/approve flag-1", fbgh.Approve, "flag-1", true},
		{"  /APPROVE Flag_1.b  \r\nthanks", fbgh.Approve, "flag_1.b", true},
		{"/deny rollback\nnot now", fbgh.Deny, "rollback", true},
		{"/Deny\trollback", fbgh.Deny, "rollback", true},
		{"/approve", "", "", false},
		{"/approve two steps", "", "", false},
		{"/approve step!", "", "", false},
		{"please /approve flag-1", "", "", false},
		{"lgtm\n/approve flag-1", "", "", false},
		{"/approved flag-1", "", "", false},
	}
	for _, tt := range tests {
		v, step, ok := fbgh.ParseCommand(tt.body)
		if v != tt.verdict || step != tt.step || ok != tt.ok {
			t.Errorf("ParseCommand(%q) = %q, %q, %v; want %q, %q, %v", tt.body, v, step, ok, tt.verdict, tt.step, tt.ok)
		}
	}
}

// TestApproval: who may approve, checked through the team membership API,
// from a webhook payload and from a comment fetched by id.
func TestApproval(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	ctx := t.Context()
	number, err := c.EnsureIssue(ctx, spec("inc-1"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		user      string
		body      string
		approvers []string
		via       string // "" when refused
		sentinel  error
	}{
		{"owner team member", "alice", "/approve flag-1", nil, "member of @acme/payments", nil},
		{"pending member", "pat", "/approve flag-1", nil, "", fbgh.ErrNotAllowed},
		{"outsider", "mallory", "/approve flag-1", nil, "", fbgh.ErrNotAllowed},
		{"listed user", "Mallory", "/deny flag-1", []string{"@mallory"}, "approver @mallory", nil},
		{"listed team member", "sam", "/approve flag-1", []string{"@acme/sre"}, "member of @acme/sre", nil},
		{"member of an unlisted team", "sam", "/approve flag-1", nil, "", fbgh.ErrNotAllowed},
		{"not a command", "alice", "looks good", nil, "", fbgh.ErrNotApproval},
		{"firebreak's own comment", "alice", "/approve flag-1\n\n" + fbgh.CommentMarker("step/x"), nil, "", fbgh.ErrNotApproval},
		{"bot", "deploy[bot]", "/approve flag-1", []string{"@deploy[bot]"}, "", fbgh.ErrNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := e.srv.AddComment(number, tt.user, tt.body)
			for _, via := range []string{"event", "id"} {
				req := fbgh.ApprovalRequest{Owner: "@acme/payments", Approvers: tt.approvers}
				if via == "event" {
					req.Event = e.srv.IssueCommentEvent("created", number, id)
				} else {
					req.Issue, req.CommentID = number, id
				}
				d, err := c.Approval(ctx, req)
				if tt.via == "" {
					if !errors.Is(err, tt.sentinel) || fbgh.IsTransient(err) {
						t.Errorf("%s: %v, want %v", via, err, tt.sentinel)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", via, err)
				}
				if d.Via != tt.via || d.By != tt.user || d.Step != "flag-1" || d.Issue != number || d.CommentID != id || d.At.IsZero() {
					t.Errorf("%s: %+v", via, d)
				}
			}
		})
	}

	// The owner as a user decides without any API call.
	id := e.srv.AddComment(number, "bob", "/deny flag-1")
	before := len(e.srv.Requests())
	d, err := c.Approval(ctx, fbgh.ApprovalRequest{Owner: "@bob", Event: e.srv.IssueCommentEvent("created", number, id)})
	if err != nil || d.Verdict != fbgh.Deny || d.Via != "owner @bob" {
		t.Fatalf("owner: %+v, %v", d, err)
	}
	if len(e.srv.Requests()) != before {
		t.Errorf("the owner's approval cost requests")
	}
	// Edited comments, other issues and other repositories decide nothing.
	if _, err := c.Approval(ctx, fbgh.ApprovalRequest{Owner: "@bob", Event: e.srv.IssueCommentEvent("edited", number, id)}); !errors.Is(err, fbgh.ErrNotApproval) {
		t.Errorf("edited: %v", err)
	}
	if _, err := c.Approval(ctx, fbgh.ApprovalRequest{Owner: "@bob", Issue: number + 1, CommentID: id}); !errors.Is(err, fbgh.ErrNotApproval) {
		t.Errorf("other issue: %v", err)
	}
	other := githubtest.New(t, githubtest.Config{Owner: "evil", Repo: "ops", Token: token})
	on := other.AddIssue("x", "x", "")
	oid := other.AddComment(on, "bob", "/approve flag-1")
	if _, err := c.Approval(ctx, fbgh.ApprovalRequest{Owner: "@bob", Event: other.IssueCommentEvent("created", on, oid)}); !errors.Is(err, fbgh.ErrNotApproval) {
		t.Errorf("other repository: %v", err)
	}
	var paths []string
	for _, r := range e.srv.Requests() {
		paths = append(paths, r.Method+" "+r.Path)
	}
	if !slices.Contains(paths, "GET /orgs/acme/teams/payments/memberships/alice") {
		t.Errorf("membership not checked through the API: %q", paths)
	}
}

// TestApprovalWhenGitHubFails: an approver is never refused for want of an
// answer: the error is transient.
func TestApprovalWhenGitHubFails(t *testing.T) {
	e := newEnv(t)
	e.opts.HTTP.RetryMax = 1
	c := e.client()
	number, err := c.EnsureIssue(t.Context(), spec("inc-1"))
	if err != nil {
		t.Fatal(err)
	}
	id := e.srv.AddComment(number, "alice", "/approve flag-1")
	e.srv.Inject(githubtest.Rule{Path: `/memberships/`, Fault: githubtest.Fail(502), Times: -1})
	_, err = c.Approval(t.Context(), fbgh.ApprovalRequest{Owner: "@acme/payments", Event: e.srv.IssueCommentEvent("created", number, id)})
	if err == nil || errors.Is(err, fbgh.ErrNotAllowed) || !fbgh.IsTransient(err) {
		t.Fatalf("%v: want a transient error, not a refusal", err)
	}
	e.srv.ClearFaults()
	if d, err := c.Approval(t.Context(), fbgh.ApprovalRequest{Owner: "@acme/payments", Event: e.srv.IssueCommentEvent("created", number, id)}); err != nil || d.By != "alice" {
		t.Fatalf("later: %+v, %v", d, err)
	}
}
