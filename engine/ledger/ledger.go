// Package ledger records firebreak's own files — incident records,
// postmortems, the outbox — in the playbook repository as commits. Bytes in,
// commits out: what the files say is other packages' business.
//
// A Ledger works on one of two kinds of repository behind the same API:
//
//   - Local (OpenLocal): a git worktree on disk, as in CI or on a laptop. A
//     write becomes one commit on the current branch, built straight from
//     objects (only the trees on the touched paths are written again), the
//     branch moved with compare-and-swap under git's own lock-file protocol,
//     then the index entries of just the touched paths and their files in
//     the worktree updated, so `git status` stays clean. It never scans the
//     worktree.
//   - Remote (OpenRemote): a URL, as in `firebreak serve --repo URL`. A
//     write is a gitrepo Update: fetch, change, commit, push, and apply
//     again on the new head when someone else pushed first.
//
// Write is blind: it records the bytes it is given. Update is a
// read-modify-write: its change function reads the branch through a View
// at the head its commit will have as parent, and runs again on the new
// head whenever another writer moved the branch first, so what it commits
// is always computed from what it read — two processes handling the same
// alert make one incident, and entries two writers add to a shared index
// are both kept.
//
// A Ledger is safe for concurrent use; its operations run one at a time,
// since a go-git repository is not. Two Ledgers, in one process or in two,
// may write the same repository at once without losing each other's
// commits.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/firebreak-dev/firebreak/actions/gitrepo"
)

// DefaultAttempts is how many times a write is built again on a branch
// that moved under it before the write gives up. A writer that pushes
// again as soon as it has pushed can win every race for a while (two
// `firebreak run` processes on one remote lost all 10 × 5 attempts of one
// write twice in a day): 30, with pauses up to a second between them,
// outlasts such a burst rather than failing the write.
const DefaultAttempts = 30

// DefaultLockWait is how long a local write waits for a lock file
// (index.lock, refs/heads/<branch>.lock) that another git process holds.
const DefaultLockWait = 10 * time.Second

var (
	// ErrLocalChange is returned, before anything is committed, when a
	// path a local write touches has changes in the worktree or the index
	// that the write would overwrite.
	ErrLocalChange = errors.New("uncommitted local change would be overwritten")
	// ErrLocked is returned when a lock file of the repository stayed
	// held for longer than the lock wait.
	ErrLocked = errors.New("repository is locked by another git process")
	// ErrDetachedHead is returned by a local write to the current branch
	// when HEAD names no branch.
	ErrDetachedHead = errors.New("HEAD is detached; check out a branch")
	// ErrContended is returned when the branch moved under every attempt
	// of a write.
	ErrContended = errors.New("branch kept moving")
	// ErrUnsupported is returned for a local repository whose format this
	// package does not write (SHA-256 objects, reftable refs, a split or
	// sparse index).
	ErrUnsupported = errors.New("unsupported repository format")
)

