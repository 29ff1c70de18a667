package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// batch is one Alertmanager webhook: its body and the alert groups
// (services) it carries.
type batch struct {
	body   []byte
	groups []int
}

// stormAlert is one alert of the storm: group g (label service), number i
// within its group (label instance).
type stormAlert struct{ g, i int }

func (a stormAlert) service() string  { return fmt.Sprintf("svc-%04d", a.g) }
func (a stormAlert) instance() string { return fmt.Sprintf("10.%d.%d.%d:9100", a.g/250, a.g%250, a.i) }

// fingerprint is what Alertmanager would send: 16 hex digits of a hash of
// the labels.
func (a stormAlert) fingerprint() string {
	h := sha256.Sum256([]byte(a.service() + "\x00" + a.instance()))
	return hex.EncodeToString(h[:8])
}

// storm lays out n alerts over groups groups (n/groups alerts each) in
// batches of size. Each group's alerts are spread over spread batches: in
// round r every group contributes its r-th share, so with spread 1 a
// batch holds size/(n/groups) whole groups, and with spread n/groups a
// batch holds one alert each of size groups and every group comes back
// in later batches, as when a storm's alerts start firing one after
// another and Alertmanager sends its aggregation group again.
func storm(n, groups, size, spread int, startsAt time.Time) ([]batch, []stormAlert) {
	per := n / groups
	share := per / spread
	var order []stormAlert
	for r := range spread {
		for g := range groups {
			for i := r * share; i < (r+1)*share; i++ {
				order = append(order, stormAlert{g, i})
			}
		}
	}
	var batches []batch
	for lo := 0; lo < len(order); lo += size {
		chunk := order[lo:min(lo+size, len(order))]
		var b batch
		type amAlert struct {
			Status       string            `json:"status"`
			Labels       map[string]string `json:"labels"`
			Annotations  map[string]string `json:"annotations"`
			StartsAt     time.Time         `json:"startsAt"`
			EndsAt       time.Time         `json:"endsAt"`
			GeneratorURL string            `json:"generatorURL"`
			Fingerprint  string            `json:"fingerprint"`
		}
		var alerts []amAlert
		for _, a := range chunk {
			alerts = append(alerts, amAlert{
				Status: "firing",
				Labels: map[string]string{"alertname": "StormAlert", "service": a.service(), "instance": a.instance(),
					"job": "node", "cluster": "prod-eu-1", "severity": "page"},
				Annotations:  map[string]string{"summary": "node down on " + a.instance(), "runbook_url": "https://runbooks.example/storm"},
				StartsAt:     startsAt,
				GeneratorURL: "http://prometheus.example/graph?g0.expr=up%3D%3D0",
				Fingerprint:  a.fingerprint(),
			})
			if !slices.Contains(b.groups, a.g) {
				b.groups = append(b.groups, a.g)
			}
		}
		body := map[string]any{
			"version": "4", "status": "firing", "receiver": "firebreak", "truncatedAlerts": 0,
			"groupKey":          fmt.Sprintf(`{}:{alertname="StormAlert", batch="%d"}`, len(batches)),
			"groupLabels":       map[string]string{"alertname": "StormAlert"},
			"commonLabels":      map[string]string{"alertname": "StormAlert", "cluster": "prod-eu-1"},
			"commonAnnotations": map[string]string{},
			"externalURL":       "http://alertmanager.example:9093",
			"alerts":            alerts,
		}
		b.body, _ = json.Marshal(body)
		batches = append(batches, b)
	}
	return batches, order
}

// request is what became of one batch.
type request struct {
	first    time.Time // the first attempt was sent
	sent     time.Time // the accepted attempt was sent
	accepted time.Time // its 2xx arrived
	attempts int
	code     int
	err      error
}

// result is one storm against one server.
type result struct {
	reqs        []request
	start, end  time.Time // first request sent, last 2xx
	retried503  int       // 503 answers, each sent again
	retriedErrs int       // other failures sent again (5xx, connection)
}

// send posts every batch to url with concurrency senders, as Alertmanager
// does: one notification per aggregation group at a time, sent again with
// exponential backoff on a 5xx or a failed connection. Each sender pauses
// interval after each accepted request.
func send(ctx context.Context, url string, batches []batch, concurrency int, interval time.Duration) *result {
	s := newSender(url, len(batches), concurrency)
	defer s.tr.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	s.res.start = time.Now()
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(batches) || ctx.Err() != nil {
					return
				}
				s.deliver(ctx, i, batches[i].body)
				if interval > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(interval):
					}
				}
			}
		})
	}
	wg.Wait()
	return s.finish()
}

