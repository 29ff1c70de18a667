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

// ErrRefused marks a step the sandbox refused: nothing was changed.
var ErrRefused = errors.New("refused by the sandbox")

// Refusef returns an ErrRefused error with a reason.
func Refusef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}
