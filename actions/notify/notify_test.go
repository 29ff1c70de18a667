package notify_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/notify"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/actions/webclient"
	"github.com/firebreak-dev/firebreak/schema"
)

const (
	owner       = "@acme/payments"
	slackPath   = "/services/T0000/B0000/slackpathsecret9f3c"
	hmacKey     = "hmac-key-secret-41d2"
	routingKey  = "pd-routing-key-secret-77ab"
	githubToken = "ghp_githubtokensecret0c1e"
	querySecret = "webhook-query-secret-5a5a"
)

// received is one request as a test server saw it.
type received struct {
	method string
	uri    string
	header http.Header
	body   []byte
}

// endpoint is a test server standing in for one channel.
type endpoint struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []received
	conns atomic.Int32
}

func newEndpoint(t *testing.T, reply func(n int, w http.ResponseWriter, r *http.Request, body []byte)) *endpoint {
	t.Helper()
	e := &endpoint{}
	e.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.reqs = append(e.reqs, received{r.Method, r.URL.RequestURI(), r.Header.Clone(), body})
		n := len(e.reqs)
		e.mu.Unlock()
		reply(n, w, r, body)
	}))
	e.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			e.conns.Add(1)
		}
	}
	e.Start()
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) requests() []received {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]received(nil), e.reqs...)
}

func (e *endpoint) host() string {
	u, _ := url.Parse(e.URL)
	return u.Host
}

func ok(int, http.ResponseWriter, *http.Request, []byte) {}

// commenter records comments, or fails with err.
type commenter struct {
	mu     sync.Mutex
	bodies []string
	err    func(body string) error
}

func (c *commenter) Comment(_ context.Context, incident, body string) error {
	c.mu.Lock()
	c.bodies = append(c.bodies, incident+"|"+body)
	c.mu.Unlock()
	if c.err != nil {
		return c.err(body)
	}
	return nil
}

// fixture is a firebreak.cue with one channel of each kind, each pointing
// at its own test server, and the Env the engine would build.
type fixture struct {
	env                        *actions.Env
	slack, hook, plainHook, pd *endpoint
	comments                   *commenter
	logs                       *bytes.Buffer
	store                      *secrets.Store
	now                        time.Time
}

func newFixture(t *testing.T, reply func(n int, w http.ResponseWriter, r *http.Request, body []byte)) *fixture {
	t.Helper()
	f := &fixture{
		slack:     newEndpoint(t, reply),
		hook:      newEndpoint(t, reply),
		plainHook: newEndpoint(t, reply),
		pd:        newEndpoint(t, reply),
		comments:  &commenter{},
		logs:      &bytes.Buffer{},
		now:       time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC),
	}
	cfg := &schema.Config{
		Targets: map[string]schema.Target{
			"shop-deploy": {Git: &schema.GitTarget{URL: "https://github.com/acme/shop-deploy.git", Token: &schema.Secret{Secret: "GITHUB_TOKEN"}}},
		},
		Channels: map[string]schema.Channel{
			"oncall":        {Slack: &schema.SlackChannel{Webhook: schema.Secret{Secret: "SLACK_ONCALL"}, Host: f.slack.host()}},
			"audit":         {Webhook: &schema.WebhookChannel{URL: f.hook.URL + "/firebreak?token=" + querySecret, HMAC: &schema.Secret{Secret: "AUDIT_HMAC"}}},
			"plain":         {Webhook: &schema.WebhookChannel{URL: f.plainHook.URL + "/plain"}},
			"payments-page": {PagerDuty: &schema.PagerDutyChannel{RoutingKey: schema.Secret{Secret: "PD_PAYMENTS"}, URL: f.pd.URL + "/v2/enqueue"}},
			"issue":         {GitHub: &struct{}{}},
			"not-allowed":   {Webhook: &schema.WebhookChannel{URL: f.plainHook.URL + "/other"}},
		},
		Policy: schema.Policy{Owners: map[string]schema.OwnerPolicy{
			owner:         {Notify: []string{"oncall", "audit", "plain", "payments-page", "issue"}},
			"@acme/other": {Notify: []string{"not-allowed"}},
		}},
		GitHub: &schema.GitHub{Owner: "acme", Repo: "ops", Token: schema.Secret{Secret: "GITHUB_TOKEN"}},
	}
	f.store = secrets.NewFromMap(map[string]string{
		"SLACK_ONCALL": f.slack.URL + slackPath,
		"AUDIT_HMAC":   hmacKey,
		"PD_PAYMENTS":  routingKey,
		"GITHUB_TOKEN": githubToken,
	})
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.env = &actions.Env{
		Config:  cfg,
		Secrets: f.store,
		HTTP: webclient.New(webclient.Options{
			AllowedHosts: webclient.AllowedHosts(cfg),
			Redact:       f.store.Redact,
			Log:          log,
			RetryMax:     2,
			WaitMin:      time.Millisecond,
			WaitMax:      4 * time.Millisecond,
		}),
		Commenter: f.comments,
		Log:       log,
		Now:       func() time.Time { return f.now },
	}
	return f
}

