package webclient_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions/webclient"
	"github.com/firebreak-dev/firebreak/schema"
)

// recorded is one request as a test server saw it.
type recorded struct {
	at     time.Time
	method string
	path   string
	header http.Header
	body   string
}

// server is an httptest server that records requests and counts
// connections, answering with reply.
type server struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []recorded
	conns atomic.Int32
}

func newServer(t *testing.T, reply func(n int, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{at, r.Method, r.URL.Path, r.Header.Clone(), string(body)})
		n := len(s.reqs)
		s.mu.Unlock()
		reply(n, w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

func host(s *httptest.Server) string {
	u, _ := url.Parse(s.URL)
	return u.Host
}

func fastClient(opts webclient.Options) *webclient.Client {
	if opts.RetryMax == 0 {
		opts.RetryMax = 2
	}
	opts.WaitMin, opts.WaitMax = time.Millisecond, 4*time.Millisecond
	return webclient.New(opts)
}

func post(t *testing.T, ctx context.Context, c *webclient.Client, target, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return c.Do(ctx, req)
}

// TestStatusRetryTable pins down which statuses are retried: every attempt
// is a POST with the same path, header and body, and the error is a
// StatusError with the code and the server's body.
func TestStatusRetryTable(t *testing.T) {
	const retryMax = 2
	tests := []struct {
		code     int
		attempts int
	}{
		{http.StatusInternalServerError, retryMax + 1},
		{http.StatusBadGateway, retryMax + 1},
		{http.StatusServiceUnavailable, retryMax + 1},
		{http.StatusGatewayTimeout, retryMax + 1},
		{http.StatusTooManyRequests, retryMax + 1},
		{http.StatusNotImplemented, 1}, // a server that cannot do this will not learn by retrying
		{http.StatusBadRequest, 1},
		{http.StatusUnauthorized, 1},
		{http.StatusForbidden, 1},
		{http.StatusNotFound, 1},
		{http.StatusConflict, 1},
		{http.StatusUnprocessableEntity, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.code)
				fmt.Fprint(w, "server says no")
			})
			c := fastClient(webclient.Options{AllowedHosts: []string{host(srv.Server)}, RetryMax: retryMax})
			resp, err := post(t, t.Context(), c, srv.URL+"/hook", `{"a":1}`)
			if resp != nil {
				t.Fatalf("got a response with status %d, want an error", resp.StatusCode)
			}
			var se *webclient.StatusError
			if !errors.As(err, &se) || se.Code != tt.code || se.Body != "server says no" {
				t.Fatalf("error = %v, want a StatusError %d with the body", err, tt.code)
			}
			if got, want := webclient.Retryable(tt.code), tt.attempts > 1; got != want {
				t.Errorf("Retryable(%d) = %v, want %v", tt.code, got, want)
			}
			reqs := srv.requests()
			if len(reqs) != tt.attempts {
				t.Fatalf("server saw %d requests, want %d", len(reqs), tt.attempts)
			}
			for i, r := range reqs {
				if r.method != "POST" || r.path != "/hook" || r.body != `{"a":1}` || r.header.Get("Content-Type") != "application/json" {
					t.Errorf("attempt %d = %s %s %q %q, want the same POST each time", i, r.method, r.path, r.header.Get("Content-Type"), r.body)
				}
			}
		})
	}
}

// TestRetryRecovers shows a retried request succeeding once the server
// recovers, with the response handed back open.
func TestRetryRecovers(t *testing.T) {
	srv := newServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, "ok")
	})
	c := fastClient(webclient.Options{AllowedHosts: []string{host(srv.Server)}, RetryMax: 3})
	resp, err := post(t, t.Context(), c, srv.URL, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok" || len(srv.requests()) != 3 {
		t.Fatalf("got %d %q after %d requests, want 200 ok after 3", resp.StatusCode, body, len(srv.requests()))
	}
}

