package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
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

	// The same alert again: the git steps find their commits and do
	// nothing; nothing new is pushed.
	after := srv.Head("deploy")
	code, out, errOut = firebreak("run", "--alert", filepath.Join(dir, "alert.json"), dir)
	if code != 0 || srv.Head("deploy") != after {
		t.Fatalf("re-run: exit %d, head moved %v\n%s\n%s", code, srv.Head("deploy") != after, out, errOut)
	}
	if !strings.Contains(out, "already") {
		t.Errorf("re-run does not say the changes were already there:\n%s", out)
	}
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
