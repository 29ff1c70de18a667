// Command gitscale measures firebreak's scale step against the git CLI
// doing the same by hand, on a target repository of 20,000 files served by
// `git http-backend` on loopback.
//
// Both sides start from a warm local clone and, in each round, bring it up
// to date, set the replicas of one Deployment, commit and push:
//
//	firebreak: scale.Action.Execute (fetch, edit, commit, push through gitrepo)
//	git CLI:   git fetch && git reset --hard origin/main && edit && git commit -a && git push
//
// The rounds alternate between the sides (and which goes first), so each
// side's fetch brings in the other's last commit. It prints each round, the
// medians and the ratio firebreak / git CLI; the goal is ≤ 1.0.
//
//	go run ./bench/gitscale [-files 20000] [-rounds 10]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/scale"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/schema"
)

const manifestPath = "apps/checkout/deployment.yaml"

const manifest = `# checkout — scaled by firebreak during incidents
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
spec:
  replicas: 3   # floor in prod
  selector: {matchLabels: {app: checkout}}
  template:
    metadata: {labels: {app: checkout}}
    spec:
      containers: [{name: api, image: "ghcr.io/acme/checkout:1.4.2"}]
`

func main() {
	files := flag.Int("files", 20000, "files in the target repository")
	rounds := flag.Int("rounds", 10, "timed rounds per side")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	flag.Parse()
	if err := run(*files, *rounds, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "gitscale:", err)
		os.Exit(1)
	}
}

func run(nfiles, rounds int, keep bool) error {
	ctx := context.Background()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("the git CLI is required: %w", err)
	}
	dir, err := os.MkdirTemp("", "gitscale-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	root := filepath.Join(dir, "srv")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: &cgi.Handler{
		Path:       gitPath,
		Args:       []string{"http-backend"},
		Env:        []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
		InheritEnv: []string{"PATH"},
	}}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/target.git"

	start := time.Now()
	if err := makeTarget(dir, root, nfiles); err != nil {
		return err
	}
	fmt.Printf("target: %d files, made in %s; %s; server %s\n", nfiles+1, time.Since(start).Round(time.Millisecond), gitVersion(), url)

	// The git CLI's warm clone.
	cli := filepath.Join(dir, "cli")
	if _, err := git("", "clone", "--quiet", url, cli); err != nil {
		return err
	}
	// firebreak's warm clone: its cache, filled by a first read.
	env, err := firebreakEnv(dir, url)
	if err != nil {
		return err
	}
	repo, err := env.Git.Open(gitrepo.Remote{URL: url, Branch: "main"})
	if err != nil {
		return err
	}
	if _, err := repo.Head(ctx); err != nil {
		return err
	}

	sides := []struct {
		name string
		step func(round int) error
	}{
		{"firebreak", func(round int) error { return firebreakStep(ctx, env, round) }},
		{"git CLI", func(round int) error { return cliStep(cli, round) }},
	}
	times := map[string][]time.Duration{}
	// Round 0 warms both sides up and is not counted.
	for round := 0; round <= rounds; round++ {
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		var line []string
		for _, i := range order {
			s := sides[i]
			t0 := time.Now()
			if err := s.step(round); err != nil {
				return fmt.Errorf("%s, round %d: %w", s.name, round, err)
			}
			d := time.Since(t0)
			line = append(line, fmt.Sprintf("%-9s %7.1f ms", s.name, ms(d)))
			if round > 0 {
				times[s.name] = append(times[s.name], d)
			}
		}
		label := "warm-up"
		if round > 0 {
			label = fmt.Sprintf("round %2d", round)
		}
		fmt.Printf("%s: %s\n", label, strings.Join(line, "   "))
	}

	// Both sides' commits are on the remote, each on top of the other's.
	out, err := git(cli, "fetch", "--quiet")
	if err == nil {
		out, err = git(cli, "rev-list", "--count", "origin/main")
	}
	if err != nil {
		return err
	}
	fmt.Printf("remote history: %s commits (1 + 2 × %d)\n", strings.TrimSpace(out), rounds+1)

	fb, gc := median(times["firebreak"]), median(times["git CLI"])
	fmt.Printf("median  firebreak %.1f ms   git CLI %.1f ms\n", ms(fb), ms(gc))
	fmt.Printf("ratio   firebreak / git CLI = %.2f (goal ≤ 1.0)\n", float64(fb)/float64(gc))
	return nil
}

