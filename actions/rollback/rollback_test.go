package rollback_test

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
	"github.com/firebreak-dev/firebreak/actions/rollback"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/schema"
)

const (
	token = "ghp_rollbackT0ken9d1e"
	owner = "@acme/payments"
)

type fixture struct {
	srv  *gittest.Server
	env  *actions.Env
	logs *bytes.Buffer
	// c1 is the initial commit, c2 the deploy under apps/checkout that a
	// rollback undoes, c3 a later commit elsewhere.
	c1, c2, c3 string
}

var initial = map[string]string{
	"apps/checkout/deploy.yaml": "image: checkout:1.0\nreplicas: 3\n",
	"apps/checkout/old.yaml":    "legacy: true\n",
	"apps/cart/deploy.yaml":     "image: cart:7\n",
	"README.md":                 "shop\n",
}

func setup(t *testing.T) *fixture {
	t.Helper()
	srv := gittest.NewServer(t, gittest.WithToken(token))
	srv.CreateRepo("shop-deploy", initial)
	f := &fixture{srv: srv, c1: srv.Head("shop-deploy")}
	f.c2 = srv.Commit("shop-deploy", "deploy checkout 1.1", map[string]string{
		"apps/checkout/deploy.yaml": "image: checkout:1.1\nreplicas: 3\n",
		"apps/checkout/new.yaml":    "feature: x\n",
		"apps/checkout/old.yaml":    gittest.Deleted,
	})
	f.c3 = srv.Commit("shop-deploy", "cart 8", map[string]string{"apps/cart/deploy.yaml": "image: cart:8\n"})

	cfg := &schema.Config{
		Targets: map[string]schema.Target{
			"shop-deploy":  {Git: &schema.GitTarget{URL: srv.RepoURL("shop-deploy"), Branch: "main", Token: &schema.Secret{Secret: "GIT_TOKEN"}}},
			"other-deploy": {Git: &schema.GitTarget{URL: srv.RepoURL("shop-deploy"), Branch: "main", Token: &schema.Secret{Secret: "GIT_TOKEN"}}},
			"release":      {Git: &schema.GitTarget{URL: srv.RepoURL("shop-deploy"), Branch: "release", Token: &schema.Secret{Secret: "GIT_TOKEN"}}},
			"bad-token":    {Git: &schema.GitTarget{URL: srv.RepoURL("shop-deploy"), Branch: "main", Token: &schema.Secret{Secret: "STALE_TOKEN"}}},
			"prom":         {Prometheus: &schema.PrometheusTarget{URL: "http://127.0.0.1:9090"}},
		},
		Policy: schema.Policy{Owners: map[string]schema.OwnerPolicy{
			owner:        {Rollback: []string{"shop-deploy", "release", "bad-token"}},
			"@acme/cart": {Rollback: []string{"other-deploy"}},
		}},
	}
	f.logs = &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store := gitrepo.NewStore(t.TempDir(), log)
	t.Cleanup(func() { store.Close() })
	f.env = &actions.Env{
		Config:  cfg,
		Secrets: secrets.NewFromMap(map[string]string{"GIT_TOKEN": token, "STALE_TOKEN": "ghp_stale0ld7oken"}),
		Git:     store,
		Log:     log,
		Now:     time.Now,
	}
	return f
}

func request(params map[string]any) *actions.Request {
	return &actions.Request{
		Incident: "INC-20261121-1", Playbook: "checkout_crashloop", Owner: owner,
		Step: schema.Step{Name: "rollback", Action: "rollback", Params: params, Approval: "auto"},
	}
}

