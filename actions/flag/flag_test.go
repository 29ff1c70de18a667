package flag_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/flag"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/schema"
)

const (
	token    = "ghs_flagT0ken77c0ffee"
	owner    = "@acme/payments"
	flagFile = "flags/shop.flagd.json"
)

const flags = `{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "flags": {
    "new-checkout": {
      "state": "ENABLED",
      "variants": {
        "on": true,
        "off": false
      },
      "defaultVariant": "on"
    },
    "checkout-theme": {
      "state": "DISABLED",
      "variants": {"classic": "classic", "dark": "dark"},
      "defaultVariant": "dark",
      "metadata": {"owner": "payments"}
    },
    "checkout-limit": {
      "state": "ENABLED",
      "variants": {"low": 10, "high": 1000},
      "defaultVariant": "high"
    },
    "search-v2": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}
  }
}
`

type fixture struct {
	srv  *gittest.Server
	env  *actions.Env
	logs *bytes.Buffer
	head string
}

// noState is flags with the state of checkout-limit left out: a file the
// flagd evaluator refuses to load.
var noState = strings.Replace(flags, `"checkout-limit": {
      "state": "ENABLED",
`, `"checkout-limit": {
`, 1)

func setup(t *testing.T) *fixture { return setupWith(t, flags) }

func setupWith(t *testing.T, content string) *fixture {
	t.Helper()
	srv := gittest.NewServer(t, gittest.WithToken(token))
	srv.CreateRepo("shop-deploy", map[string]string{flagFile: content, "apps/checkout.yaml": "replicas: 3\n"})
	cfg := &schema.Config{
		Targets: map[string]schema.Target{
			"shop-deploy":  {Git: &schema.GitTarget{URL: srv.RepoURL("shop-deploy"), Branch: "main", Token: &schema.Secret{Secret: "GIT_TOKEN"}}},
			"shop-flags":   {Flagd: &schema.FlagdTarget{Repo: "shop-deploy", File: flagFile}},
			"other-flags":  {Flagd: &schema.FlagdTarget{Repo: "shop-deploy", File: flagFile}},
			"escape-flags": {Flagd: &schema.FlagdTarget{Repo: "shop-deploy", File: "../../etc/flags.json"}},
		},
		Policy: schema.Policy{Owners: map[string]schema.OwnerPolicy{
			owner: {Flag: &schema.FlagPolicy{Targets: []string{"shop-flags", "escape-flags"}, Keys: []string{"new-checkout", "checkout-*"}}},
		}},
	}
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store := gitrepo.NewStore(t.TempDir(), log)
	t.Cleanup(func() { store.Close() })
	return &fixture{
		srv: srv, logs: logs, head: srv.Head("shop-deploy"),
		env: &actions.Env{Config: cfg, Secrets: secrets.NewFromMap(map[string]string{"GIT_TOKEN": token}), Git: store, Log: log, Now: time.Now},
	}
}

func request(target, key, to string) *actions.Request {
	return &actions.Request{
		Incident: "INC-9", Playbook: "checkout_crashloop", Owner: owner,
		Step: schema.Step{Name: "kill-switch", Action: "flag", Params: map[string]any{"target": target, "key": key, "to": to}, Approval: "auto"},
	}
}

// resolution is what the flagd evaluator says about one flag.
type resolution struct {
	Value     any    `json:"value"`
	Variant   string `json:"variant"`
	Reason    string `json:"reason"`
	ErrorCode string `json:"errorCode"`
}

// evaluate runs the real flagd evaluator (@openfeature/flagd-core, with
// node) on a flag file.
func evaluate(t *testing.T, file, key, typ string) resolution {
	t.Helper()
	const fix = "run `npm ci --prefix actions/flag/testdata/flagd` from the repository root"
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required to evaluate flag files with the real flagd evaluator (install Node.js, then %s): %v", fix, err)
	}
	if _, err := os.Stat("testdata/flagd/node_modules/@openfeature/flagd-core/package.json"); err != nil {
		t.Fatalf("@openfeature/flagd-core is not installed: %s", fix)
	}
	out, err := exec.CommandContext(t.Context(), node, "testdata/flagd/eval.mjs", file, key, typ).CombinedOutput()
	if err != nil && bytes.Contains(out, []byte("code: 'PARSE_ERROR'")) {
		return resolution{ErrorCode: "PARSE_ERROR"}
	}
	if err != nil {
		t.Fatalf("flagd evaluator: %v\n%s", err, out)
	}
	var r resolution
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("flagd evaluator said %q: %v", out, err)
	}
	return r
}

