package run

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/schema"
)

// recorder is an action whose behaviour the test sets per step name; the
// runner's control flow is what is under test here, the real actions are
// tested against real servers in their own packages.
type recorder struct {
	mu       sync.Mutex
	executed []string
	planned  []string
	behave   map[string]func(ctx context.Context) error
}

func (r *recorder) Validate(map[string]any) error { return nil }

func (r *recorder) Plan(_ context.Context, _ *actions.Env, req *actions.Request) (*actions.Outcome, error) {
	r.mu.Lock()
	r.planned = append(r.planned, req.Step.Name)
	r.mu.Unlock()
	return &actions.Outcome{Summary: "would " + req.Step.Name}, nil
}

func (r *recorder) Execute(ctx context.Context, _ *actions.Env, req *actions.Request) (*actions.Outcome, error) {
	r.mu.Lock()
	r.executed = append(r.executed, req.Step.Name)
	f := r.behave[req.Step.Name]
	r.mu.Unlock()
	if f != nil {
		if err := f(ctx); err != nil {
			return nil, err
		}
	}
	return &actions.Outcome{Summary: "did " + req.Step.Name, Changed: true}, nil
}

var cfg = &schema.Config{
	Targets:  map[string]schema.Target{"deploy": {Git: &schema.GitTarget{URL: "https://git.example.com/d.git"}}},
	Channels: map[string]schema.Channel{"oncall": {Slack: &schema.SlackChannel{Host: "hooks.slack.com"}}},
	Policy: schema.Policy{
		Limits: schema.Limits{StepTimeout: "5m", RunTimeout: "30m"},
		Owners: map[string]schema.OwnerPolicy{"@t": {Rollback: []string{"deploy"}, Notify: []string{"oncall"}}},
	},
}

func step(name, action string, opts ...func(*schema.Step)) schema.Step {
	s := schema.Step{Name: name, Action: action, Approval: "auto", Params: map[string]any{}}
	switch action {
	case "rollback":
		s.Params = map[string]any{"target": "deploy", "path": "apps/x"}
	case "notify":
		s.Params = map[string]any{"channel": "oncall", "text": "hi"}
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func newRunner(t *testing.T, c *schema.Config, rec *recorder) (*Runner, *strings.Builder) {
	t.Helper()
	var logs strings.Builder
	sec := secrets.NewFromMap(map[string]string{"TOKEN": "tok-123456"})
	if _, err := sec.Get("TOKEN"); err != nil {
		t.Fatal(err)
	}
	log := slog.New(secrets.Handler(slog.NewTextHandler(&logs, nil), sec))
	env := &actions.Env{Config: c, Secrets: sec, Log: log}
	return &Runner{Env: env, Actions: map[string]actions.Action{"rollback": rec, "notify": rec}, Log: log}, &logs
}

func statuses(rs []StepResult) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, r.Name+"="+r.Status)
	}
	return strings.Join(parts, " ")
}

