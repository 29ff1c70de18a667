package github_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/actions/webclient"
	fbgh "github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/github/githubtest"
	"github.com/firebreak-dev/firebreak/schema"
)

const token = "ghp_t0kenV4lue9f3a77c2"

// env is a fake GitHub and what clients of it share.
type env struct {
	t    *testing.T
	srv  *githubtest.Server
	logs *syncBuffer
	opts fbgh.Options
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := githubtest.New(t, githubtest.Config{Owner: "acme", Repo: "ops", Token: token,
		Assignable: []string{"alice", "bob", "carol"}})
	srv.SetTeamMember("acme", "payments", "alice", "active")
	srv.SetTeamMember("acme", "payments", "pat", "pending")
	srv.SetTeamMember("acme", "sre", "sam", "active")
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &env{t: t, srv: srv, logs: logs, opts: fbgh.Options{
		Config:  &schema.GitHub{Owner: "acme", Repo: "ops", APIURL: srv.URL + "/", Token: schema.Secret{Secret: "GITHUB_TOKEN"}},
		Secrets: secrets.NewFromMap(map[string]string{"GITHUB_TOKEN": token}),
		HTTP: webclient.Options{
			RetryMax: 4, WaitMin: time.Millisecond, WaitMax: 20 * time.Millisecond,
			RetryAfterMax: 3 * time.Second,
		},
		Log: log,
		// Long enough that a loaded machine does not time out an answer;
		// tests of slow answers set their own.
		AttemptTimeout: 5 * time.Second,
		MutationGap:    -1,
	}}
}

// client is a fresh client, as after a restart: nothing cached.
func (e *env) client() *fbgh.Client {
	e.t.Helper()
	c, err := fbgh.New(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// issuesFor returns the issues carrying incident id's marker.
func (e *env) issuesFor(id string) []githubtest.Issue {
	var out []githubtest.Issue
	for _, is := range e.srv.Issues() {
		if strings.Contains(is.Body, fbgh.IncidentMarker(id)) {
			out = append(out, is)
		}
	}
	return out
}

// commentsWith counts issue number's comments carrying key's marker.
func (e *env) commentsWith(number int, key string) int {
	is, _ := e.srv.Issue(number)
	n := 0
	for _, c := range is.Comments {
		if strings.Contains(c.Body, fbgh.CommentMarker(key)) {
			n++
		}
	}
	return n
}

// noToken fails when the token shows in texts or the log.
func (e *env) noToken(texts ...string) {
	e.t.Helper()
	for _, s := range append(texts, e.logs.String()) {
		if strings.Contains(s, token) || strings.Contains(s, token[4:]) {
			e.t.Fatalf("token leaked:\n%s", s)
		}
	}
	for _, r := range e.srv.Requests() {
		if !r.Authorized {
			e.t.Fatalf("%s %s without the token", r.Method, r.Path)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func secretsWith(tok string) *secrets.Store {
	return secrets.NewFromMap(map[string]string{"GITHUB_TOKEN": tok})
}
