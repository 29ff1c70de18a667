// Package webclient is the one HTTP client of the action library. It is
// built once on go-retryablehttp, so backoff lives in one place; it talks
// only to the hosts firebreak.cue declares, follows redirects only to those
// hosts, takes its deadlines from contexts, caps what it reads and keeps
// secrets, query strings and user info out of every error and log line.
//
// What is retried, up to RetryMax times, with exponential backoff from
// WaitMin to WaitMax or what Retry-After asks (capped at RetryAfterMax):
//
//	connection errors (refused, reset, EOF)    yes
//	429, 500, 502, 503, 504 and other 5xx      yes
//	501 Not Implemented                        no: retrying cannot help
//	any other 4xx (400, 401, 403, 404, 422…)   no: *StatusError at once
//	a host or redirect not declared            no: ErrHostNotAllowed, nothing sent
//	TLS certificate errors, bad scheme         no
//	context done, or a wait that would pass    no: the last answer or ctx's error
//	  the context's deadline
package webclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
)

// ErrHostNotAllowed marks a request, or a redirect, to a host that
// firebreak.cue does not declare. Nothing was sent to that host.
var ErrHostNotAllowed = errors.New("host not declared in firebreak.cue")

// ErrBodyTooLarge is returned by reads of a response body past the cap.
var ErrBodyTooLarge = errors.New("response body too large")

// Defaults of Options fields left zero.
const (
	DefaultRetryMax      = 4
	DefaultWaitMin       = 500 * time.Millisecond
	DefaultWaitMax       = 30 * time.Second
	DefaultRetryAfterMax = time.Minute
	DefaultMaxBodyBytes  = 10 << 20
	// MaxConnsPerHost bounds the requests to one host at once: a storm
	// of incidents notifying one channel does not open thousands of
	// connections to it.
	MaxConnsPerHost = 256
	// errorBodyBytes is how much of an error response StatusError keeps.
	errorBodyBytes = 1024
	// errorBodyRead is how much of an error response is read and redacted
	// before it is cut to errorBodyBytes, so a secret that starts before the
	// cut is seen whole by Redact.
	errorBodyRead = 64 << 10
	maxRedirects  = 10
)

// Options configures a Client.
type Options struct {
	// AllowedHosts lists the hosts requests may go to, as "host" (any
	// request on the scheme's default port) or "host:port". See AllowedHosts.
	AllowedHosts []string
	// Redact removes secret values from text; every error message and
	// logged URL passes through it. Nil means no secrets are known.
	Redact func(string) string
	// Log receives retries and refusals; nil discards them.
	Log *slog.Logger
	// RetryMax is how many times a failed request is retried: 0 means
	// DefaultRetryMax, a negative value means never.
	RetryMax int
	// WaitMin and WaitMax bound the exponential backoff between retries
	// (WaitMin, 2×WaitMin, … up to WaitMax).
	WaitMin, WaitMax time.Duration
	// RetryAfterMax caps a server's Retry-After; 0 means DefaultRetryAfterMax.
	RetryAfterMax time.Duration
	// MaxBodyBytes caps every response body read; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Transport is the round tripper underneath; nil means a pooled
	// transport of go-cleanhttp. Tests use it to count connections.
	Transport http.RoundTripper
}

// Client sends HTTP requests to declared hosts, retrying connection errors,
// 5xx (but 501) and 429. It is safe for concurrent use.
type Client struct {
	allowed       []hostPort
	redact        func(string) string
	log           *slog.Logger
	retryAfterMax time.Duration
	maxBody       int64
	rc            *retryablehttp.Client
}

