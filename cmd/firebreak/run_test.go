package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
	"github.com/firebreak-dev/firebreak/actions/verify/promtest"
)

const (
	e2eToken     = "ghp_e2eTOKENvalue0123456789"
	e2eSlackPath = "/services/T1/B2/e2eSlackSecret"
)

const e2eManifest = `# worker: the queue consumers
apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker # keep this comment
spec:
  replicas: 3 # scaled by firebreak when the queue backs up
  template: {}
`

const e2eFlags = `{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "flags": {
    "new-checkout": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "on"
    }
  }
}
`

// TestRunEndToEnd drives `firebreak run --alert` on a playbook repository
// whose targets are a real git server and a real Prometheus, and a Slack
// endpoint that records what it gets: a rollback, a scale and a flag land
// on the remote (checked with the git CLI), notify posts, verify queries.
// A second run of the same alert changes nothing; a dry run changes
// nothing; no secret reaches stdout, stderr or a commit.
func TestRunEndToEnd(t *testing.T) {
	srv := gittest.NewServer(t, gittest.WithToken(e2eToken))
	srv.CreateRepo("deploy", map[string]string{
		"apps/checkout-api/deployment.yaml": "image: checkout:v1\n",
		"apps/worker/deployment.yaml":       e2eManifest,
		"flags/shop.flagd.json":             e2eFlags,
	})
	srv.Commit("deploy", "deploy checkout v2", map[string]string{"apps/checkout-api/deployment.yaml": "image: checkout:v2\n"})
	prom := promtest.Start(t)

	var mu sync.Mutex
	var posts []string
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != e2eSlackPath || r.Method != http.MethodPost {
			t.Errorf("slack got %s %s", r.Method, r.URL.Path)
		}
		posts = append(posts, string(body))
	}))
	t.Cleanup(slack.Close)

	dir := t.TempDir()
	writeFile(t, dir, "firebreak.cue", fmt.Sprintf(`
targets: {
	deploy: git: {url: %q, token: secret: "DEPLOY_TOKEN"}
	flags: flagd: {repo: "deploy", file: "flags/shop.flagd.json"}
	prom: prometheus: url: %q
}
channels: oncall: slack: {webhook: secret: "SLACK_URL", host: %q}
policy: {
	limits: {step_timeout: "1m", run_timeout: "5m"}
	owners: "@acme/payments": {
		rollback: ["deploy"]
		scale: {targets: ["deploy"], max_replicas: 10, max_factor: 2}
		flag: {targets: ["flags"], keys: ["new-*"]}
		notify: ["oncall"]
	}
}
`, srv.RepoURL("deploy"), prom, strings.TrimPrefix(slack.URL, "http://")))
	writeFile(t, dir, "playbooks/checkout.cue", `package playbooks

checkout_broken: {
	title:    "Checkout broken after a deploy"
	owner:    "@acme/payments"
	severity: "critical"
	match: labels: {alertname: "CheckoutBroken", deployment: =~"^checkout-"}
	group_by: ["deployment"]
	steps: [
		{notify: {channel: "oncall", text: "Rolling back \(alert.labels.deployment)"}},
		{rollback: {target: "deploy", path: "apps/\(alert.labels.deployment)"}},
		{scale: {target: "deploy", path: "apps/worker/deployment.yaml", factor: 2}},
		{flag: {target: "flags", key: "new-checkout", to: "off"}},
		{verify: {query: "vector(1) > 0", datasource: "prom", within: "30s", every: "250ms"}},
	]
}
`)
	writeFile(t, dir, "alert.json", `{"version": "4", "status": "firing", "receiver": "firebreak", "groupKey": "{}", "truncatedAlerts": 0,
 "alerts": [{"status": "firing", "labels": {"alertname": "CheckoutBroken", "deployment": "checkout-api"}, "annotations": {},
   "startsAt": "2026-11-21T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "f1"}]}`)
	gitInit(t, dir)
	t.Setenv("FIREBREAK_SECRET_DEPLOY_TOKEN", e2eToken)
	t.Setenv("FIREBREAK_SECRET_SLACK_URL", slack.URL+e2eSlackPath)
	cache := t.TempDir()
	firebreak := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := execute(t.Context(), append(args, "--cache-dir", cache), &stdout, &stderr)
		for _, leak := range []string{e2eToken, e2eSlackPath} {
			if strings.Contains(stdout.String()+stderr.String(), leak) {
				t.Fatalf("secret %q in output:\n%s\n%s", leak, stdout.String(), stderr.String())
			}
		}
		return code, stdout.String(), stderr.String()
	}
	before := srv.Head("deploy")

	// A dry run plans every step and changes nothing.
	code, out, errOut := firebreak("run", "--alert", filepath.Join(dir, "alert.json"), dir, "--dry-run")
	if code != 0 || !strings.Contains(out, ": planned") || srv.Head("deploy") != before || len(posts) != 0 {
		t.Fatalf("dry run: exit %d, head moved %v, %d posts\n%s\n%s", code, srv.Head("deploy") != before, len(posts), out, errOut)
	}

	code, out, errOut = firebreak("run", "--alert", filepath.Join(dir, "alert.json"), dir)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"succeeded notify (notify oncall)", "succeeded rollback (rollback deploy)", "succeeded scale (scale deploy)", "succeeded flag (flag flags)", "succeeded verify (verify prom)"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "step succeeded") {
		t.Errorf("no progress on stderr:\n%s", errOut)
	}

	clone := srv.Clone("deploy")
	if got := clone.File("apps/checkout-api/deployment.yaml"); got != "image: checkout:v1\n" {
		t.Errorf("rollback: deployment is %q, want v1 back", got)
	}
	if got, want := clone.File("apps/worker/deployment.yaml"), strings.Replace(e2eManifest, "replicas: 3 #", "replicas: 6 #", 1); got != want {
		t.Errorf("scale: manifest is\n%s\nwant\n%s", got, want)
	}
	var flagFile struct {
		Flags map[string]struct {
			State          string `json:"state"`
			DefaultVariant string `json:"defaultVariant"`
		} `json:"flags"`
	}
	if err := json.Unmarshal([]byte(clone.File("flags/shop.flagd.json")), &flagFile); err != nil || flagFile.Flags["new-checkout"].DefaultVariant != "off" {
		t.Errorf("flag: %v %+v", err, flagFile)
	}
	subjects := clone.Subjects()
	if len(subjects) != 5 {
		t.Errorf("want 3 firebreak commits on top of 2, got %q", subjects)
	}
	if log := clone.Git("log", "--format=%B"); strings.Contains(log, e2eToken) {
		t.Errorf("token in a commit message")
	}
	if len(posts) != 1 || !strings.Contains(posts[0], "Rolling back checkout-api") {
		t.Errorf("slack posts %q", posts)
	}

	// The incident is recorded in the playbook repository.
	code, out, _ = firebreak("incidents", "--format", "json", dir)
	var ins []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Steps  []struct {
			Status string `json:"status"`
			Commit string `json:"commit"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &ins); code != 0 || err != nil || len(ins) != 1 || ins[0].Status != "mitigated" || len(ins[0].Steps) != 5 || ins[0].Steps[1].Commit == "" {
		t.Fatalf("incidents: exit %d, %v\n%s", code, err, out)
	}
	if st := gitOut(t, dir, "status", "--porcelain"); st != "" {
		t.Errorf("the playbook repository is left dirty:\n%s", st)
	}

	// The same alert again joins the open incident: nothing runs again,
	// nothing new is pushed or posted.
	after := srv.Head("deploy")
	code, out, errOut = firebreak("run", "--alert", filepath.Join(dir, "alert.json"), dir)
	if code != 0 || srv.Head("deploy") != after || len(posts) != 1 {
		t.Fatalf("re-run: exit %d, head moved %v, %d posts\n%s\n%s", code, srv.Head("deploy") != after, len(posts), out, errOut)
	}
	if !strings.Contains(out, "incident "+ins[0].ID+": playbook checkout_broken {deployment=\"checkout-api\"}: joined") {
		t.Errorf("re-run does not say it joined the open incident:\n%s", out)
	}

	// The alert resolves: the incident resolves and its postmortem is
	// drafted on its branch.
	writeFile(t, dir, "resolved.json", `[{"status": "resolved", "labels": {"alertname": "CheckoutBroken", "deployment": "checkout-api"},
  "startsAt": "2026-11-21T09:00:00Z", "endsAt": "2026-11-21T09:30:00Z", "fingerprint": "f1"}]`)
	code, out, errOut = firebreak("run", "--alert", filepath.Join(dir, "resolved.json"), dir)
	if code != 0 || !strings.Contains(out, ": resolved") {
		t.Fatalf("resolve: exit %d\n%s\n%s", code, out, errOut)
	}
	if pm := gitOut(t, dir, "show", "postmortem/"+ins[0].ID+":postmortems/"+ins[0].ID+".md"); !strings.Contains(pm, ins[0].ID) {
		t.Errorf("postmortem draft:\n%s", pm)
	}
	code, out, _ = firebreak("stats", "--format", "json", dir)
	if code != 0 || !strings.Contains(out, `"count": 1`) && !strings.Contains(out, `"incidents": 1`) {
		t.Errorf("stats: exit %d\n%s", code, out)
	}
}

func gitInit(t *testing.T, dir string) {
	t.Helper()
	gitOut(t, dir, "init", "-q", "-b", "main")
	gitOut(t, dir, "add", ".")
	gitOut(t, dir, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "playbooks")
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
