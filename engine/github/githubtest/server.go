// Package githubtest is a GitHub REST API on httptest for tests: the paths
// firebreak uses, answered with GitHub's status codes, JSON shapes and Link
// pagination; every request recorded; failures injected by rule or in
// sequence — 5xx, 429 and 403 secondary rate limits with Retry-After, slow
// answers, dropped connections, and a request that takes effect but is
// answered with a failure.
//
// Point the real go-github client at it with
// github.NewClient(hc).WithEnterpriseURLs(s.URL, s.URL); the server accepts
// paths with or without the /api/v3 prefix.
package githubtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Config describes the repository the server holds.
type Config struct {
	Owner, Repo string
	// Token is what the Authorization header must carry ("Bearer T" or
	// "token T"); a request without it gets 401 Bad credentials.
	Token string
	// Login is the user the token belongs to: the author of what the
	// client creates.
	Login string
	// NoPush drops the labels of issues the client creates, silently, as
	// GitHub does for a token without push access.
	NoPush bool
	// Assignable lists the users who may be assigned issues and asked
	// for reviews (the repository's collaborators). Login is one.
	Assignable []string
}

// Request is one request as the server saw it.
type Request struct {
	// At is when the request arrived; Retry-After is measured on it.
	At     time.Time
	Method string
	// Path is the unescaped path without /api/v3.
	Path  string
	Query url.Values
	Body  []byte
	// Authorized says the Authorization header carried the token.
	Authorized bool
	// Status is the status answered; 0 when the connection was dropped
	// or the client left before a slow answer.
	Status int
	// Fault is the fault injected, "none" when none was.
	Fault string
}

// Issue is an issue or pull request as the server holds it.
type Issue struct {
	Number      int
	ID          int64
	Title       string
	Body        string
	State       string // open | closed
	StateReason string
	Labels      []string
	Assignees   []string
	User        string
	Created     time.Time
	Updated     time.Time
	Closed      time.Time
	Comments    []Comment
	Pull        *Pull // nil for an issue
}

// Pull is what a pull request has beyond an issue.
type Pull struct {
	Head, Base         string
	Merged             bool
	RequestedReviewers []string
	RequestedTeams     []string // slugs
	Reviews            []Review
}

// Review is a submitted pull request review.
type Review struct {
	ID    int64
	User  string
	State string // APPROVED | CHANGES_REQUESTED | COMMENTED
}

// Comment is an issue comment.
type Comment struct {
	ID      int64
	Body    string
	User    string
	Created time.Time
}

// Label is a repository label.
type Label struct {
	ID          int64
	Name        string
	Color       string
	Description string
}

// Server is a fake GitHub REST API. It is safe for concurrent use.
type Server struct {
	*httptest.Server
	cfg Config

	mu      sync.Mutex
	reqs    []Request
	rules   []*Rule
	seq     []Fault
	issues  []*Issue // by number-1
	labels  []*Label
	teams   map[string]map[string]string // org/slug -> login -> state
	nextID  int64
	now     func() time.Time
	perPage int
}

// New starts a server for cfg, closed when t ends.
func New(t testing.TB, cfg Config) *Server {
	if cfg.Owner == "" {
		cfg.Owner = "acme"
	}
	if cfg.Repo == "" {
		cfg.Repo = "ops"
	}
	if cfg.Login == "" {
		cfg.Login = "firebreak-bot"
	}
	if !slices.Contains(cfg.Assignable, cfg.Login) {
		cfg.Assignable = append(cfg.Assignable, cfg.Login)
	}
	s := &Server{cfg: cfg, teams: map[string]map[string]string{}, nextID: 1000, now: time.Now, perPage: 30}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Inject adds failure rules; the first rule that matches and fires wins.
func (s *Server) Inject(rules ...Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range rules {
		r := rules[i]
		s.rules = append(s.rules, &r)
	}
}

// Sequence makes the next len(faults) requests, whatever their path, take
// these faults in order (None lets one through). Rules come first.
func (s *Server) Sequence(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq = append(s.seq, faults...)
}

// ClearFaults drops every rule and what is left of the sequence.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules, s.seq = nil, nil
}

// Requests returns every request so far, in order of arrival.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// Issues returns the issues (pull requests excluded), by number.
func (s *Server) Issues() []Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Issue
	for _, is := range s.issues {
		if is.Pull == nil {
			out = append(out, copyIssue(is))
		}
	}
	return out
}

