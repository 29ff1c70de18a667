// Package gitrepo is firebreak's only door to Git: cached clones of target
// repositories, read at the remote head, changed by commits built straight
// from objects and pushed with a bounded fetch-and-reapply loop when someone
// else pushed first. Callers never see go-git types, and the token of a
// Remote never reaches an error or a log line. Remotes are reached over
// HTTP(S) only, and a redirect may not leave the remote's host.
package gitrepo

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/filesystem/dotgit"
)

// DefaultUsername is the basic-auth user name sent with a token when the
// Remote names none; GitHub, GitLab and Gitea all accept it.
const DefaultUsername = "x-access-token"

// DefaultAttempts is how many times Update applies its change and pushes
// before it gives up on a branch that keeps moving.
const DefaultAttempts = 5

var (
	// ErrBranchNotFound is returned when the remote has no such branch.
	ErrBranchNotFound = errors.New("branch not found")
	// ErrAuth is returned when the remote refuses the credentials.
	ErrAuth = errors.New("authentication failed (check the token and its permissions)")
	// ErrRepoNotFound is returned when the remote has no such repository.
	ErrRepoNotFound = errors.New("repository not found")
	// ErrRejected is returned when every push attempt of an Update was
	// rejected by the remote.
	ErrRejected = errors.New("push rejected")
	// ErrUnknownRevision is returned for a revision that is not in the
	// history of the remote branch.
	ErrUnknownRevision = errors.New("unknown revision")
)

// Remote is one branch of a remote repository and the credentials for it.
// The caller resolves Token from a secret; gitrepo only sends it.
type Remote struct {
	URL    string
	Branch string
	// Username is the basic-auth user; DefaultUsername when empty.
	Username string
	Token    string
}

// Store keeps one cached bare clone per remote URL and branch under a
// directory, and serializes the operations on each. It is safe for
// concurrent use. A clone belongs to one process at a time (go-git's
// storage assumes exclusive access): a process that finds a clone taken
// by another (two `firebreak run` at once on one machine) works in a
// private clone of its own, removed on Close.
type Store struct {
	dir      string
	log      *slog.Logger
	name     string
	email    string
	attempts int
	now      func() time.Time

	mu    sync.Mutex
	repos map[string]*cached
}

// Option configures a Store.
type Option func(*Store)

// WithAuthor sets the author and committer of the commits a Store makes;
// the default is "firebreak <firebreak@localhost>".
func WithAuthor(name, email string) Option {
	return func(s *Store) { s.name, s.email = name, email }
}

// WithAttempts sets how many times Update tries before giving up on a
// branch that keeps moving; DefaultAttempts when n < 1.
func WithAttempts(n int) Option {
	return func(s *Store) {
		if n >= 1 {
			s.attempts = n
		}
	}
}

// NewStore returns a Store caching clones under cacheDir.
func NewStore(cacheDir string, log *slog.Logger, opts ...Option) *Store {
	installTransport()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		dir: cacheDir, log: log,
		name: "firebreak", email: "firebreak@localhost",
		attempts: DefaultAttempts, now: time.Now,
		repos: map[string]*cached{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Close releases the file descriptors of every cached clone. The Store
// must not be used afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, c := range s.repos {
		c.sem <- struct{}{}
		if c.storage != nil {
			errs = append(errs, c.storage.Close())
			c.storage, c.repo = nil, nil
		}
		if c.owner != nil {
			c.owner.Close()
			c.owner = nil
		}
		if c.private {
			os.RemoveAll(c.dir)
		}
		<-c.sem
	}
	return errors.Join(errs...)
}

// cached is the clone of one remote branch, shared by every Repo handle on
// it. sem serializes use: a go-git Repository is not safe for concurrent
// use, and two Updates on one branch would race each other anyway.
type cached struct {
	dir     string
	owner   *os.File // the lock that makes dir this process's
	private bool     // dir is a private clone, removed on Close
	sem     chan struct{}
	storage *filesystem.Storage
	repo    *git.Repository
}

// Repo is a handle on one remote branch with one set of credentials.
type Repo struct {
	store  *Store
	c      *cached
	remote Remote
	name   string // URL without credentials, and branch: for messages
}