func request(channel, text, title string) *actions.Request {
	params := map[string]any{"channel": channel, "text": text}
	if title != "" {
		params["title"] = title
	}
	return &actions.Request{
		Incident: "2026-11-21-checkout-1",
		Playbook: "checkout_crashloop",
		Owner:    owner,
		Step:     schema.Step{Name: "page", Action: "notify", Params: params, Approval: "auto"},
	}
}

func decodeJSON(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("body %q: %v", data, err)
	}
	return m
}

func TestSlack(t *testing.T) {
	f := newFixture(t, ok)
	out, err := notify.Action{}.Execute(t.Context(), f.env, request("oncall", "Rolling back checkout <!channel> & co", "Checkout down"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Target != "oncall" || !out.Changed {
		t.Errorf("outcome = %+v", out)
	}
	reqs := f.slack.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != "POST" || r.uri != slackPath || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %s %s (%s)", r.method, r.uri, r.header.Get("Content-Type"))
	}
	want := map[string]any{"text": "*Checkout down*\nRolling back checkout &lt;!channel&gt; &amp; co"}
	if got := decodeJSON(t, r.body); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("body = %v, want %v", got, want)
	}
}

// TestSlackHostMustMatch: a webhook secret pointing anywhere but the
// channel's host is refused before any connection.
func TestSlackHostMustMatch(t *testing.T) {
	f := newFixture(t, ok)
	elsewhere := newEndpoint(t, ok)
	f.env.Secrets = secrets.NewFromMap(map[string]string{"SLACK_ONCALL": elsewhere.URL + slackPath})
	_, err := notify.Action{}.Execute(t.Context(), f.env, request("oncall", "hi", ""))
	if !errors.Is(err, actions.ErrRefused) {
		t.Fatalf("error = %v, want ErrRefused", err)
	}
	if strings.Contains(err.Error(), "slackpathsecret") {
		t.Fatalf("error shows the webhook secret: %v", err)
	}
	if n := elsewhere.conns.Load() + f.slack.conns.Load(); n != 0 {
		t.Fatalf("%d connections, want 0", n)
	}
}

// TestWebhook checks the body, the timestamp and delivery headers, and
// the signature, verified the way a receiver would, with hmac.Equal.
func TestWebhook(t *testing.T) {
	f := newFixture(t, ok)
	req := request("audit", "Rolling back checkout", "Checkout down")
	if _, err := (notify.Action{}).Execute(t.Context(), f.env, req); err != nil {
		t.Fatal(err)
	}
	reqs := f.hook.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != "POST" || r.uri != "/firebreak?token="+querySecret || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %s %s (%s)", r.method, r.uri, r.header.Get("Content-Type"))
	}
	want := map[string]any{
		"incident": "2026-11-21-checkout-1", "playbook": "checkout_crashloop", "owner": owner,
		"step": "page", "title": "Checkout down", "text": "Rolling back checkout", "sent_at": "2026-11-21T10:00:00Z",
	}
	if got := decodeJSON(t, r.body); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("body = %v\nwant %v", got, want)
	}
	if got, want := r.header.Get(notify.TimestampHeader), strconv.FormatInt(f.now.Unix(), 10); got != want {
		t.Errorf("timestamp = %q, want %q", got, want)
	}
	if got := r.header.Get(notify.DeliveryHeader); got != "2026-11-21-checkout-1/page" {
		t.Errorf("delivery = %q", got)
	}
	sig, found := strings.CutPrefix(r.header.Get(notify.SignatureHeader), "sha256=")
	got, err := hex.DecodeString(sig)
	if !found || err != nil {
		t.Fatalf("signature header %q", r.header.Get(notify.SignatureHeader))
	}
	mac := hmac.New(sha256.New, []byte(hmacKey))
	mac.Write(r.body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		t.Fatal("signature does not verify")
	}
	mac = hmac.New(sha256.New, []byte("wrong key"))
	mac.Write(r.body)
	if hmac.Equal(got, mac.Sum(nil)) {
		t.Fatal("signature verifies under the wrong key")
	}
}