// Pulls returns the pull requests, by number.
func (s *Server) Pulls() []Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Issue
	for _, is := range s.issues {
		if is.Pull != nil {
			out = append(out, copyIssue(is))
		}
	}
	return out
}

// Issue returns issue or pull request number n.
func (s *Server) Issue(n int) (Issue, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 1 || n > len(s.issues) {
		return Issue{}, false
	}
	return copyIssue(s.issues[n-1]), true
}

// Labels returns the repository's labels.
func (s *Server) Labels() []Label {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Label
	for _, l := range s.labels {
		out = append(out, *l)
	}
	return out
}

func copyIssue(is *Issue) Issue {
	c := *is
	c.Labels = slices.Clone(is.Labels)
	c.Assignees = slices.Clone(is.Assignees)
	c.Comments = slices.Clone(is.Comments)
	if is.Pull != nil {
		p := *is.Pull
		p.RequestedReviewers = slices.Clone(p.RequestedReviewers)
		p.RequestedTeams = slices.Clone(p.RequestedTeams)
		p.Reviews = slices.Clone(p.Reviews)
		c.Pull = &p
	}
	return c
}

// SetTeamMember puts login in team org/slug with state (active or
// pending); "" removes it.
func (s *Server) SetTeamMember(org, slug, login, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(org + "/" + slug)
	if s.teams[key] == nil {
		s.teams[key] = map[string]string{}
	}
	if state == "" {
		delete(s.teams[key], strings.ToLower(login))
		return
	}
	s.teams[key][strings.ToLower(login)] = state
}

// SetClock sets the clock that stamps what the server creates.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetPerPage sets the default page size (GitHub's is 30).
func (s *Server) SetPerPage(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perPage = n
}

// AddIssue creates an issue directly, as a person would, and returns its
// number.
func (s *Server) AddIssue(user, title, body string, labels ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.createIssue(user, title, body, labels, nil, nil).Number
}

// AddComment posts a comment as user directly and returns its id.
func (s *Server) AddComment(number int, user, body string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.issues[number-1]
	c := Comment{ID: s.id(), Body: body, User: user, Created: s.now().UTC()}
	is.Comments = append(is.Comments, c)
	return c.ID
}

// AddReview submits a review of pull request number as user.
func (s *Server) AddReview(number int, user, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.issues[number-1].Pull
	p.Reviews = append(p.Reviews, Review{ID: s.id(), User: user, State: state})
	p.RequestedReviewers = slices.DeleteFunc(p.RequestedReviewers, func(u string) bool { return strings.EqualFold(u, user) })
}

// IssueCommentEvent returns the issue_comment webhook payload GitHub sends
// when comment id on issue number is created (action "created").
func (s *Server) IssueCommentEvent(action string, number int, id int64) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.issues[number-1]
	var c Comment
	for _, cc := range is.Comments {
		if cc.ID == id {
			c = cc
		}
	}
	ev := map[string]any{
		"action":     action,
		"issue":      s.issueJSON(is),
		"comment":    s.commentJSON(is, c),
		"repository": s.repoJSON(),
		"sender":     userJSON(c.User),
	}
	data, _ := json.Marshal(ev)
	return data
}

func (s *Server) id() int64 {
	s.nextID++
	return s.nextID
}