func TestFlagEndToEnd(t *testing.T) {
	tests := []struct {
		name, key, to, typ string
		file               string // the flag file before; flags when empty
		before, after      any
		// edits are the substitutions that turn the file before into the
		// file after; nothing else may differ.
		edits []string
	}{
		{
			name: "boolean kill switch", key: "new-checkout", to: "off", typ: "boolean",
			before: true, after: false,
			edits: []string{`"defaultVariant": "on"
    },
    "checkout-theme"`, `"defaultVariant": "off"
    },
    "checkout-theme"`},
		},
		{
			name: "disabled string flag enabled", key: "checkout-theme", to: "classic", typ: "string",
			before: "", after: "classic",
			edits: []string{`"state": "DISABLED"`, `"state": "ENABLED"`, `"defaultVariant": "dark"`, `"defaultVariant": "classic"`},
		},
		{
			// flagd refuses the whole file while one flag has no state.
			name: "flag without state", key: "checkout-limit", to: "low", typ: "number",
			file: noState, before: "PARSE_ERROR", after: float64(10),
			edits: []string{`"defaultVariant": "high"
    },`, `"defaultVariant": "low",
      "state": "ENABLED"
    },`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := flags
			if tt.file != "" {
				content = tt.file
			}
			f := setupWith(t, content)
			before := filepath.Join(t.TempDir(), "before.json")
			if err := os.WriteFile(before, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			switch r := evaluate(t, before, tt.key, tt.typ); {
			case tt.before == "PARSE_ERROR" && r.ErrorCode != "PARSE_ERROR":
				t.Fatalf("before: flagd loaded the file: %+v", r)
			case tt.before != "PARSE_ERROR" && r.Value != tt.before:
				t.Fatalf("before: %s evaluates to %#v, want %#v", tt.key, r.Value, tt.before)
			}
			req := request("shop-flags", tt.key, tt.to)

			plan, err := flag.Action{}.Plan(t.Context(), f.env, req)
			if err != nil {
				t.Fatal(err)
			}
			if !plan.Changed || !strings.Contains(plan.Diff, "--- a/"+flagFile+"\n+++ b/"+flagFile+"\n") || f.srv.Pushes() != 0 {
				t.Fatalf("Plan = %+v (pushes %d)", plan, f.srv.Pushes())
			}

			out, err := flag.Action{}.Execute(t.Context(), f.env, req)
			if err != nil {
				t.Fatal(err)
			}
			clone := f.srv.Clone("shop-deploy")
			got := clone.File(flagFile)
			if want := strings.NewReplacer(tt.edits...).Replace(content); got != want {
				t.Errorf("flag file:\n%s\nwant:\n%s", got, want)
			}
			r := evaluate(t, filepath.Join(clone.Dir, filepath.FromSlash(flagFile)), tt.key, tt.typ)
			if r.Value != tt.after || r.Variant != tt.to || r.ErrorCode != "" {
				t.Errorf("flagd evaluates %s to %+v, want value %#v from variant %q", tt.key, r, tt.after, tt.to)
			}
			if other := evaluate(t, filepath.Join(clone.Dir, filepath.FromSlash(flagFile)), "search-v2", "boolean"); other.Value != true {
				t.Errorf("another flag changed: %+v", other)
			}
			if clone.Git("rev-parse", "HEAD") != out.Commit || !out.Changed {
				t.Errorf("outcome %+v", out)
			}
			if s := clone.Subjects()[0]; s != "firebreak INC-9 (checkout_crashloop): set flag "+tt.key+" to "+tt.to {
				t.Errorf("subject = %q", s)
			}

			again, err := flag.Action{}.Execute(t.Context(), f.env, req)
			if err != nil || again.Changed || again.Commit != out.Commit || f.srv.Pushes() != 1 {
				t.Errorf("re-run = %+v, %v (pushes %d)", again, err, f.srv.Pushes())
			}
			if strings.Contains(f.logs.String(), token) {
				t.Error("token in logs")
			}
		})
	}
}

func TestAlreadySet(t *testing.T) {
	f := setup(t)
	out, err := flag.Action{}.Execute(t.Context(), f.env, request("shop-flags", "new-checkout", "on"))
	if err != nil || out.Changed || out.Commit != f.head || f.srv.Pushes() != 0 {
		t.Errorf("Execute = %+v, %v (pushes %d)", out, err, f.srv.Pushes())
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name            string
		target, key, to string
		want            error
		text            string
	}{
		{"variant the flag does not define", "shop-flags", "new-checkout", "maybe", actions.ErrRefused, `flag "new-checkout" has no variant "maybe" (it has "off", "on")`},
		{"key allowed by policy, absent from the file", "shop-flags", "checkout-v3", "on", actions.ErrRefused, `no such flag "checkout-v3"`},
		{"key outside the owner's globs", "shop-flags", "search-v2", "off", actions.ErrRefused, `does not allow flag key "search-v2" (allowed: new-checkout, checkout-*)`},
		{"target of no policy", "other-flags", "new-checkout", "off", actions.ErrRefused, `does not allow flag on target "other-flags"`},
		{"git target, not flagd", "shop-deploy", "new-checkout", "off", actions.ErrRefused, `is a git target, not flagd`},
		{"flag file outside the repository", "escape-flags", "new-checkout", "off", gitrepo.ErrBadPath, `path "../../etc/flags.json"`},
		{"empty variant", "shop-flags", "new-checkout", "", actions.ErrRefused, "to is required"},
	}
	// Nothing here changes the remote, so one fixture serves every case;
	// each case checks that the remote did not change.
	f := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, run := range []func() (*actions.Outcome, error){
				func() (*actions.Outcome, error) {
					return flag.Action{}.Plan(t.Context(), f.env, request(tt.target, tt.key, tt.to))
				},
				func() (*actions.Outcome, error) {
					return flag.Action{}.Execute(t.Context(), f.env, request(tt.target, tt.key, tt.to))
				},
			} {
				_, err := run()
				if !errors.Is(err, tt.want) || !errors.Is(err, actions.ErrRefused) || !strings.Contains(err.Error(), tt.text) {
					t.Errorf("err = %v; want a refusal (%v) saying %q", err, tt.want, tt.text)
				}
			}
			if f.srv.Pushes() != 0 || f.srv.Head("shop-deploy") != f.head {
				t.Error("the remote changed")
			}
		})
	}
}

