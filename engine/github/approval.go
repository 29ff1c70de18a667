package github

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"
)

// Verdict is what an approval command asks.
type Verdict string

// The verdicts of /approve and /deny.
const (
	Approve Verdict = "approve"
	Deny    Verdict = "deny"
)

// ApprovalRequest names a comment that may approve or deny a step, and who
// may.
type ApprovalRequest struct {
	// Event is an issue_comment webhook payload whose X-Hub-Signature-256
	// the caller has checked. Only action "created" counts: an edited
	// comment could have been edited by someone else than its author.
	Event []byte
	// Issue and CommentID name a comment to fetch instead, when Event is
	// empty.
	Issue     int
	CommentID int64
	// Owner is the playbook's owner, "@org/team" or "@user"; Approvers are
	// the policy's approvers for that owner, users or teams alike.
	Owner     string
	Approvers []string
}

// Decision is an accepted approval command. The caller checks that Issue
// is an open incident's issue and that Step is waiting for approval.
type Decision struct {
	Issue     int
	CommentID int64
	// Step is the step named, lower-cased.
	Step    string
	Verdict Verdict
	// By is the login of the comment's author; At is when the comment was
	// made.
	By string
	At time.Time
	// Via says why By may decide: "owner @x", "approver @x" or
	// "member of @org/team".
	Via string
}

// command is an approval command on a comment's first line.
var command = regexp.MustCompile(`(?i)^/(approve|deny)[ \t]+([a-z0-9_.-]+)[ \t]*$`)

// ParseCommand reads "/approve <step>" or "/deny <step>" from the first
// line of a comment, case-insensitively; the step comes back lower-cased.
func ParseCommand(body string) (Verdict, string, bool) {
	first, _, _ := strings.Cut(body, "\n")
	m := command.FindStringSubmatch(strings.TrimSpace(first))
	if m == nil {
		return "", "", false
	}
	return Verdict(strings.ToLower(m[1])), strings.ToLower(m[2]), true
}

// Approval reads the comment req names and returns its decision when it
// is an approval command from someone allowed: the owner user, a user or
// member of a team listed in Approvers, or an active member of the owner
// team (checked through GET /orgs/{org}/teams/{team}/memberships/{user};
// the token needs to read the organization's teams). It returns an error
// wrapping ErrNotApproval for a comment that is no command to act on,
// ErrNotAllowed for one from someone else, and a transient error when
// GitHub could not answer — never a refusal for want of an answer.
func (c *Client) Approval(ctx context.Context, req ApprovalRequest) (*Decision, error) {
	var (
		issue int
		cm    *gh.IssueComment
	)
	if len(req.Event) > 0 {
		var ev gh.IssueCommentEvent
		if err := json.Unmarshal(req.Event, &ev); err != nil {
			return nil, c.fail("approval", fmt.Errorf("%w: issue_comment payload: %v", ErrInvalid, err))
		}
		if ev.GetAction() != "created" {
			return nil, c.fail("approval", fmt.Errorf("%w: comment %s", ErrNotApproval, ev.GetAction()))
		}
		if !strings.EqualFold(ev.GetRepo().GetFullName(), c.owner+"/"+c.repo) {
			return nil, c.fail("approval", fmt.Errorf("%w: comment on another repository", ErrNotApproval))
		}
		issue, cm = ev.GetIssue().GetNumber(), ev.GetComment()
	} else {
		op := fmt.Sprintf("approval comment %d on issue %d", req.CommentID, req.Issue)
		if req.Issue <= 0 || req.CommentID <= 0 {
			return nil, c.fail(op, ErrInvalid)
		}
		got, _, err := c.gh.Issues.GetComment(ctx, c.owner, c.repo, req.CommentID)
		if err != nil {
			return nil, c.fail(op, err)
		}
		if !strings.HasSuffix(got.GetIssueURL(), "/issues/"+strconv.Itoa(req.Issue)) {
			return nil, c.fail(op, fmt.Errorf("%w: the comment is on another issue", ErrNotApproval))
		}
		issue, cm = req.Issue, got
	}
	op := fmt.Sprintf("approval comment %d on issue %d", cm.GetID(), issue)
	verdict, step, ok := ParseCommand(cm.GetBody())
	if !ok || strings.Contains(cm.GetBody(), "<!-- firebreak:") {
		// firebreak's own comments carry a marker: a step's output that
		// starts with /approve approves nothing.
		return nil, c.fail(op, ErrNotApproval)
	}
	login := cm.GetUser().GetLogin()
	if login == "" || cm.GetUser().GetType() == "Bot" {
		return nil, c.fail(op, fmt.Errorf("%w: %q is not a person", ErrNotAllowed, login))
	}
	via, err := c.allowed(ctx, login, req.Owner, req.Approvers)
	if err != nil {
		return nil, c.fail(op, err)
	}
	if via == "" {
		c.log.Info("github approval refused", "issue", issue, "step", step, "by", login)
		return nil, c.fail(op, fmt.Errorf("%w: @%s is not the owner %s, an approver or a member of an approving team", ErrNotAllowed, login, req.Owner))
	}
	d := &Decision{Issue: issue, CommentID: cm.GetID(), Step: step, Verdict: verdict, By: login,
		At: cm.GetCreatedAt().Time, Via: via}
	c.log.Info("github approval accepted", "issue", issue, "step", step, "verdict", string(verdict), "by", login, "via", via)
	return d, nil
}

// allowed says why login may approve ("" when it may not): users first,
// then teams through the API, the owner's team first.
func (c *Client) allowed(ctx context.Context, login, owner string, approvers []string) (string, error) {
	var teams []string
	for i, who := range append([]string{owner}, approvers...) {
		name := strings.TrimPrefix(strings.TrimSpace(who), "@")
		if name == "" {
			continue
		}
		if strings.Contains(name, "/") {
			teams = append(teams, name)
			continue
		}
		if strings.EqualFold(name, login) {
			if i == 0 {
				return "owner @" + name, nil
			}
			return "approver @" + name, nil
		}
	}
	for _, team := range teams {
		org, slug, _ := strings.Cut(team, "/")
		m, _, err := c.gh.Teams.GetTeamMembershipBySlug(ctx, url.PathEscape(org), url.PathEscape(slug), url.PathEscape(login))
		switch {
		case status(err) == http.StatusNotFound:
			continue
		case err != nil:
			return "", fmt.Errorf("membership of @%s in @%s: %w", login, team, err)
		case m.GetState() == "active":
			return "member of @" + team, nil
		}
	}
	return "", nil
}