// serve records the request, picks a fault and answers.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	path := strings.TrimPrefix(r.URL.EscapedPath(), "/api/v3")
	unescaped, _ := url.PathUnescape(path)
	auth := r.Header.Get("Authorization")
	authorized := s.cfg.Token != "" && (auth == "Bearer "+s.cfg.Token || auth == "token "+s.cfg.Token)

	s.mu.Lock()
	fault := s.pick(r.Method, unescaped)
	s.reqs = append(s.reqs, Request{At: time.Now(), Method: r.Method, Path: unescaped, Query: r.URL.Query(),
		Body: body, Authorized: authorized, Fault: fault.String()})
	idx := len(s.reqs) - 1
	s.mu.Unlock()

	rec := &recorder{header: http.Header{}}
	record := func(status int) {
		s.mu.Lock()
		s.reqs[idx].Status = status
		s.mu.Unlock()
	}
	switch {
	case !authorized:
		rec.json(http.StatusUnauthorized, map[string]any{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
	case fault.Kind == Stale:
		rec.json(http.StatusOK, []any{})
	case fault.Kind == EchoAuth:
		rec.json(http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed: you sent " + auth, "documentation_url": "https://docs.github.com/rest"})
	case fault.Kind != None && fault.Kind != Slow && !fault.After:
		s.failure(rec, fault)
	default:
		s.mu.Lock()
		s.route(rec, r, segments(path), body)
		s.mu.Unlock()
		if fault.Kind != None && fault.Kind != Slow {
			rec = &recorder{header: http.Header{}}
			s.failure(rec, fault)
		}
	}
	if fault.Kind == Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
		return
	}
	if fault.Kind == Slow {
		t := time.NewTimer(fault.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return // the client left; what it asked for happened all the same
		}
	}
	record(rec.status)
	rec.flush(w, s)
}

// pick returns the fault for one request: a rule's, else the sequence's.
func (s *Server) pick(method, path string) Fault {
	for _, r := range s.rules {
		if r.match(method, path) && r.take() {
			return r.Fault
		}
	}
	if len(s.seq) > 0 {
		f := s.seq[0]
		s.seq = s.seq[1:]
		return f
	}
	return Fault{}
}

// failure writes the answer GitHub gives for f.
func (s *Server) failure(rec *recorder, f Fault) {
	switch f.Kind {
	case Status:
		switch {
		case f.Code == http.StatusBadGateway || f.Code == http.StatusGatewayTimeout:
			rec.header.Set("Content-Type", "text/html")
			rec.status = f.Code
			rec.body = []byte("<html><body><h1>" + strconv.Itoa(f.Code) + " " + http.StatusText(f.Code) + "</h1></body></html>\n")
		case f.Code >= 500:
			rec.json(f.Code, map[string]any{"message": "Server Error"})
		default:
			rec.json(f.Code, map[string]any{"message": http.StatusText(f.Code), "documentation_url": "https://docs.github.com/rest"})
		}
	case TooMany:
		if f.RetryAfter != "" {
			rec.header.Set("Retry-After", f.RetryAfter)
		}
		secs, _ := strconv.Atoi(f.RetryAfter)
		rec.header.Set("X-RateLimit-Limit", "5000")
		rec.header.Set("X-RateLimit-Remaining", "0")
		rec.header.Set("X-RateLimit-Used", "5000")
		rec.header.Set("X-RateLimit-Reset", strconv.FormatInt(s.now().Add(time.Duration(secs)*time.Second).Unix(), 10))
		rec.header.Set("X-RateLimit-Resource", "core")
		rec.json(http.StatusTooManyRequests, map[string]any{
			"message":           "API rate limit exceeded for user ID 1.",
			"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
		})
	case Secondary:
		if f.RetryAfter != "" {
			rec.header.Set("Retry-After", f.RetryAfter)
		}
		rec.json(http.StatusForbidden, map[string]any{
			"message":           "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:1111:2222:3333:4444.",
			"documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
		})
	}
}

// recorder holds an answer until the fault decides whether it is sent.
type recorder struct {
	status int
	header http.Header
	body   []byte
}

func (rec *recorder) json(status int, v any) {
	rec.status = status
	rec.header.Set("Content-Type", "application/json; charset=utf-8")
	rec.body, _ = json.Marshal(v)
}

func (rec *recorder) noContent() { rec.status = http.StatusNoContent }

func (rec *recorder) flush(w http.ResponseWriter, s *Server) {
	h := w.Header()
	for k, v := range rec.header {
		h[k] = v
	}
	if h.Get("X-RateLimit-Remaining") == "" {
		h.Set("X-RateLimit-Limit", "5000")
		h.Set("X-RateLimit-Remaining", "4999")
		h.Set("X-RateLimit-Used", "1")
		h.Set("X-RateLimit-Reset", strconv.FormatInt(s.now().Add(time.Hour).Unix(), 10))
		h.Set("X-RateLimit-Resource", "core")
	}
	h.Set("X-GitHub-Api-Version-Selected", "2022-11-28")
	w.WriteHeader(rec.status)
	w.Write(rec.body)
}

func segments(escaped string) []string {
	parts := strings.Split(strings.Trim(escaped, "/"), "/")
	for i, p := range parts {
		if u, err := url.PathUnescape(p); err == nil {
			parts[i] = u
		}
	}
	return parts
}

func notFound(rec *recorder) {
	rec.json(http.StatusNotFound, map[string]any{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
}

func invalid(rec *recorder, resource, field, code, message string) {
	e := map[string]any{"resource": resource, "field": field, "code": code}
	if message != "" {
		e["message"] = message
	}
	rec.json(http.StatusUnprocessableEntity, map[string]any{
		"message": "Validation Failed", "errors": []any{e},
		"documentation_url": "https://docs.github.com/rest",
	})
}

// route answers one request from the state; s.mu is held.
func (s *Server) route(rec *recorder, r *http.Request, seg []string, body []byte) {
	m := r.Method
	if len(seg) >= 5 && seg[0] == "orgs" && seg[2] == "teams" && seg[4] == "memberships" && len(seg) == 6 && m == "GET" {
		s.teamMembership(rec, seg[1], seg[3], seg[5])
		return
	}
	if len(seg) < 4 || seg[0] != "repos" || !strings.EqualFold(seg[1], s.cfg.Owner) || !strings.EqualFold(seg[2], s.cfg.Repo) {
		notFound(rec)
		return
	}
	seg = seg[3:]
	num := func(i int) (*Issue, bool) {
		n, err := strconv.Atoi(seg[i])
		if err != nil || n < 1 || n > len(s.issues) {
			return nil, false
		}
		return s.issues[n-1], true
	}
	switch {
	case len(seg) == 1 && seg[0] == "issues" && m == "GET":
		s.listIssues(rec, r)
	case len(seg) == 1 && seg[0] == "issues" && m == "POST":
		s.postIssue(rec, body)
	case len(seg) == 3 && seg[0] == "issues" && seg[1] == "comments" && m == "GET":
		s.getComment(rec, seg[2])
	case len(seg) == 2 && seg[0] == "issues" && (m == "GET" || m == "PATCH"):
		is, ok := num(1)
		if !ok {
			notFound(rec)
			return
		}
		if m == "PATCH" {
			s.patchIssue(rec, is, body)
			return
		}
		rec.json(http.StatusOK, s.issueJSON(is))
	case len(seg) == 3 && seg[0] == "issues" && seg[2] == "comments":
		is, ok := num(1)
		if !ok {
			notFound(rec)
			return
		}
		if m == "POST" {
			s.postComment(rec, is, body)
			return
		}
		list := make([]any, 0, len(is.Comments))
		for _, c := range is.Comments {
			list = append(list, s.commentJSON(is, c))
		}
		s.page(rec, r, list)
	case len(seg) == 1 && seg[0] == "labels" && m == "POST":
		s.postLabel(rec, body)
	case len(seg) == 1 && seg[0] == "labels" && m == "GET":
		list := make([]any, 0, len(s.labels))
		for _, l := range s.labels {
			list = append(list, labelJSON(l))
		}
		s.page(rec, r, list)
	case len(seg) == 2 && seg[0] == "labels" && m == "GET":
		if l := s.label(seg[1]); l != nil {
			rec.json(http.StatusOK, labelJSON(l))
			return
		}
		notFound(rec)
	case len(seg) == 2 && seg[0] == "assignees" && m == "GET":
		if s.assignable(seg[1]) {
			rec.noContent()
			return
		}
		notFound(rec)
	case len(seg) == 1 && seg[0] == "pulls" && m == "GET":
		s.listPulls(rec, r)
	case len(seg) == 1 && seg[0] == "pulls" && m == "POST":
		s.postPull(rec, body)
	case len(seg) == 2 && seg[0] == "pulls" && m == "GET":
		is, ok := num(1)
		if !ok || is.Pull == nil {
			notFound(rec)
			return
		}
		rec.json(http.StatusOK, s.pullJSON(is))
	case len(seg) == 3 && seg[0] == "pulls" && seg[2] == "requested_reviewers" && m == "POST":
		is, ok := num(1)
		if !ok || is.Pull == nil {
			notFound(rec)
			return
		}
		s.requestReviewers(rec, is, body)
	case len(seg) == 3 && seg[0] == "pulls" && seg[2] == "reviews" && m == "GET":
		is, ok := num(1)
		if !ok || is.Pull == nil {
			notFound(rec)
			return
		}
		list := make([]any, 0, len(is.Pull.Reviews))
		for _, rv := range is.Pull.Reviews {
			list = append(list, map[string]any{"id": rv.ID, "user": userJSON(rv.User), "state": rv.State, "body": ""})
		}
		s.page(rec, r, list)
	default:
		notFound(rec)
	}
}

// page answers one page of list with GitHub's Link header.
func (s *Server) page(rec *recorder, r *http.Request, list []any) {
	q := r.URL.Query()
	per := s.perPage
	if v, err := strconv.Atoi(q.Get("per_page")); err == nil && v > 0 {
		per = min(v, 100)
	}
	page := 1
	if v, err := strconv.Atoi(q.Get("page")); err == nil && v > 0 {
		page = v
	}
	last := max((len(list)+per-1)/per, 1)
	lo, hi := min((page-1)*per, len(list)), min(page*per, len(list))
	link := func(p int, rel string) string {
		q2 := url.Values{}
		for k, v := range q {
			if k != "page" {
				q2[k] = v
			}
		}
		raw := "page=" + strconv.Itoa(p)
		if len(q2) > 0 {
			raw = q2.Encode() + "&" + raw
		}
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: raw}
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	var links []string
	if page > 1 {
		links = append(links, link(page-1, "prev"))
	}
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"))
	}
	if len(links) > 0 {
		rec.header.Set("Link", strings.Join(links, ", "))
	}
	rec.json(http.StatusOK, list[lo:hi])
}

func (s *Server) listIssues(rec *recorder, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	var want []string
	if v := q.Get("labels"); v != "" {
		want = strings.Split(v, ",")
	}
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			invalid(rec, "Issue", "since", "invalid", "")
			return
		}
		since = t
	}
	var sel []*Issue
	for _, is := range s.issues {
		if state != "all" && is.State != state {
			continue
		}
		if is.Updated.Before(since) {
			continue
		}
		if !hasLabels(is, want) {
			continue
		}
		sel = append(sel, is)
	}
	desc := q.Get("direction") != "asc"
	sortBy := q.Get("sort")
	sort.SliceStable(sel, func(i, j int) bool {
		a, b := sel[i], sel[j]
		less := a.Number < b.Number
		if sortBy == "updated" && !a.Updated.Equal(b.Updated) {
			less = a.Updated.Before(b.Updated)
		}
		if desc {
			return !less
		}
		return less
	})
	list := make([]any, 0, len(sel))
	for _, is := range sel {
		list = append(list, s.issueJSON(is))
	}
	s.page(rec, r, list)
}

