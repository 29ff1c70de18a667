package serve_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/registry"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/actions/webclient"
	"github.com/firebreak-dev/firebreak/engine/ledger"
	"github.com/firebreak-dev/firebreak/engine/plan"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/engine/serve"
	"github.com/firebreak-dev/firebreak/schema"
)

const (
	apiToken = "api-T0KEN-value-123"
	ghSecret = "gh-webhook-secret"
	pdSecret = "pd-webhook-secret"
)

const playbook = `package playbooks

chatty: {
	title:    "chatty \(alert.labels.service)"
	owner:    "@acme/team"
	severity: "info"
	match: labels: alertname: "Chatty"
	group_by: ["service"]
	steps: [{notify: {channel: "hook", text: "chatty \(alert.labels.service)"}}]
}
`

// site is a playbook repository (local git), a webhook receiver for
// notify, a journal, and a server on loopback.
type site struct {
	t       *testing.T
	dir     string
	journal string
	hooks   *counter
	url     string
	cancel  context.CancelFunc
	done    chan error
}

type counter struct {
	mu    sync.Mutex
	texts []string
	block chan struct{} // when set, deliveries wait on it
}

func (c *counter) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.texts...)
}

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{t: t, dir: t.TempDir(), journal: filepath.Join(t.TempDir(), "journal"), hooks: &counter{}}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		if b := s.hooks.block; b != nil {
			<-b
		}
		s.hooks.mu.Lock()
		s.hooks.texts = append(s.hooks.texts, string(data))
		s.hooks.mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	s.write("firebreak.cue", fmt.Sprintf(`
channels: hook: webhook: url: %q
policy: {limits: runs_per_hour: 1000, owners: "@acme/team": notify: ["hook"]}
`, hook.URL))
	s.write("playbooks/p.cue", playbook)
	s.git("init", "-q", "-b", "main")
	s.git("add", ".")
	s.git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "playbooks")
	return s
}

