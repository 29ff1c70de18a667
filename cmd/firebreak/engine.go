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
	sec := secrets.New(f.secretsDir)
	log := slog.New(secrets.Handler(slog.NewTextHandler(cmd.ErrOrStderr(), nil), sec))
	store := gitrepo.NewStore(f.cache(), log)

	gitRepo, err := git.PlainOpen(dir)
	if err != nil {
		return nil, fmt.Errorf("%s is not a git repository: incidents are recorded in it as commits (git init it first)", dir)
	}
	head, err := gitRepo.Head()
	if err != nil {
		return nil, fmt.Errorf("%s: no commit yet: commit the playbooks first", dir)
	}
	var l *ledger.Ledger
	if g.repoURL != "" {
		rem := gitrepo.Remote{URL: g.repoURL, Branch: head.Name().Short()}
		if token, err := sec.Get(g.repoSecret); err == nil {
			rem.Token = token
		}
		l, err = ledger.OpenRemote(store, rem, ledger.Options{Logger: log})
	} else {
		l, err = ledger.OpenLocal(dir, ledger.Options{Logger: log})
	}
	if err != nil {
		return nil, err
	}
	g.cleanups = append(g.cleanups, func() { l.Close() })

	e := &respond.Engine{Repo: r, Ledger: l, Branch: head.Name().Short(), PlaybooksCommit: head.Hash().String(), Log: log}
	if valid {
		if e.Planner, err = plan.New(r); err != nil {
			return nil, err
		}
	}
	env := &actions.Env{
		Config:  r.Config,
		Secrets: sec,
		HTTP:    webclient.New(webclient.Options{AllowedHosts: webclient.AllowedHosts(r.Config), Redact: sec.Redact, Log: log}),
		Git:     store,
		Log:     log,
	}
	e.Runner = &run.Runner{Env: env, Actions: registry.Actions, Log: log}
	if gh := r.Config.GitHub; gh != nil {
		if _, err := sec.Get(gh.Token.Secret); err != nil {
			log.Warn("firebreak.cue has a github block but its token is not set: incidents stay in Git only", "secret", gh.Token.Secret)
		} else if e.GitHub, err = github.New(github.Options{Config: gh, Secrets: sec, Log: log}); err != nil {
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