func hasLabels(is *Issue, want []string) bool {
	for _, w := range want {
		if !slices.ContainsFunc(is.Labels, func(l string) bool { return strings.EqualFold(l, strings.TrimSpace(w)) }) {
			return false
		}
	}
	return true
}

func (s *Server) postIssue(rec *recorder, body []byte) {
	var in struct {
		Title     *string  `json:"title"`
		Body      string   `json:"body"`
		Labels    []string `json:"labels"`
		Assignees []string `json:"assignees"`
		Assignee  string   `json:"assignee"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		rec.json(http.StatusBadRequest, map[string]any{"message": "Problems parsing JSON"})
		return
	}
	if in.Title == nil || *in.Title == "" {
		invalid(rec, "Issue", "title", "missing_field", "")
		return
	}
	if len([]rune(in.Body)) > 65536 {
		invalid(rec, "Issue", "body", "custom", "body is too long (maximum is 65536 characters)")
		return
	}
	if in.Assignee != "" {
		in.Assignees = append(in.Assignees, in.Assignee)
	}
	for _, a := range in.Assignees {
		if !s.assignable(a) {
			invalid(rec, "Issue", "assignees", "invalid", "")
			return
		}
	}
	if s.cfg.NoPush {
		in.Labels = nil
	}
	is := s.createIssue(s.cfg.Login, *in.Title, in.Body, in.Labels, in.Assignees, nil)
	rec.header.Set("Location", "/repos/"+s.cfg.Owner+"/"+s.cfg.Repo+"/issues/"+strconv.Itoa(is.Number))
	rec.json(http.StatusCreated, s.issueJSON(is))
}

// createIssue makes an issue or pull request; labels that do not exist
// are created, as GitHub does. s.mu is held.
func (s *Server) createIssue(user, title, body string, labels, assignees []string, pull *Pull) *Issue {
	now := s.now().UTC()
	is := &Issue{Number: len(s.issues) + 1, ID: s.id(), Title: title, Body: body, State: "open",
		User: user, Created: now, Updated: now, Assignees: slices.Compact(slices.Clone(assignees)), Pull: pull}
	for _, name := range labels {
		l := s.label(name)
		if l == nil {
			l = &Label{ID: s.id(), Name: name, Color: "ededed"}
			s.labels = append(s.labels, l)
		}
		if !slices.Contains(is.Labels, l.Name) {
			is.Labels = append(is.Labels, l.Name)
		}
	}
	s.issues = append(s.issues, is)
	return is
}

func (s *Server) patchIssue(rec *recorder, is *Issue, body []byte) {
	var in struct {
		Title       *string `json:"title"`
		Body        *string `json:"body"`
		State       *string `json:"state"`
		StateReason *string `json:"state_reason"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		rec.json(http.StatusBadRequest, map[string]any{"message": "Problems parsing JSON"})
		return
	}
	if in.State != nil {
		if *in.State != "open" && *in.State != "closed" {
			invalid(rec, "Issue", "state", "invalid", "")
			return
		}
		if is.State != *in.State && *in.State == "closed" {
			is.Closed = s.now().UTC()
		}
		is.State = *in.State
	}
	if in.StateReason != nil {
		is.StateReason = *in.StateReason
	}
	if in.Title != nil {
		is.Title = *in.Title
	}
	if in.Body != nil {
		is.Body = *in.Body
	}
	is.Updated = s.now().UTC()
	rec.json(http.StatusOK, s.issueJSON(is))
}