func TestRevertEndToEnd(t *testing.T) {
	f := setup(t)
	req := request(map[string]any{"target": "shop-deploy", "path": "apps/checkout"})

	plan, err := rollback.Action{}.Plan(t.Context(), f.env, req)
	if err != nil {
		t.Fatal(err)
	}
	wantDiff := `diff --git a/apps/checkout/deploy.yaml b/apps/checkout/deploy.yaml
index 59bac8d9d4cff0e6e2b3b1b9b8ee6a4d5fcbd7dc..5b3bd3e9ba1cd03ef2b7fa8ce9fba0c36d0aaaf1 100644
--- a/apps/checkout/deploy.yaml
+++ b/apps/checkout/deploy.yaml
@@ -1,2 +1,2 @@
-image: checkout:1.1
+image: checkout:1.0
 replicas: 3
diff --git a/apps/checkout/new.yaml b/apps/checkout/new.yaml
deleted file mode 100644
index 2a5ec24b5a05f1c9f1d5f3ac4ab4c3bd0fb4e6d4..0000000000000000000000000000000000000000
--- a/apps/checkout/new.yaml
+++ /dev/null
@@ -1 +0,0 @@
-feature: x
diff --git a/apps/checkout/old.yaml b/apps/checkout/old.yaml
new file mode 100644
index 0000000000000000000000000000000000000000..e0bfb2c4d7a6c5f2b5e8c0b0c9c1f6b1c0c7f1e2
--- /dev/null
+++ b/apps/checkout/old.yaml
@@ -0,0 +1 @@
+legacy: true
`
	if got := normalizeIndex(plan.Diff); got != normalizeIndex(wantDiff) {
		t.Errorf("Plan diff:\n%s\nwant:\n%s", plan.Diff, wantDiff)
	}
	if !plan.Changed || !strings.Contains(plan.Summary, "would revert "+f.c2[:12]) {
		t.Errorf("Plan = %+v", plan)
	}
	if f.srv.Pushes() != 0 || f.srv.Head("shop-deploy") != f.c3 {
		t.Fatal("Plan changed the remote")
	}

	out, err := rollback.Action{}.Execute(t.Context(), f.env, req)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Changed || out.Target != "shop-deploy" || !strings.Contains(out.Summary, "reverted "+f.c2[:12]) {
		t.Errorf("Execute = %+v", out)
	}

	clone := f.srv.Clone("shop-deploy")
	if head := clone.Git("rev-parse", "HEAD"); head != out.Commit {
		t.Errorf("remote head %s, outcome commit %s", head, out.Commit)
	}
	if d := clone.Git("diff", f.c1, "HEAD", "--", "apps/checkout"); d != "" {
		t.Errorf("apps/checkout is not as before the deploy:\n%s", d)
	}
	if got := clone.File("apps/cart/deploy.yaml"); got != "image: cart:8\n" {
		t.Errorf("a file outside path changed: %q", got)
	}
	if got := clone.Git("rev-parse", "HEAD^"); got != f.c3 {
		t.Errorf("parent = %s, want %s", got, f.c3)
	}
	msg := clone.Message("HEAD")
	for _, want := range []string{
		"firebreak INC-20261121-1 (checkout_crashloop): revert " + f.c2[:12] + " under apps/checkout\n",
		"Reverts " + f.c2 + ` ("deploy checkout 1.1") under apps/checkout.`,
		"Firebreak-Incident: INC-20261121-1\nFirebreak-Playbook: checkout_crashloop\nFirebreak-Step: rollback",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
	if got := clone.Git("log", "-1", "--format=%an <%ae>"); got != "firebreak <firebreak@localhost>" {
		t.Errorf("author = %q", got)
	}

	// A re-run finds its own commit and changes nothing.
	pushes := f.srv.Pushes()
	again, err := rollback.Action{}.Execute(t.Context(), f.env, req)
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed || again.Commit != out.Commit || f.srv.Pushes() != pushes || f.srv.Head("shop-deploy") != out.Commit {
		t.Errorf("re-run = %+v, pushes %d → %d", again, pushes, f.srv.Pushes())
	}
	plan, err = rollback.Action{}.Plan(t.Context(), f.env, req)
	if err != nil || plan.Changed || plan.Diff != "" || plan.Commit != out.Commit {
		t.Errorf("Plan after = %+v, %v", plan, err)
	}
	if strings.Contains(f.logs.String(), token) {
		t.Error("token in logs")
	}
}

// normalizeIndex drops the blob hashes of "index" lines, which the test
// does not compute by hand.
func normalizeIndex(diff string) string {
	lines := strings.Split(diff, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "index ") {
			mode := ""
			if j := strings.LastIndexByte(l, ' '); j > len("index ") {
				mode = l[j:]
			}
			lines[i] = "index" + mode
		}
	}
	return strings.Join(lines, "\n")
}