func (s *site) write(name, content string) {
	s.t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *site) git(args ...string) string {
	s.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = s.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// journalEmpty: the journal holds no entry pending, as a process opening
// it now would read it.
func (s *site) journalEmpty() bool {
	j, err := serve.OpenJournal(s.journal)
	if err != nil {
		s.t.Fatal(err)
	}
	ids, err := j.Pending()
	return err == nil && len(ids) == 0
}

func (s *site) config(l *ledger.Ledger) serve.Config {
	j, err := serve.OpenJournal(s.journal)
	if err != nil {
		s.t.Fatal(err)
	}
	sec := secrets.NewFromMap(nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return serve.Config{
		Journal: j, Branch: "main",
		APIToken: []byte(apiToken), GitHubSecret: []byte(ghSecret), PagerDutySecret: []byte(pdSecret),
		MaxBody: 1 << 20, Workers: 2, Log: log,
		Load: func(ctx context.Context) (*respond.Engine, error) {
			r, err := repo.Load(s.dir)
			if err != nil {
				return nil, err
			}
			if !r.Valid() {
				return nil, fmt.Errorf("%d problems: %v", len(r.Diagnostics), r.Diagnostics[0])
			}
			p, err := plan.New(r)
			if err != nil {
				return nil, err
			}
			env := &actions.Env{Config: r.Config, Secrets: sec, Log: log,
				HTTP: webclient.New(webclient.Options{AllowedHosts: webclient.AllowedHosts(r.Config)}),
				Git:  gitrepo.NewStore(s.t.TempDir(), log)}
			return &respond.Engine{Repo: r, Planner: p, Ledger: l, Branch: "main", Log: log,
				Runner: &run.Runner{Env: env, Actions: registry.Actions, Log: log}}, nil
		},
	}
}

// start runs a server; stop (or the test's end) shuts it down.
func (s *site) start(mod func(*serve.Config)) *serve.Server {
	s.t.Helper()
	l, err := ledger.OpenLocal(s.dir, ledger.Options{})
	if err != nil {
		s.t.Fatal(err)
	}
	cfg := s.config(l)
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := serve.New(ctx, cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	s.url, s.cancel, s.done = "http://"+ln.Addr().String(), cancel, make(chan error, 1)
	go func() { s.done <- srv.Serve(ctx, ln, 5*time.Second); l.Close() }()
	s.t.Cleanup(s.stop)
	return srv
}

func (s *site) stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
		s.cancel = nil
	}
}

func (s *site) post(path, body string, headers ...string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.url+path, strings.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func (s *site) get(path string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// incidents lists the incident files committed.
func (s *site) incidents() []string {
	return strings.Fields(s.git("ls-tree", "-r", "--name-only", "HEAD", "incidents"))
}

func (s *site) waitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func amBody(status string, services ...string) string {
	var alerts []string
	for _, svc := range services {
		alerts = append(alerts, fmt.Sprintf(`{"status": %q, "labels": {"alertname": "Chatty", "service": %q}, "annotations": {},
			"startsAt": "2026-11-21T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "fp-%s"}`, status, svc, svc))
	}
	return fmt.Sprintf(`{"version": "4", "status": %q, "receiver": "firebreak", "groupKey": "{}", "truncatedAlerts": 0, "alerts": [%s]}`,
		status, strings.Join(alerts, ","))
}

var bearer = []string{"Authorization", "Bearer " + apiToken}

func TestRefusesToStartOpen(t *testing.T) {
	s := newSite(t)
	l, err := ledger.OpenLocal(s.dir, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := s.config(l)
	cfg.APIToken = nil
	if _, err := serve.New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("started without a token: %v", err)
	}
	cfg.Insecure = true
	if _, err := serve.New(t.Context(), cfg); err != nil {
		t.Fatalf("--insecure: %v", err)
	}
}

// TestAcceptAndHandle: an Alertmanager batch is accepted with 202 and
// becomes incidents in the repository; a repeat joins and runs nothing.
func TestAcceptAndHandle(t *testing.T) {
	s := newSite(t)
	s.start(nil)
	code, body := s.post("/v1/alerts/alertmanager", amBody("firing", "a", "b"), bearer...)
	if code != http.StatusAccepted || !strings.Contains(body, `"accepted":2`) {
		t.Fatalf("%d %s", code, body)
	}
	s.waitFor("two incidents", func() bool { return len(s.incidents()) == 2 && len(s.hooks.all()) == 2 })
	s.waitFor("the journal to drain", s.journalEmpty)
	code, _ = s.post("/v1/alerts/alertmanager", amBody("firing", "a", "b"), bearer...)
	if code != http.StatusAccepted {
		t.Fatal(code)
	}
	s.waitFor("the repeat to be handled", s.journalEmpty)
	time.Sleep(100 * time.Millisecond)
	if len(s.incidents()) != 2 || len(s.hooks.all()) != 2 {
		t.Errorf("a repeat ran again: %d incidents, %d deliveries", len(s.incidents()), len(s.hooks.all()))
	}
	code, body = s.get("/v1/incidents")
	if code != http.StatusOK || strings.Count(body, `"id":`) != 2 {
		t.Errorf("GET /v1/incidents: %d %s", code, body)
	}
	code, body = s.get("/metrics")
	if code != http.StatusOK || !strings.Contains(body, `firebreak_alerts_received_total{outcome="accepted",source="alertmanager"} 4`) {
		t.Errorf("metrics:\n%s", body)
	}
	// Two webhooks accepted, each decided once; two incidents opened,
	// each one's first step timed.
	for _, series := range []string{"firebreak_decision_latency_seconds_count 2", "firebreak_first_action_latency_seconds_count 2"} {
		if !strings.Contains(body, series+"\n") {
			t.Errorf("metrics: no %q", series)
		}
	}
	// Each accepted webhook waited for a journal sync.
	if m := regexp.MustCompile(`firebreak_journal_sync_seconds_count (\d+)\n`).FindStringSubmatch(body); m == nil || m[1] == "0" {
		t.Errorf("metrics: journal syncs not counted (%v)", m)
	}
	if code, body := s.get("/readyz"); code != http.StatusOK {
		t.Errorf("readyz %d %s", code, body)
	}
}

// TestBadRequests: every bad request gets a 4xx with a one-line reason.
func TestBadRequests(t *testing.T) {
	s := newSite(t)
	s.start(nil)
	cases := []struct {
		name, path, body string
		headers          []string
		code             int
		reason           string
	}{
		{"no token", "/v1/alerts/alertmanager", amBody("firing", "a"), nil, 401, "bearer token"},
		{"wrong token", "/v1/alerts/alertmanager", amBody("firing", "a"), []string{"Authorization", "Bearer nope"}, 401, "bearer token"},
		{"truncated", "/v1/alerts/alertmanager", `{"version": "4", "alerts": [`, bearer, 400, "request body:"},
		{"wrong type", "/v1/alerts/alertmanager", `{"version": "4", "alerts": [{"labels": 7}]}`, bearer, 400, "labels"},
		{"too big", "/v1/alerts", `[` + strings.Repeat(" ", 2<<20) + `]`, bearer, 413, "larger than"},
		{"pagerduty unsigned", "/v1/alerts/pagerduty", `{"event": {}}`, nil, 401, "signature"},
		{"github unsigned", "/v1/github", `{}`, []string{"X-GitHub-Event", "push"}, 401, "signature"},
		{"github bad signature", "/v1/github", `{}`, []string{"X-GitHub-Event", "push", "X-Hub-Signature-256", "sha256=00"}, 401, "signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := s.post(c.path, c.body, c.headers...)
			if code != c.code || !strings.Contains(body, c.reason) || strings.Count(strings.TrimSpace(body), "\n") != 0 {
				t.Errorf("%d %q, want %d with %q on one line", code, body, c.code, c.reason)
			}
		})
	}
	if len(s.incidents()) != 0 {
		t.Error("a bad request made an incident")
	}
}

// TestJournalSurvivesCrash: alerts accepted (in the journal) but not yet
// handled when the server died are handled on the next start.
func TestJournalSurvivesCrash(t *testing.T) {
	s := newSite(t)
	j, err := serve.OpenJournal(s.journal)
	if err != nil {
		t.Fatal(err)
	}
	a := schema.Alert{Source: "alertmanager", Status: "firing", Fingerprint: "fp-z", Labels: map[string]string{"alertname": "Chatty", "service": "z"},
		StartsAt: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)}
	if _, err := j.Append(&serve.Entry{Source: "alertmanager", Received: time.Now(), Alerts: []schema.Alert{a}}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.journal, "cut-short.json.tmp"), []byte(`{"sour`), 0o600)
	s.start(nil)
	s.waitFor("the journaled alert's incident", func() bool { return len(s.incidents()) == 1 })
	s.waitFor("the journal to drain", s.journalEmpty)
}

