package scale_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
	"github.com/firebreak-dev/firebreak/actions/scale"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/schema"
)

const (
	token = "glpat-scaleT0ken4421"
	owner = "@acme/payments"
	path  = "apps/checkout/manifests.yaml"
)

// manifest has {{N}} where the checkout Deployment's replicas go, and
// {{W}} for the worker's.
const manifest = `# Managed by the payments team.
# firebreak may change replicas; keep the rest by hand.
apiVersion: v1
kind: Service
metadata:
  name: checkout
spec:
  ports: [{port: 80, targetPort: 8080}]   # http
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  labels: {app: checkout, tier: "front"}
spec:
  # 3 is the floor in prod; HPA is off for checkout.
  replicas: {{N}}     # ← firebreak edits this number
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}
  selector:
    matchLabels: {app: checkout}
  template:
    metadata:
      labels: {app: checkout}
    spec:
      containers:
        - name: api
          image: "ghcr.io/acme/checkout:1.4.2"
          args: ["--replicas-hint", "7"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout-worker
spec:
  replicas: {{W}}
`

func render(n, w string) string {
	return strings.NewReplacer("{{N}}", n, "{{W}}", w).Replace(manifest)
}

type fixture struct {
	srv  *gittest.Server
	env  *actions.Env
	logs *bytes.Buffer
	head string
}