func (s *Server) postComment(rec *recorder, is *Issue, body []byte) {
	var in struct {
		Body *string `json:"body"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		rec.json(http.StatusBadRequest, map[string]any{"message": "Problems parsing JSON"})
		return
	}
	if in.Body == nil || *in.Body == "" {
		invalid(rec, "IssueComment", "body", "missing_field", "")
		return
	}
	if len([]rune(*in.Body)) > 65536 {
		invalid(rec, "IssueComment", "body", "custom", "body is too long (maximum is 65536 characters)")
		return
	}
	c := Comment{ID: s.id(), Body: *in.Body, User: s.cfg.Login, Created: s.now().UTC()}
	is.Comments = append(is.Comments, c)
	is.Updated = c.Created
	rec.json(http.StatusCreated, s.commentJSON(is, c))
}

func (s *Server) getComment(rec *recorder, idText string) {
	id, _ := strconv.ParseInt(idText, 10, 64)
	for _, is := range s.issues {
		for _, c := range is.Comments {
			if c.ID == id {
				rec.json(http.StatusOK, s.commentJSON(is, c))
				return
			}
		}
	}
	notFound(rec)
}

func (s *Server) label(name string) *Label {
	for _, l := range s.labels {
		if strings.EqualFold(l.Name, name) {
			return l
		}
	}
	return nil
}

func (s *Server) postLabel(rec *recorder, body []byte) {
	var in struct {
		Name        string `json:"name"`
		Color       string `json:"color"`
		Description string `json:"description"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		rec.json(http.StatusBadRequest, map[string]any{"message": "Problems parsing JSON"})
		return
	}
	if in.Name == "" {
		invalid(rec, "Label", "name", "missing_field", "")
		return
	}
	if s.label(in.Name) != nil {
		invalid(rec, "Label", "name", "already_exists", "")
		return
	}
	if in.Color == "" {
		in.Color = "ededed"
	}
	l := &Label{ID: s.id(), Name: in.Name, Color: in.Color, Description: in.Description}
	s.labels = append(s.labels, l)
	rec.json(http.StatusCreated, labelJSON(l))
}