// New returns a Client for opts.
func New(opts Options) *Client {
	c := &Client{
		redact:        opts.Redact,
		log:           opts.Log,
		retryAfterMax: opts.RetryAfterMax,
		maxBody:       opts.MaxBodyBytes,
	}
	if c.redact == nil {
		c.redact = func(s string) string { return s }
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.retryAfterMax <= 0 {
		c.retryAfterMax = DefaultRetryAfterMax
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxBodyBytes
	}
	for _, h := range opts.AllowedHosts {
		c.allowed = append(c.allowed, parseHostPort(h))
	}
	retryMax := opts.RetryMax
	switch {
	case retryMax == 0:
		retryMax = DefaultRetryMax
	case retryMax < 0:
		retryMax = 0
	}
	waitMin, waitMax := opts.WaitMin, opts.WaitMax
	if waitMin <= 0 {
		waitMin = DefaultWaitMin
	}
	if waitMax <= 0 {
		waitMax = DefaultWaitMax
	}
	if waitMax < waitMin {
		waitMax = waitMin
	}
	base := opts.Transport
	if base == nil {
		t := cleanhttp.DefaultPooledTransport()
		// A storm sends many notifies to one webhook at once. At most
		// MaxConnsPerHost go at once (the rest wait for a connection, as
		// part of their step), and they are kept: with the default idle
		// pool (GOMAXPROCS+1 per host) most of them dialed a new
		// connection and closed it after. The pool as a whole keeps a few
		// hosts' worth: with cleanhttp's 100, a storm's notifies to one
		// webhook evicted each other's connections (549 dialed for 2,000
		// notifies), and every eviction scans the pool under its lock.
		t.MaxConnsPerHost = MaxConnsPerHost
		t.MaxIdleConnsPerHost = MaxConnsPerHost
		t.MaxIdleConns = 4 * MaxConnsPerHost
		base = t
	}
	c.rc = &retryablehttp.Client{
		// No Timeout: deadlines come from the request's context.
		HTTPClient: &http.Client{
			Transport:     &guard{c: c, base: base},
			CheckRedirect: c.checkRedirect,
		},
		Logger:       nil, // retries are logged by checkRetry, redacted
		RetryWaitMin: waitMin,
		RetryWaitMax: waitMax,
		RetryMax:     retryMax,
		CheckRetry:   c.checkRetry,
		Backoff:      c.backoff,
		// Hand back the last response as is: Do turns it into a
		// StatusError with its body, go-github reads its own error bodies.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	return c
}

// StatusError is a response with a status of 400 or more that Do gave up
// on: at once for a 4xx other than 429, after the retries for 5xx and 429.
type StatusError struct {
	Code int
	// Body is the start of the response body, redacted and truncated.
	Body string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Retryable reports whether a status is one the client retries.
func Retryable(code int) bool {
	return code == http.StatusTooManyRequests ||
		code >= 500 && code != http.StatusNotImplemented
}

// Do sends req with ctx, retrying as the package says. A response with
// status 400 or more comes back as an error wrapping *StatusError, with
// the body closed; any other response is the caller's to close, and its
// body errors with ErrBodyTooLarge past the cap.
func (c *Client) Do(ctx context.Context, req *http.Request) (*http.Response, error) {
	req = req.WithContext(c.withAttempts(ctx, req))
	if err := c.allow(req.URL); err != nil {
		c.log.Warn("http request refused", "method", req.Method, "url", c.showURL(req.URL), "reason", "host not declared")
		return nil, c.fail(req, err)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "firebreak")
	}
	rreq, err := retryablehttp.FromRequest(req)
	if err != nil {
		return nil, c.fail(req, err)
	}
	resp, err := c.rc.Do(rreq)
	if err != nil {
		if resp != nil {
			drain(resp.Body)
		}
		return nil, c.fail(req, err)
	}
	if resp.StatusCode >= 400 {
		defer drain(resp.Body)
		return nil, c.fail(req, c.statusError(req, resp))
	}
	return resp, nil
}

// StandardClient returns an *http.Client over the same retries, allowlist
// and caps, for libraries such as go-github. Unlike Do it hands every
// response back, error statuses included, so the library reads its own
// error bodies.
func (c *Client) StandardClient() *http.Client {
	return &http.Client{
		Transport:     &standard{c: c},
		CheckRedirect: c.checkRedirect,
	}
}

type standard struct{ c *Client }

func (s *standard) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.WithContext(s.c.withAttempts(req.Context(), req))
	if err := s.c.allow(req.URL); err != nil {
		return nil, s.c.fail(req, err)
	}
	rreq, err := retryablehttp.FromRequest(req)
	if err != nil {
		return nil, s.c.fail(req, err)
	}
	resp, err := s.c.rc.Do(rreq)
	if err != nil {
		if resp != nil {
			drain(resp.Body)
		}
		return nil, s.c.fail(req, err)
	}
	return resp, nil
}

// guard is the transport under the retries: it refuses undeclared hosts
// before dialing (so redirects are checked too) and caps response bodies.
type guard struct {
	c    *Client
	base http.RoundTripper
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := g.c.allow(req.URL); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := g.base.RoundTrip(req)
	if resp != nil && resp.Body != nil {
		resp.Body = &capped{r: resp.Body, left: g.c.maxBody}
	}
	return resp, err
}

func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if err := c.allow(req.URL); err != nil {
		c.log.Warn("http redirect refused", "from", c.showURL(via[len(via)-1].URL), "to", c.showURL(req.URL))
		return fmt.Errorf("redirect to %s: %w", c.redact(req.URL.Host), ErrHostNotAllowed)
	}
	return nil
}

