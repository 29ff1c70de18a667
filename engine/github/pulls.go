package github

import (
	"context"
	"errors"
	"fmt"
	"strings"

	gh "github.com/google/go-github/v60/github"
)

// PRSpec is the pull request of one incident (its postmortem).
type PRSpec struct {
	IncidentID string
	// Head is the branch with the changes (postmortem/<id>), pushed to
	// the configured repository; Base is the branch it merges into.
	Head, Base  string
	Title, Body string
	// Reviewers are "@org/team" (requested as a team; the org must be
	// the repository's owner), "@user" or "user". The pull request's
	// author is never asked, nor anyone who has reviewed it already.
	Reviewers []string
}

// EnsurePullRequest returns the number of the open pull request from
// spec.Head, creating it when there is none (a merged one from Head that
// carries the incident's marker counts as done), and requests the
// reviewers not yet requested. The number is returned even when the
// reviewer request fails.
func (c *Client) EnsurePullRequest(ctx context.Context, spec PRSpec) (int, error) {
	id := spec.IncidentID
	op := "ensure pull request for incident " + id
	if !markerText.MatchString(id) || spec.Head == "" || spec.Base == "" {
		return 0, c.fail("ensure pull request", fmt.Errorf("%w: incident %q, head %q, base %q", ErrInvalid, truncate(id, 80), spec.Head, spec.Base))
	}
	unlock := c.locks.lock("pr\x00" + spec.Head)
	defer unlock()

	var pr *gh.PullRequest
	find := func(ctx context.Context) (int, bool, error) {
		found, err := c.findPull(ctx, spec)
		pr = found
		return pr.GetNumber(), found != nil, err
	}
	title := oneLine(spec.Title)
	if title == "" {
		title = "Postmortem " + id
	}
	body := neutralize(spec.Body, maxBody-len(PullMarker(id))-2) + "\n\n" + PullMarker(id)
	create := func(ctx context.Context) (int, error) {
		created, _, err := c.gh.PullRequests.Create(ctx, c.owner, c.repo, &gh.NewPullRequest{
			Title: &title, Head: &spec.Head, Base: &spec.Base, Body: &body,
		})
		if err != nil {
			if status(err) == 422 && strings.Contains(strings.ToLower(errorText(err)), "already exists") {
				return 0, fmt.Errorf("%w: %w", errExists, err)
			}
			return 0, err
		}
		pr = created
		c.log.Info("github pull request created", "incident", id, "pull", created.GetNumber())
		return created.GetNumber(), nil
	}
	n, err := c.findOrCreate(ctx, op, find, nil, create)
	if err != nil {
		return 0, c.fail(op, err)
	}
	if pr.GetState() != "open" {
		return n, nil
	}
	if err := c.requestReviewers(ctx, pr, spec.Reviewers); err != nil {
		return n, c.fail(fmt.Sprintf("request reviewers of pull request %d", n), err)
	}
	return n, nil
}

// findPull returns the open pull request from spec.Head, else a merged one
// from it that carries the incident's marker, else nil.
func (c *Client) findPull(ctx context.Context, spec PRSpec) (*gh.PullRequest, error) {
	opts := &gh.PullRequestListOptions{State: "all", Head: c.owner + ":" + spec.Head, ListOptions: gh.ListOptions{PerPage: 100}}
	var merged *gh.PullRequest
	for {
		list, resp, err := c.gh.PullRequests.List(ctx, c.owner, c.repo, opts)
		if err != nil {
			return nil, err
		}
		for _, pr := range list {
			if pr.GetHead().GetRef() != spec.Head {
				continue
			}
			if pr.GetState() == "open" {
				return pr, nil
			}
			if merged == nil && pr.GetMerged() && strings.Contains(pr.GetBody(), PullMarker(spec.IncidentID)) {
				merged = pr
			}
		}
		if resp.NextPage == 0 {
			return merged, nil
		}
		opts.Page = resp.NextPage
	}
}

// requestReviewers asks the reviewers pr lacks: not yet requested, not
// its author, not having reviewed. Requesting is idempotent, so the
// retrying client may repeat it.
func (c *Client) requestReviewers(ctx context.Context, pr *gh.PullRequest, reviewers []string) error {
	var users, teams []string
	for _, r := range reviewers {
		r = strings.TrimPrefix(strings.TrimSpace(r), "@")
		org, slug, isTeam := strings.Cut(r, "/")
		switch {
		case r == "":
		case isTeam && !strings.EqualFold(org, c.owner):
			c.log.Warn("github team reviewer outside the repository's organization; left out", "team", r)
		case isTeam:
			if !containsFold(teams, slug) {
				teams = append(teams, slug)
			}
		case strings.EqualFold(r, pr.GetUser().GetLogin()):
		default:
			if !containsFold(users, r) {
				users = append(users, r)
			}
		}
	}
	var requestedUsers, requestedTeams []string
	for _, u := range pr.RequestedReviewers {
		requestedUsers = append(requestedUsers, u.GetLogin())
	}
	for _, t := range pr.RequestedTeams {
		requestedTeams = append(requestedTeams, t.GetSlug())
	}
	users = without(users, requestedUsers)
	teams = without(teams, requestedTeams)
	if len(users) > 0 {
		reviewed, err := c.reviewed(ctx, pr.GetNumber())
		if err != nil {
			return err
		}
		users = without(users, reviewed)
	}
	if len(users) == 0 && len(teams) == 0 {
		return nil
	}
	_, _, err := c.gh.PullRequests.RequestReviewers(ctx, c.owner, c.repo, pr.GetNumber(),
		gh.ReviewersRequest{Reviewers: users, TeamReviewers: teams})
	if err == nil {
		c.log.Info("github reviewers requested", "pull", pr.GetNumber(), "users", users, "teams", teams)
	}
	return err
}

// reviewed lists who has reviewed pull request number.
func (c *Client) reviewed(ctx context.Context, number int) ([]string, error) {
	opts := &gh.ListOptions{PerPage: 100}
	var out []string
	for {
		list, resp, err := c.gh.PullRequests.ListReviews(ctx, c.owner, c.repo, number, opts)
		if err != nil {
			return nil, err
		}
		for _, r := range list {
			out = append(out, r.GetUser().GetLogin())
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// without is list less the members of drop, case-insensitively.
func without(list, drop []string) []string {
	var out []string
	for _, x := range list {
		if !containsFold(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

// errorText is the message and field errors of a go-github error.
func errorText(err error) string {
	var resp *gh.ErrorResponse
	if !errors.As(err, &resp) {
		return err.Error()
	}
	s := resp.Message
	for _, e := range resp.Errors {
		s += " " + e.Message
	}
	return s
}
