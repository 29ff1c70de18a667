package main

// Helpers of the tests that run firebreak serve as a real process against
// real things: the built binary, a loopback git server (gittest), the
// httptest GitHub (githubtest), and the Debian packages prometheus and
// prometheus-alertmanager.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
	"github.com/firebreak-dev/firebreak/engine/incident"
)

// Where the Debian packages put the real components.
const (
	prometheusBinary   = "/usr/bin/prometheus"
	alertmanagerBinary = "/usr/bin/prometheus-alertmanager"
)

// requireBinary fails the test when a real component is missing. It never
// skips, as promtest and gittest do not: these tests prove behaviour
// against the real thing and must not pass by not running. .ci/run
// installs the packages.
func requireBinary(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing: install the Debian package with `apt-get install -y %s` (.ci/run installs it; CI=%q): %v",
			path, pkg, os.Getenv("CI"), err)
	}
}

// buildFirebreak builds the firebreak binary once for the test and
// returns its path.
func buildFirebreak(t *testing.T) string {
	t.Helper()
	// go test puts its own toolchain's bin first in PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go tool to build firebreak with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "firebreak")
	start := time.Now()
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built firebreak in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for a process and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// process is a child process whose output is kept, killed at the end of
// the test.
type process struct {
	name   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	err    error
}

// startProcess runs bin with args and env (added to a clean environment).
func startProcess(t *testing.T, name, bin string, args, env []string, out *syncBuffer) *process {
	t.Helper()
	p := &process{name: name, out: out, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(baseEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.kill() })
	return p
}

// baseEnv is the environment of a child: PATH and HOME, nothing of the
// test's FIREBREAK_* or git configuration.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "LANG", "GOCOVERDIR", "GORACE"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and waits up to grace before killing.
func (p *process) stop(grace time.Duration) (graceful bool) {
	select {
	case <-p.exited:
		return false
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return true
	case <-time.After(grace):
		p.kill()
		return false
	}
}

func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitReady polls url until it answers 200, failing the test when p
// exits first or timeout passes.
func waitReady(t *testing.T, p *process, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		if !p.running() {
			t.Fatalf("%s exited (%v) before %s answered:\n%s", p.name, p.err, url, tail(p.out.String(), 6000))
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not ready after %s:\n%s", p.name, url, timeout, tail(p.out.String(), 6000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startAlertmanager runs the real Alertmanager with a webhook receiver
// posting to hook with bearer token, and returns its URL.
func startAlertmanager(t *testing.T, hook, token string) string {
	t.Helper()
	requireBinary(t, alertmanagerBinary, "prometheus-alertmanager")
	dir := t.TempDir()
	conf := fmt.Sprintf(`route:
  receiver: firebreak
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1m
receivers:
  - name: firebreak
    webhook_configs:
      - url: %q
        send_resolved: true
        http_config:
          authorization:
            credentials: %q
`, hook, token)
	writeFile(t, dir, "am.yml", conf)
	addr := freeAddr(t)
	out := &syncBuffer{}
	p := startProcess(t, "alertmanager", alertmanagerBinary, []string{
		"--config.file=" + filepath.Join(dir, "am.yml"),
		"--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--cluster.listen-address=",
		"--log.level=debug",
	}, nil, out)
	url := "http://" + addr
	waitReady(t, p, url+"/-/ready", 30*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("alertmanager output:\n%s", tail(out.String(), 4000))
		}
	})
	return url
}

// startPrometheus runs the real Prometheus scraping target every second,
// evaluating rules every second and sending alerts to alertmanager, and
// returns its URL.
func startPrometheus(t *testing.T, target, alertmanager, rules string) string {
	t.Helper()
	requireBinary(t, prometheusBinary, "prometheus")
	dir := t.TempDir()
	writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
scrape_configs:
  - job_name: app
    static_configs:
      - targets: [%q]
`, strings.TrimPrefix(alertmanager, "http://"), strings.TrimPrefix(target, "http://")))
	writeFile(t, dir, "rules.yml", rules)
	addr := freeAddr(t)
	out := &syncBuffer{}
	p := startProcess(t, "prometheus", prometheusBinary, []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		// Without it the first alert waits about a minute (REAL-COMPONENTS.md).
		"--rules.alert.resend-delay=1s",
	}, nil, out)
	url := "http://" + addr
	waitReady(t, p, url+"/-/ready", 60*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prometheus output:\n%s", tail(out.String(), 4000))
		}
	})
	return url
}

// fbServer runs `firebreak serve` as a process, again and again on the
// same state directory, cache and listen address.
type fbServer struct {
	t     *testing.T
	bin   string
	args  []string
	env   []string
	addr  string
	URL   string
	token string
	proc  *process
	logs  *syncBuffer // every run's stderr, one after another
	runs  int
}

func newFBServer(t *testing.T, bin, token string, args, env []string) *fbServer {
	addr := freeAddr(t)
	tmp := t.TempDir() // where --repo clones go: a killed run leaves its clone
	s := &fbServer{
		t: t, bin: bin, addr: addr, URL: "http://" + addr, token: token,
		args: append([]string{"serve", "--listen", addr}, args...),
		env:  append([]string{"TMPDIR=" + tmp, "FIREBREAK_SECRET_API_TOKEN=" + token}, env...),
		logs: &syncBuffer{},
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if p := os.Getenv("FIREBREAK_E2E_LOGS"); p != "" {
			if err := os.WriteFile(p, []byte(s.logs.String()), 0o644); err == nil {
				t.Logf("firebreak serve logs written to %s", p)
				return
			}
		}
		t.Logf("firebreak serve logs (last part; FIREBREAK_E2E_LOGS=FILE keeps them all):\n%s", tail(s.logs.String(), 20000))
	})
	return s
}

// start runs the server and waits for /healthz.
func (s *fbServer) start() {
	s.t.Helper()
	s.runs++
	fmt.Fprintf(s.logs, "==== run %d\n", s.runs)
	s.proc = startProcess(s.t, "firebreak serve", s.bin, s.args, s.env, s.logs)
	waitReady(s.t, s.proc, s.URL+"/healthz", 60*time.Second)
}

// kill9 kills the server with SIGKILL.
func (s *fbServer) kill9() {
	s.proc.kill()
	fmt.Fprintf(s.logs, "==== run %d killed with SIGKILL\n", s.runs)
}

// post sends body to path with the bearer token.
func (s *fbServer) post(ctx context.Context, path, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), nil
}

// eventually polls cond until it holds, failing the test with what after
// timeout.
func eventually(t *testing.T, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// incidentFiles reads and parses every incident record in a clone of the
// playbook repository, by path; a record that does not parse fails the
// test.
func incidentFiles(t *testing.T, c *gittest.Clone) map[string]*incident.Incident {
	t.Helper()
	out := map[string]*incident.Incident{}
	root := filepath.Join(c.Dir, "incidents")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".md") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		in, err := incident.Unmarshal(data)
		rel, _ := filepath.Rel(c.Dir, p)
		if err != nil {
			t.Errorf("incident file %s does not parse: %v\n%s", rel, err, data)
			return nil
		}
		if want := incident.Path("incidents", in); want != filepath.ToSlash(rel) {
			t.Errorf("incident %s is at %s, want %s", in.ID, rel, want)
		}
		out[filepath.ToSlash(rel)] = in
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// trailerCommits returns, for every commit on HEAD of the clone carrying
// a Firebreak-Incident trailer, "incident step" → the commit hashes.
func trailerCommits(t *testing.T, c *gittest.Clone) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	log := c.Git("log", "--format=%H%x00%(trailers:key=Firebreak-Incident,valueonly,separator=%x01)%x00%(trailers:key=Firebreak-Step,valueonly,separator=%x01)%x1e")
	for _, rec := range strings.Split(log, "\x1e") {
		f := strings.Split(strings.TrimSpace(rec), "\x00")
		if len(f) != 3 || f[1] == "" {
			continue
		}
		key := strings.TrimSpace(f[1]) + " " + strings.TrimSpace(f[2])
		out[key] = append(out[key], f[0])
	}
	return out
}

// gitCLI runs git in dir, reading no user or system configuration, and
// returns its trimmed output; it does not fail the test (for polling).
func gitCLI(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// get reads path with the bearer token.
func (s *fbServer) get(path string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), nil
}

// waitUntil polls cond until it holds or timeout passes, and reports
// whether it held.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}