// checkRetry is the one retry policy: connection errors, 5xx but 501, and
// 429; never a refused host, a spent context or a Retry-After that would
// outlast the context's deadline.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	a := attemptsOf(ctx)
	if a != nil {
		a.n.Add(1)
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	var retry bool
	var why string
	switch {
	case err != nil:
		if errors.Is(err, ErrHostNotAllowed) {
			return false, err
		}
		retry, _ = retryablehttp.DefaultRetryPolicy(ctx, nil, err)
		why = c.redact(stripURLError(err).Error())
	default:
		retry = Retryable(resp.StatusCode)
		why = resp.Status
	}
	if !retry || a == nil || int(a.n.Load()) > c.rc.RetryMax {
		return retry, nil
	}
	wait := c.backoff(c.rc.RetryWaitMin, c.rc.RetryWaitMax, int(a.n.Load())-1, resp)
	if dl, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(dl) {
		c.log.Info("http not retried: wait passes the deadline", "method", a.method, "url", a.url, "reason", why, "wait", wait)
		return false, nil
	}
	c.log.Info("http retry", "method", a.method, "url", a.url, "reason", why, "attempt", a.n.Load(), "wait", wait)
	return true, nil
}

// backoff waits what a Retry-After header asks (seconds or an HTTP date,
// capped at RetryAfterMax), else WaitMin doubled per attempt up to WaitMax.
func (c *Client) backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return min(d, c.retryAfterMax)
		}
	}
	d := lo
	for range attempt {
		d *= 2
		if d >= hi || d <= 0 {
			return hi
		}
	}
	return min(d, hi)
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// statusError keeps the start of an error response's body, redacted: a
// server may echo the request, query string and credentials included.
func (c *Client) statusError(req *http.Request, resp *http.Response) *StatusError {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyRead))
	body := c.redactFor(req, strings.TrimSpace(string(data)))
	return &StatusError{Code: resp.StatusCode, Body: truncate(body, errorBodyBytes)}
}