// TestRetryAfter measures the gap between the first and second request on
// the server's clock: the wait honours Retry-After in seconds and as an
// HTTP date, capped by RetryAfterMax. Backoff without it would be ~1ms.
func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		code       int
		retryAfter func() string
		cap        time.Duration
		atLeast    time.Duration
		below      time.Duration
	}{
		{"429 seconds", 429, func() string { return "1" }, 0, time.Second, 0},
		{"503 seconds", 503, func() string { return "1" }, 0, time.Second, 0},
		{"429 http date", 429, func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }, 0, 950 * time.Millisecond, 0},
		{"429 capped", 429, func() string { return "3600" }, 300 * time.Millisecond, 300 * time.Millisecond, 3 * time.Second},
		{"429 date in the past", 429, func() string { return "Mon, 02 Jan 2006 15:04:05 GMT" }, 0, 0, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					w.Header().Set("Retry-After", tt.retryAfter())
					w.WriteHeader(tt.code)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			})
			c := fastClient(webclient.Options{AllowedHosts: []string{host(srv.Server)}, RetryAfterMax: tt.cap})
			resp, err := post(t, t.Context(), c, srv.URL, "x")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			reqs := srv.requests()
			if len(reqs) != 2 {
				t.Fatalf("server saw %d requests, want 2", len(reqs))
			}
			gap := reqs[1].at.Sub(reqs[0].at)
			if gap < tt.atLeast || tt.below > 0 && gap >= tt.below {
				t.Fatalf("second request came %s after the first, want at least %s (and below %s)", gap, tt.atLeast, tt.below)
			}
		})
	}
}

// TestRetryAfterPastDeadline: a Retry-After the context's deadline would
// cut short is not waited for; the 429 comes back at once.
func TestRetryAfterPastDeadline(t *testing.T) {
	srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	c := fastClient(webclient.Options{AllowedHosts: []string{host(srv.Server)}})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := post(t, ctx, c, srv.URL, "x")
	var se *webclient.StatusError
	if !errors.As(err, &se) || se.Code != 429 || ctx.Err() != nil {
		t.Fatalf("error = %v (ctx %v), want the 429 before the deadline", err, ctx.Err())
	}
	if n := len(srv.requests()); n != 1 {
		t.Fatalf("server saw %d requests, want 1", n)
	}
}

// TestConnectionErrorsRetried: a server that drops every connection is
// tried RetryMax+1 times.
func TestConnectionErrorsRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	c := fastClient(webclient.Options{AllowedHosts: []string{ln.Addr().String()}, RetryMax: 3})
	_, err = post(t, t.Context(), c, "http://"+ln.Addr().String()+"/x", "x")
	var se *webclient.StatusError
	if err == nil || errors.As(err, &se) {
		t.Fatalf("error = %v, want a connection error", err)
	}
	if n := accepted.Load(); n != 4 {
		t.Fatalf("%d connections, want 4 (1 + RetryMax 3)", n)
	}
}

