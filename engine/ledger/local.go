package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/firebreak-dev/firebreak/actions/gitrepo"
)

// local is a repository on disk.
//
// A write reads the branch head, runs its plan against that head's tree,
// builds its blobs, trees and commit on it, takes index.lock (when it
// writes the checked-out branch) and then refs/heads/<branch>.lock, and
// moves the branch only if it is still at that head: compare-and-swap
// under the lock files git itself takes, so neither another firebreak nor
// a git command in the same worktree loses a commit. When the branch moved, the plan runs and the write is built again
// on the new head, this time with both locks held from the start, so it
// cannot lose again to anyone who respects them.
type local struct {
	opts Options
	lay  layout
	objs *objectStore

	// idxBuf and outBuf keep the old and new index from one write to the
	// next: an index of 50,000 files is 5 MB.
	idxBuf, outBuf []byte

	// races counts writes that found their branch moved; for tests.
	races int
	// beforeLock, when set, runs between building a write and locking
	// the branch; tests race it.
	beforeLock func()
}

func openLocal(dir string, opts Options) (*local, error) {
	lay, err := findLayout(dir)
	if err != nil {
		return nil, err
	}
	return &local{opts: opts, lay: lay, objs: openObjects(lay.commonDir)}, nil
}

func (r *local) close() error { return r.objs.close() }

func (r *local) signature() object.Signature {
	return object.Signature{Name: r.opts.AuthorName, Email: r.opts.AuthorEmail, When: r.opts.Now()}
}

// locks are the lock files a write holds, index first as git takes them.
type locks struct {
	index, ref *lockFile
}

func (l *locks) release() {
	if l != nil {
		l.ref.release()
		l.index.release()
	}
}

func (r *local) lock(ctx context.Context, branch string, onHead bool) (*locks, error) {
	l := &locks{}
	if onHead && r.lay.worktree != "" {
		var err error
		if l.index, err = acquireLock(ctx, filepath.Join(r.lay.gitDir, "index"), r.opts.LockWait); err != nil {
			return nil, err
		}
	}
	ref, err := acquireLock(ctx, r.lay.refPath(branch), r.opts.LockWait)
	if err != nil {
		l.release()
		return nil, err
	}
	l.ref = ref
	return l, nil
}

func (r *local) update(ctx context.Context, branch, base string, plan plan) (string, bool, error) {
	current := branch == ""
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return "", false, context.Cause(ctx)
		}
		b, onHead := branch, false
		head, err := r.lay.headBranch()
		switch {
		case current && err != nil:
			return "", false, err
		case current:
			b, onHead = head, true
		case err == nil && head == branch:
			onHead = true
		}
		// The first attempt builds without locks, keeping them short;
		// after a lost race the write is built under them.
		var held *locks
		if attempt > 1 {
			if held, err = r.lock(ctx, b, onHead); err != nil {
				return "", false, err
			}
		}
		commit, changed, raced, err := r.try(ctx, b, base, plan, onHead, held)
		if !raced {
			return commit, changed, err
		}
		r.races++
		r.opts.Logger.Debug("ledger: branch moved during a write; building it again", "branch", b, "attempt", attempt)
		if attempt >= r.opts.Attempts {
			return "", false, fmt.Errorf("write %s: %w (gave up after %d attempts)", b, ErrContended, attempt)
		}
	}
}