func (s *Server) assignable(login string) bool {
	return slices.ContainsFunc(s.cfg.Assignable, func(a string) bool { return strings.EqualFold(a, login) })
}

func (s *Server) listPulls(rec *recorder, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	var list []any
	for i := len(s.issues) - 1; i >= 0; i-- { // newest first, as GitHub sorts by default
		is := s.issues[i]
		if is.Pull == nil || (state != "all" && is.State != state) {
			continue
		}
		if h := q.Get("head"); h != "" {
			owner, ref, ok := strings.Cut(h, ":")
			if !ok || !strings.EqualFold(owner, s.cfg.Owner) || ref != is.Pull.Head {
				continue
			}
		}
		if b := q.Get("base"); b != "" && b != is.Pull.Base {
			continue
		}
		list = append(list, s.pullJSON(is))
	}
	if list == nil {
		list = []any{}
	}
	s.page(rec, r, list)
}

func (s *Server) postPull(rec *recorder, body []byte) {
	var in struct {
		Title string `json:"title"`
		Head  string `json:"head"`
		Base  string `json:"base"`
		Body  string `json:"body"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		rec.json(http.StatusBadRequest, map[string]any{"message": "Problems parsing JSON"})
		return
	}
	switch {
	case in.Title == "":
		invalid(rec, "PullRequest", "title", "missing_field", "")
		return
	case in.Head == "" || in.Base == "":
		invalid(rec, "PullRequest", "head", "missing_field", "")
		return
	}
	head := in.Head
	if owner, ref, ok := strings.Cut(head, ":"); ok && strings.EqualFold(owner, s.cfg.Owner) {
		head = ref
	}
	for _, is := range s.issues {
		if is.Pull != nil && is.State == "open" && is.Pull.Head == head && is.Pull.Base == in.Base {
			invalid(rec, "PullRequest", "", "custom", "A pull request already exists for "+s.cfg.Owner+":"+head+".")
			return
		}
	}
	is := s.createIssue(s.cfg.Login, in.Title, in.Body, nil, nil, &Pull{Head: head, Base: in.Base})
	rec.json(http.StatusCreated, s.pullJSON(is))
}

func (s *Server) requestReviewers(rec *recorder, is *Issue, body []byte) {
	var in struct {
		Reviewers     []string `json:"reviewers"`
		TeamReviewers []string `json:"team_reviewers"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		rec.json(http.StatusBadRequest, map[string]any{"message": "Problems parsing JSON"})
		return
	}
	for _, u := range in.Reviewers {
		if strings.EqualFold(u, is.User) {
			rec.json(http.StatusUnprocessableEntity, map[string]any{"message": "Review cannot be requested from pull request author.", "documentation_url": "https://docs.github.com/rest"})
			return
		}
		if !s.assignable(u) {
			rec.json(http.StatusUnprocessableEntity, map[string]any{"message": "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the " + s.cfg.Owner + "/" + s.cfg.Repo + " repository.", "documentation_url": "https://docs.github.com/rest"})
			return
		}
	}
	for _, t := range in.TeamReviewers {
		if _, ok := s.teams[strings.ToLower(s.cfg.Owner+"/"+t)]; !ok {
			rec.json(http.StatusUnprocessableEntity, map[string]any{"message": "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the " + s.cfg.Owner + "/" + s.cfg.Repo + " repository.", "documentation_url": "https://docs.github.com/rest"})
			return
		}
	}
	p := is.Pull
	for _, u := range in.Reviewers {
		if !slices.ContainsFunc(p.RequestedReviewers, func(x string) bool { return strings.EqualFold(x, u) }) {
			p.RequestedReviewers = append(p.RequestedReviewers, u)
		}
	}
	for _, t := range in.TeamReviewers {
		if !slices.ContainsFunc(p.RequestedTeams, func(x string) bool { return strings.EqualFold(x, t) }) {
			p.RequestedTeams = append(p.RequestedTeams, t)
		}
	}
	rec.json(http.StatusCreated, s.pullJSON(is))
}

