package actions

import (
	"strings"
	"testing"

	"github.com/firebreak-dev/firebreak/schema"
)

func ptr[T any](v T) *T { return &v }

var testConfig = &schema.Config{
	Targets: map[string]schema.Target{
		"deploy": {Git: &schema.GitTarget{URL: "https://git.example.com/deploy.git", Branch: "main"}},
		"other":  {Git: &schema.GitTarget{URL: "https://git.example.com/other.git", Branch: "main"}},
		"flags":  {Flagd: &schema.FlagdTarget{Repo: "deploy", File: "flags.json"}},
		"prom":   {Prometheus: &schema.PrometheusTarget{URL: "http://prometheus:9090"}},
		"api":    {HTTP: &schema.HTTPTarget{URL: "https://api.example.com"}},
	},
	Channels: map[string]schema.Channel{
		"oncall": {Slack: &schema.SlackChannel{Webhook: schema.Secret{Secret: "SLACK"}, Host: "hooks.slack.com"}},
		"page":   {PagerDuty: &schema.PagerDutyChannel{RoutingKey: schema.Secret{Secret: "PD"}}},
	},
	Policy: schema.Policy{Owners: map[string]schema.OwnerPolicy{
		"@acme/team": {
			Rollback: []string{"deploy"},
			Scale:    &schema.ScalePolicy{Targets: []string{"deploy"}, MaxReplicas: ptr(10), MaxFactor: ptr(2.0)},
			Flag:     &schema.FlagPolicy{Targets: []string{"flags"}, Keys: []string{"team-*", "exact"}},
			Notify:   []string{"oncall"},
		},
		"@acme/readonly": {Notify: []string{"oncall"}, Verify: []string{}},
	}},
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name, owner, action string
		params              map[string]any
		want                string // "" when allowed; else a substring of the one violation
	}{
		{"rollback allowed", "@acme/team", "rollback", map[string]any{"target": "deploy", "path": "a"}, ""},
		{"rollback undeclared", "@acme/team", "rollback", map[string]any{"target": "nowhere"}, `target: target "nowhere" is not declared`},
		{"rollback other target", "@acme/team", "rollback", map[string]any{"target": "other"}, `does not allow rollback on target "other"`},
		{"rollback wrong kind", "@acme/team", "rollback", map[string]any{"target": "flags"}, `"flags" is a flagd target, not git`},
		{"unknown owner", "@acme/nobody", "notify", map[string]any{"channel": "oncall"}, "owner @acme/nobody has no policy"},
		{"scale not allowed", "@acme/readonly", "scale", map[string]any{"target": "deploy", "replicas": 1}, "does not allow scale"},
		{"scale replicas at bound", "@acme/team", "scale", map[string]any{"target": "deploy", "replicas": int64(10)}, ""},
		{"scale replicas over bound", "@acme/team", "scale", map[string]any{"target": "deploy", "replicas": int64(11)}, "11 exceeds max_replicas 10"},
		{"scale factor over bound", "@acme/team", "scale", map[string]any{"target": "deploy", "factor": 2.5}, "2.5 exceeds max_factor 2"},
		{"flag glob", "@acme/team", "flag", map[string]any{"target": "flags", "key": "team-checkout"}, ""},
		{"flag exact", "@acme/team", "flag", map[string]any{"target": "flags", "key": "exact"}, ""},
		{"flag outside prefix", "@acme/team", "flag", map[string]any{"target": "flags", "key": "payments-x"}, `flag key "payments-x"`},
		{"flag prefix is not a match", "@acme/team", "flag", map[string]any{"target": "flags", "key": "exactly"}, `flag key "exactly"`},
		{"notify undeclared", "@acme/team", "notify", map[string]any{"channel": "x"}, `channel "x" is not declared`},
		{"notify not allowed", "@acme/team", "notify", map[string]any{"channel": "page"}, `does not allow notify on channel "page"`},
		{"verify any declared prometheus", "@acme/team", "verify", map[string]any{"datasource": "prom"}, ""},
		{"verify empty list allows none", "@acme/readonly", "verify", map[string]any{"datasource": "prom"}, `does not allow verify on "prom"`},
		{"verify url declared", "@acme/team", "verify", map[string]any{"url": "https://api.example.com/healthz"}, ""},
		{"verify url other host", "@acme/team", "verify", map[string]any{"url": "https://api.example.com.evil.org/"}, "is not a declared http or prometheus target"},
		{"verify url scheme differs", "@acme/team", "verify", map[string]any{"url": "http://api.example.com/"}, "is not a declared"},
		{"verify url credentials redacted", "@acme/team", "verify", map[string]any{"url": "https://user:hunter2@evil.org/?token=hunter2"}, "https://evil.org/"},
		{"unknown action", "@acme/team", "reboot", map[string]any{}, `unknown action "reboot"`},
		{"absent params are not checked", "@acme/team", "rollback", map[string]any{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Check(testConfig, tt.owner, tt.action, tt.params)
			if tt.want == "" {
				if len(got) != 0 {
					t.Fatalf("want allowed, got %v", got)
				}
				return
			}
			if len(got) != 1 || !strings.Contains(got[0].Error(), tt.want) {
				t.Fatalf("want one violation containing %q, got %v", tt.want, got)
			}
			if strings.Contains(got[0].Error(), "hunter2") {
				t.Fatalf("violation leaks a credential: %v", got[0])
			}
		})
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"a", "a", true}, {"a", "ab", false}, {"*", "", true}, {"*", "x/y", true},
		{"checkout-*", "checkout-v2", true}, {"checkout-*", "checkout", false},
		{"*-v2", "api-v2", true}, {"*-v2", "api-v3", false},
		{"a*b*c", "abc", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "acb", false},
		{"a*a", "a", false}, {"a*a", "aa", true},
	}
	for _, tt := range tests {
		if got := Glob(tt.pattern, tt.name); got != tt.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	cfg := &schema.Config{
		Targets: map[string]schema.Target{
			"flags": {Flagd: &schema.FlagdTarget{Repo: "prom"}},
			"prom":  {Prometheus: &schema.PrometheusTarget{URL: "http://p"}},
			"two":   {Git: &schema.GitTarget{}, HTTP: &schema.HTTPTarget{}},
		},
		Channels: map[string]schema.Channel{"none": {}},
		Policy: schema.Policy{Owners: map[string]schema.OwnerPolicy{
			"@a": {Rollback: []string{"prom", "gone"}, Notify: []string{"missing"}},
		}},
	}
	var got []string
	for _, v := range CheckConfig(cfg) {
		got = append(got, v.Path+": "+v.Message)
	}
	want := []string{
		`targets."flags".flagd.repo: "prom" is not a declared git target`,
		`targets."two": target must have exactly one of git, flagd, prometheus, http, kubernetes (has 2)`,
		`channels."none": channel must have exactly one of slack, webhook, github, pagerduty (has 0)`,
		`policy.owners."@a".rollback[0]: target "prom" is a prometheus target, not git or kubernetes`,
		`policy.owners."@a".rollback[1]: target "gone" is not declared`,
		`policy.owners."@a".notify[0]: channel "missing" is not declared`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
