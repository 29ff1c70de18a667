// Package serve is firebreak serve: alerts in over HTTP, accepted durably,
// handled by the incident engine in the background.
//
// A request's alerts are decoded, then written to a local journal (synced)
// before the 2xx: from then on a crash loses nothing, since on start the
// server resumes what the repository records as unfinished (Engine.Recover)
// and handles every journal entry not yet done. The engine joins repeats
// to open incidents, so handling an entry twice runs nothing twice. Every
// failure to accept is a 5xx, so that Alertmanager sends again.
package serve

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/firebreak-dev/firebreak/engine/alert"
	"github.com/firebreak-dev/firebreak/engine/respond"
)

// Config configures a Server.
type Config struct {
	Journal *Journal
	// Load builds the engine from the playbook repository as it is now:
	// once at start, and again for every reload.
	Load func(ctx context.Context) (*respond.Engine, error)
	// APIToken is the bearer token of the alert and incident endpoints;
	// GitHubSecret and PagerDutySecret the webhook secrets. Without
	// them the server refuses to start unless Insecure.
	APIToken, GitHubSecret, PagerDutySecret []byte
	// GrafanaSecret, when set, is the HMAC-SHA256 secret of Grafana's
	// webhook, whose signature comes in GrafanaHeader (hex, optionally
	// "sha256=" prefixed); otherwise Grafana uses the bearer token.
	GrafanaSecret []byte
	GrafanaHeader string
	Insecure      bool
	// MaxBody bounds a request body; 10 MiB when 0.
	MaxBody int64
	// MaxPending bounds the accepted requests not yet handled; beyond it
	// the server answers 503 with Retry-After. 10,000 when 0.
	MaxPending int
	// Workers handle queued requests (left by the last process, or
	// arriving while others wait) concurrently; 4 when 0. A request with
	// none queued before it is handled by its own goroutine.
	Workers int
	// Branch is the playbook repository's branch: a verified push to it
	// reloads the playbooks.
	Branch string
	// Poll, when positive, reloads the playbooks that often.
	Poll time.Duration
	// FlushEvery is how often what GitHub is owed is sent; 10 s when 0.
	FlushEvery time.Duration
	Log        *slog.Logger
}

// grafanaTimestampHeader is Grafana's default hmacConfig.timestampHeader.
const grafanaTimestampHeader = "X-Grafana-Alerting-Timestamp"

// Server is the webhook server.
type Server struct {
	cfg     Config
	engine  atomic.Pointer[respond.Engine]
	m       *metrics
	queue   chan job      // journal entries to handle
	slots   chan struct{} // one per accepted request not yet handled
	log     *slog.Logger
	seen    *recent // webhook delivery ids already accepted
	ready   atomic.Bool
	reloadM sync.Mutex
	work    sync.WaitGroup
	// backlog feeds the journal's entries left by the last process into
	// the queue as it has room; closing stops it.
	backlog sync.WaitGroup
	closing chan struct{}
	// inflight is the entries handled whose steps or commits are not done: see handle.
	inflight sync.WaitGroup
	// workCtx is what handling runs under once Serve has started; set
	// before the listener serves, never changed.
	workCtx context.Context
	flushC  chan struct{}
}

// ErrNoSecret: the server would be open to anyone.
var ErrNoSecret = errors.New("no API token set (FIREBREAK_SECRET_API_TOKEN): refusing to start an open server; --insecure to do it anyway")

// New loads the playbooks and returns a Server ready to Serve.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if len(cfg.APIToken) == 0 && !cfg.Insecure {
		return nil, ErrNoSecret
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 10 << 20
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 10_000
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg, m: newMetrics(), log: cfg.Log,
		queue: make(chan job, cfg.MaxPending), slots: make(chan struct{}, cfg.MaxPending),
		seen: newRecent(10_000), flushC: make(chan struct{}, 1), closing: make(chan struct{}),
	}
	e, err := cfg.Load(ctx)
	if err != nil {
		return nil, err
	}
	s.engine.Store(e)
	return s, nil
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	alerts := func(source string) http.Handler {
		return s.count(source, s.accept(source))
	}
	mux.Handle("POST /v1/alerts/alertmanager", alerts("alertmanager"))
	mux.Handle("POST /v1/alerts/grafana", alerts("grafana"))
	mux.Handle("POST /v1/alerts/pagerduty", alerts("pagerduty"))
	mux.Handle("POST /v1/alerts", alerts("generic"))
	mux.Handle("POST /v1/github", s.count("github", http.HandlerFunc(s.github)))
	mux.Handle("GET /v1/incidents", s.count("incidents", s.bearer(http.HandlerFunc(s.incidents))))
	mux.Handle("GET /v1/incidents/{id}", s.count("incidents", s.bearer(http.HandlerFunc(s.incident))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
	return mux
}

// Serve runs the server on ln until ctx is done, then shuts down
// gracefully: no new requests, in-flight handling given grace to finish;
// what does not finish stays in the journal for the next start.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	// The committer outlives the workers: what they applied is committed
	// before the server stops, within the grace.
	recCtx, stopRec := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRec()
	var recDone sync.WaitGroup
	if r := s.engine.Load().Recorder; r != nil {
		recDone.Go(func() { r.Run(recCtx) })
	}
	s.workCtx = workCtx
	s.start(workCtx)
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: no new requests; finishing in-flight work", "grace", grace)
	shutCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	close(s.closing)
	s.backlog.Wait() // it sends on the queue
	close(s.queue)
	done := make(chan struct{})
	go func() { s.work.Wait(); s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-shutCtx.Done():
		s.log.Warn("grace over: what is unfinished stays in the journal for the next start")
		stopWork()
		<-done
	}
	stopRec()
	recDone.Wait()
	if err := s.cfg.Journal.Close(); err != nil {
		s.log.Error("cannot close the journal", "error", err)
	}
	return nil
}