// makeTarget makes the bare repository target.git: nfiles small files in
// 200 directories, and the checkout Deployment manifest.
func makeTarget(dir, root string, nfiles int) error {
	work := filepath.Join(dir, "seed")
	for i := range nfiles {
		p := filepath.Join(work, "apps", fmt.Sprintf("svc-%03d", i%200), fmt.Sprintf("config-%03d.yaml", i/200))
		if i < 200 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
		}
		content := fmt.Sprintf("service: svc-%03d\nkey: config-%03d\nvalue: %d\n", i%200, i/200, i*7919%100003)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	mp := filepath.Join(work, filepath.FromSlash(manifestPath))
	if err := os.MkdirAll(filepath.Dir(mp), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(mp, []byte(manifest), 0o644); err != nil {
		return err
	}
	bare := filepath.Join(root, "target.git")
	for _, args := range [][]string{
		{"init", "--quiet", "--bare", "-b", "main", bare},
		{"-C", bare, "config", "http.receivepack", "true"},
		{"-C", work, "init", "--quiet", "-b", "main"},
		{"-C", work, "add", "-A"},
		{"-C", work, "commit", "--quiet", "-m", "initial: 20k files"},
		{"-C", work, "push", "--quiet", bare, "main"},
	} {
		if _, err := git("", args...); err != nil {
			return err
		}
	}
	return nil
}

func firebreakEnv(dir, url string) (*actions.Env, error) {
	max := 10000
	cfg := &schema.Config{
		Targets: map[string]schema.Target{"target": {Git: &schema.GitTarget{URL: url, Branch: "main"}}},
		Policy: schema.Policy{Owners: map[string]schema.OwnerPolicy{
			"@bench": {Scale: &schema.ScalePolicy{Targets: []string{"target"}, MaxReplicas: &max}},
		}},
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return &actions.Env{
		Config:  cfg,
		Secrets: secrets.NewFromMap(nil),
		Git:     gitrepo.NewStore(filepath.Join(dir, "firebreak-cache"), log),
		Log:     log,
		Now:     time.Now,
	}, nil
}

// firebreakStep is one scale step as the engine runs it.
func firebreakStep(ctx context.Context, env *actions.Env, round int) error {
	out, err := scale.Action{}.Execute(ctx, env, &actions.Request{
		Incident: fmt.Sprintf("BENCH-%d", round),
		Playbook: "bench",
		Owner:    "@bench",
		Step: schema.Step{Name: "scale", Action: "scale", Params: map[string]any{
			"target": "target", "path": manifestPath, "replicas": 100 + round,
		}},
	})
	if err != nil {
		return err
	}
	if !out.Changed {
		return errors.New("nothing changed")
	}
	return nil
}

var replicasLine = regexp.MustCompile(`(?m)^(  replicas: )\d+`)

// cliStep is the same by hand with the git CLI.
func cliStep(cli string, round int) error {
	if _, err := git(cli, "fetch", "--quiet"); err != nil {
		return err
	}
	if _, err := git(cli, "reset", "--quiet", "--hard", "origin/main"); err != nil {
		return err
	}
	p := filepath.Join(cli, filepath.FromSlash(manifestPath))
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	edited := replicasLine.ReplaceAll(data, []byte(fmt.Sprintf("${1}%d", 200+round)))
	if bytes.Equal(edited, data) {
		return errors.New("edit changed nothing")
	}
	if err := os.WriteFile(p, edited, 0o644); err != nil {
		return err
	}
	if _, err := git(cli, "commit", "--quiet", "-a", "-m", fmt.Sprintf("scale checkout to %d", 200+round)); err != nil {
		return err
	}
	_, err = git(cli, "push", "--quiet", "origin", "HEAD:main")
	return err
}

func git(dir string, args ...string) (string, error) {
	// No background gc or maintenance: it would run into the timings.
	cmd := exec.Command("git", append([]string{"-c", "gc.auto=0", "-c", "maintenance.auto=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@localhost", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@localhost")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

func gitVersion() string {
	out, err := git("", "version")
	if err != nil {
		return "git ?"
	}
	return strings.TrimSpace(out)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