// try makes one attempt at a write. raced reports that the branch (or
// HEAD) moved between reading and locking; held, when set, are the locks,
// taken before reading.
func (r *local) try(ctx context.Context, branch, base string, plan plan, onHead bool, held *locks) (commit string, changed, raced bool, err error) {
	defer held.release()
	defer r.objs.discard() // what an attempt that stops early put
	parent, exists, err := r.lay.readRef(branch)
	if err != nil {
		return "", false, false, err
	}
	from := parent
	if !exists && !onHead {
		if from, err = r.resolveBase(base); err != nil {
			return "", false, false, err
		}
	}
	var fromTree plumbing.Hash
	if !from.IsZero() {
		c, err := r.objs.commit(from)
		if err != nil {
			return "", false, false, err
		}
		fromTree = c.TreeHash
	}
	// The plan sees exactly the tree the commit is built on: if the
	// branch moves before the commit lands, the attempt is thrown away,
	// plan and all.
	message, changes, err := plan.run(&localView{r: r, head: from, tree: fromTree})
	if err != nil {
		return "", false, false, err
	}

	// Blobs, trees, commit: written before any lock is taken, all at
	// once (as one pack when there are many). Objects nobody refers to
	// are harmless and git gc prunes them.
	ed, err := newEditor(r.objs, fromTree)
	if err != nil {
		return "", false, false, err
	}
	// Only the files this write changes go further: the others are
	// already as asked, in the tree, the index and the worktree.
	var (
		eff    []change
		heads  []headEntry
		hashes []plumbing.Hash
		modes  []uint32
	)
	for _, c := range changes {
		e, found, err := r.objs.entryAt(fromTree, c.path)
		if err != nil {
			return "", false, false, err
		}
		if c.delete {
			if !found {
				continue
			}
			if e.Mode == filemode.Dir {
				return "", false, false, fmt.Errorf("remove %s: is a directory", c.path)
			}
			if err := ed.set(c.path, nil); err != nil {
				return "", false, false, err
			}
			eff, heads = append(eff, c), append(heads, headEntry{e, found})
			hashes, modes = append(hashes, plumbing.ZeroHash), append(modes, 0)
			continue
		}
		mode := filemode.Regular
		if found {
			switch e.Mode {
			case filemode.Regular, filemode.Deprecated:
			case filemode.Executable:
				mode = filemode.Executable
			case filemode.Dir:
				return "", false, false, fmt.Errorf("write %s: is a directory", c.path)
			default:
				return "", false, false, fmt.Errorf("write %s: is a symbolic link or submodule", c.path)
			}
		}
		h := blobHash(c.data)
		if found && e.Hash == h && e.Mode == mode {
			continue
		}
		if _, err := r.objs.put(plumbing.BlobObject, c.data); err != nil {
			return "", false, false, err
		}
		if err := ed.set(c.path, &object.TreeEntry{Name: c.path[strings.LastIndexByte(c.path, '/')+1:], Mode: mode, Hash: h}); err != nil {
			return "", false, false, err
		}
		eff, heads = append(eff, c), append(heads, headEntry{e, found})
		hashes, modes = append(hashes, h), append(modes, uint32(mode))
	}
	if len(eff) == 0 {
		switch {
		case exists:
			return parent.String(), false, false, nil
		case from.IsZero():
			return "", false, false, nil // an unborn branch, left unborn
		}
	}
	tree, err := ed.build()
	if err != nil {
		return "", false, false, err
	}

	var newHead plumbing.Hash
	switch {
	case len(eff) == 0:
		newHead = from // a new branch at base, with nothing to add
	default:
		sig := r.signature()
		c := &object.Commit{Author: sig, Committer: sig, TreeHash: tree, Message: strings.TrimRight(message, "\n") + "\n"}
		if !from.IsZero() {
			c.ParentHashes = []plumbing.Hash{from}
		}
		obj := &plumbing.MemoryObject{}
		if err := c.Encode(obj); err != nil {
			return "", false, false, fmt.Errorf("encode commit: %w", err)
		}
		rd, _ := obj.Reader()
		data, _ := io.ReadAll(rd) // a MemoryObject's reader does not fail
		if newHead, err = r.objs.put(plumbing.CommitObject, data); err != nil {
			return "", false, false, err
		}
		changed = true
	}
	if err := r.objs.flush(); err != nil {
		return "", false, false, err
	}

	if held == nil {
		if r.beforeLock != nil {
			r.beforeLock()
		}
		if held, err = r.lock(ctx, branch, onHead); err != nil {
			return "", false, false, err
		}
		defer held.release()
	}
	// Under the locks: is the branch where the write was built?
	now, nowExists, err := r.lay.readRef(branch)
	if err != nil {
		return "", false, false, err
	}
	if now != parent || nowExists != exists {
		return "", false, true, nil
	}
	if onHead {
		if cur, err := r.lay.headBranch(); err != nil || cur != branch {
			return "", false, true, nil
		}
	}

	// The index and worktree, checked before the branch moves so that a
	// refusal leaves everything as it was.
	var idx *indexUpdate
	if held.index != nil {
		data, err := r.readIndex()
		if err != nil {
			return "", false, false, err
		}
		if idx, err = planIndex(data, r.outBuf, eff, hashes, modes); err != nil {
			return "", false, false, err
		}
		for i, c := range eff {
			if err := checkPath(r.lay.worktree, c, heads[i], idx.old[i], hashes[i]); err != nil {
				idx.verify()
				return "", false, false, err
			}
		}
		if err := idx.verify(); err != nil {
			return "", false, false, err
		}
	}

	// The commit point.
	sig := r.signature()
	reflogMsg := "commit: " + message
	if from.IsZero() {
		reflogMsg = "commit (initial): " + message
	} else if !changed {
		reflogMsg = "branch: Created from " + cmp.Or(base, "HEAD")
	}
	line := reflogLine(parent, newHead, sig, reflogMsg)
	bare := r.lay.worktree == ""
	appendReflog(r.lay.commonDir, "refs/heads/"+branch, line, !bare)
	if onHead {
		appendReflog(r.lay.gitDir, "HEAD", line, !bare)
	}
	if err := held.ref.commit([]byte(newHead.String() + "\n")); err != nil {
		return "", false, false, err
	}
	if idx == nil {
		return newHead.String(), changed, false, nil
	}

	// The worktree and then the index, with the stat data of the files
	// just written so that git status finds them clean without reading
	// them. A file that cannot be written keeps blank stat data: git then
	// compares its content and shows it modified, which it is.
	var errs []error
	for i, c := range eff {
		if c.delete {
			if err := removeFile(r.lay.worktree, c.path); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		st, err := writeFile(r.lay.worktree, c.path, c.data, filemode.FileMode(modes[i]))
		if err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", c.path, err))
			continue
		}
		idx.setStat(i, st)
	}
	out := idx.bytes()
	if err := held.index.commit(out); err != nil {
		errs = append(errs, err)
	}
	r.outBuf = out[:0]
	if err := errors.Join(errs...); err != nil {
		return newHead.String(), changed, false, fmt.Errorf("commit %s made; updating the worktree: %w", newHead, err)
	}
	return newHead.String(), changed, false, nil
}