// TestDeadline: a slow endpoint runs into the context's deadline (the
// step timeout); the error says so and wraps context.DeadlineExceeded,
// and nothing is retried after it. No http.Client.Timeout is involved.
func TestDeadline(t *testing.T) {
	srv := newServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	c := fastClient(webclient.Options{AllowedHosts: []string{host(srv.Server)}})
	if to := c.StandardClient().Timeout; to != 0 {
		t.Fatalf("StandardClient().Timeout = %s, want 0: deadlines come from contexts", to)
	}
	ctx, cancel := context.WithTimeoutCause(t.Context(), 200*time.Millisecond, errors.New("step timeout 200ms exceeded"))
	defer cancel()
	start := time.Now()
	_, err := post(t, ctx, c, srv.URL, "x")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want context.DeadlineExceeded", err)
	}
	for _, want := range []string{"deadline", "step timeout 200ms exceeded"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Do returned after %s, not at the deadline", d)
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

// TestUndeclaredHost: a host, or a port, not on the list is refused before
// any connection is made, by Do and by StandardClient.
func TestUndeclaredHost(t *testing.T) {
	srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {})
	_, port, _ := net.SplitHostPort(host(srv.Server))
	tests := []struct {
		name    string
		allowed []string
		target  string
	}{
		{"other host", []string{"hooks.slack.com"}, srv.URL + "/x"},
		{"same host, other port", []string{"127.0.0.1:1"}, srv.URL + "/x"},
		{"host without port allows default ports only", []string{"127.0.0.1"}, srv.URL + "/x"},
		{"localhost is not 127.0.0.1", []string{"localhost:" + port}, srv.URL + "/x"},
		{"not http", []string{host(srv.Server)}, "ftp://" + host(srv.Server) + "/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fastClient(webclient.Options{AllowedHosts: tt.allowed})
			_, err := post(t, t.Context(), c, tt.target, "x")
			if !errors.Is(err, webclient.ErrHostNotAllowed) {
				t.Fatalf("Do error = %v, want ErrHostNotAllowed", err)
			}
			req, _ := http.NewRequestWithContext(t.Context(), "GET", tt.target, nil)
			if resp, err := c.StandardClient().Do(req); !errors.Is(err, webclient.ErrHostNotAllowed) {
				if resp != nil {
					resp.Body.Close()
				}
				t.Fatalf("StandardClient error = %v, want ErrHostNotAllowed", err)
			}
			if n := srv.conns.Load(); n != 0 {
				t.Fatalf("%d connections were made, want 0", n)
			}
		})
	}
}

func TestAllowedHostMatching(t *testing.T) {
	tests := []struct {
		allowed string
		target  string
		ok      bool
	}{
		{"hooks.slack.com", "https://hooks.slack.com/services/x", true},
		{"hooks.slack.com", "https://HOOKS.slack.com:443/x", true},
		{"hooks.slack.com", "https://hooks.slack.com:8443/x", false},
		{"hooks.slack.com", "https://evil.hooks.slack.com/x", false},
		{"hooks.slack.com", "https://hooks.slack.com.evil.com/x", false},
		{"prometheus:9090", "http://prometheus:9090/api/v1/query", true},
		{"prometheus:9090", "http://prometheus/api/v1/query", false},
		{"example.com:443", "https://example.com/x", true},
		{"[::1]:8080", "http://[::1]:8080/x", true},
	}
	for _, tt := range tests {
		t.Run(tt.allowed+" "+tt.target, func(t *testing.T) {
			// A transport that fails every request shows the allowlist let
			// it through without any network.
			errPassed := errors.New("passed the allowlist")
			c := webclient.New(webclient.Options{AllowedHosts: []string{tt.allowed}, RetryMax: -1,
				Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errPassed })})
			req, _ := http.NewRequestWithContext(t.Context(), "GET", tt.target, nil)
			_, err := c.Do(t.Context(), req)
			if got := errors.Is(err, errPassed); got != tt.ok {
				t.Fatalf("allowed = %v (error %v), want %v", got, err, tt.ok)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestRedirects: a redirect to a declared host is followed; one to another
// host is refused without connecting to it.
func TestRedirects(t *testing.T) {
	other := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "other") })
	second := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "second") })
	first := newServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		to := map[string]string{"/elsewhere": other.URL + "/x", "/declared": second.URL + "/y"}[r.URL.Path]
		http.Redirect(w, r, to, http.StatusFound)
	})
	c := fastClient(webclient.Options{AllowedHosts: []string{host(first.Server), host(second.Server)}})

	for name, do := range map[string]func(string) (*http.Response, error){
		"Do": func(u string) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", u, nil)
			return c.Do(t.Context(), req)
		},
		"StandardClient": func(u string) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", u, nil)
			return c.StandardClient().Do(req)
		},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := do(first.URL + "/elsewhere")
			if !errors.Is(err, webclient.ErrHostNotAllowed) {
				if resp != nil {
					resp.Body.Close()
				}
				t.Fatalf("redirect to an undeclared host: error = %v, want ErrHostNotAllowed", err)
			}
			if n := other.conns.Load(); n != 0 {
				t.Fatalf("%d connections to the undeclared host, want 0", n)
			}
			resp, err = do(first.URL + "/declared")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "second" {
				t.Fatalf("redirect to a declared host: body %q, want %q", body, "second")
			}
		})
	}
}