// start resumes unfinished work and starts the workers.
func (s *Server) start(ctx context.Context) {
	// What the last process left unfinished is listed before any worker
	// runs: an incident a worker opens from now on is that worker's, and
	// finishing it too would run its steps twice.
	unfinished, err := s.engine.Load().Unfinished(ctx)
	if err != nil {
		s.log.Error("cannot list unfinished incidents", "error", err)
	}
	ids, err := s.cfg.Journal.Pending()
	if err != nil {
		s.log.Error("cannot read the journal", "error", err)
	}
	s.cfg.Journal.Preallocate()
	s.cfg.Journal.ObserveSyncs(func(d time.Duration) { s.m.journalSync.Observe(d.Seconds()) })
	// Each entry takes a slot, as an accepted request does; those beyond
	// --max-pending go in as handling frees slots, not at the next start.
	if len(ids) > cap(s.slots) {
		s.log.Warn("journal holds more than --max-pending; the rest goes in as the queue drains", "pending", len(ids), "max_pending", cap(s.slots))
	}
	s.backlog.Go(func() {
		for _, id := range ids {
			select {
			case s.slots <- struct{}{}:
			case <-s.closing:
				return
			case <-ctx.Done():
				return
			}
			s.queue <- job{id: id} // never blocks: a slot is held
			s.m.queueDepth.Set(float64(len(s.slots)))
		}
	})
	for range s.cfg.Workers {
		s.work.Go(func() { s.worker(ctx) })
	}
	s.work.Go(func() {
		out := s.engine.Load().Finish(ctx, unfinished)
		for _, o := range out {
			s.log.Info("resumed an unfinished incident", "incident", o.Incident, "what", o.What, "reason", o.Reason)
		}
		s.ready.Store(true)
	})
	go s.flusher(ctx)
	if s.cfg.Poll > 0 {
		go s.poller(ctx)
	}
}

// accept decodes, authenticates and journals an alert request.
func (s *Server) accept(source string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		body, ok := s.body(w, r, source)
		if !ok {
			return
		}
		switch {
		case source == "pagerduty":
			if !s.verify(w, source, alert.VerifyPagerDuty(s.cfg.PagerDutySecret, body, r.Header.Get("X-PagerDuty-Signature"))) {
				return
			}
		case source == "grafana" && len(s.cfg.GrafanaSecret) > 0:
			// Grafana signs the body, or "timestamp:body" when it is
			// configured with a timestamp header.
			signed := body
			if ts := r.Header.Get(grafanaTimestampHeader); ts != "" {
				signed = append([]byte(ts+":"), body...)
			}
			sig := strings.TrimPrefix(r.Header.Get(s.cfg.GrafanaHeader), "sha256=")
			if !s.verify(w, source, alert.VerifyGitHub(s.cfg.GrafanaSecret, signed, "sha256="+sig)) {
				return
			}
		default:
			if !s.authorized(r) {
				s.m.alerts.WithLabelValues(source, "unauthorized").Inc()
				fail(w, http.StatusUnauthorized, "missing or wrong bearer token")
				return
			}
		}
		in, err := alert.DecodeSource(source, "request body", body)
		if err != nil {
			s.m.alerts.WithLabelValues(source, "rejected").Inc()
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		if in.Ignored != "" || len(in.Alerts) == 0 {
			s.m.alerts.WithLabelValues(source, "ignored").Inc()
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, "nothing to do: %s\n", cmp.Or(in.Ignored, "no alerts"))
			return
		}
		// PagerDuty delivers at least once: the same webhook id again is
		// a duplicate of what was accepted.
		delivery := r.Header.Get("X-Webhook-Id")
		if delivery != "" && s.seen.has(source+"/"+delivery) {
			s.m.alerts.WithLabelValues(source, "duplicate").Add(float64(len(in.Alerts)))
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "duplicate delivery: already accepted\n")
			return
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.m.alerts.WithLabelValues(source, "overloaded").Add(float64(len(in.Alerts)))
			w.Header().Set("Retry-After", "5")
			fail(w, http.StatusServiceUnavailable, "too many alerts waiting to be handled; send again later")
			return
		}
		// Receipt is when the request came, not when it was read: the
		// engine's latency counts the reading and the journal too.
		received := start.UTC()
		stampReceived(in.Alerts, received)
		entry := &Entry{Source: in.Source, Received: received, Alerts: in.Alerts, Body: body}
		id, err := s.cfg.Journal.Append(entry)
		entry.Body = nil // on disk now; the engine takes the alerts
		if err != nil {
			<-s.slots
			s.log.Error("cannot journal an accepted request", "error", err)
			fail(w, http.StatusServiceUnavailable, "cannot record the alerts durably; send again")
			return
		}
		if delivery != "" {
			s.seen.add(source + "/" + delivery)
		}
		j := job{id: id, entry: entry}
		// With nothing queued before it, the request's own goroutine
		// decides its alerts once its 2xx is sent: a hop through the
		// queue cost a storm's first actions tens of milliseconds, and
		// the sender's next request on this connection waits meanwhile.
		// Only when steps run in the background (RunSlots): the
		// connection is held while the alerts are decided, not run.
		direct := s.workCtx != nil && len(s.queue) == 0 && s.engine.Load().RunSlots != nil
		if !direct {
			s.queue <- j // never blocks: a slot is held
		}
		s.m.queueDepth.Set(float64(len(s.slots)))
		s.m.alerts.WithLabelValues(source, "accepted").Add(float64(len(in.Alerts)))
		s.m.acceptSeconds.Observe(time.Since(start).Seconds())
		answer, _ := json.Marshal(map[string]any{"accepted": len(in.Alerts), "id": id})
		answer = append(answer, '\n')
		w.Header().Set("Content-Type", "application/json")
		// A length, so that the flush below hands the client its whole answer.
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		w.WriteHeader(http.StatusAccepted)
		w.Write(answer)
		if direct {
			http.NewResponseController(w).Flush()
			s.take(s.workCtx, j)
		}
	})
}