// Options configures a Ledger. The zero value is ready to use.
type Options struct {
	// AuthorName and AuthorEmail sign the commits of a local Ledger;
	// "firebreak" and "firebreak@localhost" when empty. A remote Ledger's
	// commits carry the author of its gitrepo.Store (gitrepo.WithAuthor).
	AuthorName, AuthorEmail string
	// Attempts bounds how many times a write is built again after the
	// branch moved under it; DefaultAttempts when < 1. In remote mode each
	// attempt is a whole gitrepo Update, with the Store's own push
	// attempts inside.
	Attempts int
	// LockWait is how long a local write waits for a lock file another
	// process holds; DefaultLockWait when 0.
	LockWait time.Duration
	// Logger gets debug lines about races and retries; none when nil.
	Logger *slog.Logger
	// Now is the clock of commit times; time.Now when nil.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.AuthorName == "" {
		o.AuthorName = "firebreak"
	}
	if o.AuthorEmail == "" {
		o.AuthorEmail = "firebreak@localhost"
	}
	if o.Attempts < 1 {
		o.Attempts = DefaultAttempts
	}
	if o.LockWait <= 0 {
		o.LockWait = DefaultLockWait
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Ledger writes and reads files of the playbook repository.
type Ledger struct {
	mu sync.Mutex
	b  backend
}

// backend is one kind of repository. Its methods are called one at a time.
type backend interface {
	// update runs plan against the head of branch ("" for the current
	// or configured branch), creating branch from base when it is
	// missing, and commits what plan returns; plan runs again on the new
	// head whenever the branch moved before the commit landed.
	update(ctx context.Context, branch, base string, plan plan) (string, bool, error)
	read(ctx context.Context, path string) ([]byte, error)
	list(ctx context.Context, dir string) ([]string, error)
	close() error
}

// change is one file of a write: its content, or its removal.
type change struct {
	path   string
	data   []byte
	delete bool
}

// plan computes one attempt of a write from the branch as v shows it: the
// commit message and the changes, clean and sorted by path.
type plan func(v View) (message string, changes []change, err error)

// run calls p with a View that refuses reads once p has returned: a View
// kept beyond its attempt would read a stale head, outside the Ledger's
// lock.
func (p plan) run(v View) (string, []change, error) {
	sv := &scopedView{View: v}
	defer func() { sv.done = true }()
	return p(sv)
}

// View reads the branch at the head one attempt of an Update builds on.
// It is valid only inside the change function it was passed to, and only
// from the goroutine that runs it.
type View interface {
	// Read returns the content of path. A missing file gives an error
	// wrapping fs.ErrNotExist.
	Read(path string) ([]byte, error)
	// List returns every file at or under dir, sorted; none when dir is
	// absent.
	List(dir string) ([]string, error)
	// Head returns the commit the attempt builds on, the parent of the
	// commit it makes; "" on a branch with no commit yet.
	Head() string
}

type scopedView struct {
	View
	done bool
}

var errViewDone = errors.New("ledger: View used after its change function returned")

func (v *scopedView) Read(path string) ([]byte, error) {
	if v.done {
		return nil, errViewDone
	}
	return v.View.Read(path)
}

func (v *scopedView) List(dir string) ([]string, error) {
	if v.done {
		return nil, errViewDone
	}
	return v.View.List(dir)
}

// OpenLocal opens the git repository whose worktree top (or bare
// repository) is dir.
func OpenLocal(dir string, opts Options) (*Ledger, error) {
	b, err := openLocal(dir, opts.withDefaults())
	if err != nil {
		return nil, err
	}
	return &Ledger{b: b}, nil
}

// OpenRemote returns a Ledger on the branch of remote, through store. It
// does no I/O.
func OpenRemote(store *gitrepo.Store, remote gitrepo.Remote, opts Options) (*Ledger, error) {
	b, err := openRemote(store, remote, opts.withDefaults())
	if err != nil {
		return nil, err
	}
	return &Ledger{b: b}, nil
}

// Write records files as one commit on the current branch (local) or the
// remote's branch, and returns that commit. A nil value removes its file;
// an empty file is a non-nil empty slice. When every file already holds
// what it is given, Write makes no commit and returns the head with
// changed false, so writing the same record twice is harmless.
func (l *Ledger) Write(ctx context.Context, message string, files map[string][]byte) (commit string, changed bool, err error) {
	return l.write(ctx, "", "", message, files)
}

// WriteBranch records files as one commit on branch, which is created from
// base (a branch name or a full commit hash; the current or configured
// branch when empty) when it does not exist yet. In remote mode the branch
// is pushed. Writing a local repository's current branch also updates its
// index and worktree, as Write does; other branches are left out of both.
func (l *Ledger) WriteBranch(ctx context.Context, branch, base, message string, files map[string][]byte) (commit string, changed bool, err error) {
	if err := checkBranch(branch, base); err != nil {
		return "", false, err
	}
	return l.write(ctx, branch, base, message, files)
}

// write is an update whose plan ignores what it reads. Its input is
// checked once, before any I/O.
func (l *Ledger) write(ctx context.Context, branch, base, message string, files map[string][]byte) (string, bool, error) {
	if len(files) == 0 {
		return "", false, errors.New("write: no files")
	}
	changes, err := normalize(files)
	if err != nil {
		return "", false, err
	}
	if strings.TrimSpace(message) == "" {
		return "", false, errEmptyMessage
	}
	return l.update(ctx, branch, base, func(View) (string, []change, error) { return message, changes, nil })
}

// Update runs change against the head of the branch (the current branch,
// local; the remote's branch, remote) and commits the files it returns,
// with the message it returns, as one commit. The files mean what they
// mean to Write: a nil value removes its file.
//
// When the branch moved before the commit could land (another writer, in
// this process or another), change runs again on the new head, until the
// commit lands or the attempts run out (ErrContended locally,
// gitrepo.ErrRejected remotely) — so what it returns is always computed
// from what it read. It should therefore compute and nothing else: whatever else it
// does may happen several times, or for a commit that is never made.
//
// An error from change is returned as is and nothing is committed. When
// change returns no files, or only files that already hold what it gives,
// there is no commit: changed is false and commit is the head. Files with
// an empty message are an error.
//
// change runs with the Ledger's lock held (and, locally, after a lost
// race, git's lock files on the index and the branch): it must be quick
// and must not call the Ledger, which would deadlock.
func (l *Ledger) Update(ctx context.Context, change func(v View) (message string, files map[string][]byte, err error)) (commit string, changed bool, err error) {
	return l.update(ctx, "", "", changePlan(change))
}

// UpdateBranch is Update on branch, which is created from base when it
// does not exist yet, as by WriteBranch: change then reads base's head.
func (l *Ledger) UpdateBranch(ctx context.Context, branch, base string, change func(v View) (message string, files map[string][]byte, err error)) (commit string, changed bool, err error) {
	if err := checkBranch(branch, base); err != nil {
		return "", false, err
	}
	return l.update(ctx, branch, base, changePlan(change))
}

// changePlan is the plan of an Update: fn, with its files checked as
// Write's are.
func changePlan(fn func(View) (string, map[string][]byte, error)) plan {
	return func(v View) (string, []change, error) {
		if fn == nil {
			return "", nil, errors.New("update: nil change function")
		}
		message, files, err := fn(v)
		if err != nil {
			return "", nil, err
		}
		changes, err := normalize(files)
		if err != nil {
			return "", nil, err
		}
		// Refused even when the files turn out to be in place already,
		// so that the same mistake does not pass or fail by the state
		// of the branch.
		if len(changes) > 0 && strings.TrimSpace(message) == "" {
			return "", nil, errEmptyMessage
		}
		return message, changes, nil
	}
}

func (l *Ledger) update(ctx context.Context, branch, base string, p plan) (string, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b == nil {
		return "", false, errClosed
	}
	return l.b.update(ctx, branch, base, p)
}

var errEmptyMessage = errors.New("commit: empty message")

func checkBranch(branch, base string) error {
	if !validBranch(branch) {
		return fmt.Errorf("branch %q: invalid name", branch)
	}
	if base != "" && !validBranch(base) {
		return fmt.Errorf("base %q: invalid branch name", base)
	}
	return nil
}

// Read returns the content of path at the head of the branch. A missing
// file gives an error wrapping fs.ErrNotExist.
func (l *Ledger) Read(ctx context.Context, path string) ([]byte, error) {
	p, err := gitrepo.CleanPath(path)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b == nil {
		return nil, errClosed
	}
	return l.b.read(ctx, p)
}

// List returns every file at or under dir at the head of the branch,
// sorted; none when dir is absent.
func (l *Ledger) List(ctx context.Context, dir string) ([]string, error) {
	p, err := gitrepo.CleanPath(dir)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b == nil {
		return nil, errClosed
	}
	return l.b.list(ctx, p)
}

// Close releases the files the Ledger holds open. It must not be used
// afterwards.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b == nil {
		return nil
	}
	err := l.b.close()
	l.b = nil
	return err
}

