// Package github is firebreak's GitHub side: the incident's issue, its
// comments, the postmortem pull request and its reviewers, and approvals
// by comment. It speaks through the real go-github client over the one
// retrying HTTP client (actions/webclient).
//
// Every call is idempotent. Objects carry hidden markers — the issue
// <!-- firebreak:incident=ID -->, a comment <!-- firebreak:comment=KEY -->,
// the pull request <!-- firebreak:pr=ID --> — and are looked up before
// they are created, so a call repeated after any failure, in this process
// or after a restart, never makes a second one.
//
// Who retries what, each in one place:
//
//	GET, PATCH, label and reviewer requests        webclient: connection
//	  (safe to repeat)                               errors, 5xx but 501,
//	                                                 429 and 403 secondary
//	                                                 limit, waiting what
//	                                                 Retry-After asks
//	creating an issue, a comment, a pull request   this package: a create is
//	  (a repeat could make two)                      sent once, never retried
//	                                                 below; on a transient
//	                                                 failure it looks for its
//	                                                 marker again and only
//	                                                 then sends it again,
//	                                                 waiting what Retry-After
//	                                                 asks
//	whatever is still failing when a call returns  the caller's outbox: see
//	                                                 IsTransient, RetryAfter
//
// go-github does not treat 429 as a rate limit, and webclient does not
// retry 403 (most 403s are final): the transport under webclient's retries
// presents a 403 secondary rate limit as a 429 with its Retry-After (60 s
// when GitHub gives none, as GitHub asks), and the 403 is restored above
// the retries, so go-github still reports an *AbuseRateLimitError when
// they run out.
//
// The token comes from the secrets store by the name firebreak.cue gives;
// it never reaches an error or a log line.
//
// # For the outbox
//
// The incidents engine keeps what GitHub is owed in a durable outbox (in
// the repository) and sends it here; this package keeps nothing across
// restarts and needs nothing kept. What to store is the intent — the
// IssueSpec, the issue number with comment key and body, the PRSpec —
// not whether a call got through: replaying a call that did get through
// changes nothing. After a failed call:
//
//	IsTransient(err)   keep the entry and replay it later (GitHub down,
//	                   rate-limited, slow, or an ErrNoIssue comment whose
//	                   issue is still owed: send the issue first)
//	RetryAfter(err)    the earliest GitHub wants to hear again (0: use
//	                   your own backoff); go-github refuses requests
//	                   itself until a secondary limit's wait is over
//	otherwise          a permanent error (bad credentials, 404, 422,
//	                   ErrInvalid): replaying cannot help; record it
//
// Store the issue number EnsureIssue returns in the incident record and
// pass it back as IssueSpec.Number, with IssueSpec.Opened: the lookup is
// then one GET, or a listing bounded by the incident's age.
package github

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gh "github.com/google/go-github/v60/github"
	"github.com/hashicorp/go-cleanhttp"

	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/actions/webclient"
	"github.com/firebreak-dev/firebreak/schema"
)

// Defaults of Options fields left zero.
const (
	DefaultAttemptTimeout = 30 * time.Second
	DefaultMutationGap    = time.Second
	// defaultSecondaryWait is what GitHub asks after a secondary rate
	// limit that names no Retry-After: "wait for at least one minute".
	defaultSecondaryWait = time.Minute
)

// Options configures a Client.
type Options struct {
	// Config is firebreak.cue's github block.
	Config *schema.GitHub
	// Secrets resolves Config.Token; its Redact keeps the token out of
	// errors and logs.
	Secrets *secrets.Store
	// HTTP configures the webclient clients underneath. AllowedHosts
	// empty means the host of Config.APIURL. Redact is combined with the
	// secrets store's. RetryMax, WaitMin, WaitMax and RetryAfterMax also
	// bound this package's own create retries.
	HTTP webclient.Options
	// Log receives what was created, found and retried; nil discards.
	Log *slog.Logger
	// AttemptTimeout bounds how long one attempt waits for GitHub to
	// start answering before it counts as failed (and is retried); 0
	// means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// MutationGap spaces requests that change something (POST, PATCH,
	// PUT, DELETE), as GitHub asks to stay clear of its secondary rate
	// limit; 0 means DefaultMutationGap, a negative value no spacing.
	MutationGap time.Duration
}