func TestRevertOneFile(t *testing.T) {
	f := setup(t)
	out, err := rollback.Action{}.Execute(t.Context(), f.env, request(map[string]any{"target": "shop-deploy", "path": "apps/checkout/deploy.yaml"}))
	if err != nil || !out.Changed {
		t.Fatalf("Execute = %+v, %v", out, err)
	}
	clone := f.srv.Clone("shop-deploy")
	if got := clone.File("apps/checkout/deploy.yaml"); got != initial["apps/checkout/deploy.yaml"] {
		t.Errorf("deploy.yaml = %q", got)
	}
	// The rest of the reverted commit stays: only path is rolled back.
	if !clone.Exists("apps/checkout/new.yaml") || clone.Exists("apps/checkout/old.yaml") {
		t.Error("files of the commit outside path were reverted too")
	}
}

func TestRestoreToRevision(t *testing.T) {
	f := setup(t)
	req := request(map[string]any{"target": "shop-deploy", "path": "apps", "to": f.c1[:8]})
	out, err := rollback.Action{}.Execute(t.Context(), f.env, req)
	if err != nil {
		t.Fatal(err)
	}
	clone := f.srv.Clone("shop-deploy")
	if d := clone.Git("diff", "--stat", f.c1, "HEAD"); d != "" {
		t.Errorf("apps is not as at %s:\n%s", f.c1, d)
	}
	if !strings.HasPrefix(clone.Message("HEAD"), "firebreak INC-20261121-1 (checkout_crashloop): restore apps to "+f.c1[:12]) {
		t.Errorf("message = %q", clone.Message("HEAD"))
	}
	again, err := rollback.Action{}.Execute(t.Context(), f.env, req)
	if err != nil || again.Changed || again.Commit != out.Commit {
		t.Errorf("re-run = %+v, %v", again, err)
	}
}