func TestWebhookUnsigned(t *testing.T) {
	f := newFixture(t, ok)
	if _, err := (notify.Action{}).Execute(t.Context(), f.env, request("plain", "hello", "")); err != nil {
		t.Fatal(err)
	}
	reqs := f.plainHook.requests()
	if len(reqs) != 1 || reqs[0].uri != "/plain" {
		t.Fatalf("requests = %+v", reqs)
	}
	if h := reqs[0].header.Get(notify.SignatureHeader); h != "" {
		t.Fatalf("unsigned channel sent signature %q", h)
	}
	if _, ok := decodeJSON(t, reqs[0].body)["title"]; ok {
		t.Error("body has a title though the step has none")
	}
}

// TestWebhookRetried: a 503 is retried with the same, still valid,
// signed body; a 400 is not.
func TestWebhookRetried(t *testing.T) {
	for _, tt := range []struct {
		code     int
		requests int
		fails    bool
	}{{503, 2, false}, {400, 1, true}} {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			f := newFixture(t, func(n int, w http.ResponseWriter, _ *http.Request, _ []byte) {
				if n == 1 {
					w.WriteHeader(tt.code)
				}
			})
			_, err := notify.Action{}.Execute(t.Context(), f.env, request("audit", "hello", ""))
			if (err != nil) != tt.fails {
				t.Fatalf("error = %v, want failure %v", err, tt.fails)
			}
			var se *webclient.StatusError
			if tt.fails && (!errors.As(err, &se) || se.Code != tt.code) {
				t.Fatalf("error = %v, want a StatusError %d", err, tt.code)
			}
			reqs := f.hook.requests()
			if len(reqs) != tt.requests {
				t.Fatalf("%d requests, want %d", len(reqs), tt.requests)
			}
			for _, r := range reqs {
				if string(r.body) != string(reqs[0].body) || r.header.Get(notify.SignatureHeader) != notify.Sign([]byte(hmacKey), r.body) {
					t.Fatal("a retry changed the body or broke the signature")
				}
			}
		})
	}
}