// Client is firebreak's GitHub client for one repository. It is safe for
// concurrent use; calls for the same incident or issue run one at a time.
type Client struct {
	gh          *gh.Client
	owner, repo string
	// labels are the configured labels every incident issue carries;
	// lookupLabel, the first, filters the issue listing.
	labels      []string
	lookupLabel string
	token       string
	storeRedact func(string) string
	log         *slog.Logger

	retryMax       int
	waitMin        time.Duration
	waitMax        time.Duration
	retryAfterMax  time.Duration
	attemptTimeout time.Duration

	locks keyLocks

	mu         sync.Mutex
	issueOf    map[string]int          // incident -> issue number
	posted     map[int]map[string]bool // issue -> comment keys seen
	knownLabel map[string]bool
	assignable map[string]bool
}

// New returns a Client for opts.
func New(opts Options) (*Client, error) {
	cfg := opts.Config
	if cfg == nil || cfg.Owner == "" || cfg.Repo == "" {
		return nil, fmt.Errorf("github: %w: no owner and repo", ErrInvalid)
	}
	if opts.Secrets == nil {
		return nil, fmt.Errorf("github: %w: no secrets store", ErrInvalid)
	}
	token, err := opts.Secrets.Get(cfg.Token.Secret)
	if err != nil {
		return nil, fmt.Errorf("github token: %w", err)
	}
	c := &Client{
		owner:       cfg.Owner,
		repo:        cfg.Repo,
		labels:      cfg.Labels,
		token:       token,
		storeRedact: opts.Secrets.Redact,
		log:         opts.Log,
		issueOf:     map[string]int{},
		posted:      map[int]map[string]bool{},
		knownLabel:  map[string]bool{},
		assignable:  map[string]bool{},
	}
	if cfg.Labels == nil {
		c.labels = []string{"incident"}
	}
	if len(c.labels) > 0 {
		c.lookupLabel = c.labels[0]
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = webclient.DefaultGitHubAPIURL
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("github: %w: api_url %q", ErrInvalid, c.redact(apiURL))
	}

	hopts := opts.HTTP
	if len(hopts.AllowedHosts) == 0 {
		hopts.AllowedHosts = []string{u.Host}
	}
	outer := hopts.Redact
	hopts.Redact = func(s string) string {
		if outer != nil {
			s = outer(s)
		}
		return c.redact(s)
	}
	if hopts.Log == nil {
		hopts.Log = c.log
	}
	next := hopts.Transport
	if next == nil {
		next = cleanhttp.DefaultPooledTransport()
	}
	attempt := opts.AttemptTimeout
	if attempt <= 0 {
		attempt = DefaultAttemptTimeout
	}
	maxWait := hopts.RetryAfterMax
	if maxWait <= 0 {
		maxWait = webclient.DefaultRetryAfterMax
	}
	hopts.Transport = &attemptTransport{next: next, timeout: attempt, maxWait: maxWait}
	c.attemptTimeout = attempt
	retrying := webclient.New(hopts).StandardClient()
	once := hopts
	once.RetryMax = -1
	onceClient := webclient.New(once).StandardClient()

	c.retryMax = hopts.RetryMax
	switch {
	case c.retryMax == 0:
		c.retryMax = webclient.DefaultRetryMax
	case c.retryMax < 0:
		c.retryMax = 0
	}
	c.waitMin, c.waitMax, c.retryAfterMax = hopts.WaitMin, hopts.WaitMax, hopts.RetryAfterMax
	if c.waitMin <= 0 {
		c.waitMin = webclient.DefaultWaitMin
	}
	if c.waitMax <= 0 {
		c.waitMax = webclient.DefaultWaitMax
	}
	if c.retryAfterMax <= 0 {
		c.retryAfterMax = webclient.DefaultRetryAfterMax
	}

	gap := opts.MutationGap
	if gap == 0 {
		gap = DefaultMutationGap
	}
	hc := &http.Client{
		Transport:     &router{retrying: retrying.Transport, once: onceClient.Transport, gap: &spacer{gap: gap}},
		CheckRedirect: retrying.CheckRedirect,
	}
	client := gh.NewClient(hc).WithAuthToken(token)
	if strings.TrimSuffix(apiURL, "/") != strings.TrimSuffix(webclient.DefaultGitHubAPIURL, "/") {
		client, err = client.WithEnterpriseURLs(apiURL, apiURL)
		if err != nil {
			return nil, fmt.Errorf("github: %w: api_url %q", ErrInvalid, c.redact(apiURL))
		}
	}
	client.UserAgent = "firebreak"
	c.gh = client
	return c, nil
}

// redact removes the token and every secret handed out from s.
func (c *Client) redact(s string) string {
	if c.token != "" {
		s = strings.ReplaceAll(s, c.token, "[redacted]")
	}
	if c.storeRedact != nil {
		s = c.storeRedact(s)
	}
	return s
}