// TestJournalBacklogBeyondMaxPending: a journal left holding more entries
// than --max-pending is handled whole in this start, as handling frees
// room, not left for the next one.
func TestJournalBacklogBeyondMaxPending(t *testing.T) {
	s := newSite(t)
	j, err := serve.OpenJournal(s.journal)
	if err != nil {
		t.Fatal(err)
	}
	const n = 7
	for i := range n {
		svc := fmt.Sprintf("svc-%d", i)
		a := schema.Alert{Source: "alertmanager", Status: "firing", Fingerprint: "fp-" + svc,
			Labels:   map[string]string{"alertname": "Chatty", "service": svc},
			StartsAt: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)}
		if _, err := j.Append(&serve.Entry{Source: "alertmanager", Received: time.Now(), Alerts: []schema.Alert{a}}); err != nil {
			t.Fatal(err)
		}
	}
	s.start(func(c *serve.Config) { c.MaxPending, c.Workers = 2, 1 })
	s.waitFor("every journaled alert's incident", func() bool { return len(s.incidents()) == n })
	s.waitFor("the journal to drain", s.journalEmpty)
	// Still accepting: the backlog's slots were all given back.
	if code, body := s.post("/v1/alerts/alertmanager", amBody("firing", "late"), bearer...); code != http.StatusAccepted {
		t.Fatalf("after the backlog: %d %s", code, body)
	}
	s.waitFor("the late alert's incident", func() bool { return len(s.incidents()) == n+1 })
}

