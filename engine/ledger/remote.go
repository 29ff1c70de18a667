package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/firebreak-dev/firebreak/actions/gitrepo"
)

// remote is a repository reached over HTTP through a gitrepo.Store. Every
// write is a gitrepo Update — fetch, plan and change, commit, push, planned
// again on the new head when the push is rejected — and a write whose
// Update ran out of push attempts against a busy branch is tried again,
// after a random pause, up to the Ledger's attempts.
type remote struct {
	opts   Options
	store  *gitrepo.Store
	remote gitrepo.Remote
	repo   *gitrepo.Repo
}

func openRemote(store *gitrepo.Store, rem gitrepo.Remote, opts Options) (*remote, error) {
	if store == nil {
		return nil, errors.New("ledger: remote mode needs a gitrepo.Store")
	}
	if rem.Branch == "" {
		rem.Branch = "main"
	}
	repo, err := store.Open(rem)
	if err != nil {
		return nil, err
	}
	return &remote{opts: opts, store: store, remote: rem, repo: repo}, nil
}

func (r *remote) close() error { return nil } // the Store is the caller's

func (r *remote) branch(name string) (*gitrepo.Repo, error) {
	if name == "" || name == r.remote.Branch {
		return r.repo, nil
	}
	rem := r.remote
	rem.Branch = name
	return r.store.Open(rem)
}

func (r *remote) update(ctx context.Context, branch, base string, plan plan) (string, bool, error) {
	repo, err := r.branch(branch)
	if err != nil {
		return "", false, err
	}
	// planFailed tells the plan's own errors, returned as they are, from
	// those of the Update around it: a plan's error that happens to wrap
	// ErrRejected or ErrBranchNotFound must not be retried.
	planFailed := false
	apply := func(tx *gitrepo.Tx) error {
		message, changes, err := plan.run(txView{tx})
		if planFailed = err != nil; planFailed {
			return err
		}
		tx.SetMessage(message)
		for _, c := range changes {
			if !c.delete {
				if err := tx.WriteFile(c.path, c.data); err != nil {
					return err
				}
				continue
			}
			files, err := tx.Files(c.path)
			if err != nil {
				return err
			}
			if len(files) > 1 || len(files) == 1 && files[0] != c.path {
				return fmt.Errorf("remove %s: is a directory", c.path)
			}
			if err := tx.Delete(c.path); err != nil {
				return err
			}
		}
		return nil
	}
	created := false
	for attempt := 1; ; attempt++ {
		// The message is the plan's, set in apply: gitrepo checks it
		// only when there is something to commit.
		commit, changed, err := repo.Update(ctx, "", apply)
		if planFailed {
			return "", false, err
		}
		if errors.Is(err, gitrepo.ErrBranchNotFound) && repo != r.repo && !created {
			if err = r.createBranch(ctx, branch, base); err == nil {
				created = true
				attempt--
				continue
			}
		}
		if err == nil || !errors.Is(err, gitrepo.ErrRejected) || attempt >= r.opts.Attempts {
			return commit, changed, err
		}
		r.opts.Logger.Debug("ledger: push kept being rejected; trying again", "remote", repo.String(), "attempt", attempt)
		pause := 50*time.Millisecond + rand.N(min(100*time.Millisecond*time.Duration(attempt), time.Second))
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", false, fmt.Errorf("push %s: %w", repo, context.Cause(ctx))
		case <-t.C:
		}
	}
}

func (r *remote) read(ctx context.Context, p string) ([]byte, error) {
	return r.repo.ReadFile(ctx, p)
}

func (r *remote) list(ctx context.Context, dir string) ([]string, error) {
	var out []string
	err := r.repo.View(ctx, func(tx *gitrepo.Tx) (err error) {
		out, err = tx.Files(dir)
		return err
	})
	return out, err
}

// txView reads the head an Update's attempt fetched. The Tx holds no
// writes while the plan runs: they are made after it returns.
type txView struct{ tx *gitrepo.Tx }