// redactFor redacts s, and whatever of req's credentials a server may
// echo: the URL's query and password, and the Authorization header.
func (c *Client) redactFor(req *http.Request, s string) string {
	s = c.redact(s)
	var creds []string
	u := req.URL
	if pw, ok := u.User.Password(); ok && pw != "" {
		creds = append(creds, pw, u.User.String(), base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw)))
		if esc := url.UserPassword("", pw).String(); len(esc) > 1 {
			creds = append(creds, esc[1:])
		}
	}
	if u.RawQuery != "" {
		creds = append(creds, u.RawQuery)
		if q, err := url.QueryUnescape(u.RawQuery); err == nil {
			creds = append(creds, q)
		}
	}
	for _, auth := range req.Header.Values("Authorization") {
		creds = append(creds, auth)
		if _, cred, ok := strings.Cut(auth, " "); ok {
			creds = append(creds, cred)
		}
	}
	// Longest first, so a credential that contains another goes whole.
	slices.SortFunc(creds, func(a, b string) int { return len(b) - len(a) })
	for _, cred := range creds {
		if len(cred) >= 4 {
			s = strings.ReplaceAll(s, cred, "[redacted]")
		}
	}
	return s
}

// fail wraps err for req: the message is redacted and shows the URL
// without query or user info; errors.Is and errors.As still see err, from
// which *url.Error (that holds the raw URL) has been removed.
func (c *Client) fail(req *http.Request, err error) error {
	err = stripURLError(err)
	ctx := req.Context()
	msg := fmt.Sprintf("%s %s: %v", req.Method, c.showURL(req.URL), err)
	if ctx.Err() != nil {
		if !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		msg = fmt.Sprintf("%s %s: gave up, context deadline passed or canceled (%v)", req.Method, c.showURL(req.URL), ctx.Err())
		if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
			msg += ": " + cause.Error()
		}
		if a := attemptsOf(ctx); a != nil {
			msg += fmt.Sprintf(" after %d attempt(s)", a.n.Load())
		}
	}
	return &requestError{msg: c.redactFor(req, msg), err: err}
}

type requestError struct {
	msg string
	err error
}

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return e.err }

// stripURLError drops *url.Error, whose message holds the full URL.
func stripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// showURL is u as errors and logs show it: without query, fragment and
// user info, where credentials hide, and redacted. When a secret covers
// more than that (a webhook URL with a query), only scheme and host show.
func (c *Client) showURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	v := *u
	v.User, v.RawQuery, v.ForceQuery, v.Fragment, v.RawFragment = nil, "", false, "", ""
	s := v.String()
	if r := c.redact(s); r != s {
		return r
	}
	if full := u.String(); c.redact(full) != full {
		return v.Scheme + "://" + c.redact(v.Host) + "/[redacted]"
	}
	return s
}

// allow refuses a URL whose scheme is not http(s) or whose host is not
// declared.
func (c *Client) allow(u *url.URL) error {
	if u == nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("only http and https: %w", ErrHostNotAllowed)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	defPort := map[string]string{"http": "80", "https": "443"}[u.Scheme]
	if port == "" {
		port = defPort
	}
	for _, a := range c.allowed {
		if a.host != host {
			continue
		}
		if a.port == port || a.port == "" && port == defPort {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", c.redact(u.Host), ErrHostNotAllowed)
}

type hostPort struct{ host, port string }

func parseHostPort(s string) hostPort {
	s = strings.ToLower(strings.TrimSpace(s))
	u, err := url.Parse("//" + s)
	if err != nil || u.Host == "" {
		return hostPort{host: s}
	}
	return hostPort{host: u.Hostname(), port: u.Port()}
}

// attempts counts the attempts of one request (redirects followed within
// one attempt count once), for logs and errors.
type attempts struct {
	method, url string
	n           atomic.Int32
}

type attemptsKey struct{}

func (c *Client) withAttempts(ctx context.Context, req *http.Request) context.Context {
	return context.WithValue(ctx, attemptsKey{}, &attempts{method: req.Method, url: c.showURL(req.URL)})
}

func attemptsOf(ctx context.Context) *attempts {
	a, _ := ctx.Value(attemptsKey{}).(*attempts)
	return a
}

// capped fails reads past its limit instead of silently truncating.
type capped struct {
	r    io.ReadCloser
	left int64
}

func (b *capped) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.r.Read(one[:]); n > 0 {
			return 0, ErrBodyTooLarge
		}
		return b.r.Read(p)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *capped) Close() error { return b.r.Close() }

func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
