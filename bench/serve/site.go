package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	engrun "github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/engine/serve"
)

const apiToken = "bench-api-token-0123456789"

// playbook has one cheap step: a notify to the counting webhook.
const playbook = `package playbooks

storm: {
	title:    "storm on \(alert.labels.service)"
	owner:    "@acme/sre"
	severity: "high"
	match: labels: alertname: "StormAlert"
	group_by: ["service"]
	steps: [{name: "page", notify: {channel: "hook", text: "storm on \(alert.labels.service) (\(alert.labels.instance))"}}]
}
`

// hook is the notify target: it counts deliveries per incident and step
// (X-Firebreak-Delivery) and keeps the time of the first.
type hook struct {
	mu    sync.Mutex
	first map[string]time.Time
	count map[string]int
	// conns counts the connections the server's notifies opened: a
	// client that keeps its connections opens about as many as it sends
	// at once, not one per notify.
	conns atomic.Int64
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	now := time.Now()
	key := r.Header.Get("X-Firebreak-Delivery")
	h.mu.Lock()
	if _, ok := h.first[key]; !ok {
		h.first[key] = now
	}
	h.count[key]++
	h.mu.Unlock()
}

func (h *hook) deliveries() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.count)
}

// site is the playbook repository, the webhook and the server under test.
type site struct {
	dir, state, cache string
	hook              *hook
	hookSrv           *httptest.Server
	url               string
	// pid is the server's process: the built binary's, or this one's.
	pid  int
	stop func() error
	log  string // the binary's stderr
}

func newSite(work string) (*site, error) {
	s := &site{dir: filepath.Join(work, "repo"), state: filepath.Join(work, "state"), cache: filepath.Join(work, "cache"),
		hook: &hook{first: map[string]time.Time{}, count: map[string]int{}}}
	s.hookSrv = httptest.NewUnstartedServer(s.hook)
	s.hookSrv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.hook.conns.Add(1)
		}
	}
	s.hookSrv.Start()
	files := map[string]string{
		"firebreak.cue": fmt.Sprintf(`channels: hook: webhook: url: %q
policy: {limits: runs_per_hour: 1000000, owners: "@acme/sre": notify: ["hook"]}
`, s.hookSrv.URL),
		"playbooks/storm.cue": playbook,
	}
	for name, content := range files {
		p := filepath.Join(s.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "."},
		{"-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "playbooks"},
	} {
		if _, err := s.git(args...); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *site) git(args ...string) ([]byte, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = s.dir
	cmd.Stderr = nil
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return nil, fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

// startBinary runs `firebreak serve` on the repository and waits until it
// is ready.
// knobs are the server options a storm may set; 0 leaves the default.
type knobs struct{ workers, maxPending, maxRuns int }

func (s *site) startBinary(bin string, k knobs) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	s.log = filepath.Join(s.state, "..", "serve.log")
	logf, err := os.Create(s.log)
	if err != nil {
		return err
	}
	args := []string{"serve", s.dir, "--listen", addr, "--state-dir", s.state, "--cache-dir", s.cache}
	if k.workers > 0 {
		args = append(args, "--workers", strconv.Itoa(k.workers))
	}
	if k.maxPending > 0 {
		args = append(args, "--max-pending", strconv.Itoa(k.maxPending))
	}
	if k.maxRuns > 0 {
		args = append(args, "--max-runs", strconv.Itoa(k.maxRuns))
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "FIREBREAK_SECRET_API_TOKEN="+apiToken)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	s.pid, s.url = cmd.Process.Pid, "http://"+addr
	s.stop = func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			return fmt.Errorf("firebreak serve did not stop within 60 s of SIGTERM")
		}
	}
	if err := s.waitReady(exited); err != nil {
		s.stop()
		return err
	}
	return nil
}

// startInProcess runs the server in this process, wired as
// cmd/firebreak/serve.go wires it (no GitHub).
func (s *site) startInProcess(k knobs) error {
	l, err := ledger.OpenLocal(s.dir, ledger.Options{})
	if err != nil {
		return err
	}
	j, err := serve.OpenJournal(filepath.Join(s.state, "journal"))
	if err != nil {
		return err
	}
	sec := secrets.NewFromMap(map[string]string{"API_TOKEN": apiToken})
	s.log = filepath.Join(s.state, "..", "serve.log")
	logf, err := os.Create(s.log)
	if err != nil {
		return err
	}
	log := slog.New(secrets.Handler(slog.NewJSONHandler(logf, nil), sec))
	head, err := s.git("rev-parse", "HEAD")
	if err != nil {
		return err
	}
	store := gitrepo.NewStore(s.cache, log)
	rec, err := respond.NewRecorder(context.Background(), l, "incidents", log)
	if err != nil {
		return err
	}
	slots := respond.NewRunSlots(cmp.Or(k.maxRuns, respond.DefaultMaxRuns))
	cfg := serve.Config{
		Journal: j, Branch: "main", APIToken: []byte(apiToken), Workers: k.workers, MaxPending: k.maxPending, Log: log,
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
			env := &actions.Env{Config: r.Config, Secrets: sec, Log: log, Git: store,
				HTTP: webclient.New(webclient.Options{AllowedHosts: webclient.AllowedHosts(r.Config), Redact: sec.Redact, Log: log})}
			return &respond.Engine{Repo: r, Planner: p, Ledger: l, Branch: "main", Log: log,
				PlaybooksCommit: strings.TrimSpace(string(head)), Recorder: rec, RunSlots: slots,
				Runner: &engrun.Runner{Env: env, Actions: registry.Actions, Log: log}}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := serve.New(ctx, cfg)
	if err != nil {
		cancel()
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Serve(ctx, ln, 60*time.Second); l.Close(); logf.Close() }()
	s.pid, s.url = os.Getpid(), "http://"+ln.Addr().String()
	s.stop = func() error { cancel(); return <-exited }
	return s.waitReady(exited)
}

func (s *site) waitReady(exited <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("server exited before it was ready: %v%s", err, s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready after 60 s%s", s.logTail())
		}
	}
}

func (s *site) logTail() string {
	if s.log == "" {
		return ""
	}
	data, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return "\n" + strings.Join(lines[max(0, len(lines)-10):], "\n")
}

// peakRSS is the server process's peak resident set (VmHWM), in bytes.
func (s *site) peakRSS() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/PID/status")
}

// cpuTime is the CPU time the server process has used, user and system,
// from /proc/PID/stat (clock ticks of 1/100 s, as Linux has them on every
// architecture Go supports).
func (s *site) cpuTime() (user, system time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.pid))
	if err != nil {
		return 0, 0, err
	}
	// The fields after the command, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return 0, 0, errors.New("short /proc/PID/stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	return time.Duration(u) * 10 * time.Millisecond, time.Duration(st) * 10 * time.Millisecond, nil
}