func TestRaceAgainstAnotherPush(t *testing.T) {
	tests := []struct {
		name    string
		other   map[string]string
		refused string // empty: the revert applies on the new head
	}{
		{name: "elsewhere", other: map[string]string{"apps/cart/deploy.yaml": "image: cart:9\n"}},
		{name: "same path, another file", other: map[string]string{"apps/checkout/README": "hi\n"}},
		{name: "a reverted file changed", other: map[string]string{"apps/checkout/deploy.yaml": "image: checkout:1.2\nreplicas: 3\n"},
			refused: "revert of %s does not apply: apps/checkout/deploy.yaml changed since; nothing pushed"},
		{name: "a deleted file came back", other: map[string]string{"apps/checkout/old.yaml": "legacy: false\n"},
			refused: "apps/checkout/old.yaml changed since"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			var other string
			f.srv.BeforeNextPush(func() { other = f.srv.Commit("shop-deploy", "someone else", tt.other) })
			out, err := rollback.Action{}.Execute(t.Context(), f.env, request(map[string]any{"target": "shop-deploy", "path": "apps/checkout"}))
			if tt.refused != "" {
				want := tt.refused
				if strings.Contains(want, "%s") {
					want = strings.Replace(want, "%s", f.c2[:12], 1)
				}
				if !errors.Is(err, actions.ErrRefused) || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v; want a refusal containing %q", err, want)
				}
				if head := f.srv.Head("shop-deploy"); head != other {
					t.Errorf("remote head = %s, want the other commit %s alone", head, other)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			clone := f.srv.Clone("shop-deploy")
			if got := clone.Git("rev-parse", "HEAD^"); got != other {
				t.Errorf("firebreak's parent = %s, want the other commit %s", got, other)
			}
			if got := clone.Subjects()[:2]; !slices.Equal(got, []string{"firebreak INC-20261121-1 (checkout_crashloop): revert " + f.c2[:12] + " under apps/checkout", "someone else"}) {
				t.Errorf("history = %q", got)
			}
			for path, content := range tt.other {
				if clone.File(path) != content {
					t.Errorf("the other push's %s was lost", path)
				}
			}
			if clone.File("apps/checkout/deploy.yaml") != initial["apps/checkout/deploy.yaml"] {
				t.Error("revert not applied")
			}
			if out.Commit != clone.Git("rev-parse", "HEAD") {
				t.Errorf("outcome commit %s", out.Commit)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name   string
		owner  string
		params map[string]any
		paused bool
		want   []error
		text   string
	}{
		{name: "path traversal", params: map[string]any{"target": "shop-deploy", "path": "../../etc"},
			want: []error{actions.ErrRefused, gitrepo.ErrBadPath}, text: `path "../../etc"`},
		{name: "absolute path", params: map[string]any{"target": "shop-deploy", "path": "/etc/passwd"},
			want: []error{actions.ErrRefused, gitrepo.ErrBadPath}},
		{name: "into .git", params: map[string]any{"target": "shop-deploy", "path": ".git/hooks"},
			want: []error{actions.ErrRefused, gitrepo.ErrBadPath}},
		{name: "undeclared target", params: map[string]any{"target": "prod", "path": "apps/checkout"},
			want: []error{actions.ErrRefused}, text: `target "prod" is not declared`},
		{name: "target of another owner", params: map[string]any{"target": "other-deploy", "path": "apps/checkout"},
			want: []error{actions.ErrRefused}, text: `does not allow rollback on target "other-deploy"`},
		{name: "not a git target", params: map[string]any{"target": "prom", "path": "apps/checkout"},
			want: []error{actions.ErrRefused}, text: "is a prometheus target"},
		{name: "owner without policy", owner: "@mallory", params: map[string]any{"target": "shop-deploy", "path": "apps/checkout"},
			want: []error{actions.ErrRefused}, text: "has no policy"},
		{name: "paused", paused: true, params: map[string]any{"target": "shop-deploy", "path": "apps/checkout"},
			want: []error{actions.ErrRefused}, text: "paused"},
		{name: "unknown parameter", params: map[string]any{"target": "shop-deploy", "path": "apps/checkout", "force": true},
			want: []error{actions.ErrRefused}, text: "unknown field"},
		{name: "revision outside the branch", params: map[string]any{"target": "shop-deploy", "path": "apps", "to": strings.Repeat("0a", 20)},
			want: []error{actions.ErrRefused, gitrepo.ErrUnknownRevision}},
		{name: "nothing touched the path", params: map[string]any{"target": "shop-deploy", "path": "apps/none"},
			want: []error{actions.ErrRefused}, text: "nothing to revert"},
		{name: "only the first commit touched the path", params: map[string]any{"target": "shop-deploy", "path": "README.md"},
			want: []error{actions.ErrRefused}, text: "the first of the branch: nothing to revert to"},
	}
	// Nothing here changes the remote, so one fixture serves every case;
	// each case checks that the remote did not change.
	f := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.env.Config.Policy.Paused = tt.paused
			req := request(tt.params)
			if tt.owner != "" {
				req.Owner = tt.owner
			}
			for _, run := range []func() (*actions.Outcome, error){
				func() (*actions.Outcome, error) { return rollback.Action{}.Plan(t.Context(), f.env, req) },
				func() (*actions.Outcome, error) { return rollback.Action{}.Execute(t.Context(), f.env, req) },
			} {
				_, err := run()
				for _, w := range tt.want {
					if !errors.Is(err, w) {
						t.Errorf("err = %v; want %v", err, w)
					}
				}
				if err != nil && !strings.Contains(err.Error(), tt.text) {
					t.Errorf("err = %v; want it to say %q", err, tt.text)
				}
			}
			if f.srv.Pushes() != 0 || f.srv.Head("shop-deploy") != f.c3 {
				t.Error("the remote changed")
			}
		})
	}
}

