package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gh "github.com/google/go-github/v60/github"
)

// GitHub's limits on what an issue or comment may hold.
const (
	maxTitle     = 256   // characters
	maxBody      = 65536 // characters
	maxLabelName = 50    // characters
	// lookupSkew is how much earlier than the incident's opening an issue
	// may look created, for clocks that disagree.
	lookupSkew = time.Hour
)

// markerText is what a marker's id or key may hold: enough for incident
// ids, step names and delivery ids, and nothing that can end an HTML
// comment or hide in whitespace.
var markerText = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,199}$`)

// IncidentMarker is the hidden marker in the body of incident id's issue.
func IncidentMarker(id string) string { return "<!-- firebreak:incident=" + id + " -->" }

// CommentMarker is the hidden marker in the comment with key.
func CommentMarker(key string) string { return "<!-- firebreak:comment=" + key + " -->" }

// PullMarker is the hidden marker in the body of incident id's pull request.
func PullMarker(id string) string { return "<!-- firebreak:pr=" + id + " -->" }

// IssueSpec is the issue of one incident.
type IssueSpec struct {
	// IncidentID goes into the hidden marker the issue is found by.
	IncidentID string
	// Title is one line; Body is Markdown. Both may hold anything: HTML
	// comments in Body are shown, not hidden, so no text can forge a
	// marker; both are cut to GitHub's limits.
	Title, Body string
	// Severity and Owner ("@org/team" or "@user") make the labels
	// severity/<severity> and owner/<org/team or user>.
	Severity, Owner string
	// Labels are added to the configured labels (default "incident"),
	// severity and owner. Labels missing from the repository are created.
	Labels []string
	// Assignees are logins; nil means the owner when it is a user, none
	// for a team. Logins that cannot be assigned are left out.
	Assignees []string
	// Number is the issue number the incident record holds, 0 if none:
	// checked first, it spares the listing.
	Number int
	// Opened is when the incident opened: the listing asks only for
	// issues updated since an hour before it and stops at issues created
	// before that; and when the labeled listing misses, every issue since
	// then is looked through (GitHub drops the labels of an issue created
	// by a token without push access). Zero lists every issue with the
	// label, and only those.
	Opened time.Time
}

// EnsureIssue returns the number of the incident's issue, creating it when
// no issue carries the incident's marker. The lookup lists the issues with
// the first configured label (all states, newest first, every page; see
// IssueSpec.Opened to bound it): search would be cheaper but its index
// lags, and a lag is a duplicate. When two issues carry the marker (two
// processes raced), the lowest number is the incident's.
func (c *Client) EnsureIssue(ctx context.Context, spec IssueSpec) (int, error) {
	id := spec.IncidentID
	op := "ensure issue for incident " + id
	if !markerText.MatchString(id) {
		return 0, c.fail("ensure issue", fmt.Errorf("%w: incident id %q cannot be a marker", ErrInvalid, truncate(id, 80)))
	}
	unlock := c.locks.lock("incident\x00" + id)
	defer unlock()
	c.mu.Lock()
	n, ok := c.issueOf[id]
	c.mu.Unlock()
	if ok {
		return n, nil
	}
	hint := spec.Number
	find := func(ctx context.Context) (int, bool, error) {
		n, ok, err := c.findIssue(ctx, id, hint, spec.Opened)
		hint = 0 // checked once
		return n, ok, err
	}
	labels := c.issueLabels(spec)
	var assignees []string
	prepare := func(ctx context.Context) error {
		if err := c.ensureLabels(ctx, labels); err != nil {
			return err
		}
		var err error
		assignees, err = c.assignees(ctx, spec)
		return err
	}
	title := oneLine(spec.Title)
	if title == "" {
		title = "Incident " + id
	}
	body := neutralize(spec.Body, maxBody-len(IncidentMarker(id))-2) + "\n\n" + IncidentMarker(id)
	create := func(ctx context.Context) (int, error) {
		is, _, err := c.gh.Issues.Create(ctx, c.owner, c.repo, &gh.IssueRequest{
			Title:     &title,
			Body:      &body,
			Labels:    &labels,
			Assignees: &assignees,
		})
		if err != nil {
			return 0, err
		}
		c.log.Info("github issue created", "incident", id, "issue", is.GetNumber())
		if c.lookupLabel != "" && !slices.ContainsFunc(is.Labels, func(l *gh.Label) bool { return strings.EqualFold(l.GetName(), c.lookupLabel) }) {
			c.log.Warn("github dropped the issue's labels: the token lacks push access; lookups without IssueSpec.Opened or Number will miss this issue",
				"incident", id, "issue", is.GetNumber(), "label", c.lookupLabel)
		}
		return is.GetNumber(), nil
	}
	n, err := c.findOrCreate(ctx, op, find, prepare, create)
	if err != nil {
		return 0, c.fail(op, err)
	}
	c.mu.Lock()
	c.issueOf[id] = n
	c.mu.Unlock()
	return n, nil
}

// findIssue looks for the issue carrying incident id's marker.
func (c *Client) findIssue(ctx context.Context, id string, hint int, opened time.Time) (int, bool, error) {
	marker := IncidentMarker(id)
	if hint > 0 {
		is, _, err := c.gh.Issues.Get(ctx, c.owner, c.repo, hint)
		switch {
		case err == nil && !is.IsPullRequest() && strings.Contains(is.GetBody(), marker):
			return hint, true, nil
		case err != nil && status(err) != http.StatusNotFound && status(err) != http.StatusGone:
			return 0, false, err
		}
		c.log.Warn("github issue number in the record does not carry the incident's marker", "incident", id, "issue", hint)
	}
	var since time.Time
	if !opened.IsZero() {
		since = opened.Add(-lookupSkew)
	}
	n, err := c.listForMarker(ctx, marker, c.lookupLabel, since)
	if err != nil || n > 0 || c.lookupLabel == "" || since.IsZero() {
		return n, n > 0, err
	}
	// GitHub silently drops the labels of an issue created by a token
	// without push access: look through every issue since the incident
	// opened, which is one page or two.
	n, err = c.listForMarker(ctx, marker, "", since)
	return n, n > 0, err
}

// listForMarker lists the issues with label ("" for all), newest first,
// every page, stopping at issues created before since (when set), and
// returns the lowest number carrying marker.
func (c *Client) listForMarker(ctx context.Context, marker, label string, since time.Time) (int, error) {
	opts := &gh.IssueListByRepoOptions{State: "all", Sort: "created", Direction: "desc", Since: since,
		ListOptions: gh.ListOptions{PerPage: 100}}
	if label != "" {
		opts.Labels = []string{label}
	}
	best := 0
	for {
		list, resp, err := c.gh.Issues.ListByRepo(ctx, c.owner, c.repo, opts)
		if err != nil {
			return 0, err
		}
		done := resp.NextPage == 0
		for _, is := range list {
			if !since.IsZero() && is.GetCreatedAt().Before(since) {
				done = true
				break
			}
			if is.IsPullRequest() || !strings.Contains(is.GetBody(), marker) {
				continue
			}
			if best == 0 || is.GetNumber() < best {
				best = is.GetNumber()
			}
		}
		if done {
			return best, nil
		}
		opts.Page = resp.NextPage
	}
}

// issueLabels are the labels of spec's issue: configured, severity,
// owner, extra; cut to GitHub's length, without duplicates.
func (c *Client) issueLabels(spec IssueSpec) []string {
	all := append([]string(nil), c.labels...)
	if spec.Severity != "" {
		all = append(all, "severity/"+spec.Severity)
	}
	if owner := strings.TrimPrefix(spec.Owner, "@"); owner != "" {
		all = append(all, "owner/"+owner)
	}
	all = append(all, spec.Labels...)
	var out []string
	seen := map[string]bool{}
	for _, l := range all {
		l = truncate(oneLine(l), maxLabelName)
		if l == "" || seen[strings.ToLower(l)] {
			continue
		}
		seen[strings.ToLower(l)] = true
		out = append(out, l)
	}
	return out
}

// labelStyle is the color and description of a label firebreak creates.
func labelStyle(name string) (color, description string) {
	switch {
	case name == "severity/critical":
		return "b60205", "firebreak: critical incident"
	case name == "severity/high":
		return "d93f0b", "firebreak: high severity incident"
	case name == "severity/warning":
		return "fbca04", "firebreak: warning"
	case name == "severity/info":
		return "0e8a16", "firebreak: informational"
	case strings.HasPrefix(name, "owner/"):
		return "5319e7", "firebreak: owning team or user"
	case strings.HasPrefix(name, "severity/"):
		return "fbca04", "firebreak: incident severity"
	}
	return "d73a4a", "firebreak: incident"
}

// ensureLabels creates the labels the repository lacks. A create repeated
// after a lost answer finds the label there (422 already_exists): done. A
// label the token may not create is left out with a warning rather than
// keep the incident from its issue.
func (c *Client) ensureLabels(ctx context.Context, names []string) error {
	for _, name := range names {
		c.mu.Lock()
		known := c.knownLabel[strings.ToLower(name)]
		c.mu.Unlock()
		if known {
			continue
		}
		_, _, err := c.gh.Issues.GetLabel(ctx, c.owner, c.repo, url.PathEscape(name))
		if err != nil && status(err) == http.StatusNotFound {
			color, desc := labelStyle(name)
			_, _, err = c.gh.Issues.CreateLabel(ctx, c.owner, c.repo, &gh.Label{Name: &name, Color: &color, Description: &desc})
			switch {
			case err == nil:
				c.log.Info("github label created", "label", name)
			case validationCode(err, "already_exists"):
				err = nil
			}
		}
		switch {
		case err != nil && IsTransient(err):
			return fmt.Errorf("label %s: %w", name, err)
		case err != nil:
			// A token that may not manage labels still gets its issue.
			c.log.Warn("github label not created; the issue goes without it", "label", name, "reason", c.redact(err.Error()))
			continue
		}
		c.mu.Lock()
		c.knownLabel[strings.ToLower(name)] = true
		c.mu.Unlock()
	}
	return nil
}

// assignees returns spec's assignees that the repository accepts.
func (c *Client) assignees(ctx context.Context, spec IssueSpec) ([]string, error) {
	want := spec.Assignees
	if want == nil {
		if owner := strings.TrimPrefix(spec.Owner, "@"); owner != "" && !strings.Contains(owner, "/") {
			want = []string{owner}
		}
	}
	out := []string{}
	for _, login := range want {
		login = strings.TrimPrefix(strings.TrimSpace(login), "@")
		if login == "" {
			continue
		}
		key := strings.ToLower(login)
		c.mu.Lock()
		ok, known := c.assignable[key]
		c.mu.Unlock()
		if !known {
			var err error
			ok, _, err = c.gh.Issues.IsAssignee(ctx, c.owner, c.repo, url.PathEscape(login))
			if err != nil && IsTransient(err) {
				return nil, fmt.Errorf("check assignee %s: %w", login, err)
			}
			c.mu.Lock()
			c.assignable[key] = ok
			c.mu.Unlock()
		}
		if !ok {
			c.log.Warn("github user cannot be assigned; left out", "user", login)
			continue
		}
		out = append(out, login)
	}
	return out, nil
}

// Comment posts body on issue number unless a comment with key's marker
// is there already. key names what the comment is for ("step/rollback-1",
// "resolved"): the same key is the same comment.
func (c *Client) Comment(ctx context.Context, number int, key, body string) error {
	op := fmt.Sprintf("comment %s on issue %d", key, number)
	if number <= 0 || !markerText.MatchString(key) {
		return c.fail("comment", fmt.Errorf("%w: issue %d, key %q", ErrInvalid, number, truncate(key, 80)))
	}
	unlock := c.locks.lock("issue\x00" + strconv.Itoa(number))
	defer unlock()
	if c.wasPosted(number, key) {
		return nil
	}
	marker := CommentMarker(key)
	text := neutralize(body, maxBody-len(marker)-2) + "\n\n" + marker
	find := func(ctx context.Context) (int, bool, error) {
		found, err := c.findComment(ctx, number, key)
		return 0, found, err
	}
	create := func(ctx context.Context) (int, error) {
		_, _, err := c.gh.Issues.CreateComment(ctx, c.owner, c.repo, number, &gh.IssueComment{Body: &text})
		if err == nil {
			c.log.Info("github comment posted", "issue", number, "key", key)
		}
		return 0, err
	}
	if _, err := c.findOrCreate(ctx, op, find, nil, create); err != nil {
		return c.fail(op, err)
	}
	c.markPosted(number, key)
	return nil
}

var commentMarkerRE = regexp.MustCompile(`<!-- firebreak:comment=([A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,199}) -->`)

// findComment lists issue number's comments, remembering every key seen,
// and reports whether key's is among them.
func (c *Client) findComment(ctx context.Context, number int, key string) (bool, error) {
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}}
	found := false
	for {
		list, resp, err := c.gh.Issues.ListComments(ctx, c.owner, c.repo, number, opts)
		if err != nil {
			return false, err
		}
		for _, cm := range list {
			for _, m := range commentMarkerRE.FindAllStringSubmatch(cm.GetBody(), -1) {
				c.markPosted(number, m[1])
				found = found || m[1] == key
			}
		}
		if resp.NextPage == 0 {
			return found, nil
		}
		opts.Page = resp.NextPage
	}
}

func (c *Client) wasPosted(number int, key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.posted[number][key]
}

func (c *Client) markPosted(number int, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.posted[number] == nil {
		c.posted[number] = map[string]bool{}
	}
	c.posted[number][key] = true
}

// CloseKey is the comment key of CloseIssue's comment.
const CloseKey = "close"

// CloseIssue posts comment (under CloseKey; none when empty) and closes
// issue number as completed. Closing a closed issue changes nothing.
func (c *Client) CloseIssue(ctx context.Context, number int, comment string) error {
	if comment != "" {
		if err := c.Comment(ctx, number, CloseKey, comment); err != nil {
			return err
		}
	}
	op := fmt.Sprintf("close issue %d", number)
	if number <= 0 {
		return c.fail(op, ErrInvalid)
	}
	state, reason := "closed", "completed"
	if _, _, err := c.gh.Issues.Edit(ctx, c.owner, c.repo, number, &gh.IssueRequest{State: &state, StateReason: &reason}); err != nil {
		return c.fail(op, err)
	}
	c.log.Info("github issue closed", "issue", number)
	return nil
}

// errExists is a create GitHub refused because the object exists: look
// it up again.
var errExists = errors.New("exists already")

// findOrCreate finds an object, else prepares and creates it. The create
// goes out once (never repeated below); after a transient failure it is
// sent again only if a fresh find still does not see it — the failure may
// have been a lost answer to a create that worked. Waits follow
// Retry-After when GitHub gives one, else webclient's backoff.
func (c *Client) findOrCreate(ctx context.Context, op string,
	find func(context.Context) (int, bool, error),
	prepare func(context.Context) error,
	create func(context.Context) (int, error),
) (int, error) {
	n, ok, err := find(ctx)
	if err != nil || ok {
		return n, err
	}
	if prepare != nil {
		if err := prepare(ctx); err != nil {
			return 0, err
		}
	}
	for attempt := 1; ; attempt++ {
		n, err := create(withOnce(ctx))
		if err == nil {
			return n, nil
		}
		exists := errors.Is(err, errExists)
		if !exists {
			if !IsTransient(err) || attempt > c.retryMax {
				return 0, err
			}
			wait := c.backoff(attempt, err)
			if dl, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(dl) {
				return 0, err
			}
			c.log.Info("github create failed; looking again before a retry", "op", op, "attempt", attempt,
				"wait", wait, "reason", c.redact(err.Error()))
			if serr := sleep(ctx, wait); serr != nil {
				return 0, err
			}
		}
		n, ok, ferr := find(ctx)
		if ferr != nil {
			return 0, ferr
		}
		if ok {
			return n, nil
		}
		if exists {
			return 0, fmt.Errorf("GitHub says it exists, but it cannot be found: %w", err)
		}
	}
}

// backoff is the wait before create attempt+1: what GitHub asked,
// capped, else webclient's doubling from WaitMin to WaitMax, and at least
// the attempt timeout after an attempt that got no answer in time.
func (c *Client) backoff(attempt int, err error) time.Duration {
	if d := RetryAfter(err); d > 0 {
		return min(d, c.retryAfterMax)
	}
	d := c.waitMin
	for range attempt - 1 {
		d *= 2
		if d >= c.waitMax {
			d = c.waitMax
			break
		}
	}
	d = min(d, c.waitMax)
	var slow *timeoutError
	if errors.As(err, &slow) {
		// GitHub may still be working on the create given up on: give it
		// another attempt's time before looking.
		d = max(d, c.attemptTimeout)
	}
	return d
}

// status is the HTTP status of a go-github error, 0 if none.
func status(err error) int {
	var resp *gh.ErrorResponse
	if errors.As(err, &resp) && resp.Response != nil {
		return resp.Response.StatusCode
	}
	return 0
}

// validationCode reports a 422 with an error of code.
func validationCode(err error, code string) bool {
	var resp *gh.ErrorResponse
	if !errors.As(err, &resp) || resp.Response == nil || resp.Response.StatusCode != http.StatusUnprocessableEntity {
		return false
	}
	for _, e := range resp.Errors {
		if e.Code == code {
			return true
		}
	}
	return false
}

// neutralize makes text safe to carry next to a marker: valid UTF-8, HTML
// comments shown instead of hidden (so no text forges a marker), cut to n
// characters.
func neutralize(text string, n int) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	text = strings.ReplaceAll(text, "<!--", "&lt;!--")
	return truncate(text, n)
}

// oneLine is s on one line, trimmed, cut to a title's length.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Join(strings.Fields(s), " ")
	return truncate(s, maxTitle)
}

// truncate cuts s to n characters, marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:max(n-1, 0)]) + "…"
}
