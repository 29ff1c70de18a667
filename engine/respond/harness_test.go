package respond_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
	"github.com/firebreak-dev/firebreak/actions/registry"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/actions/webclient"
	"github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/github/githubtest"
	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/ledger"
	"github.com/firebreak-dev/firebreak/engine/plan"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/schema"
)

const (
	deployToken = "ghp_deployTOKENvalue0123456789"
	ghToken     = "ghp_githubTOKENvalue9876543210"
)

// world is a playbook repository (a local git repo, the ledger), a real
// git server holding the GitOps config repo the actions change, a webhook
// receiver for notify, and the httptest GitHub.
type world struct {
	t     *testing.T
	dir   string // the playbook repository's worktree
	git   *gittest.Server
	gh    *githubtest.Server
	hooks *hookLog
	clock *clock
	cache string
}

// hookLog records the notify webhook's deliveries.
type hookLog struct {
	mu    sync.Mutex
	texts []string
}

func (h *hookLog) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.texts...)
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const playbooks = `package playbooks

crash: {
	title:    "\(alert.labels.service) crash-looping"
	owner:    "@acme/payments"
	severity: "critical"
	match: labels: alertname: "CrashLoop"
	group_by: ["service"]
	cooldown: "30m"
	steps: [
		{rollback: {target: "deploy", path: "apps/\(alert.labels.service)"}},
		{notify: {channel: "hook", text: "rolled back \(alert.labels.service)"}},
	]
}

burn: {
	title:    "error budget burn on \(alert.labels.service)"
	owner:    "@acme/payments"
	severity: "high"
	match: labels: alertname: "Burn"
	group_by: ["service"]
	steps: [
		{notify: {channel: "hook", text: "burning \(alert.labels.service)"}},
		{name: "flip", notify: {channel: "hook", text: "flip \(alert.labels.service)"}, approval: "required"},
		{notify: {channel: "hook", text: "done \(alert.labels.service)"}},
	]
}

chatty: {
	title:    "chatty \(alert.labels.service)"
	owner:    "@acme/payments"
	severity: "info"
	match: labels: alertname: "Chatty"
	group_by: ["service"]
	steps: [{notify: {channel: "hook", text: "chatty \(alert.labels.service)"}}]
}
`

func newWorld(t *testing.T, withGitHub bool) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), hooks: &hookLog{}, cache: t.TempDir(),
		clock: &clock{now: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}}
	w.git = gittest.NewServer(t, gittest.WithToken(deployToken))
	w.git.CreateRepo("deploy", map[string]string{"apps/api/deployment.yaml": "image: api:v1\n", "apps/web/deployment.yaml": "image: web:v1\n"})
	w.git.Commit("deploy", "deploy api v2", map[string]string{"apps/api/deployment.yaml": "image: api:v2\n"})
	w.git.Commit("deploy", "deploy web v2", map[string]string{"apps/web/deployment.yaml": "image: web:v2\n"})

	hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var body struct {
			Text string `json:"text"`
		}
		data, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(data, &body)
		w.hooks.mu.Lock()
		w.hooks.texts = append(w.hooks.texts, body.Text)
		w.hooks.mu.Unlock()
	}))
	t.Cleanup(hook.Close)

	gh := ""
	if withGitHub {
		w.gh = githubtest.New(t, githubtest.Config{Owner: "acme", Repo: "ops", Token: ghToken, Login: "firebreak-bot", Assignable: []string{"alice"}})
		w.gh.SetTeamMember("acme", "payments", "alice", "active")
		gh = fmt.Sprintf("github: {owner: \"acme\", repo: \"ops\", api_url: %q, token: secret: \"GITHUB_TOKEN\"}\n", w.gh.URL+"/")
	}
	w.write("firebreak.cue", fmt.Sprintf(`
targets: deploy: git: {url: %q, token: secret: "DEPLOY_TOKEN"}
channels: hook: webhook: url: %q
policy: {
	limits: {runs_per_hour: 3, step_timeout: "1m", run_timeout: "5m"}
	owners: "@acme/payments": {rollback: ["deploy"], notify: ["hook"]}
}
%s`, w.git.RepoURL("deploy"), hook.URL, gh))
	w.write("playbooks/playbooks.cue", playbooks)
	w.gitCLI("init", "-q", "-b", "main")
	w.gitCLI("add", ".")
	w.gitCLI("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "playbooks")
	return w
}

