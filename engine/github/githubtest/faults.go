package githubtest

import (
	"fmt"
	"regexp"
	"time"
)

// Kind is the kind of a Fault.
type Kind int

// The kinds of fault the server injects.
const (
	// None answers normally.
	None Kind = iota
	// Status answers with Fault.Code and GitHub's body for that status.
	Status
	// TooMany answers 429 with Retry-After, as GitHub does for the primary
	// rate limit (X-RateLimit-Remaining: 0).
	TooMany
	// Secondary answers 403 "You have exceeded a secondary rate limit"
	// with Retry-After.
	Secondary
	// Slow answers normally, after Fault.Delay; the effect happens first,
	// so a client that gives up early has still changed the state.
	Slow
	// Drop hijacks the connection and closes it without an answer.
	Drop
	// Stale answers 200 with an empty list, as a listing that lags
	// behind a write would.
	Stale
	// EchoAuth answers 422 with a message that quotes the request's
	// Authorization header back, as a careless proxy might.
	EchoAuth
)

// Fault is one failure the server injects into one request.
type Fault struct {
	Kind Kind
	// Code is the status for Status.
	Code int
	// RetryAfter is the Retry-After header of TooMany and Secondary, in
	// seconds ("" leaves the header out).
	RetryAfter string
	// Delay is how long Slow waits before answering.
	Delay time.Duration
	// After applies the request's effect (an issue created, a comment
	// posted) before failing: the client is told it failed when it did not.
	After bool
}

// Fail answers code before the request takes effect.
func Fail(code int) Fault { return Fault{Kind: Status, Code: code} }

// FailAfter answers code after the request took effect.
func FailAfter(code int) Fault { return Fault{Kind: Status, Code: code, After: true} }

// RateLimited answers 429 with Retry-After: seconds.
func RateLimited(seconds int) Fault {
	return Fault{Kind: TooMany, RetryAfter: fmt.Sprint(seconds)}
}

// SecondaryLimit answers 403 secondary rate limit with Retry-After: seconds.
func SecondaryLimit(seconds int) Fault {
	return Fault{Kind: Secondary, RetryAfter: fmt.Sprint(seconds)}
}

// Delayed answers after d, the effect applied first.
func Delayed(d time.Duration) Fault { return Fault{Kind: Slow, Delay: d, After: true} }

// Dropped closes the connection before the request takes effect.
func Dropped() Fault { return Fault{Kind: Drop} }

// DroppedAfter closes the connection after the request took effect.
func DroppedAfter() Fault { return Fault{Kind: Drop, After: true} }

// String names the fault for test names and the request log.
func (f Fault) String() string {
	var s string
	switch f.Kind {
	case None:
		return "none"
	case Status:
		s = fmt.Sprint(f.Code)
	case TooMany:
		s = "429 retry-after " + f.RetryAfter
	case Secondary:
		s = "403 secondary retry-after " + f.RetryAfter
	case Slow:
		s = "slow " + f.Delay.String()
	case Drop:
		s = "drop"
	case Stale:
		s = "stale empty list"
	case EchoAuth:
		s = "echo-auth"
	}
	if f.After && f.Kind != Slow {
		s += " after effect"
	}
	return s
}

// Rule injects a fault into requests whose method and path match.
type Rule struct {
	// Method matches the request method; "" matches any.
	Method string
	// Path is a regular expression matched against the request path
	// (without /api/v3); "" matches any.
	Path string
	// Skip lets this many matching requests through first.
	Skip int
	// Times is how many matching requests fail: 0 means one, a negative
	// number every one.
	Times int
	Fault Fault

	re   *regexp.Regexp
	seen int
	used int
}

func (r *Rule) match(method, path string) bool {
	if r.Method != "" && r.Method != method {
		return false
	}
	if r.re == nil && r.Path != "" {
		r.re = regexp.MustCompile(r.Path)
	}
	if r.re != nil && !r.re.MatchString(path) {
		return false
	}
	return true
}

// take reports whether the rule fires for one more matching request.
func (r *Rule) take() bool {
	r.seen++
	if r.seen <= r.Skip {
		return false
	}
	times := r.Times
	if times == 0 {
		times = 1
	}
	if times > 0 && r.used >= times {
		return false
	}
	r.used++
	return true
}