// TestPagerDutyDuplicate: a signed PagerDuty webhook is accepted once;
// the same X-Webhook-Id again is a duplicate.
func TestPagerDutyDuplicate(t *testing.T) {
	s := newSite(t)
	s.start(nil)
	body := `{"event": {"id": "ev1", "event_type": "incident.triggered", "resource_type": "incident", "occurred_at": "2026-11-21T09:00:00Z",
		"data": {"id": "PD1", "type": "incident", "title": "Chatty on api", "status": "triggered", "service": {"id": "S1", "summary": "api"}}}}`
	mac := hmac.New(sha256.New, []byte(pdSecret))
	mac.Write([]byte(body))
	sig := "v1=" + hex.EncodeToString(mac.Sum(nil))
	code, resp := s.post("/v1/alerts/pagerduty", body, "X-PagerDuty-Signature", "v1=00,"+sig, "X-Webhook-Id", "w-1")
	if code != http.StatusAccepted {
		t.Fatalf("%d %s", code, resp)
	}
	code, resp = s.post("/v1/alerts/pagerduty", body, "X-PagerDuty-Signature", sig, "X-Webhook-Id", "w-1")
	if code != http.StatusOK || !strings.Contains(resp, "duplicate") {
		t.Errorf("redelivery: %d %s", code, resp)
	}
	code, _ = s.post("/v1/alerts/pagerduty", body+" ", "X-PagerDuty-Signature", sig, "X-Webhook-Id", "w-2")
	if code != http.StatusUnauthorized {
		t.Errorf("signature of another body accepted: %d", code)
	}
}