// readIndex reads the index into a buffer kept from one write to the next;
// nil when there is none.
func (r *local) readIndex() ([]byte, error) {
	f, err := os.Open(filepath.Join(r.lay.gitDir, "index"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	size := int(fi.Size())
	if cap(r.idxBuf) < size {
		r.idxBuf = make([]byte, size+size/8)
	}
	data := r.idxBuf[:size]
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	return data, nil
}

// resolveBase returns the commit a new branch starts from: base as a full
// commit hash or a branch, or the current branch when empty.
func (r *local) resolveBase(base string) (plumbing.Hash, error) {
	if len(base) == 40 && plumbing.IsHash(base) {
		h := plumbing.NewHash(base)
		if _, err := r.objs.commit(h); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("base %s: %w", base, err)
		}
		return h, nil
	}
	b := base
	if b == "" {
		var err error
		if b, err = r.lay.headBranch(); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("base: %w", err)
		}
	}
	h, ok, err := r.lay.readRef(b)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if !ok {
		return plumbing.ZeroHash, fmt.Errorf("base branch %s: not found", b)
	}
	return h, nil
}

// headTree returns the tree of the current branch's head; zero when the
// branch has no commit yet.
func (r *local) headTree() (plumbing.Hash, error) {
	b, err := r.lay.headBranch()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	h, ok, err := r.lay.readRef(b)
	if err != nil || !ok {
		return plumbing.ZeroHash, err
	}
	c, err := r.objs.commit(h)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return c.TreeHash, nil
}

func (r *local) read(_ context.Context, p string) ([]byte, error) {
	tree, err := r.headTree()
	if err != nil {
		return nil, err
	}
	return r.readAt(tree, p)
}

func (r *local) list(_ context.Context, dir string) ([]string, error) {
	tree, err := r.headTree()
	if err != nil {
		return nil, err
	}
	return r.listAt(tree, dir)
}

// readAt returns the file at a clean path of tree.
func (r *local) readAt(tree plumbing.Hash, p string) ([]byte, error) {
	e, ok, err := r.objs.entryAt(tree, p)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, fmt.Errorf("read %s: %w", p, fs.ErrNotExist)
	case e.Mode == filemode.Dir:
		return nil, fmt.Errorf("read %s: is a directory", p)
	}
	return r.objs.blob(e.Hash)
}

// listAt returns the files at or under a clean path of tree, sorted.
func (r *local) listAt(tree plumbing.Hash, dir string) ([]string, error) {
	e, ok, err := r.objs.entryAt(tree, dir)
	if err != nil || !ok {
		return nil, err
	}
	var out []string
	if err := r.objs.files(dir, e, &out); err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

// localView reads one commit's tree: the parent of the commit an attempt
// builds.
type localView struct {
	r          *local
	head, tree plumbing.Hash
}

func (v *localView) Read(path string) ([]byte, error) {
	p, err := gitrepo.CleanPath(path)
	if err != nil {
		return nil, err
	}
	return v.r.readAt(v.tree, p)
}

func (v *localView) List(dir string) ([]string, error) {
	p, err := gitrepo.CleanPath(dir)
	if err != nil {
		return nil, err
	}
	return v.r.listAt(v.tree, p)
}

func (v *localView) Head() string {
	if v.head.IsZero() {
		return ""
	}
	return v.head.String()
}