func (v txView) Read(path string) ([]byte, error)  { return v.tx.ReadFile(path) }
func (v txView) List(dir string) ([]string, error) { return v.tx.Files(dir) }
func (v txView) Head() string                      { return v.tx.Head() }

// createBranch makes branch on the remote at the head of base (a full
// commit hash, a branch, or the Ledger's branch when empty). A branch
// someone else made meanwhile is no error.
//
// gitrepo updates existing branches only, so this one push goes through
// go-git's transport directly, with the redirect policy gitrepo installed
// and its care for the token: no error here carries go-git's own text
// unscrubbed.
func (r *remote) createBranch(ctx context.Context, branch, base string) error {
	var at plumbing.Hash
	if len(base) == 40 && plumbing.IsHash(base) {
		at = plumbing.NewHash(base)
	} else {
		repo, err := r.branch(base)
		if err != nil {
			return err
		}
		head, err := repo.Head(ctx)
		if err != nil {
			return fmt.Errorf("base of %s: %w", branch, err)
		}
		at = plumbing.NewHash(head)
	}

	rem := r.remote
	u, err := url.Parse(rem.URL)
	if err != nil {
		return fmt.Errorf("create branch %s: invalid url", branch)
	}
	if u.User != nil {
		if rem.Username == "" {
			rem.Username = u.User.Username()
		}
		u.User = nil
	}
	if rem.Username == "" {
		rem.Username = gitrepo.DefaultUsername
	}
	where := fmt.Sprintf("create branch %s on %s", branch, u.Redacted())
	fail := func(err error) error {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: %w", where, context.Cause(ctx))
		}
		if errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) {
			return fmt.Errorf("%s: %w", where, gitrepo.ErrAuth)
		}
		return errors.New(where + ": " + scrub(err.Error(), rem))
	}
	ep, err := transport.NewEndpoint(u.String())
	if err != nil {
		return fail(err)
	}
	cl, err := client.NewClient(ep)
	if err != nil {
		return fail(err)
	}
	var auth transport.AuthMethod
	if rem.Token != "" {
		auth = &githttp.BasicAuth{Username: rem.Username, Password: rem.Token}
	}
	sess, err := cl.NewReceivePackSession(ep, auth)
	if err != nil {
		return fail(err)
	}
	defer sess.Close()
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return fail(err)
	}
	refs, err := adv.AllReferences()
	if err != nil {
		return fail(err)
	}
	name := plumbing.NewBranchReferenceName(branch)
	if _, ok := refs[name]; ok {
		return nil
	}
	// The commit is already on the remote: the pack is empty.
	var pack bytes.Buffer
	if _, err := packfile.NewEncoder(&pack, memory.NewStorage(), false).Encode(nil, 0); err != nil {
		return fail(err)
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(adv.Capabilities)
	req.Commands = []*packp.Command{{Name: name, Old: plumbing.ZeroHash, New: at}}
	req.Packfile = io.NopCloser(&pack)
	report, err := sess.ReceivePack(ctx, req)
	if report != nil {
		for _, cs := range report.CommandStatuses {
			if cs.Status != "ok" {
				// Most likely made by someone else meanwhile; the
				// Update that follows finds out.
				r.opts.Logger.Debug("ledger: remote refused to create a branch", "branch", branch, "status", scrub(cs.Status, rem))
				return nil
			}
		}
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@`)

// scrub removes the token (raw, URL-escaped, and as a basic-auth header
// value) and the user info of URLs from s, and folds it to one bounded
// line.
func scrub(s string, rem gitrepo.Remote) string {
	if t := rem.Token; t != "" {
		s = strings.ReplaceAll(s, t, "[redacted]")
		s = strings.ReplaceAll(s, base64.StdEncoding.EncodeToString([]byte(rem.Username+":"+t)), "[redacted]")
		s = strings.ReplaceAll(s, url.QueryEscape(t), "[redacted]")
	}
	s = userinfo.ReplaceAllString(s, "$1")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}
