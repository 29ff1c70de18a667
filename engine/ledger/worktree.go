package ledger

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// headEntry is what the parent commit holds at a written path.
type headEntry struct {
	object.TreeEntry
	found bool
}

// checkPath refuses, before anything is committed, a write that would
// overwrite work that is not in the parent commit: a staged or unmerged
// entry, a file modified in the worktree, an untracked file in the way, or
// a directory or symbolic link on the path. A file that already holds the
// new content is no conflict: that is a write interrupted before its index
// was written.
func checkPath(root string, c change, head headEntry, idx indexEntry, newHash plumbing.Hash) error {
	fail := func(why string) error { return fmt.Errorf("write %s: %w: %s", c.path, ErrLocalChange, why) }
	switch {
	case idx.unmerged:
		return fail("unmerged in the index")
	case idx.extFlags&extSkipWorktree != 0:
		return fail("marked skip-worktree (sparse checkout)")
	case idx.extFlags&extIntentToAdd != 0:
		return fail("added with --intent-to-add")
	}
	idxIsHead := idx.found == head.found &&
		(!head.found || idx.hash == head.Hash && (idx.mode == uint32(head.Mode) || head.Mode == filemode.Deprecated))
	idxIsNew := (c.delete && !idx.found) || (!c.delete && idx.found && idx.hash == newHash)
	if !idxIsHead && !idxIsNew {
		return fail("the index has a staged change")
	}
	full := filepath.Join(root, filepath.FromSlash(c.path))
	for i := strings.IndexByte(c.path, '/'); i >= 0; i = nextSlash(c.path, i) {
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(c.path[:i])))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", c.path, err)
		}
		if !fi.IsDir() {
			return fail(c.path[:i] + " is not a directory in the worktree")
		}
	}
	fi, err := os.Lstat(full)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("write %s: %w", c.path, err)
	case !fi.Mode().IsRegular():
		return fail("not a regular file in the worktree")
	}
	data, err := os.ReadFile(full)
	if err != nil {
		return fmt.Errorf("write %s: %w", c.path, err)
	}
	h := blobHash(data)
	if (head.found && h == head.Hash) || (idx.found && h == idx.hash) || (!c.delete && h == newHash) {
		return nil
	}
	if !head.found && !idx.found {
		return fail("an untracked file is in the way")
	}
	return fail("modified in the worktree")
}

// writeFile replaces the worktree file at p with data, atomically, and
// returns its stat data.
func writeFile(root, p string, data []byte, mode filemode.FileMode) (statInfo, error) {
	full := filepath.Join(root, filepath.FromSlash(p))
	dir := filepath.Dir(full)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return statInfo{}, err
	}
	perm := fs.FileMode(0o666)
	if mode == filemode.Executable {
		perm = 0o777
	}
	var suffix [6]byte
	rand.Read(suffix[:])
	tmp := filepath.Join(dir, "."+filepath.Base(full)+".firebreak-"+hex.EncodeToString(suffix[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return statInfo{}, err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, full)
	}
	if err != nil {
		os.Remove(tmp)
		return statInfo{}, err
	}
	fi, err := os.Lstat(full)
	if err != nil {
		return statInfo{}, err
	}
	return statOf(fi), nil
}

// removeFile removes the worktree file at p and the directories it leaves
// empty, as git rm does.
func removeFile(root, p string) error {
	full := filepath.Join(root, filepath.FromSlash(p))
	if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for dir := filepath.Dir(full); dir != root && strings.HasPrefix(dir, root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

func statFallback(fi fs.FileInfo) statInfo {
	m := fi.ModTime()
	return statInfo{
		ctimeSec: uint32(m.Unix()), ctimeNsec: uint32(m.Nanosecond()),
		mtimeSec: uint32(m.Unix()), mtimeNsec: uint32(m.Nanosecond()),
		size: uint32(fi.Size()),
	}
}
