package verify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/actions/verify"
	"github.com/firebreak-dev/firebreak/actions/webclient"
	"github.com/firebreak-dev/firebreak/schema"
)

const (
	owner     = "@acme/payments"
	promToken = "prom-token-secret-3b7f"
)

// received is one request as a test server saw it.
type received struct {
	method string
	path   string
	query  url.Values
	header http.Header
}

type endpoint struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []received
	conns atomic.Int32
}

func newEndpoint(t *testing.T, reply func(n int, w http.ResponseWriter, r *http.Request)) *endpoint {
	t.Helper()
	e := &endpoint{}
	e.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.reqs = append(e.reqs, received{r.Method, r.URL.Path, r.URL.Query(), r.Header.Clone()})
		n := len(e.reqs)
		e.mu.Unlock()
		reply(n, w, r)
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

// newEnv returns the Env the engine would build for a firebreak.cue with a
// prometheus target "prom" at promURL (with a token when withToken) and an
// http target "shop" at shopURL; logs go to the returned buffer.
func newEnv(t *testing.T, promURL, shopURL string, withToken bool) (*actions.Env, *bytes.Buffer) {
	t.Helper()
	prom := &schema.PrometheusTarget{URL: promURL}
	if withToken {
		prom.Token = &schema.Secret{Secret: "PROM_TOKEN"}
	}
	cfg := &schema.Config{
		Targets: map[string]schema.Target{
			"prom": {Prometheus: prom},
			"shop": {HTTP: &schema.HTTPTarget{URL: shopURL}},
		},
		Policy: schema.Policy{Owners: map[string]schema.OwnerPolicy{
			owner:          {},
			"@acme/search": {Verify: []string{"shop"}},
		}},
	}
	store := secrets.NewFromMap(map[string]string{"PROM_TOKEN": promToken})
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &actions.Env{
		Config:  cfg,
		Secrets: store,
		HTTP: webclient.New(webclient.Options{
			AllowedHosts: webclient.AllowedHosts(cfg),
			Redact:       store.Redact,
			Log:          log,
			RetryMax:     1,
			WaitMin:      time.Millisecond,
			WaitMax:      4 * time.Millisecond,
		}),
		Log: log,
		Now: time.Now,
	}, logs
}

func request(params map[string]any) *actions.Request {
	return &actions.Request{
		Incident: "2026-11-21-checkout-1",
		Playbook: "checkout_crashloop",
		Owner:    owner,
		Step:     schema.Step{Name: "verify", Action: "verify", Params: params, Approval: "auto"},
	}
}

const (
	emptyVector = `{"status":"success","data":{"resultType":"vector","result":[]}}`
	oneSeries   = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"deployment":"checkout"},"value":[1763719200,"0"]}]}}`
)

// TestQueryRequest pins down the request to the Prometheus HTTP API: a
// GET under the target's base path with the query and the bearer token,
// repeated every `every` until the vector is non-empty.
func TestQueryRequest(t *testing.T) {
	prom := newEndpoint(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < 3 {
			fmt.Fprint(w, emptyVector)
			return
		}
		fmt.Fprint(w, oneSeries)
	})
	env, _ := newEnv(t, prom.URL+"/prometheus", "http://shop.invalid", true)
	query := `sum(kube_deployment_status_replicas_unavailable{deployment="checkout"}) == 0`
	out, err := verify.Action{}.Execute(t.Context(), env, request(map[string]any{"query": query, "datasource": "prom", "within": "10s", "every": "50ms"}))
	if err != nil {
		t.Fatal(err)
	}
	if out.Changed || out.Target != "prom" || !strings.Contains(out.Summary, "held after 3 check(s)") || !strings.Contains(out.Summary, `deployment="checkout"`) {
		t.Fatalf("outcome = %+v", out)
	}
	reqs := prom.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for _, r := range reqs {
		if r.method != "GET" || r.path != "/prometheus/api/v1/query" || r.query.Get("query") != query ||
			r.header.Get("Authorization") != "Bearer "+promToken || r.header.Get("Accept") != "application/json" {
			t.Fatalf("request = %+v", r)
		}
	}
}

// TestQueryFailures: answers no later check can change fail at once,
// without waiting out `within`; answers that may change keep polling.
func TestQueryFailures(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		body     string
		err      string
		notHeld  bool
		requests int // at least
	}{
		{"bad query", 400, `{"status":"error","errorType":"bad_data","error":"parse error: unexpected end of input"}`, "bad_data", false, 1},
		{"rejected token", 401, `unauthorized`, "HTTP 401", false, 1},
		{"scalar", 200, `{"status":"success","data":{"resultType":"scalar","result":[1763719200,"1"]}}`, "verify needs an instant vector", false, 1},
		{"server down", 503, `overloaded`, "last result: GET", true, 2},
		{"empty", 200, emptyVector, "last result: empty vector", true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prom := newEndpoint(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.code)
				fmt.Fprint(w, tt.body)
			})
			env, _ := newEnv(t, prom.URL, "http://shop.invalid", false)
			start := time.Now()
			_, err := verify.Action{}.Execute(t.Context(), env, request(map[string]any{"query": "up == 0", "datasource": "prom", "within": "500ms", "every": "100ms"}))
			if err == nil {
				t.Fatal("no error")
			}
			want := tt.err
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `query "up == 0" on prom`) {
				t.Errorf("error = %v, want it to name the query and say %q", err, want)
			}
			if errors.Is(err, verify.ErrNotHeld) != tt.notHeld {
				t.Errorf("errors.Is(ErrNotHeld) = %v, want %v (%v)", !tt.notHeld, tt.notHeld, err)
			}
			if !tt.notHeld && time.Since(start) > 400*time.Millisecond {
				t.Errorf("a permanent failure took %s: it waited for `within`", time.Since(start))
			}
			if n := len(prom.requests()); n < tt.requests || !tt.notHeld && n != 1 {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
		})
	}
}

// TestURL: an http check holds on 2xx only, keeps polling through other
// statuses, and never leaves the declared hosts.
func TestURL(t *testing.T) {
	undeclared := newEndpoint(t, func(int, http.ResponseWriter, *http.Request) {})
	shop := newEndpoint(t, func(n int, w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/away":
			http.Redirect(w, r, undeclared.URL+"/healthz", http.StatusFound)
		case r.URL.Path == "/missing":
			w.WriteHeader(http.StatusNotFound)
		case n == 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	tests := []struct {
		name    string
		url     string
		holds   bool
		refused bool
		err     string
	}{
		{"503 then 200", shop.URL + "/healthz", true, false, ""},
		{"404 until within", shop.URL + "/missing", false, false, "last result: HTTP 404"},
		{"redirect to an undeclared host", shop.URL + "/away", false, true, "host not declared"},
		{"undeclared host", undeclared.URL + "/healthz", false, true, "not a declared http or prometheus target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _ := newEnv(t, "http://prometheus.invalid:9090", shop.URL, false)
			out, err := verify.Action{}.Execute(t.Context(), env, request(map[string]any{"url": tt.url, "within": "400ms", "every": "50ms"}))
			if tt.holds {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out.Summary, "answers 2xx held") {
					t.Fatalf("outcome = %+v", out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || errors.Is(err, actions.ErrRefused) != tt.refused {
				t.Fatalf("error = %v, want %q (refused %v)", err, tt.err, tt.refused)
			}
			if n := undeclared.conns.Load(); n != 0 {
				t.Fatalf("%d connections to the undeclared host", n)
			}
		})
	}
}

// TestRefused: the sandbox is re-checked at run time.
func TestRefused(t *testing.T) {
	prom := newEndpoint(t, func(int, http.ResponseWriter, *http.Request) {})
	tests := []struct {
		name   string
		owner  string
		params map[string]any
		paused bool
	}{
		{"undeclared datasource", owner, map[string]any{"query": "up", "datasource": "nope", "within": "1s"}, false},
		{"datasource not prometheus", owner, map[string]any{"query": "up", "datasource": "shop", "within": "1s"}, false},
		{"datasource outside the owner's verify list", "@acme/search", map[string]any{"query": "up", "datasource": "prom", "within": "1s"}, false},
		{"owner without policy", "@acme/nobody", map[string]any{"query": "up", "datasource": "prom", "within": "1s"}, false},
		{"undeclared url", owner, map[string]any{"url": "http://169.254.169.254/latest/meta-data", "within": "1s"}, false},
		{"paused", owner, map[string]any{"query": "up", "datasource": "prom", "within": "1s"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _ := newEnv(t, prom.URL, "http://shop.invalid", false)
			env.Config.Policy.Paused = tt.paused
			req := request(tt.params)
			req.Owner = tt.owner
			for name, run := range map[string]func(context.Context, *actions.Env, *actions.Request) (*actions.Outcome, error){
				"Plan": verify.Action{}.Plan, "Execute": verify.Action{}.Execute,
			} {
				if _, err := run(t.Context(), env, req); !errors.Is(err, actions.ErrRefused) {
					t.Fatalf("%s error = %v, want ErrRefused", name, err)
				}
			}
			if n := prom.conns.Load(); n != 0 {
				t.Fatalf("%d connections", n)
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
		{"query", map[string]any{"query": "up", "datasource": "prom", "within": "10m", "every": "30s"}, ""},
		{"url", map[string]any{"url": "https://shop.example.com/healthz", "within": "1m"}, ""},
		{"neither", map[string]any{"within": "1m"}, "exactly one of query or url"},
		{"both", map[string]any{"query": "up", "datasource": "prom", "url": "https://x", "within": "1m"}, "exactly one of query or url"},
		{"query without datasource", map[string]any{"query": "up", "within": "1m"}, "datasource: required"},
		{"url with datasource", map[string]any{"url": "https://x", "datasource": "prom", "within": "1m"}, "only with query"},
		{"no within", map[string]any{"query": "up", "datasource": "prom"}, "within"},
		{"zero every", map[string]any{"query": "up", "datasource": "prom", "within": "1m", "every": "0s"}, "every"},
		{"relative url", map[string]any{"url": "/healthz", "within": "1m"}, "absolute http(s) URL"},
		{"oversized query", map[string]any{"query": strings.Repeat("x", verify.MaxQuery+1), "datasource": "prom", "within": "1m"}, "more than"},
		{"unknown parameter", map[string]any{"query": "up", "datasource": "prom", "within": "1m", "target": "x"}, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verify.Action{}.Validate(tt.params)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("Validate = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestPlanQueriesNothing(t *testing.T) {
	prom := newEndpoint(t, func(int, http.ResponseWriter, *http.Request) {})
	env, _ := newEnv(t, prom.URL, "http://shop.invalid", true)
	out, err := verify.Action{}.Plan(t.Context(), env, request(map[string]any{"query": "up == 1", "datasource": "prom", "within": "10m"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := `would check every 15s, for up to 10m0s, that query "up == 1" on prom`; out.Summary != want || out.Changed {
		t.Fatalf("outcome = %+v, want summary %q", out, want)
	}
	if n := prom.conns.Load(); n != 0 {
		t.Fatalf("%d connections", n)
	}
}

// TestSecretsNeverLeak: the token comes back in an error body, and a
// secret rendered into the query appears in every result; neither reaches
// the error (its whole chain) or the log.
func TestSecretsNeverLeak(t *testing.T) {
	for _, code := range []int{401, 503, 200} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			prom := newEndpoint(t, func(_ int, w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(code)
				if code == 200 {
					fmt.Fprintf(w, `{"status":"error","errorType":"execution","error":"echo %s %s"}`, r.Header.Get("Authorization"), strings.ReplaceAll(r.URL.Query().Get("query"), `"`, `'`))
					return
				}
				fmt.Fprintf(w, "auth=%s query=%s", r.Header.Get("Authorization"), r.URL.RawQuery)
			})
			env, logs := newEnv(t, prom.URL, "http://shop.invalid", true)
			_, err := verify.Action{}.Execute(t.Context(), env, request(map[string]any{
				"query": `up{leaked="` + promToken + `"} == 0`, "datasource": "prom", "within": "300ms", "every": "100ms",
			}))
			if err == nil {
				t.Fatal("no error")
			}
			out := chainText(err) + logs.String()
			if strings.Contains(out, promToken) {
				t.Fatalf("token leaked:\n%s", out)
			}
		})
	}
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