func TestRun(t *testing.T) {
	boom := func(context.Context) error { return errors.New("boom") }
	paused := *cfg
	paused.Policy.Paused = true
	tests := []struct {
		name      string
		cfg       *schema.Config
		steps     []schema.Step
		onFailure []schema.Step
		behave    map[string]func(context.Context) error
		approved  map[string]bool
		dryRun    bool
		status    string
		want      string // statuses of steps
		wantOF    string // statuses of on_failure steps
		executed  string
	}{
		{name: "all succeed", steps: []schema.Step{step("a", "notify"), step("b", "rollback")},
			status: RunSucceeded, want: "a=succeeded b=succeeded", executed: "a b"},
		{name: "failure skips the rest and runs on_failure", steps: []schema.Step{step("a", "rollback"), step("b", "notify")},
			onFailure: []schema.Step{step("page", "notify")}, behave: map[string]func(context.Context) error{"a": boom},
			status: RunFailed, want: "a=failed b=skipped", wantOF: "page=succeeded", executed: "a page"},
		{name: "continue_on_error goes on", steps: []schema.Step{step("a", "rollback", func(s *schema.Step) { s.ContinueOnError = true }), step("b", "notify")},
			behave: map[string]func(context.Context) error{"a": boom},
			status: RunSucceeded, want: "a=failed b=succeeded", executed: "a b"},
		{name: "approval stops the run", steps: []schema.Step{step("a", "notify"), step("b", "rollback", func(s *schema.Step) { s.Approval = "required" }), step("c", "notify")},
			status: RunWaiting, want: "a=succeeded b=waiting c=skipped", executed: "a"},
		{name: "approved step runs", steps: []schema.Step{step("b", "rollback", func(s *schema.Step) { s.Approval = "required" })},
			approved: map[string]bool{"b": true}, status: RunSucceeded, want: "b=succeeded", executed: "b"},
		{name: "paused policy runs only notify", cfg: &paused, steps: []schema.Step{step("a", "notify"), step("b", "rollback", func(s *schema.Step) { s.ContinueOnError = true }), step("c", "notify")},
			status: RunSucceeded, want: "a=succeeded b=skipped c=succeeded", executed: "a c"},
		{name: "sandbox refuses an undeclared target", steps: []schema.Step{step("a", "rollback", func(s *schema.Step) { s.Params["target"] = "prod-cluster" })},
			status: RunFailed, want: "a=refused", executed: ""},
		{name: "sandbox refuses an unregistered action", steps: []schema.Step{step("a", "reboot")},
			status: RunFailed, want: "a=refused", executed: ""},
		{name: "step timeout", steps: []schema.Step{step("a", "rollback", func(s *schema.Step) { s.Timeout = "20ms" })},
			behave: map[string]func(context.Context) error{"a": func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
			status: RunFailed, want: "a=failed", executed: "a"},
		{name: "panicking action fails its step", steps: []schema.Step{step("a", "rollback")},
			behave: map[string]func(context.Context) error{"a": func(context.Context) error { panic("bad action") }},
			status: RunFailed, want: "a=failed", executed: "a"},
		{name: "dry run plans everything, approvals too", dryRun: true, steps: []schema.Step{step("a", "rollback", func(s *schema.Step) { s.Approval = "required" })},
			status: RunPlanned, want: "a=planned", executed: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			if c == nil {
				c = cfg
			}
			rec := &recorder{behave: tt.behave}
			r, _ := newRunner(t, c, rec)
			r.DryRun = tt.dryRun
			res := r.Run(t.Context(), &Request{Incident: "i1", Playbook: "p", Owner: "@t", Steps: tt.steps, OnFailure: tt.onFailure, Approved: tt.approved})
			if res.Status != tt.status {
				t.Errorf("status %s, want %s", res.Status, tt.status)
			}
			if got := statuses(res.Steps); got != tt.want {
				t.Errorf("steps %q, want %q", got, tt.want)
			}
			if got := statuses(res.OnFailure); got != tt.wantOF {
				t.Errorf("on_failure %q, want %q", got, tt.wantOF)
			}
			if got := strings.Join(rec.executed, " "); got != tt.executed {
				t.Errorf("executed %q, want %q", got, tt.executed)
			}
		})
	}
}

func TestDoneStepsAreNotRunAgain(t *testing.T) {
	rec := &recorder{}
	r, _ := newRunner(t, cfg, rec)
	done := StepResult{Name: "a", Action: "rollback", Status: Succeeded, Outcome: &actions.Outcome{Commit: "abc"}}
	res := r.Run(t.Context(), &Request{Incident: "i", Owner: "@t", Steps: []schema.Step{step("a", "rollback"), step("b", "notify")}, Done: map[string]StepResult{"a": done}})
	if got := strings.Join(rec.executed, " "); got != "b" {
		t.Errorf("executed %q, want only b", got)
	}
	if res.Steps[0].Outcome.Commit != "abc" {
		t.Errorf("the recorded result of a was not kept: %+v", res.Steps[0])
	}
}

func TestSecretsNeverLeaveTheRunner(t *testing.T) {
	rec := &recorder{behave: map[string]func(context.Context) error{
		"a": func(context.Context) error { return errors.New("push https://x:tok-123456@git failed") },
	}}
	r, logs := newRunner(t, cfg, rec)
	res := r.Run(t.Context(), &Request{Incident: "i", Owner: "@t", Steps: []schema.Step{step("a", "rollback")}})
	if strings.Contains(res.Steps[0].Error, "tok-123456") || strings.Contains(logs.String(), "tok-123456") {
		t.Fatalf("secret leaked: error %q, logs %s", res.Steps[0].Error, logs.String())
	}
	if !strings.Contains(res.Steps[0].Error, "[redacted TOKEN]") {
		t.Errorf("error %q lost its context", res.Steps[0].Error)
	}
}

func TestRunDeadline(t *testing.T) {
	c := *cfg
	c.Policy.Limits.RunTimeout = "50ms"
	slow := func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return nil
		}
	}
	rec := &recorder{behave: map[string]func(context.Context) error{"a": slow}}
	r, _ := newRunner(t, &c, rec)
	res := r.Run(t.Context(), &Request{Incident: "i", Owner: "@t", Steps: []schema.Step{step("a", "rollback"), step("b", "notify")}})
	if res.Status != RunFailed || statuses(res.Steps) != "a=failed b=skipped" {
		t.Errorf("run past its deadline: %s %s", res.Status, statuses(res.Steps))
	}
}
