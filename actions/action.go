package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/actions/webclient"
	"github.com/firebreak-dev/firebreak/schema"
)

// Action is one kind of step: rollback, scale, flag, notify, verify.
type Action interface {
	// Validate checks a step's parameters without I/O. The schema has
	// checked their shape; this checks what it cannot say.
	Validate(params map[string]any) error
	// Plan says exactly what Execute would change. It may read (fetch a
	// repository, read a manifest) but changes nothing anywhere.
	Plan(ctx context.Context, env *Env, req *Request) (*Outcome, error)
	// Execute applies the step. It is idempotent: executing a step whose
	// change is already in place changes nothing and reports Changed false.
	Execute(ctx context.Context, env *Env, req *Request) (*Outcome, error)
}

// Request is one rendered step of one incident.
type Request struct {
	// Incident is the incident's id; it goes into commit messages and
	// dedup keys so a re-run finds its own earlier work.
	Incident string
	Playbook string
	Owner    string
	Step     schema.Step
}

// Outcome is what a step changed, or would change.
type Outcome struct {
	// Summary is one line for logs, comments and the incident record.
	Summary string `json:"summary"`
	Target  string `json:"target,omitempty"`
	// Commit is the commit holding the change, for git actions.
	Commit string `json:"commit,omitempty"`
	// Changed is false when the change was already in place.
	Changed bool `json:"changed"`
	// Diff is what changes, for Plan (a unified diff for file edits).
	Diff string `json:"diff,omitempty"`
}

// Env is everything an action may use; nothing else reaches it. Every
// HTTP request goes through HTTP, which only talks to declared hosts;
// every repository through Git.
type Env struct {
	Config  *schema.Config
	Secrets *secrets.Store
	HTTP    *webclient.Client
	Git     *gitrepo.Store
	// Commenter posts on the incident's GitHub issue; nil when the
	// repository has no github block.
	Commenter Commenter
	Log       *slog.Logger
	Now       func() time.Time
}

// Commenter posts a comment on an incident's GitHub issue. The incidents
// code implements it; notify's github channel uses it.
type Commenter interface {
	Comment(ctx context.Context, incident, body string) error
}

// DecodeParams decodes a step's parameters into an action's typed struct,
// rejecting parameters the struct does not know.
func DecodeParams(params map[string]any, dst any) error {
	data, err := json.Marshal(params)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("parameters: %w", err)
	}
	return nil
}

// Logger returns the environment's logger, or one that discards.
func (e *Env) Logger() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

// Clock returns the current time from Now, or the system clock.
func (e *Env) Clock() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

// SafeError returns err with a redacted message over a rebuilt chain that
// holds only what callers test for — the sandbox's and the HTTP client's
// sentinels, context errors, extra, and a *webclient.StatusError with a
// redacted body — so no unredacted text hides behind Unwrap.
func SafeError(err error, redact func(string) string, extra ...error) error {
	if err == nil {
		return nil
	}
	var keep []error
	sentinels := append([]error{ErrRefused, webclient.ErrHostNotAllowed, webclient.ErrBodyTooLarge, context.DeadlineExceeded, context.Canceled, secrets.ErrNotFound}, extra...)
	for _, s := range sentinels {
		if errors.Is(err, s) {
			keep = append(keep, s)
		}
	}
	var se *webclient.StatusError
	if errors.As(err, &se) {
		keep = append(keep, &webclient.StatusError{Code: se.Code, Body: redact(se.Body)})
	}
	return &scrubbed{msg: redact(err.Error()), err: errors.Join(keep...)}
}

// scrubbed is an error whose message has been redacted; errors.Is and
// errors.As still see the chain.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// ErrRefused marks a step the sandbox refused: nothing was changed.
var ErrRefused = errors.New("refused by the sandbox")

// Refusef returns an ErrRefused error with a reason.
func Refusef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}