// Open returns a handle on r. It does no I/O: the first operation clones
// into the cache, later ones fetch.
func (s *Store) Open(r Remote) (*Repo, error) {
	if r.Branch == "" {
		r.Branch = "main"
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, fmt.Errorf("git url %q: invalid", redactURL(r.URL))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("git url %s: only http and https remotes are supported", redactURL(r.URL))
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return nil, fmt.Errorf("git url %s: holds a password; name a token secret instead", redactURL(r.URL))
		}
		if r.Username == "" {
			r.Username = u.User.Username()
		}
		u.User = nil
		r.URL = u.String()
	}
	if !validBranch(r.Branch) {
		return nil, fmt.Errorf("git branch %q: invalid name", r.Branch)
	}
	if r.Username == "" {
		r.Username = DefaultUsername
	}
	key := r.URL + "\x00" + r.Branch
	s.mu.Lock()
	c, ok := s.repos[key]
	if !ok {
		sum := sha256.Sum256([]byte(key))
		c = &cached{
			dir: filepath.Join(s.dir, slug(u.Host+u.Path)+"-"+hex.EncodeToString(sum[:6])),
			sem: make(chan struct{}, 1),
		}
		s.repos[key] = c
	}
	s.mu.Unlock()
	return &Repo{store: s, c: c, remote: r, name: fmt.Sprintf("%s (branch %s)", r.URL, r.Branch)}, nil
}

// validBranch follows git check-ref-format, less its rarer corners.
func validBranch(b string) bool {
	if b == "" || b == "@" || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") || strings.HasSuffix(b, "/") ||
		strings.HasSuffix(b, ".") || strings.HasSuffix(b, ".lock") || strings.Contains(b, "..") ||
		strings.Contains(b, "//") || strings.Contains(b, "@{") {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(" ~^:?*[\\", c) {
			return false
		}
	}
	return true
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func slug(s string) string {
	s = strings.Trim(unsafeChars.ReplaceAllString(s, "_"), "_.")
	if len(s) > 60 {
		s = s[len(s)-60:]
	}
	return s
}

// String names the remote branch, without credentials.
func (r *Repo) String() string { return r.name }

// lock takes the clone for the caller, or gives up with ctx.
func (r *Repo) lock(ctx context.Context) error {
	select {
	case r.c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("git %s: waiting for the clone: %w", r.name, context.Cause(ctx))
	}
}

func (r *Repo) unlock() { <-r.c.sem }

func (r *Repo) branchRef() plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName("origin", r.remote.Branch)
}

// openCache opens the clone, creating it when absent and starting over
// when it cannot be opened.
func (r *Repo) openCache() error {
	c := r.c
	if c.repo != nil {
		return nil
	}
	if c.owner == nil && !c.private {
		if err := os.MkdirAll(filepath.Dir(c.dir), 0o755); err != nil {
			return fmt.Errorf("git cache: %w", err)
		}
		if f, ok := own(c.dir); ok {
			c.owner = f
		} else {
			dir, err := os.MkdirTemp(filepath.Dir(c.dir), filepath.Base(c.dir)+"-private-")
			if err != nil {
				return fmt.Errorf("git cache: %w", err)
			}
			r.store.log.Info("git cache in use by another process; cloning privately", "remote", r.name, "dir", dir)
			c.dir, c.private = dir, true
		}
	}
	for try := 0; ; try++ {
		if err := os.MkdirAll(c.dir, 0o755); err != nil {
			return fmt.Errorf("git cache: %w", err)
		}
		st := filesystem.NewStorageWithOptions(osfs.New(c.dir), cache.NewObjectLRUDefault(),
			filesystem.Options{ExclusiveAccess: true, KeepDescriptors: true})
		repo, err := git.Open(st, nil)
		if errors.Is(err, git.ErrRepositoryNotExists) {
			repo, err = git.Init(st, nil)
			if err == nil {
				// HEAD follows the remote branch, so revisions like HEAD~2
				// resolve against it.
				err = st.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, r.branchRef()))
			}
			if err == nil {
				_, err = repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{r.remote.URL}})
			}
		}
		if err == nil {
			// A kill between init and adding the remote leaves a clone
			// that can never fetch: start over.
			_, err = repo.Remote("origin")
		}
		if err == nil {
			c.storage, c.repo = st, repo
			return nil
		}
		_ = st.Close()
		if try > 0 {
			return fmt.Errorf("git cache %s: %w", c.dir, err)
		}
		r.store.log.Warn("git cache unusable; cloning again", "remote", r.name, "dir", c.dir, "err", err)
		if err := os.RemoveAll(c.dir); err != nil {
			return fmt.Errorf("git cache: %w", err)
		}
	}
}