func (s *Server) teamMembership(rec *recorder, org, slug, login string) {
	members, ok := s.teams[strings.ToLower(org+"/"+slug)]
	if !ok {
		notFound(rec)
		return
	}
	state, ok := members[strings.ToLower(login)]
	if !ok {
		notFound(rec)
		return
	}
	rec.json(http.StatusOK, map[string]any{
		"url":   s.URL + "/api/v3/organizations/1/team/1/memberships/" + login,
		"role":  "member",
		"state": state,
	})
}

func (s *Server) apiURL(p string) string { return s.URL + "/api/v3" + p }

func (s *Server) repoJSON() map[string]any {
	return map[string]any{
		"id": 1, "name": s.cfg.Repo, "full_name": s.cfg.Owner + "/" + s.cfg.Repo,
		"owner":    userJSON(s.cfg.Owner),
		"html_url": "https://github.com/" + s.cfg.Owner + "/" + s.cfg.Repo,
		"url":      s.apiURL("/repos/" + s.cfg.Owner + "/" + s.cfg.Repo),
	}
}

func userJSON(login string) map[string]any {
	typ := "User"
	if strings.HasSuffix(login, "[bot]") {
		typ = "Bot"
	}
	return map[string]any{"login": login, "id": len(login), "type": typ}
}