// body reads a request body within the size limit.
func (s *Server) body(w http.ResponseWriter, r *http.Request, source string) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		s.m.alerts.WithLabelValues(source, "rejected").Inc()
		fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.cfg.MaxBody))
		return nil, false
	case err != nil:
		s.m.alerts.WithLabelValues(source, "rejected").Inc()
		fail(w, http.StatusBadRequest, "cannot read the body: "+err.Error())
		return nil, false
	}
	return body, true
}

func (s *Server) verify(w http.ResponseWriter, source string, err error) bool {
	if err == nil {
		return true
	}
	s.m.alerts.WithLabelValues(source, "unauthorized").Inc()
	if errors.Is(err, alert.ErrNoSecret) && s.cfg.Insecure {
		return true
	}
	fail(w, http.StatusUnauthorized, "signature: "+err.Error())
	return false
}

// authorized checks the bearer token in constant time (hashing both sides
// first, so that not even the token's length leaks).
func (s *Server) authorized(r *http.Request) bool {
	if len(s.cfg.APIToken) == 0 {
		return s.cfg.Insecure
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256(s.cfg.APIToken)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (s *Server) bearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			fail(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// count records every answer by endpoint and status code.
func (s *Server) count(endpoint string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		s.m.requests.WithLabelValues(endpoint, strconv.Itoa(rec.code)).Inc()
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// fail answers code with a one-line reason.
func fail(w http.ResponseWriter, code int, reason string) {
	reason = strings.ReplaceAll(reason, "\n", " ")
	http.Error(w, reason, code)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		fail(w, http.StatusServiceUnavailable, "resuming unfinished incidents")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.engine.Load().Ledger.List(ctx, ".firebreak"); err != nil {
		fail(w, http.StatusServiceUnavailable, "playbook repository unreachable: "+err.Error())
		return
	}
	fmt.Fprintf(w, "ready: %d playbooks\n", len(s.engine.Load().Repo.Playbooks))
}

func (s *Server) incidents(w http.ResponseWriter, r *http.Request) {
	ins, _, err := s.engine.Load().List(r.Context())
	if err != nil {
		fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, ins)
}

func (s *Server) incident(w http.ResponseWriter, r *http.Request) {
	in, err := s.engine.Load().Get(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, respond.ErrNotFound), errors.Is(err, respond.ErrBadID):
		fail(w, http.StatusNotFound, err.Error())
	case err != nil:
		fail(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeJSON(w, in)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// recent is a bounded set of the last n keys added.
type recent struct {
	mu    sync.Mutex
	keys  map[string]bool
	order []string
	n     int
}

func newRecent(n int) *recent { return &recent{keys: map[string]bool{}, n: n} }

func (r *recent) has(k string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys[k]
}

func (r *recent) add(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys[k] {
		return
	}
	r.keys[k] = true
	r.order = append(r.order, k)
	if len(r.order) > r.n {
		delete(r.keys, r.order[0])
		r.order = r.order[1:]
	}
}
