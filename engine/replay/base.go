package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/firebreak-dev/firebreak/engine/repo"
)

// Revision is the commit a base ref resolved to.
type Revision struct {
	Ref    string
	Commit string
}

// maxBaseFile bounds each file read from the base tree.
const maxBaseFile = 16 << 20

// LoadRevision loads the playbook repository at dir as it is at ref, a
// revision of the git repository dir belongs to (a branch, a tag, a
// commit, HEAD~1, origin/main). It reads the commit's tree with go-git —
// firebreak.cue, playbooks/ and the nearest cue.mod at or above dir —
// into a temporary directory, loads it from there and removes it: no
// worktree is checked out and no git command runs. The error is for a
// repository or ref that cannot be read; a base that does not load or
// validate is a Repo with Diagnostics, as repo.Load returns it.
func LoadRevision(ctx context.Context, dir, ref string) (*repo.Repo, Revision, error) {
	rev := Revision{Ref: ref}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, rev, err
	}
	r, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return nil, rev, fmt.Errorf("%s: not in a git repository: %w", dir, err)
	}
	prefix, err := prefixOf(r, abs)
	if err != nil {
		return nil, rev, err
	}
	hash, err := r.ResolveRevision(plumbing.Revision(ref))
	if err != nil {
		return nil, rev, fmt.Errorf("base %q: %w", ref, err)
	}
	commit, err := r.CommitObject(*hash)
	if err != nil {
		return nil, rev, fmt.Errorf("base %q: %w", ref, err)
	}
	rev.Commit = commit.Hash.String()
	root, err := commit.Tree()
	if err != nil {
		return nil, rev, fmt.Errorf("base %q: %w", ref, err)
	}
	tmp, err := os.MkdirTemp("", "firebreak-replay-")
	if err != nil {
		return nil, rev, err
	}
	defer os.RemoveAll(tmp)
	if err := extract(ctx, root, prefix, tmp); err != nil {
		return nil, rev, fmt.Errorf("base %q: %w", ref, err)
	}
	at := filepath.Join(tmp, filepath.FromSlash(prefix))
	// A base without the directory is a repository without files.
	if err := os.MkdirAll(at, 0o755); err != nil {
		return nil, rev, err
	}
	base, err := repo.Load(at)
	return base, rev, err
}

// prefixOf is the slash-separated path of abs inside r's worktree, "" at
// its top or in a bare repository.
func prefixOf(r *git.Repository, abs string) (string, error) {
	wt, err := r.Worktree()
	if errors.Is(err, git.ErrIsBareRepository) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	top, err := filepath.EvalSymlinks(wt.Filesystem.Root())
	if err != nil {
		return "", err
	}
	at, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(top, at)
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return "", fmt.Errorf("%s is outside the worktree %s", abs, top)
	}
	if rel == "." {
		return "", nil
	}
	return filepath.ToSlash(rel), nil
}

// extract writes what loading the playbook repository at prefix needs
// from tree into dst, at the same paths.
func extract(ctx context.Context, tree *object.Tree, prefix, dst string) error {
	at := func(p string) string { return path.Join(prefix, p) }
	isDir := func(p string) bool {
		e, err := tree.FindEntry(p)
		return err == nil && e.Mode == filemode.Dir
	}
	if e, err := tree.FindEntry(at(repo.ConfigFile)); err == nil && e.Mode.IsFile() {
		f, err := tree.File(at(repo.ConfigFile))
		if err != nil {
			return fmt.Errorf("%s: %w", at(repo.ConfigFile), err)
		}
		if err := writeFile(dst, f); err != nil {
			return err
		}
	}
	dirs := []string{at(repo.PlaybooksDir)}
	// cue/load finds the module root at or above the package directory.
	for p := prefix; ; p = path.Dir(p) {
		if p == "." {
			p = ""
		}
		if isDir(path.Join(p, "cue.mod")) {
			dirs = append(dirs, path.Join(p, "cue.mod"))
			break
		}
		if p == "" {
			break
		}
	}
	for _, d := range dirs {
		if !isDir(d) {
			continue
		}
		sub, err := tree.Tree(d)
		if err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		err = sub.Files().ForEach(func(f *object.File) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			f.Name = path.Join(d, f.Name)
			return writeFile(dst, f)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes a regular file of the tree under dst. Symbolic links
// and submodules are left out: a base must not reach outside its tree.
func writeFile(dst string, f *object.File) error {
	if f.Mode != filemode.Regular && f.Mode != filemode.Executable {
		return nil
	}
	if !filepath.IsLocal(filepath.FromSlash(f.Name)) || strings.Contains(f.Name, "\\") {
		return fmt.Errorf("%q: not a local path", f.Name)
	}
	if f.Size > maxBaseFile {
		return fmt.Errorf("%s: larger than %d bytes", f.Name, maxBaseFile)
	}
	rd, err := f.Reader()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	defer rd.Close()
	data, err := io.ReadAll(io.LimitReader(rd, maxBaseFile))
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	p := filepath.Join(dst, filepath.FromSlash(f.Name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}