// TestStandardClientPassesErrorBodies: go-github reads its own error
// bodies, so StandardClient hands back error responses whole, after the
// retries for 5xx.
func TestStandardClientPassesErrorBodies(t *testing.T) {
	for _, code := range []int{http.StatusForbidden, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(code)
				fmt.Fprint(w, `{"message":"API rate limit exceeded"}`)
			})
			c := fastClient(webclient.Options{AllowedHosts: []string{host(srv.Server)}, RetryMax: 1})
			req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL, nil)
			resp, err := c.StandardClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != code || string(body) != `{"message":"API rate limit exceeded"}` {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			want := 1
			if webclient.Retryable(code) {
				want = 2
			}
			if n := len(srv.requests()); n != want {
				t.Fatalf("server saw %d requests, want %d", n, want)
			}
		})
	}
}

// TestBodyCaps: reads past MaxBodyBytes fail; an error body is truncated.
func TestBodyCaps(t *testing.T) {
	big := strings.Repeat("x", 5000)
	srv := newServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/error" {
			w.WriteHeader(http.StatusBadRequest)
		}
		fmt.Fprint(w, big)
	})
	c := fastClient(webclient.Options{AllowedHosts: []string{host(srv.Server)}, MaxBodyBytes: 1000})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/ok", nil)
	resp, err := c.Do(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, webclient.ErrBodyTooLarge) || len(data) != 1000 {
		t.Fatalf("read %d bytes, error %v; want 1000 and ErrBodyTooLarge", len(data), err)
	}
	req, _ = http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/error", nil)
	_, err = fastClient(webclient.Options{AllowedHosts: []string{host(srv.Server)}}).Do(t.Context(), req)
	var se *webclient.StatusError
	if !errors.As(err, &se) || len(se.Body) > 1100 || !strings.HasSuffix(se.Body, "…") {
		t.Fatalf("error body of %d bytes (%v), want it truncated", len(se.Body), err)
	}
}

