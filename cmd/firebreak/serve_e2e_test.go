package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
	"github.com/firebreak-dev/firebreak/engine/github/githubtest"
	"github.com/firebreak-dev/firebreak/engine/incident"
)

const (
	serveAPIToken  = "api-e2e-T0KEN-4f1c2b"
	serveRepoToken = "ghp_e2eREPOtoken0123456789"
	serveGHToken   = "ghp_e2eAPItoken9876543210"
)

// TestServeEndToEnd runs the whole alert path against real things: a
// real Prometheus scrapes a gauge the test sets and evaluates an alerting
// rule; the real Alertmanager sends its webhook, with the bearer token, to
// the built firebreak binary running `serve --repo URL` on a loopback git
// server; GitHub is githubtest driven by the real go-github client.
//
// The gauge goes up: the rule fires, and the test reads the remotes with
// the git CLI — the rollback commit on the config repository (one, with
// the incident's trailers), the incident record on the playbook repository
// — and finds exactly one GitHub issue. The gauge goes down: Alertmanager
// sends the resolution, the record says resolved, the branch
// postmortem/<id> holds postmortems/<id>.md, the postmortem pull request
// is open and the issue closed.
func TestServeEndToEnd(t *testing.T) {
	requireBinary(t, prometheusBinary, "prometheus")
	requireBinary(t, alertmanagerBinary, "prometheus-alertmanager")
	bin := buildFirebreak(t)
	begin := time.Now()

	// The config repository: checkout-api's v2 deploy is the commit the
	// rollback reverts.
	srv := gittest.NewServer(t, gittest.WithToken(serveRepoToken))
	srv.CreateRepo("deploy", map[string]string{
		"apps/checkout-api/deployment.yaml": "image: checkout:v1\n",
		"apps/cart/deployment.yaml":         "image: cart:v7\n",
	})
	bad := srv.Commit("deploy", "deploy checkout v2", map[string]string{"apps/checkout-api/deployment.yaml": "image: checkout:v2\n"})

	gh := githubtest.New(t, githubtest.Config{Owner: "acme", Repo: "ops", Token: serveGHToken})
	gh.SetTeamMember("acme", "payments", "alice", "active") // the owner team, asked to review the postmortem

	// notify's webhook channel: what it receives, by delivery id.
	var hookMu sync.Mutex
	deliveries := map[string]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hookMu.Lock()
		deliveries[r.Header.Get("X-Firebreak-Delivery")]++
		hookMu.Unlock()
	}))
	t.Cleanup(hook.Close)

	srv.CreateRepo("ops", map[string]string{
		"firebreak.cue": fmt.Sprintf(`
targets: deploy: git: {url: %q, token: secret: "GITHUB_TOKEN"}
channels: oncall: webhook: url: %q
policy: {
	limits: {runs_per_hour: 100, step_timeout: "1m", run_timeout: "5m"}
	owners: "@acme/payments": {rollback: ["deploy"], notify: ["oncall"]}
}
github: {owner: "acme", repo: "ops", api_url: %q, token: secret: "GH_API_TOKEN"}
`, srv.RepoURL("deploy"), hook.URL, gh.URL+"/"),
		"playbooks/checkout.cue": `package playbooks

checkout_broken: {
	title:    "Checkout broken after a deploy"
	owner:    "@acme/payments"
	severity: "critical"
	match: labels: alertname: "CheckoutBroken"
	group_by: ["deployment"]
	steps: [
		{rollback: {target: "deploy", path: "apps/\(alert.labels.deployment)"}},
		{notify: {channel: "oncall", text: "rolled back \(alert.labels.deployment)"}},
	]
}
`,
	})

	fb := newFBServer(t, bin, serveAPIToken, []string{
		"--repo", srv.RepoURL("ops"),
		"--state-dir", t.TempDir(), "--cache-dir", t.TempDir(),
	}, []string{
		"FIREBREAK_SECRET_GITHUB_TOKEN=" + serveRepoToken,
		"FIREBREAK_SECRET_GH_API_TOKEN=" + serveGHToken,
	})
	fb.start()

	am := startAlertmanager(t, fb.URL+"/v1/alerts/alertmanager", serveAPIToken)

	// The gauge Prometheus scrapes; the rule fires while it is above 0.
	var broken atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE checkout_broken gauge\ncheckout_broken{deployment=\"checkout-api\"} %d\n", broken.Load())
	}))
	t.Cleanup(app.Close)
	startPrometheus(t, app.URL, am, `groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: CheckoutBroken
        expr: checkout_broken > 0
        for: 0s
        labels: {severity: critical}
        annotations: {summary: "checkout is broken"}
`)
	t.Logf("components up after %s", time.Since(begin).Round(time.Millisecond))

	broken.Store(1)
	fired := time.Now()

	// Wait on the bare repositories (cheap), then check through clones.
	bareLog := func(name string, args ...string) string {
		out, _ := gitCLI(srv.BareDir(name), args...)
		return out
	}
	var recordPath string
	eventually(t, 40*time.Second, func() string {
		return "the incident to be mitigated on the playbook remote; incidents: " + bareLog("ops", "ls-tree", "-r", "--name-only", "main", "incidents")
	}, func() bool {
		files := strings.Fields(bareLog("ops", "ls-tree", "-r", "--name-only", "main", "incidents"))
		if len(files) == 0 {
			return false
		}
		recordPath = files[0]
		return strings.Contains(bareLog("ops", "show", "main:"+recordPath), "status: mitigated")
	})
	t.Logf("rule fired → incident mitigated in %s", time.Since(fired).Round(time.Millisecond))

	ops := srv.Clone("ops")
	records := incidentFiles(t, ops)
	if len(records) != 1 {
		t.Fatalf("want one incident record, got %v", keys(records))
	}
	in := records[recordPath]
	if in == nil {
		t.Fatalf("no record at %s: %v", recordPath, keys(records))
	}
	if !strings.HasPrefix(recordPath, "incidents/"+in.Timestamps.Detected.Format("2006/01")+"/") || in.Playbook != "checkout_broken" ||
		in.Group["deployment"] != "checkout-api" || len(in.Alerts) != 1 || in.Alerts[0].Fingerprint == "" ||
		in.Alerts[0].Labels["job"] != "app" || in.Alerts[0].Labels["severity"] != "critical" {
		t.Errorf("record %s: %+v", recordPath, in)
	}
	rb, nt := in.StepByName("rollback"), in.StepByName("notify")
	if rb == nil || rb.Status != "succeeded" || rb.Commit == "" || nt == nil || nt.Status != "succeeded" {
		t.Fatalf("steps: %+v", in.Steps)
	}

	// The rollback commit on the config repository: one, on top of the
	// bad deploy, stamped with the incident, checkout back at v1.
	deploy := srv.Clone("deploy")
	if got := deploy.File("apps/checkout-api/deployment.yaml"); got != "image: checkout:v1\n" {
		t.Errorf("checkout-api after the rollback: %q", got)
	}
	if head := deploy.Git("rev-parse", "HEAD"); head != rb.Commit {
		t.Errorf("config repo HEAD %s, the record says the rollback is %s", head, rb.Commit)
	}
	if parent := deploy.Git("rev-parse", "HEAD~1"); parent != bad {
		t.Errorf("the rollback's parent is %s, want the bad deploy %s", parent, bad)
	}
	stamped := trailerCommits(t, deploy)
	if len(stamped) != 1 || len(stamped[in.ID+" rollback"]) != 1 {
		t.Errorf("stamped commits on the config repo: %v", stamped)
	}
	if msg := deploy.Message("HEAD"); !strings.Contains(msg, "Firebreak-Playbook: checkout_broken") || !strings.Contains(msg, bad) {
		t.Errorf("rollback commit message:\n%s", msg)
	}
	hookMu.Lock()
	if len(deliveries) != 1 || deliveries[in.ID+"/notify"] != 1 {
		t.Errorf("notify deliveries: %v", deliveries)
	}
	hookMu.Unlock()

	// The GitHub issue: exactly one, carrying the incident's marker.
	marker := "<!-- firebreak:incident=" + in.ID + " -->"
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("the GitHub issue; issues: %d", len(gh.Issues())) }, func() bool {
		return len(gh.Issues()) > 0
	})
	issues := gh.Issues()
	if len(issues) != 1 || !strings.Contains(issues[0].Body, marker) || issues[0].State != "open" || !strings.Contains(issues[0].Title, in.ID) {
		t.Fatalf("issues: %+v", issues)
	}
	issue := issues[0].Number
	t.Logf("incident %s: issue #%d after %s", in.ID, issue, time.Since(fired).Round(time.Millisecond))

	// The alert resolves.
	broken.Store(0)
	resolving := time.Now()
	branch := "postmortem/" + in.ID
	eventually(t, 40*time.Second, func() string {
		return "the resolution on the playbook remote and the postmortem pull request; branches: " +
			bareLog("ops", "for-each-ref", "--format=%(refname)", "refs/heads") + "; pulls: " + fmt.Sprint(len(gh.Pulls()))
	}, func() bool {
		return strings.Contains(bareLog("ops", "show", "main:"+recordPath), "status: resolved") &&
			bareLog("ops", "rev-parse", "--verify", "--quiet", "refs/heads/"+branch) != "" &&
			len(gh.Pulls()) > 0
	})
	t.Logf("gauge down → resolved with its postmortem pull request in %s", time.Since(resolving).Round(time.Millisecond))

	ops = srv.Clone("ops")
	in = incidentFiles(t, ops)[recordPath]
	if in == nil || in.Status != incident.Resolved || in.Timestamps.Resolved.IsZero() || in.Alerts[0].Status != "resolved" {
		t.Fatalf("record after the resolution: %+v", in)
	}
	pmPath := "postmortems/" + in.ID + ".md"
	pm := ops.Show("origin/"+branch, pmPath)
	if !strings.Contains(pm, in.ID) {
		t.Errorf("%s on %s:\n%s", pmPath, branch, pm)
	}
	if ops.Exists(pmPath) {
		t.Errorf("%s is on main: the draft belongs on its branch", pmPath)
	}
	if base := ops.Git("merge-base", "origin/main", "origin/"+branch); base == "" {
		t.Errorf("the postmortem branch shares no history with main")
	}
	pulls := gh.Pulls()
	if len(pulls) != 1 || pulls[0].State != "open" || pulls[0].Pull.Head != branch || pulls[0].Pull.Base != "main" ||
		!strings.Contains(pulls[0].Body, "<!-- firebreak:pr="+in.ID+" -->") {
		t.Fatalf("pull requests: %+v", pulls)
	}
	eventually(t, 20*time.Second, func() string { return "the issue to close and the record to name the pull request" }, func() bool {
		is, _ := gh.Issue(issue)
		return is.State == "closed" && strings.Contains(bareLog("ops", "show", "main:"+recordPath), fmt.Sprintf("postmortem_pr: %d", pulls[0].Number))
	})
	if pr, _ := gh.Issue(pulls[0].Number); pr.Pull == nil || !slices.Equal(pr.Pull.RequestedTeams, []string{"payments"}) {
		t.Errorf("postmortem review requested from %+v, want the owner team", pr.Pull)
	}
	is, _ := gh.Issue(issue)
	if !slices.ContainsFunc(is.Comments, func(c githubtest.Comment) bool {
		return strings.Contains(c.Body, fmt.Sprintf("#%d", pulls[0].Number))
	}) {
		t.Errorf("the issue does not point to the postmortem pull request: %+v", is.Comments)
	}
	if n := len(gh.Issues()); n != 1 {
		t.Errorf("%d issues, want still one", n)
	}

	// Nothing ran twice along the way, and no secret reached the log.
	deploy = srv.Clone("deploy")
	if stamped := trailerCommits(t, deploy); len(stamped) != 1 || len(stamped[in.ID+" rollback"]) != 1 {
		t.Errorf("stamped commits on the config repo after the resolution: %v", stamped)
	}
	hookMu.Lock()
	if deliveries[in.ID+"/notify"] != 1 {
		t.Errorf("notify deliveries after the resolution: %v", deliveries)
	}
	hookMu.Unlock()
	if !fb.proc.stop(40 * time.Second) {
		t.Errorf("firebreak serve did not shut down on SIGTERM")
	}
	logs := fb.logs.String()
	for _, secret := range []string{serveAPIToken, serveRepoToken, serveGHToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret is in the server's log")
		}
	}
	t.Logf("end to end, components started: %s", time.Since(begin).Round(time.Millisecond))
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
