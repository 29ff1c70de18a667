package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// gitServer serves the bare repositories under root over smart HTTP on
// loopback, through `git http-backend`: what the demo's actions push to is
// a real git server, as in production.
type gitServer struct {
	root string
	url  string
	git  string
	srv  *http.Server
}

func startGitServer(root string) (*gitServer, error) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("the demo needs the git command: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	backend := &cgi.Handler{
		Path:       gitBin,
		Args:       []string{"http-backend"},
		Env:        []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
		InheritEnv: []string{"PATH"},
	}
	s := &gitServer{root: root, url: "http://" + ln.Addr().String(), git: gitBin, srv: &http.Server{Handler: backend}}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *gitServer) Close() { s.srv.Close() }

// repoURL is the URL of bare repository name.
func (s *gitServer) repoURL(name string) string { return s.url + "/" + name + ".git" }

// createRepo makes bare repository name with one commit per entry of
// history, each writing its files.
func (s *gitServer) createRepo(name string, history []demoCommit) error {
	bare := filepath.Join(s.root, name+".git")
	work, err := os.MkdirTemp("", "firebreak-demo-work-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := s.run("", "init", "--quiet", "--bare", "-b", "main", bare); err != nil {
		return err
	}
	if err := s.run(bare, "config", "http.receivepack", "true"); err != nil {
		return err
	}
	if err := s.run(work, "init", "--quiet", "-b", "main"); err != nil {
		return err
	}
	for _, c := range history {
		for p, content := range c.files {
			full := filepath.Join(work, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				return err
			}
		}
		if err := s.run(work, "add", "."); err != nil {
			return err
		}
		if err := s.run(work, "-c", "user.name=Dana Deployer", "-c", "user.email=dana@example.com", "commit", "--quiet", "-m", c.message); err != nil {
			return err
		}
	}
	return s.run(work, "push", "--quiet", bare, "main")
}

type demoCommit struct {
	message string
	files   map[string]string
}

func (s *gitServer) run(dir string, args ...string) error {
	cmd := exec.Command(s.git, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