// TestSecretsNeverLeak feeds secrets through a URL's user info, query and
// path and through error bodies that echo the request back, on the retry,
// refusal and deadline paths, and checks errors (their whole chain) and
// the log.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		pathSecret  = "pathsecret-1f9a"
		querySecret = "querysecret-7c2e"
		userSecret  = "usersecret-93bd"
		bodySecret  = "bodysecret-5e11"
		tokenSecret = "tokensecret-c0de"
	)
	secrets := []string{pathSecret, querySecret, userSecret, bodySecret, tokenSecret}
	redact := func(s string) string {
		for _, v := range []string{pathSecret, bodySecret} { // the two a secret store knows
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
		return s
	}
	echo := func(code int) func(int, http.ResponseWriter, *http.Request) {
		return func(_ int, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "you sent %s %s auth=%s body=%s", r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), body)
			if u, p, ok := r.BasicAuth(); ok {
				fmt.Fprintf(w, " basic=%s:%s", u, p)
			}
		}
	}
	slow := func(_ int, w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	tests := []struct {
		name    string
		reply   func(int, http.ResponseWriter, *http.Request)
		allowed bool
		timeout time.Duration
	}{
		{"4xx echo", echo(400), true, 0},
		{"5xx echo after retries", echo(503), true, 0},
		{"undeclared host", echo(200), false, 0},
		{"deadline", slow, true, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		for _, bearer := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/bearer=%v", tt.name, bearer), func(t *testing.T) {
				srv := newServer(t, tt.reply)
				var logs bytes.Buffer
				allowed := []string{"example.com"}
				if tt.allowed {
					allowed = append(allowed, host(srv.Server))
				}
				c := fastClient(webclient.Options{AllowedHosts: allowed, Redact: redact,
					Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
				u := "http://user:" + userSecret + "@" + host(srv.Server) + "/hooks/" + pathSecret + "?token=" + querySecret
				ctx := t.Context()
				if tt.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", u, strings.NewReader(`{"text":"`+bodySecret+`"}`))
				if bearer { // else the user info goes as basic auth
					req.Header.Set("Authorization", "Bearer "+tokenSecret)
				}
				_, err := c.Do(ctx, req)
				if err == nil {
					t.Fatal("no error")
				}
				out := chainText(err) + "\n" + logs.String()
				for _, s := range secrets {
					if strings.Contains(out, s) {
						t.Errorf("secret %q leaked:\n%s", s, out)
					}
				}
				if b64 := base64.StdEncoding.EncodeToString([]byte("user:" + userSecret)); strings.Contains(out, b64) {
					t.Errorf("basic credentials leaked:\n%s", out)
				}
			})
		}
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

func TestAllowedHosts(t *testing.T) {
	cfg := &schema.Config{
		Targets: map[string]schema.Target{
			"shop-deploy": {Git: &schema.GitTarget{URL: "https://github.com/acme/shop-deploy.git"}},
			"ssh-repo":    {Git: &schema.GitTarget{URL: "ssh://git@git.internal/x.git"}},
			"flags":       {Flagd: &schema.FlagdTarget{Repo: "shop-deploy", File: "f.json"}},
			"prom":        {Prometheus: &schema.PrometheusTarget{URL: "http://Prometheus:9090"}},
			"shop":        {HTTP: &schema.HTTPTarget{URL: "https://shop.example.com/healthz"}},
			"k8s":         {Kubernetes: &schema.KubernetesTarget{Context: "prod"}},
		},
		Channels: map[string]schema.Channel{
			"oncall":  {Slack: &schema.SlackChannel{Webhook: schema.Secret{Secret: "S"}, Host: "hooks.slack.com"}},
			"oncall2": {Slack: &schema.SlackChannel{Webhook: schema.Secret{Secret: "S"}}},
			"audit":   {Webhook: &schema.WebhookChannel{URL: "https://hooks.example.com:8443/firebreak?x=1"}},
			"page":    {PagerDuty: &schema.PagerDutyChannel{RoutingKey: schema.Secret{Secret: "P"}}},
			"issue":   {GitHub: &struct{}{}},
		},
		GitHub: &schema.GitHub{APIURL: "https://ghe.example.com/api/v3/"},
	}
	got := webclient.AllowedHosts(cfg, "extra.example.com:1234")
	want := []string{
		"events.pagerduty.com", "extra.example.com:1234", "ghe.example.com", "github.com",
		"hooks.example.com:8443", "hooks.slack.com", "prometheus:9090", "shop.example.com",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("AllowedHosts =\n%q\nwant\n%q", got, want)
	}
	cfg.GitHub.APIURL = ""
	if got := webclient.AllowedHosts(cfg); !slices.Contains(got, "api.github.com") {
		t.Fatalf("AllowedHosts = %q, want the default GitHub API host", got)
	}
}

// TestKeepsConnectionsInAStorm: many requests to one host at once use at
// most MaxConnsPerHost connections, and keep them: a second wave dials
// nothing new. (With a pool smaller than the wave, connections were
// evicted and dialed again.)
func TestKeepsConnectionsInAStorm(t *testing.T) {
	var conns atomic.Int64
	release := make(chan struct{})
	var arrived atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if arrived.Add(1) <= webclient.MaxConnsPerHost {
			<-release // the first wave holds every connection at once
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := webclient.New(webclient.Options{AllowedHosts: []string{host(srv)}})
	wave := func(n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				resp, err := post(t, t.Context(), c, srv.URL, "x")
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		if n == webclient.MaxConnsPerHost {
			for arrived.Load() < webclient.MaxConnsPerHost {
				time.Sleep(time.Millisecond)
			}
			close(release)
		}
		wg.Wait()
	}
	wave(webclient.MaxConnsPerHost)
	first := conns.Load()
	wave(2 * webclient.MaxConnsPerHost)
	if first != webclient.MaxConnsPerHost || conns.Load() != first {
		t.Fatalf("connections: %d for the first wave, %d after the second; want %d and no more",
			first, conns.Load(), webclient.MaxConnsPerHost)
	}
}