func setup(t *testing.T, replicas string) *fixture {
	t.Helper()
	srv := gittest.NewServer(t, gittest.WithToken(token))
	srv.CreateRepo("shop-deploy", map[string]string{path: render(replicas, "2"), "apps/cart/deploy.yaml": "replicas: 1\n"})
	maxReplicas, maxFactor := 30, 2.0
	git := func(branch string) *schema.GitTarget {
		return &schema.GitTarget{URL: srv.RepoURL("shop-deploy"), Branch: branch, Token: &schema.Secret{Secret: "GIT_TOKEN"}}
	}
	cfg := &schema.Config{
		Targets: map[string]schema.Target{
			"shop-deploy":  {Git: git("main")},
			"other-deploy": {Git: git("main")},
			"release":      {Git: git("release")},
		},
		Policy: schema.Policy{Owners: map[string]schema.OwnerPolicy{
			owner: {Scale: &schema.ScalePolicy{Targets: []string{"shop-deploy", "release"}, MaxReplicas: &maxReplicas, MaxFactor: &maxFactor}},
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

func request(params map[string]any) *actions.Request {
	p := map[string]any{"target": "shop-deploy", "path": path, "resource": "Deployment/checkout"}
	for k, v := range params {
		if v == nil {
			delete(p, k)
		} else {
			p[k] = v
		}
	}
	return &actions.Request{
		Incident: "INC-7", Playbook: "checkout_saturated", Owner: owner,
		Step: schema.Step{Name: "scale-up", Action: "scale", Params: p, Approval: "auto"},
	}
}

func TestScaleEndToEnd(t *testing.T) {
	tests := []struct {
		name    string
		current string
		params  map[string]any
		want    string
	}{
		{"replicas", "3", map[string]any{"replicas": 5}, "5"},
		{"replicas as CUE decodes numbers", "3", map[string]any{"replicas": float64(6)}, "6"},
		{"factor rounds up", "3", map[string]any{"factor": 1.5}, "5"},
		{"factor down", "10", map[string]any{"factor": 0.3}, "3"},
		{"to the max", "15", map[string]any{"factor": 2}, "30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t, tt.current)
			req := request(tt.params)

			plan, err := scale.Action{}.Plan(t.Context(), f.env, req)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("plan: %s\n%s", plan.Summary, plan.Diff)
			wantDiff := "-  replicas: " + tt.current + "     # ← firebreak edits this number\n" +
				"+  replicas: " + tt.want + "     # ← firebreak edits this number\n"
			if !strings.Contains(plan.Diff, wantDiff) || strings.Count(plan.Diff, "\n-") != 2 || !plan.Changed {
				t.Errorf("Plan diff:\n%s\nwant the one line:\n%s", plan.Diff, wantDiff)
			}
			if f.srv.Pushes() != 0 {
				t.Fatal("Plan pushed")
			}

			out, err := scale.Action{}.Execute(t.Context(), f.env, req)
			if err != nil {
				t.Fatal(err)
			}
			clone := f.srv.Clone("shop-deploy")
			// The whole file, byte for byte, but the one number.
			if got, want := clone.File(path), render(tt.want, "2"); got != want {
				t.Errorf("manifest after:\n%s\nwant:\n%s", got, want)
			}
			if got := clone.Git("rev-parse", "HEAD"); got != out.Commit || !out.Changed {
				t.Errorf("outcome %+v, remote head %s", out, got)
			}
			wantSubject := "firebreak INC-7 (checkout_saturated): scale Deployment/checkout from " + tt.current + " to " + tt.want + " replicas"
			if got := clone.Subjects(); len(got) != 2 || got[0] != wantSubject {
				t.Errorf("history = %q, want %q on top", got, wantSubject)
			}
			if msg := clone.Message("HEAD"); !strings.Contains(msg, "Firebreak-Step: scale-up") {
				t.Errorf("message = %q", msg)
			}

			// Executing the finished step again changes nothing, even a
			// factor that would multiply again.
			again, err := scale.Action{}.Execute(t.Context(), f.env, req)
			if err != nil || again.Changed || again.Commit != out.Commit {
				t.Errorf("re-run = %+v, %v", again, err)
			}
			if f.srv.Head("shop-deploy") != out.Commit || f.srv.Pushes() != 1 {
				t.Errorf("re-run pushed: %d pushes", f.srv.Pushes())
			}
			if strings.Contains(f.logs.String(), token) {
				t.Error("token in logs")
			}
		})
	}
}

func TestAlreadyAtTheCount(t *testing.T) {
	f := setup(t, "4")
	out, err := scale.Action{}.Execute(t.Context(), f.env, request(map[string]any{"replicas": 4}))
	if err != nil || out.Changed || out.Commit != f.head || f.srv.Pushes() != 0 {
		t.Errorf("Execute = %+v, %v; pushes %d", out, err, f.srv.Pushes())
	}
}

func TestBoundsAgainstTheRealValue(t *testing.T) {
	tests := []struct {
		name    string
		current string
		params  map[string]any
		text    string
	}{
		{"factor beyond max_factor", "3", map[string]any{"factor": 3}, "factor: 3 exceeds max_factor 2 of @acme/payments"},
		{"replicas beyond max_replicas", "3", map[string]any{"replicas": 31}, "replicas: 31 exceeds max_replicas 30"},
		{"factor within bounds, result beyond max_replicas", "20", map[string]any{"factor": 2}, "scaling Deployment/checkout from 20 to 40 replicas exceeds max_replicas 30 of @acme/payments"},
		{"replicas within max_replicas, a factor beyond max_factor", "3", map[string]any{"replicas": 10}, "from 3 to 10 replicas is a factor of 3.33, beyond max_factor 2"},
		{"the worker's real value counts, not the checkout's", "3", map[string]any{"resource": "Deployment/checkout-worker", "replicas": 5}, "from 2 to 5 replicas is a factor of 2.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t, tt.current)
			for _, run := range []func() (*actions.Outcome, error){
				func() (*actions.Outcome, error) { return scale.Action{}.Plan(t.Context(), f.env, request(tt.params)) },
				func() (*actions.Outcome, error) {
					return scale.Action{}.Execute(t.Context(), f.env, request(tt.params))
				},
			} {
				_, err := run()
				if !errors.Is(err, actions.ErrRefused) || !strings.Contains(err.Error(), tt.text) {
					t.Errorf("err = %v; want a refusal saying %q", err, tt.text)
				}
			}
			if f.srv.Pushes() != 0 || f.srv.Head("shop-deploy") != f.head {
				t.Error("the remote changed")
			}
			if got := f.srv.Clone("shop-deploy").File(path); got != render(tt.current, "2") {
				t.Errorf("manifest changed:\n%s", got)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]any
		want   error
		text   string
	}{
		{"path traversal", map[string]any{"path": "../../etc/passwd", "replicas": 2}, gitrepo.ErrBadPath, `path "../../etc/passwd"`},
		{"path through alert labels", map[string]any{"path": "apps/../../../root/.ssh/authorized_keys", "replicas": 2}, gitrepo.ErrBadPath, ""},
		{"several resources, none named", map[string]any{"resource": nil, "replicas": 2}, actions.ErrRefused, "holds 3 resources (Service/checkout, Deployment/checkout, Deployment/checkout-worker)"},
		{"resource not in the file", map[string]any{"resource": "Deployment/payments", "replicas": 2}, actions.ErrRefused, "has no Deployment/payments"},
		{"a Service has no replicas", map[string]any{"resource": "Service/checkout", "replicas": 2}, actions.ErrRefused, "Service/checkout has no spec.replicas"},
		{"manifest missing", map[string]any{"path": "apps/none.yaml", "replicas": 2}, actions.ErrRefused, "manifest apps/none.yaml is not in shop-deploy"},
		{"target not allowed", map[string]any{"target": "other-deploy", "replicas": 2}, actions.ErrRefused, `does not allow scale on target "other-deploy"`},
		{"both replicas and factor", map[string]any{"replicas": 2, "factor": 2}, actions.ErrRefused, "exclude each other"},
		{"neither", map[string]any{}, actions.ErrRefused, "one of replicas or factor"},
		{"negative", map[string]any{"replicas": -1}, actions.ErrRefused, "negative"},
		{"fractional replicas", map[string]any{"replicas": 2.5}, actions.ErrRefused, "replicas"},
		{"bad resource", map[string]any{"resource": "checkout", "replicas": 2}, actions.ErrRefused, "is not Kind/name"},
		{"missing branch", map[string]any{"target": "release", "replicas": 2}, gitrepo.ErrBranchNotFound, "branch not found"},
	}
	// Nothing here changes the remote, so one fixture serves every case;
	// each case checks that the remote did not change.
	f := setup(t, "3")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scale.Action{}.Execute(t.Context(), f.env, request(tt.params))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %v; want %v saying %q", err, tt.want, tt.text)
			}
			if errors.Is(tt.want, gitrepo.ErrBadPath) && !errors.Is(err, actions.ErrRefused) {
				t.Errorf("a bad path is not a refusal: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if f.srv.Pushes() != 0 || f.srv.Head("shop-deploy") != f.head {
				t.Error("the remote changed")
			}
		})
	}
}

func TestRaceReappliesOnTheNewValue(t *testing.T) {
	f := setup(t, "3")
	// Someone scales the worker and changes a comment between firebreak's
	// fetch and its push: firebreak's edit lands on top of theirs.
	theirs := strings.Replace(render("3", "4"), "# Managed by the payments team.", "# Managed by payments.", 1)
	var other string
	f.srv.BeforeNextPush(func() { other = f.srv.Commit("shop-deploy", "worker to 4", map[string]string{path: theirs}) })
	out, err := scale.Action{}.Execute(t.Context(), f.env, request(map[string]any{"factor": 2}))
	if err != nil {
		t.Fatal(err)
	}
	clone := f.srv.Clone("shop-deploy")
	want := strings.Replace(render("6", "4"), "# Managed by the payments team.", "# Managed by payments.", 1)
	if got := clone.File(path); got != want {
		t.Errorf("manifest:\n%s\nwant:\n%s", got, want)
	}
	if got := clone.Git("rev-parse", "HEAD^"); got != other || out.Commit != clone.Git("rev-parse", "HEAD") {
		t.Errorf("firebreak's commit is not on top of the other: parent %s, want %s", got, other)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		params map[string]any
		ok     bool
	}{
		{map[string]any{"target": "shop-deploy", "path": path, "replicas": 3}, true},
		{map[string]any{"target": "shop-deploy", "factor": 1.5}, true}, // path depends on the alert
		{map[string]any{"target": "shop-deploy", "path": "../x", "replicas": 3}, false},
		{map[string]any{"target": "shop-deploy", "path": path, "replicas": 3, "factor": 2}, false},
		{map[string]any{"target": "shop-deploy", "path": path, "factor": 0}, false},
		{map[string]any{"target": "shop-deploy", "path": path, "factor": -2}, false},
		{map[string]any{"target": "shop-deploy", "path": path, "replicas": 3, "resource": "Deployment/"}, false},
		{map[string]any{"target": "shop-deploy", "path": path, "replicas": 3, "namespace": "x"}, false},
	}
	for _, tt := range tests {
		if err := (scale.Action{}).Validate(tt.params); (err == nil) != tt.ok {
			t.Errorf("Validate(%v) = %v", tt.params, err)
		}
	}
}

// TestSecretsNeverComeOut feeds the git token through the parameters of
// refused steps: it must not come out in an error, an outcome or a log.
func TestSecretsNeverComeOut(t *testing.T) {
	f := setup(t, "3")
	var said []string
	for _, params := range []map[string]any{
		{"resource": "Deployment/" + token, "replicas": 4},
		{"path": "apps/" + token + ".yaml", "replicas": 4},
		{"path": "/" + token, "replicas": 4},
		{"target": token, "replicas": 4},
		{"resource": token, "replicas": 4},
		{"replicas": 4, token: 1},
	} {
		for _, run := range []func() (*actions.Outcome, error){
			func() (*actions.Outcome, error) { return scale.Action{}.Plan(t.Context(), f.env, request(params)) },
			func() (*actions.Outcome, error) { return scale.Action{}.Execute(t.Context(), f.env, request(params)) },
		} {
			out, err := run()
			if err == nil {
				t.Errorf("%v: not refused: %+v", params, out)
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