// TestPagerDuty checks the Events v2 body; executing the step again sends
// the same dedup key, so PagerDuty keeps one alert.
func TestPagerDuty(t *testing.T) {
	f := newFixture(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"status":"success","message":"Event processed","dedup_key":"firebreak-2026-11-21-checkout-1"}`)
	})
	req := request("payments-page", "Auto-mitigation failed", "Checkout down")
	for range 2 {
		if _, err := (notify.Action{}).Execute(t.Context(), f.env, req); err != nil {
			t.Fatal(err)
		}
	}
	reqs := f.pd.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		if r.method != "POST" || r.uri != "/v2/enqueue" || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("got %s %s", r.method, r.uri)
		}
		var body struct {
			RoutingKey  string `json:"routing_key"`
			EventAction string `json:"event_action"`
			DedupKey    string `json:"dedup_key"`
			Payload     struct {
				Summary, Source, Severity string
			}
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		if body.RoutingKey != routingKey || body.EventAction != "trigger" || body.DedupKey != "firebreak-2026-11-21-checkout-1" ||
			body.Payload.Summary != "Checkout down: Auto-mitigation failed" || body.Payload.Source != "firebreak" || body.Payload.Severity != "critical" {
			t.Fatalf("body = %s", r.body)
		}
	}
}

func TestGitHubComment(t *testing.T) {
	f := newFixture(t, ok)
	if _, err := (notify.Action{}).Execute(t.Context(), f.env, request("issue", "Rolled back", "Checkout")); err != nil {
		t.Fatal(err)
	}
	want := "2026-11-21-checkout-1|**Checkout**\n\nRolled back\n\n<!-- firebreak:notify 2026-11-21-checkout-1/page -->"
	if len(f.comments.bodies) != 1 || f.comments.bodies[0] != want {
		t.Fatalf("comments = %q, want %q", f.comments.bodies, want)
	}
	f.env.Commenter = nil
	if _, err := (notify.Action{}).Execute(t.Context(), f.env, request("issue", "x", "")); err == nil || !strings.Contains(err.Error(), "no GitHub commenter") {
		t.Fatalf("error = %v, want one about the missing commenter", err)
	}
}

// TestPlanSendsNothing: Plan describes the message of every channel kind
// and makes no connection and no comment.
func TestPlanSendsNothing(t *testing.T) {
	f := newFixture(t, ok)
	for _, ch := range []string{"oncall", "audit", "plain", "payments-page", "issue"} {
		out, err := notify.Action{}.Plan(t.Context(), f.env, request(ch, "Rolling back checkout", "Checkout down"))
		if err != nil {
			t.Fatalf("%s: %v", ch, err)
		}
		if out.Target != ch || !strings.Contains(out.Summary, "Checkout down") || out.Diff != "Checkout down\n\nRolling back checkout" {
			t.Errorf("%s: outcome %+v", ch, out)
		}
	}
	if n := f.slack.conns.Load() + f.hook.conns.Load() + f.plainHook.conns.Load() + f.pd.conns.Load(); n != 0 || len(f.comments.bodies) != 0 {
		t.Fatalf("Plan made %d connections and %d comments", n, len(f.comments.bodies))
	}
}

// TestRefused: the sandbox is re-checked at run time, by Plan and Execute.
func TestRefused(t *testing.T) {
	tests := []struct {
		name string
		req  func(*actions.Request)
		env  func(*fixture)
	}{
		{"undeclared channel", func(r *actions.Request) { r.Step.Params["channel"] = "nope" }, nil},
		{"channel of another owner", func(r *actions.Request) { r.Step.Params["channel"] = "not-allowed" }, nil},
		{"owner without policy", func(r *actions.Request) { r.Owner = "@acme/nobody" }, nil},
		{"host dropped from the client's allowlist", nil, func(f *fixture) {
			f.env.HTTP = webclient.New(webclient.Options{AllowedHosts: []string{"hooks.slack.com"}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, ok)
			req := request("audit", "hello", "")
			if tt.req != nil {
				tt.req(req)
			}
			if tt.env != nil {
				tt.env(f)
			} else if _, err := (notify.Action{}).Plan(t.Context(), f.env, req); !errors.Is(err, actions.ErrRefused) {
				t.Fatalf("Plan error = %v, want ErrRefused", err)
			}
			if _, err := (notify.Action{}).Execute(t.Context(), f.env, req); !errors.Is(err, actions.ErrRefused) {
				t.Fatalf("Execute error = %v, want ErrRefused", err)
			}
			if n := f.hook.conns.Load() + f.plainHook.conns.Load(); n != 0 {
				t.Fatalf("%d connections, want 0", n)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]any
		err    string
	}{
		{"ok", map[string]any{"channel": "oncall", "text": "hi", "title": "t"}, ""},
		{"no channel", map[string]any{"text": "hi"}, "channel: required"},
		{"no text", map[string]any{"channel": "oncall", "text": " "}, "text: required"},
		{"unknown parameter", map[string]any{"channel": "oncall", "text": "hi", "url": "http://x"}, "unknown field"},
		{"oversized text", map[string]any{"channel": "oncall", "text": strings.Repeat("x", notify.MaxText+1)}, "more than 40000"},
		{"oversized title", map[string]any{"channel": "oncall", "text": "x", "title": strings.Repeat("x", notify.MaxTitle+1)}, "more than 250"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := notify.Action{}.Validate(tt.params)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("Validate = %v, want %q", err, tt.err)
			}
		})
	}
}

// TestStepTimeout: a channel slower than the step's timeout fails the
// step at the deadline, and the error says so.
func TestStepTimeout(t *testing.T) {
	f := newFixture(t, func(_ int, _ http.ResponseWriter, r *http.Request, _ []byte) { <-r.Context().Done() })
	ctx, cancel := context.WithTimeoutCause(t.Context(), 300*time.Millisecond, errors.New("step timeout 300ms"))
	defer cancel()
	start := time.Now()
	_, err := notify.Action{}.Execute(ctx, f.env, request("audit", "hello", ""))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "step timeout 300ms") {
		t.Fatalf("error = %v, want the step timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("returned after %s", d)
	}
	if n := len(f.hook.requests()); n != 1 {
		t.Fatalf("%d requests, want 1 (none after the deadline)", n)
	}
}

// TestSecretsNeverLeak feeds every secret into the text and title (as an
// alert label could) and makes each channel fail in each way — an error
// body echoing the request, 5xx until retries run out, the step deadline,
// a failing commenter echoing its input — then searches errors (their
// whole chain), the log and everything the servers received.
func TestSecretsNeverLeak(t *testing.T) {
	var f *fixture
	secretValues := func() []string {
		return []string{f.slack.URL + slackPath, slackPath[1:], hmacKey, routingKey, githubToken, querySecret}
	}
	echo := func(code int) func(int, http.ResponseWriter, *http.Request, []byte) {
		return func(_ int, w http.ResponseWriter, r *http.Request, body []byte) {
			w.WriteHeader(code)
			fmt.Fprintf(w, "got %s %s sig=%s body=%s", r.Method, r.URL.RequestURI(), r.Header.Get(notify.SignatureHeader), body)
		}
	}
	failures := []struct {
		name    string
		reply   func(int, http.ResponseWriter, *http.Request, []byte)
		timeout time.Duration
	}{
		{"success", ok, 0},
		{"400 echo", echo(400), 0},
		{"503 echo", echo(503), 0},
		{"deadline", func(_ int, _ http.ResponseWriter, r *http.Request, _ []byte) { <-r.Context().Done() }, 200 * time.Millisecond},
	}
	for _, fl := range failures {
		for _, ch := range []string{"oncall", "audit", "plain", "payments-page", "issue"} {
			t.Run(fl.name+"/"+ch, func(t *testing.T) {
				f = newFixture(t, fl.reply)
				if fl.name != "success" {
					f.comments.err = func(body string) error { return fmt.Errorf("github said no to %q", body) }
				}
				// The query token of a webhook URL is in firebreak.cue, not a
				// secret; it is checked for in errors and logs, not fed in.
				all := strings.Join(secretValues()[:5], " ")
				// The store knows only what it handed out so far: notify
				// must resolve firebreak.cue's secrets before redacting.
				ctx := t.Context()
				if fl.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, fl.timeout)
					defer cancel()
				}
				req := request(ch, "label leaked: "+all, "title "+all)
				var out strings.Builder
				plan, err := notify.Action{}.Plan(ctx, f.env, req)
				if err != nil {
					t.Fatalf("Plan: %v", err)
				}
				fmt.Fprintf(&out, "plan: %+v\n", *plan)
				res, err := notify.Action{}.Execute(ctx, f.env, req)
				if (err == nil) != (fl.name == "success") {
					t.Fatalf("Execute error = %v", err)
				}
				if err != nil {
					out.WriteString(chainText(err))
				} else {
					fmt.Fprintf(&out, "outcome: %+v\n", *res)
				}
				out.WriteString(f.logs.String())
				for _, e := range []*endpoint{f.slack, f.hook, f.plainHook, f.pd} {
					for _, r := range e.requests() {
						body := r.body
						if e == f.pd {
							body = withoutRoutingKey(t, body) // it must go to PagerDuty, and only there
						}
						out.Write(body)
						out.WriteString("\n" + r.header.Get(notify.SignatureHeader) + "\n")
					}
				}
				out.WriteString(strings.Join(f.comments.bodies, "\n"))
				for _, s := range secretValues() {
					if strings.Contains(out.String(), s) {
						t.Errorf("secret %q leaked in:\n%s", s, out.String())
					}
				}
			})
		}
	}
}

func withoutRoutingKey(t *testing.T, body []byte) []byte {
	t.Helper()
	m := decodeJSON(t, body)
	delete(m, "routing_key")
	out, _ := json.Marshal(m)
	return out
}

// chainText is every message in err's chain.
func chainText(err error) string {
	var b strings.Builder
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		b.WriteString(e.Error() + "\n")
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return b.String()
}