func TestRemoteFailures(t *testing.T) {
	tests := []struct {
		name   string
		target string
		want   error
		text   string
	}{
		{"missing branch", "release", gitrepo.ErrBranchNotFound, "(branch release): branch not found on the remote"},
		{"bad credentials", "bad-token", gitrepo.ErrAuth, "authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			_, err := rollback.Action{}.Execute(t.Context(), f.env, request(map[string]any{"target": tt.target, "path": "apps/checkout"}))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %v; want %v saying %q", err, tt.want, tt.text)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || strings.Contains(msg, token) || strings.Contains(msg, "ghp_stale0ld7oken") {
				t.Errorf("error spans lines or leaks a token: %q", msg)
			}
			if strings.Contains(f.logs.String(), token) || strings.Contains(f.logs.String(), "ghp_stale0ld7oken") {
				t.Error("token in logs")
			}
			if f.srv.Pushes() != 0 {
				t.Error("pushed")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		params map[string]any
		ok     bool
	}{
		{map[string]any{"target": "shop-deploy", "path": "apps/checkout"}, true},
		{map[string]any{"target": "shop-deploy"}, true}, // path depends on the alert
		{map[string]any{"target": "shop-deploy", "path": "apps/x", "to": "abc123"}, true},
		{map[string]any{"target": "shop-deploy", "path": "../../etc"}, false},
		{map[string]any{"target": "shop-deploy", "path": "apps/x", "to": "--upload-pack=evil"}, false},
		{map[string]any{"target": "shop-deploy", "path": "apps/x", "extra": 1}, false},
	}
	for _, tt := range tests {
		err := rollback.Action{}.Validate(tt.params)
		if (err == nil) != tt.ok {
			t.Errorf("Validate(%v) = %v", tt.params, err)
		}
	}
}

// TestSecretsNeverComeOut feeds the git token through the parameters of
// successful and refused steps: it must not come out in an error, an
// outcome, a log line or a commit on the remote.
func TestSecretsNeverComeOut(t *testing.T) {
	f := setup(t)
	secretFile := "apps/" + token + ".yaml"
	f.srv.Commit("shop-deploy", "add a badly named file", map[string]string{secretFile: "x: 1\n"})
	var said []string
	for _, params := range []map[string]any{
		{"target": "shop-deploy", "path": secretFile},            // succeeds: reverts the add
		{"target": "shop-deploy", "path": "apps/none-" + token},  // nothing to revert
		{"target": "prod-" + token, "path": "apps/checkout"},     // undeclared target
		{"target": "shop-deploy", "path": "apps", "to": token},   // unknown revision
		{"target": "shop-deploy", "path": "../" + token},         // bad path
		{"target": "shop-deploy", "path": "apps", "note": token}, // unknown parameter
	} {
		for _, run := range []func() (*actions.Outcome, error){
			func() (*actions.Outcome, error) { return rollback.Action{}.Plan(t.Context(), f.env, request(params)) },
			func() (*actions.Outcome, error) {
				return rollback.Action{}.Execute(t.Context(), f.env, request(params))
			},
		} {
			out, err := run()
			if err != nil {
				said = append(said, err.Error())
			}
			if out != nil {
				said = append(said, out.Summary, out.Diff)
			}
		}
	}
	clone := f.srv.Clone("shop-deploy")
	said = append(said, clone.Git("log", "--format=%B"), f.logs.String())
	for _, s := range said {
		if strings.Contains(s, token) {
			t.Errorf("the token came out in:\n%s", s)
		}
	}
	if !strings.Contains(clone.Subjects()[0], "revert") || !strings.Contains(clone.Message("HEAD"), "[redacted GIT_TOKEN]") {
		t.Errorf("the revert did not land with a redacted message: %q", clone.Message("HEAD"))
	}
}
