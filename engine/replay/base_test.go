package replay

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// commitAll commits every file of the worktree at dir, as `git add -A &&
// git commit` would.
func commitAll(t *testing.T, dir, msg string) string {
	t.Helper()
	r, err := git.PlainOpen(dir)
	if err == git.ErrRepositoryNotExists {
		r, err = git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.Main}})
	}
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	h, err := w.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@t", When: time.Unix(1e9, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func titles(t *testing.T, dir, ref string) ([]string, Revision) {
	t.Helper()
	r, rev, err := LoadRevision(t.Context(), dir, ref)
	if err != nil {
		t.Fatal(err)
	}
	mustValid(t, r)
	var out []string
	for _, p := range r.Playbooks {
		out = append(out, p.Name+": "+p.Title)
	}
	return out, rev
}

func TestLoadRevision(t *testing.T) {
	dir := writeFiles(t, "", baseFiles())
	first := commitAll(t, dir, "base")
	writeFiles(t, dir, map[string]string{"playbooks/p.cue": strings.Replace(playbooks, `"Disk full"`, `"Disk is full"`, 1)})
	second := commitAll(t, dir, "retitle")
	// Uncommitted: the working tree, which the base must not see.
	writeFiles(t, dir, map[string]string{"playbooks/p.cue": strings.Replace(playbooks, `"Disk full"`, `"Uncommitted"`, 1)})

	for _, tc := range []struct {
		ref, commit, title string
	}{
		{"HEAD", second, "disk_full: Disk is full"},
		{"main", second, "disk_full: Disk is full"},
		{"HEAD~1", first, "disk_full: Disk full"},
		{first[:10], first, "disk_full: Disk full"},
	} {
		got, rev := titles(t, dir, tc.ref)
		if rev.Commit != tc.commit || rev.Ref != tc.ref {
			t.Errorf("%s: revision %+v, want commit %s", tc.ref, rev, tc.commit)
		}
		if !slices.Contains(got, tc.title) {
			t.Errorf("%s: playbooks %q, want %q among them", tc.ref, got, tc.title)
		}
	}

	if _, _, err := LoadRevision(t.Context(), dir, "no-such-branch"); err == nil || !strings.Contains(err.Error(), `base "no-such-branch"`) {
		t.Errorf("unknown ref: err = %v", err)
	}
	if _, _, err := LoadRevision(t.Context(), t.TempDir(), "HEAD"); err == nil || !strings.Contains(err.Error(), "not in a git repository") {
		t.Errorf("outside git: err = %v", err)
	}
}

// TestLoadRevisionSubdir loads a playbook repository kept in a directory
// of a larger git repository, and one the base does not have yet.
func TestLoadRevisionSubdir(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{"README.md": "monorepo"}
	for k, v := range baseFiles() {
		files["ops/"+k] = v
	}
	writeFiles(t, root, files)
	commitAll(t, root, "ops")
	writeFiles(t, root, map[string]string{"new/firebreak.cue": config})

	got, _ := titles(t, filepath.Join(root, "ops"), "HEAD")
	if len(got) != 2 {
		t.Errorf("ops at HEAD: playbooks %q, want 2", got)
	}
	r, _, err := LoadRevision(t.Context(), filepath.Join(root, "new"), "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if r.Valid() || !strings.Contains(r.Diagnostics[0].String(), "firebreak.cue: missing") {
		t.Errorf("a directory the base lacks: diagnostics %v, want firebreak.cue missing", r.Diagnostics)
	}
}

// TestExtract reads only what loading needs: firebreak.cue, playbooks/
// and the nearest cue.mod, never a symbolic link.
func TestExtract(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cue.mod/module.cue":                     "module: \"example.com/ops\"\n",
		"ops/firebreak.cue":                      config,
		"ops/playbooks/p.cue":                    playbooks,
		"ops/playbooks/tests/t.cue":              tests,
		"ops/incidents/2026/11/x.md":             "record",
		"ops/README.md":                          "readme",
		"secret.txt":                             "do not copy",
		"ops/playbooks/nested/deeper/extra.yaml": "x: 1\n",
	})
	if err := os.Symlink("../../secret.txt", filepath.Join(root, "ops/playbooks/link.cue")); err != nil {
		t.Fatal(err)
	}
	commitAll(t, root, "all")
	r, err := git.PlainOpen(root)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := r.Head()
	c, _ := r.CommitObject(head.Hash())
	tree, _ := c.Tree()
	dst := t.TempDir()
	if err := extract(t.Context(), tree, "ops", dst); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dst, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	want := []string{"cue.mod/module.cue", "ops/firebreak.cue", "ops/playbooks/nested/deeper/extra.yaml", "ops/playbooks/p.cue", "ops/playbooks/tests/t.cue"}
	if !slices.Equal(got, want) {
		t.Errorf("extracted %q\nwant      %q", got, want)
	}
}