// onceKey marks a request context whose request must not be repeated
// below this package: a create.
type onceKey struct{}

func withOnce(ctx context.Context) context.Context { return context.WithValue(ctx, onceKey{}, true) }

// originalStatus carries a 403 presented as 429 to webclient's retries.
const originalStatus = "X-Firebreak-Original-Status"

// router sends creates through the client that never retries and
// everything else through the retrying one, spaces mutations, and
// restores a 403 secondary limit that the retries gave up on.
type router struct {
	retrying, once http.RoundTripper
	gap            *spacer
}

func (r *router) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		if err := r.gap.wait(req.Context()); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
	}
	t := r.retrying
	if req.Context().Value(onceKey{}) != nil {
		t = r.once
	}
	resp, err := t.RoundTrip(req)
	if resp != nil && resp.Header.Get(originalStatus) != "" {
		code, _ := strconv.Atoi(resp.Header.Get(originalStatus))
		resp.Header.Del(originalStatus)
		resp.StatusCode = code
		resp.Status = fmt.Sprintf("%d %s", code, http.StatusText(code))
	}
	return resp, err
}

// spacer lets mutations start at least gap apart.
type spacer struct {
	gap  time.Duration
	mu   sync.Mutex
	next time.Time
}

func (s *spacer) wait(ctx context.Context) error {
	if s.gap <= 0 {
		return nil
	}
	s.mu.Lock()
	now := time.Now()
	at := s.next
	if at.Before(now) {
		at = now
	}
	s.next = at.Add(s.gap)
	s.mu.Unlock()
	return sleep(ctx, at.Sub(now))
}

// attemptTransport sits under webclient's retries: it bounds each
// attempt's wait for an answer, and presents GitHub's rate limit answers
// so that webclient's one retry policy honours them.
type attemptTransport struct {
	next    http.RoundTripper
	timeout time.Duration
	maxWait time.Duration // webclient's RetryAfterMax
}

// timeoutError is an attempt GitHub did not start answering in time.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string   { return fmt.Sprintf("no answer within %v", e.d) }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

func (t *attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	slow := &timeoutError{d: t.timeout}
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(t.timeout, func() { cancel(slow) })
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	fired := !timer.Stop()
	if err != nil || fired {
		if resp != nil {
			resp.Body.Close()
		}
		cancel(nil)
		if fired && req.Context().Err() == nil {
			return nil, slow
		}
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: func() { cancel(nil) }}
	presentRateLimit(resp, time.Now(), t.maxWait)
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel func()
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// presentRateLimit shapes GitHub's rate limit answers for webclient's one
// retry policy, which retries 429 (waiting its Retry-After, capped) and
// never 403. A 403 secondary limit or a 429 whose wait — Retry-After, else
// the reset of an exhausted primary limit, else a minute for a secondary
// limit, as GitHub documents — fits within maxWait becomes a 429 with that
// Retry-After; one whose wait does not fit becomes, or stays, a 403, so it
// goes back to the caller at once. originalStatus keeps the status GitHub
// sent, for the router to restore. A 403 of an exhausted primary limit is
// left alone: its reset may be an hour away.
func presentRateLimit(resp *http.Response, now time.Time, maxWait time.Duration) {
	h := resp.Header
	var wait time.Duration
	switch resp.StatusCode {
	case http.StatusForbidden:
		if h.Get("X-RateLimit-Remaining") == "0" {
			return
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(data), resp.Body), resp.Body}
		if err != nil {
			return
		}
		var body struct {
			Message          string `json:"message"`
			DocumentationURL string `json:"documentation_url"`
		}
		_ = json.Unmarshal(data, &body)
		if !secondaryMessage(body.Message, body.DocumentationURL) {
			return
		}
		if wait = retryAfterHeader(h, now); wait == 0 && h.Get("Retry-After") == "" {
			wait = defaultSecondaryWait
		}
	case http.StatusTooManyRequests:
		wait = retryAfterHeader(h, now)
		if wait == 0 && h.Get("Retry-After") == "" && h.Get("X-RateLimit-Remaining") != "0" {
			return // nothing said: webclient's backoff
		}
	default:
		return
	}
	h.Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
	code := http.StatusTooManyRequests
	if wait > maxWait {
		code = http.StatusForbidden
	}
	if code != resp.StatusCode {
		h.Set(originalStatus, strconv.Itoa(resp.StatusCode))
		resp.StatusCode = code
		resp.Status = fmt.Sprintf("%d %s", code, http.StatusText(code))
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// keyLocks serializes work on one key (an incident, an issue).
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu sync.Mutex
	n  int
}

func (k *keyLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.n++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.n--; l.n == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
