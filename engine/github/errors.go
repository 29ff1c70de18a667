package github

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/actions/webclient"
)

// Sentinels callers test for with errors.Is.
var (
	// ErrInvalid marks a request this package refuses before any I/O: an
	// incident id or comment key that cannot be a marker, a missing
	// number. It is permanent.
	ErrInvalid = errors.New("invalid request")
	// ErrNotApproval marks a comment that is not an approval command for
	// this repository (no /approve or /deny first line, an edited or
	// deleted comment, firebreak's own comment, another repository). The
	// caller ignores it.
	ErrNotApproval = errors.New("not an approval command")
	// ErrNotAllowed marks an approval command from someone who may not
	// approve the incident's steps.
	ErrNotAllowed = errors.New("not allowed to approve")
	// ErrNoIssue marks a comment owed to an incident whose issue does not
	// exist yet (GitHub was down when it opened). It is transient: the
	// outbox creates the issue, then the comment.
	ErrNoIssue = errors.New("incident has no issue yet")
)

// Error is every error this package returns. Its message is redacted
// (no token, no secret); its chain holds only the sentinels above, context
// errors, webclient.ErrHostNotAllowed and secrets.ErrNotFound, so no
// unredacted text hides behind Unwrap.
type Error struct {
	// Op is what was being done: "ensure issue for incident X", "comment".
	Op string
	// Status is GitHub's HTTP status, 0 when there was no answer.
	Status int
	// Transient says a later retry of the same call may succeed: see
	// IsTransient.
	Transient bool
	// RetryAfter is how long GitHub asked to wait (Retry-After, a
	// secondary limit's wait, a primary limit's reset), 0 when it did not.
	RetryAfter time.Duration

	msg  string
	keep error
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.keep }

// IsTransient reports whether err is worth retrying later, unchanged:
//
//	transient: connection errors (refused, reset, dropped, EOF), no answer
//	  within the attempt timeout, context deadline or cancellation,
//	  5xx but 501, 429, 403 secondary rate limit, 403 primary rate limit
//	  (X-RateLimit-Remaining: 0), 202 Accepted (GitHub still computing),
//	  ErrNoIssue
//	permanent: every other 4xx (400, 401 bad credentials, 403 forbidden,
//	  404, 410, 422 validation), 501, ErrInvalid, ErrNotAllowed,
//	  ErrNotApproval, an undeclared host, TLS certificate errors, a
//	  missing token secret, an answer that is not GitHub's JSON
//
// A nil error is not transient.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Transient
	}
	transient, _, _ := classify(err)
	return transient
}

// RetryAfter returns how long GitHub asked the caller to wait before
// trying again, 0 when it did not say.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	_, _, d := classify(err)
	return d
}

// classify sorts an error of go-github, webclient or the network.
func classify(err error) (transient bool, status int, retryAfter time.Duration) {
	var (
		rle   *gh.RateLimitError
		abuse *gh.AbuseRateLimitError
		resp  *gh.ErrorResponse
		acc   *gh.AcceptedError
		slow  *timeoutError
	)
	switch {
	case errors.As(err, &rle):
		status = http.StatusForbidden
		if rle.Response != nil {
			status = rle.Response.StatusCode
		}
		return true, status, max(time.Until(rle.Rate.Reset.Time), 0)
	case errors.As(err, &abuse):
		if abuse.RetryAfter != nil {
			retryAfter = max(*abuse.RetryAfter, 0)
		}
		return true, http.StatusForbidden, retryAfter
	case errors.As(err, &resp):
		if resp.Response == nil {
			return false, 0, 0
		}
		status = resp.Response.StatusCode
		retryAfter = retryAfterHeader(resp.Response.Header, time.Now())
		switch {
		case status == http.StatusTooManyRequests:
			transient = true
		case status >= 500 && status != http.StatusNotImplemented:
			transient = true
		case status == http.StatusForbidden:
			transient = secondaryMessage(resp.Message, resp.DocumentationURL) ||
				resp.Response.Header.Get("X-RateLimit-Remaining") == "0"
		}
		return transient, status, retryAfter
	case errors.As(err, &acc):
		return true, http.StatusAccepted, 0
	case errors.As(err, &slow):
		return true, 0, 0
	case errors.Is(err, ErrNoIssue):
		return true, 0, 0
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrNotAllowed), errors.Is(err, ErrNotApproval),
		errors.Is(err, webclient.ErrHostNotAllowed), errors.Is(err, secrets.ErrNotFound):
		return false, 0, 0
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true, 0, 0
	}
	var (
		certErr   *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		syntax    *json.SyntaxError
		typ       *json.UnmarshalTypeError
	)
	if errors.As(err, &certErr) || errors.As(err, &authority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &syntax) || errors.As(err, &typ) {
		return false, 0, 0
	}
	// No answer at all: refused, reset, dropped, EOF mid-body.
	return true, 0, 0
}

// secondaryMessage recognizes GitHub's secondary rate limit answer.
func secondaryMessage(message, docURL string) bool {
	return strings.Contains(strings.ToLower(message), "secondary rate limit") ||
		strings.HasSuffix(docURL, "secondary-rate-limits") ||
		strings.HasSuffix(docURL, "#abuse-rate-limits")
}

// retryAfterHeader reads Retry-After (seconds or an HTTP date), else the
// reset of an exhausted primary limit.
func retryAfterHeader(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			return time.Duration(n) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	if h.Get("X-RateLimit-Remaining") == "0" {
		if n, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			return max(time.Unix(n, 0).Sub(now), 0)
		}
	}
	return 0
}

// fail turns err into an *Error for op, its message redacted.
func (c *Client) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	transient, status, retryAfter := classify(err)
	var keep []error
	for _, s := range []error{ErrInvalid, ErrNotApproval, ErrNotAllowed, ErrNoIssue,
		context.DeadlineExceeded, context.Canceled, webclient.ErrHostNotAllowed, secrets.ErrNotFound} {
		if errors.Is(err, s) {
			keep = append(keep, s)
		}
	}
	return &Error{
		Op:         op,
		Status:     status,
		Transient:  transient,
		RetryAfter: retryAfter,
		msg:        c.redact("github: " + op + ": " + err.Error()),
		keep:       errors.Join(keep...),
	}
}
