package ledger

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// layout is where the parts of a local repository live. In a linked
// worktree, HEAD and the index are the worktree's own (gitDir) while refs
// and objects are shared (commonDir).
type layout struct {
	worktree  string // "" for a bare repository
	gitDir    string
	commonDir string
}

// findLayout reads the layout of the repository at dir: a worktree with a
// .git directory or a .git file ("gitdir: PATH"), or a bare repository.
func findLayout(dir string) (layout, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return layout{}, err
	}
	l := layout{worktree: abs, gitDir: filepath.Join(abs, ".git")}
	fi, err := os.Stat(l.gitDir)
	switch {
	case err == nil && fi.IsDir():
	case err == nil:
		data, err := os.ReadFile(l.gitDir)
		if err != nil {
			return layout{}, err
		}
		target, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "gitdir:")
		if !ok {
			return layout{}, fmt.Errorf("open %s: .git is neither a directory nor a gitdir file", abs)
		}
		target = strings.TrimSpace(target)
		if !filepath.IsAbs(target) {
			target = filepath.Join(abs, target)
		}
		l.gitDir = filepath.Clean(target)
	case errors.Is(err, fs.ErrNotExist):
		if !isGitDir(abs) {
			return layout{}, fmt.Errorf("open %s: not the top of a git worktree nor a bare repository", abs)
		}
		l.worktree, l.gitDir = "", abs
	default:
		return layout{}, err
	}
	l.commonDir = l.gitDir
	if data, err := os.ReadFile(filepath.Join(l.gitDir, "commondir")); err == nil {
		c := strings.TrimSpace(string(data))
		if !filepath.IsAbs(c) {
			c = filepath.Join(l.gitDir, c)
		}
		l.commonDir = filepath.Clean(c)
	}
	if !isGitDir(l.commonDir) {
		return layout{}, fmt.Errorf("open %s: %s is not a git directory", abs, l.commonDir)
	}
	return l, checkFormat(l.commonDir)
}

func isGitDir(d string) bool {
	for _, name := range []string{"HEAD", "objects", "refs"} {
		if _, err := os.Stat(filepath.Join(d, name)); err != nil {
			return false
		}
	}
	return true
}

// checkFormat refuses repositories whose objects or refs this package
// would misread: SHA-256 object names and reftable refs.
func checkFormat(commonDir string) error {
	data, err := os.ReadFile(filepath.Join(commonDir, "config"))
	if err != nil {
		return nil // no config: the defaults, which are ours
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.ToLower(line), "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`)
		switch {
		case k == "objectformat" && v != "sha1":
			return fmt.Errorf("%w: objects named with %s", ErrUnsupported, v)
		case k == "refstorage" && v != "files":
			return fmt.Errorf("%w: refs stored as %s", ErrUnsupported, v)
		}
	}
	return nil
}

// headBranch returns the branch HEAD names.
func (l layout) headBranch() (string, error) {
	data, err := os.ReadFile(filepath.Join(l.gitDir, "HEAD"))
	if err != nil {
		return "", fmt.Errorf("read HEAD: %w", err)
	}
	target, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "ref: refs/heads/")
	if !ok {
		return "", ErrDetachedHead
	}
	return target, nil
}

// readRef returns the commit refs/heads/branch points to, the loose ref
// first and then packed-refs, as git reads them; ok is false when the
// branch does not exist.
func (l layout) readRef(branch string) (h plumbing.Hash, ok bool, err error) {
	name := "refs/heads/" + branch
	data, err := os.ReadFile(filepath.Join(l.commonDir, filepath.FromSlash(name)))
	switch {
	case err == nil:
		s := strings.TrimSpace(string(data))
		if !plumbing.IsHash(s) || len(s) != 40 {
			return plumbing.ZeroHash, false, fmt.Errorf("ref %s: not a commit hash (symbolic refs are not written)", name)
		}
		return plumbing.NewHash(s), true, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
	default:
		return plumbing.ZeroHash, false, fmt.Errorf("read ref %s: %w", name, err)
	}
	f, err := os.Open(filepath.Join(l.commonDir, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return plumbing.ZeroHash, false, nil
	}
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("read packed-refs: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	suffix := []byte(" " + name)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 41+len(name) && bytes.HasSuffix(line, suffix) {
			return plumbing.NewHash(string(line[:40])), true, nil
		}
	}
	return plumbing.ZeroHash, false, sc.Err()
}

// lockFile is a file taken the way git takes it: PATH.lock created
// exclusively, the new content written into it, and renamed over PATH to
// commit. Whoever holds PATH.lock owns PATH; git, and other firebreaks,
// wait or give up.
type lockFile struct {
	path string // the locked file, not the lock
	f    *os.File
}

// acquireLock takes path.lock, waiting up to wait while another process
// holds it.
func acquireLock(ctx context.Context, path string, wait time.Duration) (*lockFile, error) {
	lock := path + ".lock"
	deadline := time.Now().Add(wait)
	delay := time.Millisecond
	for made := false; ; {
		f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if err == nil {
			return &lockFile{path: path, f: f}, nil
		}
		if errors.Is(err, fs.ErrNotExist) && !made {
			// A new branch in a new directory (postmortem/<id>).
			if err := os.MkdirAll(filepath.Dir(lock), 0o777); err != nil {
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
			made = true
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: %s exists (held for over %s; remove it if no git process is running)", ErrLocked, lock, wait)
		}
		t := time.NewTimer(delay + rand.N(delay))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("lock %s: %w", path, context.Cause(ctx))
		case <-t.C:
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}

// commit writes data into the lock and renames it over the locked file.
func (l *lockFile) commit(data []byte) error {
	if l.f == nil {
		return errors.New("lock already released")
	}
	_, err := l.f.Write(data)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err == nil {
		err = os.Rename(l.path+".lock", l.path)
	}
	if err != nil {
		os.Remove(l.path + ".lock")
		return fmt.Errorf("write %s: %w", l.path, err)
	}
	return nil
}

// release gives the lock up without changing the locked file; after commit
// it does nothing.
func (l *lockFile) release() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close()
	l.f = nil
	os.Remove(l.path + ".lock")
}

// refPath is the file of refs/heads/branch.
func (l layout) refPath(branch string) string {
	return filepath.Join(l.commonDir, "refs", "heads", filepath.FromSlash(branch))
}

// reflogLine is one line of a reflog, as git writes it.
func reflogLine(old, new plumbing.Hash, sig object.Signature, msg string) []byte {
	subject, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	return fmt.Appendf(nil, "%s %s %s <%s> %d %s\t%s\n", old, new,
		oneLine(sig.Name), oneLine(sig.Email), sig.When.Unix(), sig.When.Format("-0700"), subject)
}

// appendReflog adds line to the reflog at rel (relative to dir), creating
// it when create is set; a reflog is a convenience, so failing to write
// one is not an error of the write.
func appendReflog(dir, rel string, line []byte, create bool) {
	p := filepath.Join(dir, "logs", filepath.FromSlash(rel))
	flags := os.O_WRONLY | os.O_APPEND
	if create {
		flags |= os.O_CREATE
		os.MkdirAll(filepath.Dir(p), 0o777)
	}
	f, err := os.OpenFile(p, flags, 0o666)
	if err != nil {
		return
	}
	f.Write(line)
	f.Close()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