func TestPausedPolicy(t *testing.T) {
	f := setup(t)
	f.env.Config.Policy.Paused = true
	_, err := flag.Action{}.Execute(t.Context(), f.env, request("shop-flags", "new-checkout", "off"))
	if !errors.Is(err, actions.ErrRefused) || !strings.Contains(err.Error(), "paused") || f.srv.Pushes() != 0 {
		t.Errorf("err = %v (pushes %d)", err, f.srv.Pushes())
	}
}

// TestSecretsNeverComeOut feeds the git token through the parameters of
// refused steps: it must not come out in an error, an outcome or a log.
func TestSecretsNeverComeOut(t *testing.T) {
	f := setup(t)
	var said []string
	for _, req := range []*actions.Request{
		request("shop-flags", "checkout-"+token, "on"), // allowed glob, no such flag
		request("shop-flags", "new-checkout", token),   // no such variant
		request("shop-flags", token, "on"),             // key outside the globs
		request(token, "new-checkout", "on"),           // undeclared target
	} {
		for _, run := range []func() (*actions.Outcome, error){
			func() (*actions.Outcome, error) { return flag.Action{}.Plan(t.Context(), f.env, req) },
			func() (*actions.Outcome, error) { return flag.Action{}.Execute(t.Context(), f.env, req) },
		} {
			out, err := run()
			if err == nil {
				t.Errorf("%v: not refused: %+v", req.Step.Params, out)
				continue
			}
			said = append(said, err.Error())
		}
	}
	said = append(said, f.logs.String())
	for _, s := range said {
		if strings.Contains(s, token) {
			t.Errorf("the token came out in:\n%s", s)
		}
	}
	if f.srv.Pushes() != 0 {
		t.Error("pushed")
	}
}