// TestReloadOnPush: a verified push to the playbook branch reloads the
// playbooks; an invalid set is refused and the old one keeps running.
func TestReloadOnPush(t *testing.T) {
	s := newSite(t)
	s.start(nil)
	push := func() int {
		body := `{"ref": "refs/heads/main", "before": "a", "after": "b", "repository": {"full_name": "acme/ops"}}`
		mac := hmac.New(sha256.New, []byte(ghSecret))
		mac.Write([]byte(body))
		code, _ := s.post("/v1/github", body, "X-GitHub-Event", "push", "X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		return code
	}
	metric := func(result string) bool {
		_, m := s.get("/metrics")
		return strings.Contains(m, `firebreak_playbook_reloads_total{result="`+result+`"} 1`)
	}
	s.write("playbooks/p.cue", strings.Replace(playbook, `severity: "info"`, `severity: "bogus"`, 1))
	if code := push(); code != http.StatusAccepted {
		t.Fatalf("push: %d", code)
	}
	s.waitFor("the invalid reload to be refused", func() bool { return metric("invalid") })
	// Still running the old playbooks.
	s.post("/v1/alerts/alertmanager", amBody("firing", "old"), bearer...)
	s.waitFor("an incident under the old playbooks", func() bool { return len(s.incidents()) == 1 })

	s.write("playbooks/p.cue", strings.Replace(playbook, `"Chatty"`, `"Noisy"`, 1))
	push()
	s.waitFor("the reload", func() bool { return metric("ok") })
	s.post("/v1/alerts/alertmanager", amBody("firing", "new"), bearer...)
	time.Sleep(300 * time.Millisecond)
	if n := len(s.incidents()); n != 1 {
		t.Errorf("after the reload Chatty still matched: %d incidents", n)
	}
}

// TestOverloadAnswers503: beyond MaxPending waiting requests the server
// answers 503 with Retry-After, and what it accepted is still handled.
func TestOverloadAnswers503(t *testing.T) {
	s := newSite(t)
	s.hooks.block = make(chan struct{})
	s.start(func(c *serve.Config) { c.MaxPending, c.Workers = 2, 1 })
	codes := map[int]int{}
	for i := range 5 {
		code, _ := s.post("/v1/alerts/alertmanager", amBody("firing", fmt.Sprint("svc", i)), bearer...)
		codes[code]++
	}
	if codes[http.StatusAccepted] != 2 || codes[http.StatusServiceUnavailable] != 3 {
		t.Errorf("codes %v, want 2×202 and 3×503", codes)
	}
	close(s.hooks.block)
	s.waitFor("the accepted two", func() bool { return len(s.incidents()) == 2 })
}

// TestAnswerNotHeldBySteps: wired as serve wires it (a Recorder, run
// slots), a request is decided by its own goroutine, and its 2xx reaches
// the sender whole while the steps it started still run.
func TestAnswerNotHeldBySteps(t *testing.T) {
	s := newSite(t)
	s.hooks.block = make(chan struct{})
	s.start(func(c *serve.Config) {
		load := c.Load
		var rec *respond.Recorder
		c.Load = func(ctx context.Context) (*respond.Engine, error) {
			e, err := load(ctx)
			if err != nil {
				return nil, err
			}
			if rec == nil {
				if rec, err = respond.NewRecorder(ctx, e.Ledger, e.Repo.Config.Paths.Incidents, c.Log); err != nil {
					return nil, err
				}
			}
			e.Recorder, e.RunSlots = rec, respond.NewRunSlots(4)
			return e, nil
		}
	})
	for i := range 3 {
		done := make(chan int, 1)
		go func() {
			code, _ := s.post("/v1/alerts/alertmanager", amBody("firing", fmt.Sprint("held", i)), bearer...)
			done <- code
		}()
		select {
		case code := <-done:
			if code != http.StatusAccepted {
				t.Fatalf("request %d: %d, want 202", i, code)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d: no answer while its steps wait", i)
		}
	}
	close(s.hooks.block)
	s.waitFor("three incidents", func() bool { return len(s.incidents()) == 3 })
	s.waitFor("the journal to drain", s.journalEmpty)
}

// TestGrafanaSignature: with a Grafana secret, Grafana's HMAC (over the
// body, or "timestamp:body") replaces the bearer token.
func TestGrafanaSignature(t *testing.T) {
	s := newSite(t)
	s.start(func(c *serve.Config) {
		c.GrafanaSecret, c.GrafanaHeader = []byte("graf-secret"), "X-Grafana-Alerting-Signature"
	})
	body, err := os.ReadFile("../../testdata/sources/grafana/firing.json")
	if err != nil {
		t.Fatal(err)
	}
	sign := func(msg string) string {
		mac := hmac.New(sha256.New, []byte("graf-secret"))
		mac.Write([]byte(msg))
		return hex.EncodeToString(mac.Sum(nil))
	}
	if code, resp := s.post("/v1/alerts/grafana", string(body), "X-Grafana-Alerting-Signature", sign(string(body))); code != http.StatusAccepted {
		t.Errorf("signed body: %d %s", code, resp)
	}
	if code, resp := s.post("/v1/alerts/grafana", string(body), "X-Grafana-Alerting-Signature", sign("1700000000:"+string(body)),
		"X-Grafana-Alerting-Timestamp", "1700000000"); code != http.StatusAccepted {
		t.Errorf("signed timestamp and body: %d %s", code, resp)
	}
	if code, _ := s.post("/v1/alerts/grafana", string(body), "X-Grafana-Alerting-Signature", sign(string(body)),
		"X-Grafana-Alerting-Timestamp", "1700000001"); code != http.StatusUnauthorized {
		t.Errorf("a replayed signature under another timestamp: %d", code)
	}
	if code, _ := s.post("/v1/alerts/grafana", string(body), bearer...); code != http.StatusUnauthorized {
		t.Errorf("bearer instead of the signature: %d", code)
	}
}