func (r *Repo) auth() transport.AuthMethod {
	if r.remote.Token == "" {
		return nil
	}
	return &githttp.BasicAuth{Username: r.remote.Username, Password: r.remote.Token}
}

// fetch brings the remote branch into the cache and returns its head. A
// cache a killed process left broken (go-git writes a ref in place, so a
// kill can leave it empty) is dropped and fetched again: the cache holds
// nothing the remote does not.
func (r *Repo) fetch(ctx context.Context) (*object.Commit, error) {
	head, err := r.fetchOnce(ctx)
	if errors.Is(err, dotgit.ErrEmptyRefFile) {
		r.store.log.Warn("git cache broken (an empty ref file); cloning again", "remote", r.name, "dir", r.c.dir)
		if err := r.dropCache(); err != nil {
			return nil, err
		}
		head, err = r.fetchOnce(ctx)
	}
	if err != nil {
		return nil, r.fail("fetch", err)
	}
	return head, nil
}

func (r *Repo) fetchOnce(ctx context.Context) (*object.Commit, error) {
	if err := r.openCache(); err != nil {
		return nil, err
	}
	start := time.Now()
	spec := config.RefSpec("+" + plumbing.NewBranchReferenceName(r.remote.Branch).String() + ":" + r.branchRef().String())
	err := r.c.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RemoteURL:  r.remote.URL,
		RefSpecs:   []config.RefSpec{spec},
		Auth:       r.auth(),
		Tags:       git.NoTags,
		Force:      true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, err
	}
	ref, err := r.c.storage.Reference(r.branchRef())
	if err != nil {
		return nil, err
	}
	head, err := object.GetCommit(r.c.storage, ref.Hash())
	if err != nil {
		return nil, err
	}
	r.store.log.Debug("git fetched", "remote", r.name, "head", head.Hash.String(), "took", time.Since(start))
	return head, nil
}

// dropCache removes the clone; the next use clones again.
func (r *Repo) dropCache() error {
	c := r.c
	if c.storage != nil {
		_ = c.storage.Close()
		c.storage, c.repo = nil, nil
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("git cache: %w", err)
	}
	return nil
}

// View runs fn on a read-only transaction at the fresh remote head.
func (r *Repo) View(ctx context.Context, fn func(tx *Tx) error) error {
	if err := r.lock(ctx); err != nil {
		return err
	}
	defer r.unlock()
	head, err := r.fetch(ctx)
	if err != nil {
		return err
	}
	tx := r.newTx(head)
	tx.readOnly = true
	return fn(tx)
}

// Head returns the commit at the head of the remote branch.
func (r *Repo) Head(ctx context.Context) (string, error) {
	var h string
	err := r.View(ctx, func(tx *Tx) error { h = tx.Head(); return nil })
	return h, err
}

// ReadFile returns the content of path at the head of the remote branch.
func (r *Repo) ReadFile(ctx context.Context, path string) ([]byte, error) {
	var data []byte
	err := r.View(ctx, func(tx *Tx) (err error) { data, err = tx.ReadFile(path); return err })
	return data, err
}

// Commits returns up to limit commits of the remote branch that touched
// path, newest first.
func (r *Repo) Commits(ctx context.Context, path string, limit int) ([]Commit, error) {
	var cs []Commit
	err := r.View(ctx, func(tx *Tx) (err error) { cs, err = tx.Commits(path, limit); return err })
	return cs, err
}

// FileAt returns the content of path at revision rev of the remote branch.
func (r *Repo) FileAt(ctx context.Context, rev, path string) ([]byte, error) {
	var data []byte
	err := r.View(ctx, func(tx *Tx) (err error) { data, err = tx.FileAt(rev, path); return err })
	return data, err
}

// Preview runs change at the fresh remote head and returns the unified
// diff of what it would commit, without committing or pushing anything.
// An empty diff means the change is already in place.
func (r *Repo) Preview(ctx context.Context, change func(tx *Tx) error) (diff string, err error) {
	if err := r.lock(ctx); err != nil {
		return "", err
	}
	defer r.unlock()
	head, err := r.fetch(ctx)
	if err != nil {
		return "", err
	}
	tx := r.newTx(head)
	if err := change(tx); err != nil {
		return "", err
	}
	return tx.Diff()
}