var errClosed = errors.New("ledger: closed")

// normalize checks and cleans the paths of files and sorts them.
func normalize(files map[string][]byte) ([]change, error) {
	out := make([]change, 0, len(files))
	seen := make(map[string]string, len(files))
	for p, data := range files {
		clean, err := gitrepo.CleanPath(p)
		if err != nil {
			return nil, err
		}
		if other, dup := seen[clean]; dup {
			return nil, fmt.Errorf("write: paths %q and %q name the same file", other, p)
		}
		seen[clean] = p
		out = append(out, change{path: clean, data: data, delete: data == nil})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	for _, c := range out {
		for i := strings.IndexByte(c.path, '/'); i >= 0; i = nextSlash(c.path, i) {
			if _, both := seen[c.path[:i]]; both {
				return nil, fmt.Errorf("write: %s is both a file and a directory", c.path[:i])
			}
		}
	}
	return out, nil
}

// nextSlash returns the index of the next "/" in p after i, or -1.
func nextSlash(p string, i int) int {
	j := strings.IndexByte(p[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// validBranch follows git check-ref-format, less its rarer corners.
func validBranch(b string) bool {
	if b == "" || b == "@" || b == "HEAD" || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") ||
		strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".") || strings.Contains(b, "..") ||
		strings.Contains(b, "//") || strings.Contains(b, "@{") {
		return false
	}
	for _, part := range strings.Split(b, "/") {
		if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return false
		}
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(" ~^:?*[\\", c) {
			return false
		}
	}
	return true
}
