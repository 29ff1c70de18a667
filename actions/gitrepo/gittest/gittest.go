// Package gittest runs a real git smart-HTTP server on loopback for tests:
// `git http-backend` behind net/http/cgi, bare repositories made and
// inspected with the git CLI. There is no mock: what a test sees pushed is
// what git itself received.
package gittest

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is a git smart-HTTP server over the bare repositories in Root.
type Server struct {
	// URL is the server's base; a repository NAME is at URL + "/NAME.git".
	URL  string
	Root string
	// Token, when set, is the password every request must carry in basic
	// auth (any user name).
	Token string

	t        testing.TB
	git      string
	pushes   atomic.Int64
	mu       sync.Mutex
	onPush   func()
	requests []string
}

// Option configures a Server.
type Option func(*Server)

// WithToken makes the server require basic auth with token as password.
func WithToken(token string) Option {
	return func(s *Server) { s.Token = token }
}

// Git returns the path of the git CLI, failing the test when it is
// missing: these tests prove behaviour against real git and must not pass
// by skipping.
func Git(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("the git CLI is required by these tests and was not found in PATH (install git): %v", err)
	}
	return path
}

// NewServer starts a server for the life of the test.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{Root: t.TempDir(), t: t, git: Git(t)}
	for _, o := range opts {
		o(s)
	}
	backend := &cgi.Handler{
		Path:       s.git,
		Args:       []string{"http-backend"},
		Env:        []string{"GIT_PROJECT_ROOT=" + s.Root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
		InheritEnv: []string{"PATH"},
		Stderr:     testWriter{t},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		if s.Token != "" {
			_, pass, ok := r.BasicAuth()
			if !ok || pass != s.Token {
				w.Header().Set("WWW-Authenticate", `Basic realm="gittest"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			s.pushes.Add(1)
			s.mu.Lock()
			hook := s.onPush
			s.onPush = nil
			s.mu.Unlock()
			if hook != nil {
				hook()
			}
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// testWriter sends what git http-backend says on stderr (a refused ref
// update, say) to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("git http-backend: %s", bytes.TrimSpace(p))
	return len(p), nil
}

// BeforeNextPush makes fn run once, when the next push reaches the server
// and before git sees it: the place to push a competing commit.
func (s *Server) BeforeNextPush(fn func()) {
	s.mu.Lock()
	s.onPush = fn
	s.mu.Unlock()
}

// Pushes returns how many pushes reached the server, accepted or not.
func (s *Server) Pushes() int { return int(s.pushes.Load()) }

// Requests returns "METHOD /path" of every request so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// RepoURL returns the URL of repository name.
func (s *Server) RepoURL(name string) string { return s.URL + "/" + name + ".git" }

// BareDir returns the directory of the bare repository name.
func (s *Server) BareDir(name string) string { return filepath.Join(s.Root, name+".git") }

// CreateRepo makes the bare repository name with branch main holding files
// in one commit, and returns its URL.
func (s *Server) CreateRepo(name string, files map[string]string) string {
	s.t.Helper()
	bare := s.BareDir(name)
	s.Run("", "init", "--quiet", "--bare", "-b", "main", bare)
	s.Run(bare, "config", "http.receivepack", "true")
	if len(files) > 0 {
		s.Commit(name, "initial commit", files)
	}
	return s.RepoURL(name)
}

// Commit makes one commit on main of repository name as another client
// would, writing files (the content Deleted removes the path), and returns
// its hash. It pushes straight into the bare repository, not over
// HTTP, so it may run inside BeforeNextPush.
func (s *Server) Commit(name, message string, files map[string]string) string {
	s.t.Helper()
	work := s.t.TempDir()
	bare := s.BareDir(name)
	s.Run(work, "init", "--quiet", "-b", "main")
	if s.Run(bare, "for-each-ref", "refs/heads/main") != "" {
		s.Run(work, "fetch", "--quiet", bare, "main")
		s.Run(work, "reset", "--quiet", "--hard", "FETCH_HEAD")
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		full := filepath.Join(work, filepath.FromSlash(p))
		if files[p] == Deleted {
			s.Run(work, "rm", "-r", "--quiet", "--", p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			s.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(files[p]), 0o644); err != nil {
			s.t.Fatal(err)
		}
		s.Run(work, "add", "--", p)
	}
	s.Run(work, "commit", "--quiet", "--allow-empty", "-m", message)
	s.Run(work, "push", "--quiet", bare, "HEAD:refs/heads/main")
	return s.Run(work, "rev-parse", "HEAD")
}

// Deleted as a file's content in Commit deletes the file.
const Deleted = "\x00deleted"

// Head returns the commit main of repository name points to.
func (s *Server) Head(name string) string {
	s.t.Helper()
	return s.Run(s.BareDir(name), "rev-parse", "refs/heads/main")
}

// Clone clones repository name over HTTP with the git CLI into a fresh
// directory, as a user checking the result would.
func (s *Server) Clone(name string) *Clone {
	s.t.Helper()
	dir := filepath.Join(s.t.TempDir(), name)
	s.Run("", append(s.authArgs(), "clone", "--quiet", s.RepoURL(name), dir)...)
	return &Clone{Dir: dir, s: s}
}

func (s *Server) authArgs() []string {
	if s.Token == "" {
		return nil
	}
	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + s.Token))
	return []string{"-c", "http.extraHeader=Authorization: Basic " + basic}
}

// Run runs the git CLI in dir (the current directory when empty), failing
// the test on error, and returns its trimmed output. No user or system
// configuration is read.
func (s *Server) Run(dir string, args ...string) string {
	s.t.Helper()
	out, err := s.run(dir, args...)
	if err != nil {
		s.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (s *Server) run(dir string, args ...string) (string, error) {
	cmd := exec.Command(s.git, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Other Engineer", "GIT_AUTHOR_EMAIL=other@example.com",
		"GIT_COMMITTER_NAME=Other Engineer", "GIT_COMMITTER_EMAIL=other@example.com",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// Clone is a working copy of a repository of the Server.
type Clone struct {
	Dir string
	s   *Server
}

// Git runs the git CLI in the clone and returns its trimmed output.
func (c *Clone) Git(args ...string) string {
	c.s.t.Helper()
	return c.s.Run(c.Dir, args...)
}

// File returns the content of path in the clone's working tree, or fails
// the test.
func (c *Clone) File(path string) string {
	c.s.t.Helper()
	data, err := os.ReadFile(filepath.Join(c.Dir, filepath.FromSlash(path)))
	if err != nil {
		c.s.t.Fatalf("clone of %s: %v", filepath.Base(c.Dir), err)
	}
	return string(data)
}

// Exists reports whether path is in the clone's working tree.
func (c *Clone) Exists(path string) bool {
	_, err := os.Stat(filepath.Join(c.Dir, filepath.FromSlash(path)))
	return err == nil
}

// Show returns `git show REV:PATH`.
func (c *Clone) Show(rev, path string) string {
	c.s.t.Helper()
	return c.Git("show", rev+":"+path)
}

// Subjects returns the subjects of the commits on HEAD, newest first.
func (c *Clone) Subjects() []string {
	c.s.t.Helper()
	return strings.Split(c.Git("log", "--format=%s"), "\n")
}

// Message returns the full message of commit rev.
func (c *Clone) Message(rev string) string {
	c.s.t.Helper()
	return c.Git("log", "-1", "--format=%B", rev)
}