// Update runs change against the fresh remote head and, when it changed
// anything, commits the result with message and pushes it. When someone
// else pushed first it fetches and runs change again on the new head, up to
// the Store's attempts. An error from change is returned as is and nothing
// is pushed. When change leaves the tree as it was, Update makes no commit
// and returns the head with changed false: that is how a step already done
// stays done.
func (r *Repo) Update(ctx context.Context, message string, change func(tx *Tx) error) (commit string, changed bool, err error) {
	if err := r.lock(ctx); err != nil {
		return "", false, err
	}
	defer r.unlock()
	var lastReject error
	for attempt := 1; attempt <= r.store.attempts; attempt++ {
		if attempt > 1 {
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return "", false, fmt.Errorf("push %s: %w", r.name, err)
			}
		}
		head, err := r.fetch(ctx)
		if err != nil {
			return "", false, err
		}
		tx := r.newTx(head)
		tx.message = message
		if err := change(tx); err != nil {
			return "", false, err
		}
		built, err := tx.build()
		if err != nil {
			return "", false, err
		}
		if built.tree == head.TreeHash {
			return head.Hash.String(), false, nil
		}
		if strings.TrimSpace(tx.message) == "" {
			return "", false, errors.New("commit: empty message")
		}
		c, objs, err := tx.commit(built, r.store.signature())
		if err != nil {
			return "", false, err
		}
		err = r.push(ctx, head.Hash, c, objs)
		if err == nil {
			r.store.log.Info("git pushed", "remote", r.name, "commit", c.String(), "attempt", attempt)
			return c.String(), true, nil
		}
		if !errors.Is(err, ErrRejected) {
			return "", false, err
		}
		lastReject = err
		r.store.log.Info("git push rejected; fetching and applying again", "remote", r.name, "attempt", attempt, "reason", err.Error())
	}
	return "", false, fmt.Errorf("%w (gave up after %d attempts)", lastReject, r.store.attempts)
}

func (s *Store) signature() object.Signature {
	return object.Signature{Name: s.name, Email: s.email, When: s.now()}
}

// backoff is the wait before attempt n (n ≥ 2): 50ms doubling, plus up to
// 50ms of jitter so two firebreaks racing each other do not stay in step.
func backoff(n int) time.Duration {
	d := 50 * time.Millisecond << (n - 2)
	return d + rand.N(50*time.Millisecond)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// fail turns an error of go-git into one line that names the operation and
// the remote, maps what a caller can act on to this package's errors, and
// never carries the token: go-git errors may echo URLs and server replies.
func (r *Repo) fail(op string, err error) error {
	var noRef git.NoMatchingRefSpecError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		ctxErr := context.Canceled
		if errors.Is(err, context.DeadlineExceeded) {
			ctxErr = context.DeadlineExceeded
		}
		return fmt.Errorf("%s %s: %w", op, r.name, ctxErr)
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		if r.remote.Token == "" {
			return fmt.Errorf("%s %s: %w: the remote asks for credentials and the target has no token", op, r.name, ErrAuth)
		}
		return fmt.Errorf("%s %s: %w", op, r.name, ErrAuth)
	case errors.Is(err, ErrRedirect):
		return &scrubbed{msg: op + " " + r.name + ": " + r.scrub(err.Error()), is: ErrRedirect}
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%s %s: %w", op, r.name, ErrRepoNotFound)
	case errors.As(err, &noRef), errors.Is(err, plumbing.ErrReferenceNotFound):
		return fmt.Errorf("%s %s: %w on the remote", op, r.name, ErrBranchNotFound)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("%s %s: %w: the remote repository is empty", op, r.name, ErrBranchNotFound)
	}
	return &scrubbed{msg: op + " " + r.name + ": " + r.scrub(err.Error())}
}

// scrubbed is an error whose text was cleaned of credentials. It unwraps
// only to a sentinel of this package, never to the original: that may
// still hold them.
type scrubbed struct {
	msg string
	is  error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.is }

var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@`)

// scrub removes the token (raw and as a basic-auth header value) and any
// user info of URLs from s, and folds it to one bounded line.
func (r *Repo) scrub(s string) string {
	if t := r.remote.Token; t != "" {
		s = strings.ReplaceAll(s, t, "[redacted]")
		basic := base64.StdEncoding.EncodeToString([]byte(r.remote.Username + ":" + t))
		s = strings.ReplaceAll(s, basic, "[redacted]")
		s = strings.ReplaceAll(s, url.QueryEscape(t), "[redacted]")
	}
	s = userinfo.ReplaceAllString(s, "$1")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	u.User = nil
	return u.String()
}

// readAll reads an object's content.
func readAll(o plumbing.EncodedObject) ([]byte, error) {
	rd, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}
