package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5"
	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/registry"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/actions/webclient"
	"github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/ledger"
	"github.com/firebreak-dev/firebreak/engine/plan"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/schema"
)

// engineFlags are the flags of the commands that act on incidents.
type engineFlags struct {
	secretsDir string
	cacheDir   string
}

func (f *engineFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.secretsDir, "secrets-dir", "", "directory of secret files named after the secrets (after FIREBREAK_SECRET_*)")
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", "", "where clones of target repositories are cached (default: the user cache dir)")
}

func (f *engineFlags) cache() string {
	if f.cacheDir != "" {
		return f.cacheDir
	}
	if base, err := os.UserCacheDir(); err == nil {
		return filepath.Join(base, "firebreak")
	}
	return filepath.Join(os.TempDir(), "firebreak-cache")
}

// openEngine loads the playbook repository (DIR, ".", or --repo) and opens
// its incident log. valid demands a valid repository: what plans and runs
// does; the commands that only read or act on recorded incidents do not.
func openEngine(cmd *cobra.Command, g *globalOptions, args []string, f *engineFlags, valid bool) (*respond.Engine, error) {
	dir, err := g.dir(cmd, args)
	if err != nil {
		return nil, err
	}
	w := newWiring(cmd, f)
	l, err := w.ledger(g, dir)
	if err != nil {
		return nil, err
	}
	return w.engine(cmd, dir, l, valid)
}

// wiring is what every engine of one command shares: secrets, the log,
// the cache of target clones.
type wiring struct {
	sec   *secrets.Store
	log   *slog.Logger
	store *gitrepo.Store
}

func newWiring(cmd *cobra.Command, f *engineFlags) *wiring {
	sec := secrets.New(f.secretsDir)
	log := slog.New(secrets.Handler(slog.NewTextHandler(cmd.ErrOrStderr(), nil), sec))
	return &wiring{sec: sec, log: log, store: gitrepo.NewStore(f.cache(), log)}
}

// env is the sandbox's view of the world for the repository's config:
// the secrets, HTTP to declared hosts only, the cache of target clones.
func (w *wiring) env(cfg *schema.Config) *actions.Env {
	return &actions.Env{
		Config:  cfg,
		Secrets: w.sec,
		HTTP:    webclient.New(webclient.Options{AllowedHosts: webclient.AllowedHosts(cfg), Redact: w.sec.Redact, Log: w.log}),
		Git:     w.store,
		Log:     w.log,
	}
}

// head returns the branch and commit checked out in dir.
func head(dir string) (branch, commit string, err error) {
	r, err := git.PlainOpen(dir)
	if err != nil {
		return "", "", fmt.Errorf("%s is not a git repository: incidents are recorded in it as commits (git init it first)", dir)
	}
	h, err := r.Head()
	if err != nil {
		return "", "", fmt.Errorf("%s: no commit yet: commit the playbooks first", dir)
	}
	return h.Name().Short(), h.Hash().String(), nil
}

// ledger opens the incident log: the worktree dir, or the --repo remote
// dir is a clone of.
func (w *wiring) ledger(g *globalOptions, dir string) (*ledger.Ledger, error) {
	branch, _, err := head(dir)
	if err != nil {
		return nil, err
	}
	var l *ledger.Ledger
	if g.repoURL != "" {
		rem := gitrepo.Remote{URL: g.repoURL, Branch: branch}
		if token, err := w.sec.Get(g.repoSecret); err == nil {
			rem.Token = token
		}
		l, err = ledger.OpenRemote(w.store, rem, ledger.Options{Logger: w.log})
	} else {
		l, err = ledger.OpenLocal(dir, ledger.Options{Logger: w.log})
	}
	if err != nil {
		return nil, err
	}
	g.cleanups = append(g.cleanups, func() { l.Close() })
	return l, nil
}

// engine loads the playbooks in dir into an engine recording in l.
func (w *wiring) engine(cmd *cobra.Command, dir string, l *ledger.Ledger, valid bool) (*respond.Engine, error) {
	r, err := repo.Load(dir)
	if err != nil {
		return nil, err
	}
	if valid && !r.Valid() {
		for _, d := range r.Diagnostics {
			fmt.Fprintln(cmd.ErrOrStderr(), d)
		}
		return nil, fmt.Errorf("%s: %d problem(s) in the playbook repository", dir, len(r.Diagnostics))
	}
	if r.Config == nil {
		return nil, fmt.Errorf("%s: no usable firebreak.cue", dir)
	}
	branch, commit, err := head(dir)
	if err != nil {
		return nil, err
	}
	e := &respond.Engine{Repo: r, Ledger: l, Branch: branch, PlaybooksCommit: commit, Log: w.log}
	if valid {
		if e.Planner, err = plan.New(r); err != nil {
			return nil, err
		}
	}
	env := w.env(r.Config)
	e.Runner = &run.Runner{Env: env, Actions: registry.Actions, Log: w.log}
	if gh := r.Config.GitHub; gh != nil {
		if _, err := w.sec.Get(gh.Token.Secret); err != nil {
			w.log.Warn("firebreak.cue has a github block but its token is not set: incidents stay in Git only", "secret", gh.Token.Secret)
		} else if e.GitHub, err = github.New(github.Options{Config: gh, Secrets: w.sec, Log: w.log}); err != nil {
			return nil, err
		} else {
			env.Commenter = e.GitHub.Commenter(func(ctx context.Context, id string) (int, error) {
				in, err := e.Get(ctx, id)
				if err != nil {
					return 0, err
				}
				return in.Issue, nil
			})
		}
	}
	return e, nil
}