func labelJSON(l *Label) map[string]any {
	return map[string]any{"id": l.ID, "name": l.Name, "color": l.Color, "description": l.Description, "default": false}
}

func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func (s *Server) issueJSON(is *Issue) map[string]any {
	repo := "/repos/" + s.cfg.Owner + "/" + s.cfg.Repo
	labels := []any{}
	for _, name := range is.Labels {
		if l := s.label(name); l != nil {
			labels = append(labels, labelJSON(l))
		}
	}
	assignees := []any{}
	for _, a := range is.Assignees {
		assignees = append(assignees, userJSON(a))
	}
	var assignee any
	if len(is.Assignees) > 0 {
		assignee = userJSON(is.Assignees[0])
	}
	m := map[string]any{
		"id": is.ID, "number": is.Number, "title": is.Title, "body": is.Body,
		"state": is.State, "state_reason": nil, "locked": false,
		"labels": labels, "assignees": assignees, "assignee": assignee,
		"user": userJSON(is.User), "comments": len(is.Comments),
		"created_at": ts(is.Created), "updated_at": ts(is.Updated), "closed_at": ts(is.Closed),
		"url":      s.apiURL(repo + "/issues/" + strconv.Itoa(is.Number)),
		"html_url": "https://github.com/" + s.cfg.Owner + "/" + s.cfg.Repo + "/issues/" + strconv.Itoa(is.Number),
	}
	if is.StateReason != "" {
		m["state_reason"] = is.StateReason
	}
	if is.Pull != nil {
		m["pull_request"] = map[string]any{
			"url":      s.apiURL(repo + "/pulls/" + strconv.Itoa(is.Number)),
			"html_url": "https://github.com/" + s.cfg.Owner + "/" + s.cfg.Repo + "/pull/" + strconv.Itoa(is.Number),
		}
	}
	return m
}

func (s *Server) pullJSON(is *Issue) map[string]any {
	m := s.issueJSON(is)
	delete(m, "pull_request")
	p := is.Pull
	reviewers := []any{}
	for _, u := range p.RequestedReviewers {
		reviewers = append(reviewers, userJSON(u))
	}
	teams := []any{}
	for _, t := range p.RequestedTeams {
		teams = append(teams, map[string]any{"id": len(t), "slug": t, "name": t})
	}
	m["head"] = map[string]any{"ref": p.Head, "label": s.cfg.Owner + ":" + p.Head, "sha": "0000000000000000000000000000000000000001"}
	m["base"] = map[string]any{"ref": p.Base, "label": s.cfg.Owner + ":" + p.Base, "sha": "0000000000000000000000000000000000000002"}
	m["merged"] = p.Merged
	m["requested_reviewers"] = reviewers
	m["requested_teams"] = teams
	m["draft"] = false
	m["html_url"] = "https://github.com/" + s.cfg.Owner + "/" + s.cfg.Repo + "/pull/" + strconv.Itoa(is.Number)
	m["url"] = s.apiURL("/repos/" + s.cfg.Owner + "/" + s.cfg.Repo + "/pulls/" + strconv.Itoa(is.Number))
	return m
}

func (s *Server) commentJSON(is *Issue, c Comment) map[string]any {
	return map[string]any{
		"id": c.ID, "body": c.Body, "user": userJSON(c.User),
		"created_at": ts(c.Created), "updated_at": ts(c.Created),
		"author_association": "MEMBER",
		"issue_url":          s.apiURL("/repos/" + s.cfg.Owner + "/" + s.cfg.Repo + "/issues/" + strconv.Itoa(is.Number)),
		"html_url":           "https://github.com/" + s.cfg.Owner + "/" + s.cfg.Repo + "/issues/" + strconv.Itoa(is.Number) + "#issuecomment-" + strconv.FormatInt(c.ID, 10),
		"url":                s.apiURL("/repos/" + s.cfg.Owner + "/" + s.cfg.Repo + "/issues/comments/" + strconv.FormatInt(c.ID, 10)),
	}
}
