package run_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
	"github.com/firebreak-dev/firebreak/actions/registry"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/actions/webclient"
	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/schema"
)

const (
	gitToken  = "ghp_escapeTEST0123456789"
	slackPath = "/services/T000/B000/slacksecretpath"
)

const manifest = `# checkout: scaled by firebreak
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
spec:
  replicas: 3 # baseline
`

const flags = `{
  "flags": {
    "team-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
    "payments-x": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}
  }
}
`

// TestSandboxEscapes runs steps that try to get out of the sandbox through
// the real runner, the real action library and a real git server, with
// validation skipped: each must be refused (or skipped) with a clear
// error, and nothing may change on the remote or reach a host.
func TestSandboxEscapes(t *testing.T) {
	srv := gittest.NewServer(t, gittest.WithToken(gitToken))
	srv.CreateRepo("deploy", map[string]string{"apps/checkout/deploy.yaml": manifest, "flags/shop.json": flags})
	srv.Commit("deploy", "deploy checkout v2", map[string]string{"apps/checkout/deploy.yaml": manifest + "# v2\n"})
	srv.CreateRepo("other", map[string]string{"x.yaml": "replicas: 1\n"})

	var slackHits, strangerHits atomic.Int64
	var slackBodies []string
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slackHits.Add(1)
		var b bytes.Buffer
		b.ReadFrom(r.Body)
		slackBodies = append(slackBodies, b.String())
	}))
	t.Cleanup(slack.Close)
	stranger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { strangerHits.Add(1) }))
	t.Cleanup(stranger.Close)
	redirector := httptest.NewServer(http.RedirectHandler(stranger.URL+"/health", http.StatusFound))
	t.Cleanup(redirector.Close)

	maxReplicas, maxFactor := 5, 2.0
	gitTarget := func(repo string) schema.Target {
		return schema.Target{Git: &schema.GitTarget{URL: srv.RepoURL(repo), Branch: "main", Token: &schema.Secret{Secret: "GIT_TOKEN"}}}
	}
	cfg := &schema.Config{
		Targets: map[string]schema.Target{
			"deploy": gitTarget("deploy"),
			"other":  gitTarget("other"),
			"flags":  {Flagd: &schema.FlagdTarget{Repo: "deploy", File: "flags/shop.json"}},
			"health": {HTTP: &schema.HTTPTarget{URL: redirector.URL}},
		},
		Channels: map[string]schema.Channel{
			"oncall":        {Slack: &schema.SlackChannel{Webhook: schema.Secret{Secret: "SLACK_URL"}, Host: strings.TrimPrefix(slack.URL, "http://")}},
			"payments-page": {Slack: &schema.SlackChannel{Webhook: schema.Secret{Secret: "SLACK_URL"}, Host: strings.TrimPrefix(slack.URL, "http://")}},
		},
		Policy: schema.Policy{
			Limits: schema.Limits{StepTimeout: "30s", RunTimeout: "2m"},
			Owners: map[string]schema.OwnerPolicy{
				"@acme/team": {
					Rollback: []string{"deploy"},
					Scale:    &schema.ScalePolicy{Targets: []string{"deploy"}, MaxReplicas: &maxReplicas, MaxFactor: &maxFactor},
					Flag:     &schema.FlagPolicy{Targets: []string{"flags"}, Keys: []string{"team-*"}},
					Notify:   []string{"oncall"},
					Verify:   []string{"health"},
				},
				"@acme/payments": {Rollback: []string{"other"}, Notify: []string{"payments-page"}},
			},
		},
	}
	sec := secrets.NewFromMap(map[string]string{"GIT_TOKEN": gitToken, "SLACK_URL": slack.URL + slackPath})
	var logs bytes.Buffer
	log := slog.New(secrets.Handler(slog.NewTextHandler(&logs, nil), sec))
	newEnv := func(c *schema.Config) *actions.Env {
		return &actions.Env{
			Config:  c,
			Secrets: sec,
			HTTP:    webclient.New(webclient.Options{AllowedHosts: webclient.AllowedHosts(c), Redact: sec.Redact, Log: log, RetryMax: -1}),
			Git:     gitrepo.NewStore(t.TempDir(), log),
			Log:     log,
			Now:     time.Now,
		}
	}
	paused := *cfg
	paused.Policy.Paused = true

	step := func(action string, params map[string]any) schema.Step {
		return schema.Step{Name: action, Action: action, Approval: "auto", Params: params}
	}
	tests := []struct {
		name   string
		cfg    *schema.Config
		step   schema.Step
		status string
		want   string // in the step's error
	}{
		{"undeclared target", nil, step("rollback", map[string]any{"target": "prod-cluster", "path": "apps/checkout"}), run.Refused, `target "prod-cluster" is not declared`},
		{"target of another owner", nil, step("rollback", map[string]any{"target": "other", "path": "x.yaml"}), run.Refused, `does not allow rollback on target "other"`},
		{"path traversal from an alert label", nil, step("rollback", map[string]any{"target": "deploy", "path": "apps/../../etc/passwd"}), run.Refused, "path"},
		{"absolute path", nil, step("scale", map[string]any{"target": "deploy", "path": "/etc/passwd", "replicas": 2}), run.Refused, "path"},
		{"write into .git", nil, step("scale", map[string]any{"target": "deploy", "path": ".git/config", "replicas": 2}), run.Refused, "path"},
		{"replicas beyond max_replicas", nil, step("scale", map[string]any{"target": "deploy", "path": "apps/checkout/deploy.yaml", "replicas": 50}), run.Refused, "exceeds max_replicas"},
		{"factor beyond max_factor", nil, step("scale", map[string]any{"target": "deploy", "path": "apps/checkout/deploy.yaml", "factor": 3}), run.Refused, "exceeds max_factor"},
		{"factor within bounds, live result beyond max_replicas", nil, step("scale", map[string]any{"target": "deploy", "path": "apps/checkout/deploy.yaml", "factor": 2}), run.Refused, "max_replicas"},
		{"flag key outside the owner's prefix", nil, step("flag", map[string]any{"target": "flags", "key": "payments-x", "to": "off"}), run.Refused, `flag key "payments-x"`},
		{"flag on a git target", nil, step("flag", map[string]any{"target": "deploy", "key": "team-checkout", "to": "off"}), run.Refused, "not flagd"},
		{"verify on an undeclared host", nil, step("verify", map[string]any{"url": stranger.URL + "/health", "within": "1s"}), run.Refused, "not a declared"},
		{"verify redirected to another host", nil, step("verify", map[string]any{"url": redirector.URL + "/", "within": "1s"}), run.Refused, "redirect to 127.0.0.1"},
		{"notify on another owner's channel", nil, step("notify", map[string]any{"channel": "payments-page", "text": "hi"}), run.Refused, `does not allow notify on channel "payments-page"`},
		{"oversized text", nil, step("notify", map[string]any{"channel": "oncall", "text": strings.Repeat("x", 1<<20)}), run.Refused, "text"},
		{"unregistered action", nil, step("exec", map[string]any{"cmd": "rm -rf /"}), run.Refused, `no action "exec"`},
		{"unknown parameter", nil, step("rollback", map[string]any{"target": "deploy", "path": "apps/checkout", "force": true}), run.Refused, "force"},
		{"kill switch", &paused, step("rollback", map[string]any{"target": "deploy", "path": "apps/checkout"}), run.Skipped, "policy.paused"},
		{"owner without a policy", nil, schema.Step{Name: "n", Action: "notify", Approval: "auto", Params: map[string]any{"channel": "oncall", "text": "x"}}, run.Refused, "has no policy"},
	}
	deployHead, otherHead := srv.Head("deploy"), srv.Head("other")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			if tt.cfg != nil {
				c = tt.cfg
			}
			owner := "@acme/team"
			if tt.name == "owner without a policy" {
				owner = "@acme/strangers"
			}
			r := &run.Runner{Env: newEnv(c), Actions: registry.Actions, Log: log}
			res := r.Run(t.Context(), &run.Request{Incident: "INC-1", Playbook: "escape", Owner: owner, Steps: []schema.Step{tt.step}})
			got := res.Steps[0]
			if got.Status != tt.status || !strings.Contains(got.Error, tt.want) {
				t.Fatalf("status %s, error %q; want %s with %q", got.Status, got.Error, tt.status, tt.want)
			}
			if strings.Contains(got.Error, "\n") {
				t.Errorf("error spans lines: %q", got.Error)
			}
			t.Logf("%s -> %s: %s", tt.name, got.Status, got.Error)
		})
	}
	if srv.Head("deploy") != deployHead || srv.Head("other") != otherHead {
		t.Errorf("a refused step changed a remote")
	}
	if n := strangerHits.Load(); n != 0 {
		t.Errorf("an undeclared host received %d requests", n)
	}
	if n := slackHits.Load(); n != 0 {
		t.Errorf("a refused notify reached Slack %d times", n)
	}

	// A secret rendered into a message by an alert label is redacted
	// before it leaves.
	r := &run.Runner{Env: newEnv(cfg), Actions: registry.Actions, Log: log}
	res := r.Run(t.Context(), &run.Request{Incident: "INC-2", Playbook: "escape", Owner: "@acme/team", Steps: []schema.Step{
		step("notify", map[string]any{"channel": "oncall", "text": fmt.Sprintf("token %s at %s", gitToken, slack.URL+slackPath)}),
	}})
	if res.Status != run.RunSucceeded || len(slackBodies) != 1 {
		t.Fatalf("notify: %+v, %d posts", res.Steps[0], len(slackBodies))
	}
	for _, leak := range []string{gitToken, slackPath} {
		if strings.Contains(slackBodies[0], leak) || strings.Contains(logs.String(), leak) {
			t.Errorf("secret %q left the process: body %s", leak, slackBodies[0])
		}
	}
}