func (w *world) write(name, content string) {
	w.t.Helper()
	p := filepath.Join(w.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) gitCLI(args ...string) string {
	w.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = w.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// engine is a fresh engine on the world, as a new process would make.
func (w *world) engine() *respond.Engine {
	w.t.Helper()
	r, err := repo.Load(w.dir)
	if err != nil {
		w.t.Fatal(err)
	}
	if !r.Valid() {
		w.t.Fatalf("playbooks invalid: %v", r.Diagnostics)
	}
	p, err := plan.New(r)
	if err != nil {
		w.t.Fatal(err)
	}
	l, err := ledger.OpenLocal(w.dir, ledger.Options{Now: w.clock.Now})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { l.Close() })
	sec := secrets.NewFromMap(map[string]string{"DEPLOY_TOKEN": deployToken, "GITHUB_TOKEN": ghToken})
	log := slog.New(secrets.Handler(slog.NewTextHandler(io.Discard, nil), sec))
	env := &actions.Env{
		Config:  r.Config,
		Secrets: sec,
		HTTP:    webclient.New(webclient.Options{AllowedHosts: webclient.AllowedHosts(r.Config), Redact: sec.Redact, Log: log}),
		Git:     gitrepo.NewStore(w.cache, log),
		Log:     log,
		Now:     w.clock.Now,
	}
	e := &respond.Engine{
		Repo: r, Planner: p, Ledger: l, Branch: "main",
		Runner: &run.Runner{Env: env, Actions: registry.Actions, Log: log},
		Log:    log, Now: w.clock.Now,
	}
	if w.gh != nil {
		gh, err := github.New(github.Options{
			Config: r.Config.GitHub, Secrets: sec, Log: log,
			HTTP:           webclient.Options{RetryMax: 2, WaitMin: time.Millisecond, WaitMax: 10 * time.Millisecond, RetryAfterMax: time.Second},
			AttemptTimeout: 5 * time.Second, MutationGap: -1,
		})
		if err != nil {
			w.t.Fatal(err)
		}
		e.GitHub = gh
		env.Commenter = gh.Commenter(func(ctx context.Context, id string) (int, error) {
			in, err := e.Get(ctx, id)
			if err != nil {
				return 0, err
			}
			return in.Issue, nil
		})
	}
	return e
}

func alertOf(name, service, status, fingerprint string, start time.Time) schema.Alert {
	return schema.Alert{
		Source: "alertmanager", Status: status, Fingerprint: fingerprint,
		Labels:      map[string]string{"alertname": name, "service": service},
		Annotations: map[string]string{"summary": name + " on " + service},
		StartsAt:    start, ReceivedAt: start,
	}
}

// record reads incident id from the worktree, as a person would.
func (w *world) record(id string) *incident.Incident {
	w.t.Helper()
	matches, _ := filepath.Glob(filepath.Join(w.dir, "incidents", "*", "*", id+".md"))
	if len(matches) != 1 {
		w.t.Fatalf("incident %s: %d files", id, len(matches))
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		w.t.Fatal(err)
	}
	in, err := incident.Unmarshal(data)
	if err != nil {
		w.t.Fatal(err)
	}
	return in
}

func (w *world) incidentFiles() []string {
	out := strings.Fields(w.gitCLI("ls-files", "incidents"))
	return out
}

func stepStatuses(in *incident.Incident) string {
	var parts []string
	for _, s := range in.Steps {
		parts = append(parts, s.Name+"="+s.Status)
	}
	return strings.Join(parts, " ")
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