// sendAt posts the batches at a fixed arrival rate, alertsPerSec, whatever
// the answers: batch i is due at i×(its alerts)/rate from the start, each
// in a request of its own (open loop, as independent aggregation groups
// flush), at most maxInFlight at once. lag is how late the latest-sent
// batch left after it was due: the arrival rate held when it is small.
func sendAt(ctx context.Context, url string, batches []batch, alertsPerSec float64, alerts, maxInFlight int) (res *result, lag time.Duration) {
	s := newSender(url, len(batches), maxInFlight)
	defer s.tr.CloseIdleConnections()
	every := time.Duration(float64(time.Second) * float64(alerts) / float64(len(batches)) / alertsPerSec)
	slots := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	s.res.start = time.Now()
	for i := range batches {
		due := s.res.start.Add(time.Duration(i) * every)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		slots <- struct{}{}
		lag = max(lag, time.Since(due))
		wg.Go(func() {
			defer func() { <-slots }()
			s.deliver(ctx, i, batches[i].body)
		})
	}
	wg.Wait()
	return s.finish(), lag
}

// sender posts batches and keeps what became of each.
type sender struct {
	url                     string
	tr                      *http.Transport
	client                  *http.Client
	res                     *result
	retried503, retriedErrs atomic.Int64
}

func newSender(url string, n, conns int) *sender {
	tr := &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	return &sender{url: url, tr: tr, client: &http.Client{Transport: tr}, res: &result{reqs: make([]request, n)}}
}

// deliver posts batch i until it is accepted, refused with a 4xx, or ctx
// ends.
func (s *sender) deliver(ctx context.Context, i int, body []byte) {
	r := &s.res.reqs[i]
	backoff := 10 * time.Millisecond
	for {
		r.attempts++
		t := time.Now()
		if r.first.IsZero() {
			r.first = t
		}
		code, err := post(ctx, s.client, s.url, body)
		r.code, r.err = code, err
		if err == nil && code/100 == 2 {
			r.sent, r.accepted = t, time.Now()
			return
		}
		if ctx.Err() != nil || (err == nil && code/100 == 4) {
			return // not retried, as Alertmanager does not
		}
		if code == http.StatusServiceUnavailable {
			s.retried503.Add(1)
		} else {
			s.retriedErrs.Add(1)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (s *sender) finish() *result {
	res := s.res
	for _, r := range res.reqs {
		if r.accepted.After(res.end) {
			res.end = r.accepted
		}
	}
	res.retried503, res.retriedErrs = int(s.retried503.Load()), int(s.retriedErrs.Load())
	return res
}

func post(ctx context.Context, client *http.Client, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("User-Agent", "Alertmanager/0.28.1")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// accepted counts the requests answered 2xx.
func (r *result) accepted() int {
	n := 0
	for _, q := range r.reqs {
		if !q.accepted.IsZero() {
			n++
		}
	}
	return n
}

// latencies are the accepted requests' times from send to 2xx, sorted.
func (r *result) latencies() []time.Duration {
	var ds []time.Duration
	for _, q := range r.reqs {
		if !q.accepted.IsZero() {
			ds = append(ds, q.accepted.Sub(q.sent))
		}
	}
	slices.Sort(ds)
	return ds
}

// floorServer is the peer: net/http with the same bearer check, reading
// the body and keeping it as the journal does (a file written, synced,
// renamed, the directory synced) before the 202. It is the ceiling of
// durable acceptance on this machine with nothing of firebreak in it.
func floorServer(dir string) (url string, stop func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	var seq atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+apiToken {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 10<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		final := filepath.Join(dir, strconv.FormatInt(seq.Add(1), 10)+".json")
		if err := writeSynced(final, body); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"accepted":true}`+"\n")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

func writeSynced(final string, data []byte) error {
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	if err := f.Close(); werr == nil && serr == nil {
		werr = err
	}
	if werr != nil || serr != nil {
		return fmt.Errorf("write %s: %v %v", tmp, werr, serr)
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(final))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
