package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/actions/secrets"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	repoURL    string
	repoSecret string
	cleanups   []func()
}

func (g *globalOptions) register(root *cobra.Command) {
	root.PersistentFlags().StringVar(&g.repoURL, "repo", "", "a remote playbook repository (https URL) to use instead of DIR; cloned shallowly into a temporary directory")
	root.PersistentFlags().StringVar(&g.repoSecret, "repo-token", "GITHUB_TOKEN", "name of the secret (FIREBREAK_SECRET_<NAME>) holding the token for --repo")
}

// dir returns the playbook repository to work on: DIR, ".", or a fresh
// shallow clone of --repo.
func (g *globalOptions) dir(cmd *cobra.Command, args []string) (string, error) {
	if g.repoURL == "" {
		return dirArg(args), nil
	}
	if len(args) > 0 {
		return "", usagef("give DIR or --repo, not both")
	}
	if !strings.HasPrefix(g.repoURL, "https://") && !strings.HasPrefix(g.repoURL, "http://") {
		return "", usagef("--repo %q: want an http(s) URL", g.repoURL)
	}
	tmp, err := os.MkdirTemp("", "firebreak-repo-")
	if err != nil {
		return "", err
	}
	g.cleanups = append(g.cleanups, func() { os.RemoveAll(tmp) })
	opts := &git.CloneOptions{URL: g.repoURL, Depth: 1, SingleBranch: true}
	sec := secrets.New("")
	if token, err := sec.Get(g.repoSecret); err == nil {
		opts.Auth = &http.BasicAuth{Username: "x-access-token", Password: token}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "cloning %s\n", g.repoURL)
	if _, err := git.PlainCloneContext(cmd.Context(), tmp, false, opts); err != nil {
		return "", fmt.Errorf("clone %s: %w", g.repoURL, sec.RedactError(err))
	}
	return tmp, nil
}

func (g *globalOptions) cleanup() {
	for _, f := range g.cleanups {
		f()
	}
}
