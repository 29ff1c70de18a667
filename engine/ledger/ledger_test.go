package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
)

// TestMain doubles as the helper process of the multi-process tests: the
// test binary runs itself with LEDGER_HELPER set.
func TestMain(m *testing.M) {
	if mode := os.Getenv("LEDGER_HELPER"); mode != "" {
		if err := helper(mode); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// git runs the git CLI in dir with no user or system configuration, as
// "Other Engineer", and returns its trimmed output; it fails the test on
// error.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := gitErr(t, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func gitErr(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(gittest.Git(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Other Engineer", "GIT_AUTHOR_EMAIL=other@example.com",
		"GIT_COMMITTER_NAME=Other Engineer", "GIT_COMMITTER_EMAIL=other@example.com",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// newRepo makes a worktree on branch main with files in one commit (none
// when files is nil).
func newRepo(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "playbooks")
	git(t, "", "init", "--quiet", "-b", "main", dir)
	if files == nil {
		return dir
	}
	for p, content := range files {
		writeWorktree(t, dir, p, content)
	}
	git(t, dir, "add", "--all")
	git(t, dir, "commit", "--quiet", "-m", "initial commit")
	return dir
}

func writeWorktree(t testing.TB, dir, p, content string) {
	t.Helper()
	full := filepath.Join(dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var seed = map[string]string{
	"firebreak.cue":           "package firebreak\n",
	"playbooks/checkout.cue":  "package playbooks\n",
	"incidents/2024/01/a.md":  "old incident a\n",
	"incidents/2024/02/b.md":  "old incident b\n",
	"postmortems/TEMPLATE.md": "# Postmortem\n",
}

// checkClean proves the repository is as git itself would have left it:
// nothing to commit, an index whose trees are HEAD's (so the cache tree
// was invalidated where it had to be), and a sound object database.
func checkClean(t testing.TB, dir string) {
	t.Helper()
	if st := git(t, dir, "status", "--porcelain", "--untracked-files=all"); st != "" {
		t.Errorf("git status --porcelain:\n%s", st)
	}
	if wt, head := git(t, dir, "write-tree"), git(t, dir, "rev-parse", "HEAD^{tree}"); wt != head {
		t.Errorf("git write-tree = %s, HEAD^{tree} = %s: index and HEAD differ", wt, head)
	}
	out, err := gitErr(t, dir, "fsck", "--strict", "--no-progress", "--no-dangling")
	if err != nil || out != "" {
		t.Errorf("git fsck: %v\n%s", err, out)
	}
}

func openLocalT(t testing.TB, dir string, opts Options) *Ledger {
	t.Helper()
	l, err := OpenLocal(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLocalWrite(t *testing.T) {
	ctx := t.Context()
	dir := newRepo(t, seed)
	l := openLocalT(t, dir, Options{})
	start := git(t, dir, "rev-parse", "HEAD")

	path := "incidents/2025/03/INC-0001.md"
	commit, changed, err := l.Write(ctx, "incident INC-0001: opened\n\nbody", map[string][]byte{path: []byte("---\nid: INC-0001\n---\n")})
	if err != nil || !changed {
		t.Fatalf("Write = %s, %v, %v", commit, changed, err)
	}
	if head := git(t, dir, "rev-parse", "HEAD"); head != commit {
		t.Errorf("HEAD = %s, Write returned %s", head, commit)
	}
	if got := git(t, dir, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%P|%B"); got != "firebreak <firebreak@localhost>|firebreak <firebreak@localhost>|"+start+"|incident INC-0001: opened\n\nbody" {
		t.Errorf("git log -1 = %q", got)
	}
	if got := git(t, dir, "diff", "--name-status", "HEAD~1", "HEAD"); got != "A\t"+path {
		t.Errorf("the commit changes:\n%s", got)
	}
	if got := git(t, dir, "show", "HEAD:"+path); got != "---\nid: INC-0001\n---" {
		t.Errorf("git show = %q", got)
	}
	if data, err := os.ReadFile(filepath.Join(dir, path)); err != nil || string(data) != "---\nid: INC-0001\n---\n" {
		t.Errorf("worktree file = %q, %v", data, err)
	}
	if got := git(t, dir, "reflog", "-1", "--format=%gs"); got != "commit: incident INC-0001: opened" {
		t.Errorf("reflog = %q", got)
	}
	checkClean(t, dir)

	// The same content again: no commit.
	again, changed, err := l.Write(ctx, "incident INC-0001: opened", map[string][]byte{path: []byte("---\nid: INC-0001\n---\n")})
	if err != nil || changed || again != commit {
		t.Errorf("idempotent Write = %s, %v, %v; want %s, false", again, changed, err, commit)
	}

	// Two files, one commit; one of them a deletion.
	second, changed, err := l.Write(ctx, "incident INC-0001: mitigated", map[string][]byte{
		path:                     []byte("---\nid: INC-0001\nstatus: mitigated\n---\n"),
		"outbox/INC-0001-1.json": []byte(`{"comment":1}`),
		"incidents/2024/01/a.md": nil,
	})
	if err != nil || !changed {
		t.Fatalf("Write = %v, %v", changed, err)
	}
	if got := git(t, dir, "diff", "--name-status", commit, second); got != "D\tincidents/2024/01/a.md\nM\t"+path+"\nA\toutbox/INC-0001-1.json" {
		t.Errorf("the commit changes:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "incidents/2024/01")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the emptied directory is still in the worktree: %v", err)
	}
	checkClean(t, dir)

	if data, err := l.Read(ctx, path); err != nil || string(data) != "---\nid: INC-0001\nstatus: mitigated\n---\n" {
		t.Errorf("Read = %q, %v", data, err)
	}
	if _, err := l.Read(ctx, "incidents/2024/01/a.md"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of a removed file: %v", err)
	}
	files, err := l.List(ctx, "incidents")
	if want := []string{"incidents/2024/02/b.md", path}; err != nil || !slices.Equal(files, want) {
		t.Errorf("List = %q, %v; want %q", files, err, want)
	}
	if files, err := l.List(ctx, "nothing/here"); err != nil || files != nil {
		t.Errorf("List of a missing dir = %q, %v", files, err)
	}
}

// TestLocalWriteAsPack: a write of many files puts its objects in one
// pack, which git reads, and the ledger reads and builds on at once; a
// small write after it stays loose.
func TestLocalWriteAsPack(t *testing.T) {
	ctx := t.Context()
	dir := newRepo(t, seed)
	l := openLocalT(t, dir, Options{})
	loose := func() (objects, packs string) {
		t.Helper()
		for _, line := range strings.Split(git(t, dir, "count-objects", "-v"), "\n") {
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "count":
				objects = v
			case "packs":
				packs = v
			}
		}
		return objects, packs
	}
	beforeLoose, _ := loose()

	files := map[string][]byte{}
	for i := range 2 * packMin {
		files[incidentPath("pack", i)] = []byte(incidentBody("pack", i))
	}
	commit, changed, err := l.Write(ctx, "a storm's records", files)
	if err != nil || !changed {
		t.Fatalf("Write = %s, %v, %v", commit, changed, err)
	}
	if objects, packs := loose(); objects != beforeLoose || packs != "1" {
		t.Errorf("after a write of %d files: %s loose objects (was %s), %s packs; want no new loose object and 1 pack",
			len(files), objects, beforeLoose, packs)
	}
	checkClean(t, dir)
	// git and the ledger both read every file back.
	for p, want := range files {
		if got := git(t, dir, "show", "HEAD:"+p); got != strings.TrimSpace(string(want)) {
			t.Fatalf("git show %s = %q, want %q", p, got, want)
		}
		if got, err := l.Read(ctx, p); err != nil || string(got) != string(want) {
			t.Fatalf("Read %s = %q, %v", p, got, err)
		}
	}
	path := incidentPath("pack", 0)
	if _, _, err := l.Write(ctx, "one update", map[string][]byte{path: []byte("updated\n")}); err != nil {
		t.Fatal(err)
	}
	if objects, packs := loose(); objects == beforeLoose || packs != "1" {
		t.Errorf("after a small write: %s loose objects (was %s), %s packs; want loose objects and still 1 pack", objects, beforeLoose, packs)
	}
	if got := git(t, dir, "show", "HEAD:"+path); got != "updated" {
		t.Errorf("git show = %q", got)
	}
	checkClean(t, dir)
}

func TestLocalAuthorAndEmptyFile(t *testing.T) {
	dir := newRepo(t, seed)
	l := openLocalT(t, dir, Options{AuthorName: "Fire Breaker", AuthorEmail: "fb@example.com"})
	if _, _, err := l.Write(t.Context(), "empty", map[string][]byte{"outbox/.keep": {}}); err != nil {
		t.Fatal(err)
	}
	if got := git(t, dir, "log", "-1", "--format=%an <%ae>"); got != "Fire Breaker <fb@example.com>" {
		t.Errorf("author = %q", got)
	}
	if got := git(t, dir, "cat-file", "-s", "HEAD:outbox/.keep"); got != "0" {
		t.Errorf("size of the empty file = %s", got)
	}
	checkClean(t, dir)
}

func TestLocalExecutableStays(t *testing.T) {
	dir := newRepo(t, map[string]string{"hooks/notify.sh": "#!/bin/sh\n"})
	git(t, dir, "update-index", "--chmod=+x", "hooks/notify.sh")
	os.Chmod(filepath.Join(dir, "hooks/notify.sh"), 0o755)
	git(t, dir, "commit", "--quiet", "-m", "exec")
	l := openLocalT(t, dir, Options{})
	if _, _, err := l.Write(t.Context(), "edit", map[string][]byte{"hooks/notify.sh": []byte("#!/bin/sh\necho\n")}); err != nil {
		t.Fatal(err)
	}
	if got := git(t, dir, "ls-tree", "HEAD", "hooks/notify.sh"); !strings.HasPrefix(got, "100755 ") {
		t.Errorf("ls-tree = %q", got)
	}
	checkClean(t, dir)
}

func TestLocalRejectsBadInput(t *testing.T) {
	dir := newRepo(t, seed)
	l := openLocalT(t, dir, Options{})
	for _, p := range []string{"", "/etc/passwd", "../outside", "incidents/../../x", ".git/config", "a/.GIT/hooks/x", `a\b`, "."} {
		_, _, err := l.Write(t.Context(), "bad", map[string][]byte{p: []byte("x")})
		if !errors.Is(err, gitrepo.ErrBadPath) {
			t.Errorf("Write(%q): %v, want ErrBadPath", p, err)
		}
	}
	for name, files := range map[string]map[string][]byte{
		"file and directory":     {"a/b": []byte("1"), "a/b.md": []byte("2"), "a/b/c": []byte("3")},
		"same file twice":        {"a/b": []byte("1"), "a//b": []byte("2")},
		"no files":               {},
		"over an existing dir":   {"incidents/2024": []byte("x")},
		"under an existing file": {"firebreak.cue/x": []byte("x")},
		"removing a directory":   {"incidents": nil},
	} {
		if _, _, err := l.Write(t.Context(), "bad", files); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, _, err := l.Write(t.Context(), "", map[string][]byte{"x": []byte("x")}); err == nil {
		t.Error("empty message: no error")
	}
	if _, _, err := l.WriteBranch(t.Context(), "bad..name", "", "m", map[string][]byte{"x": []byte("x")}); err == nil {
		t.Error("bad branch name: no error")
	}
	if got := git(t, dir, "rev-list", "--count", "HEAD"); got != "1" {
		t.Errorf("commits after refused writes: %s", got)
	}
	checkClean(t, dir)
}

// TestLocalIndexFormats writes through every index format git makes and
// checks git agrees with the result.
func TestLocalIndexFormats(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string // "" or the error it must wrap
	}{
		{"version 2", func(t *testing.T, dir string) {}, ""},
		{"version 3 (skip-worktree elsewhere)", func(t *testing.T, dir string) {
			git(t, dir, "update-index", "--skip-worktree", "playbooks/checkout.cue")
		}, ""},
		{"version 4", func(t *testing.T, dir string) {
			git(t, dir, "update-index", "--index-version", "4")
		}, ""},
		{"untracked cache", func(t *testing.T, dir string) {
			git(t, dir, "config", "core.untrackedCache", "true")
			git(t, dir, "update-index", "--untracked-cache")
			git(t, dir, "status", "--porcelain")
		}, ""},
		{"staged change elsewhere", func(t *testing.T, dir string) {
			writeWorktree(t, dir, "playbooks/new.cue", "package playbooks\n")
			git(t, dir, "add", "playbooks/new.cue")
		}, ""},
		{"split index", func(t *testing.T, dir string) {
			git(t, dir, "update-index", "--split-index")
		}, "unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newRepo(t, seed)
			tc.setup(t, dir)
			before := git(t, dir, "status", "--porcelain")
			vBefore, extBefore := indexShape(t, dir)
			l := openLocalT(t, dir, Options{})
			_, _, err := l.Write(t.Context(), "incident", map[string][]byte{
				"incidents/2024/01/a.md":   []byte("updated\n"),
				"incidents/2024/01/a0.md":  []byte("new, sorts before a.md's neighbours\n"),
				"incidents/2024/01/a.md.x": []byte("new, sorts after\n"),
				"incidents/2025/01/z.md":   []byte("new directory\n"),
				"zz/last.md":               []byte("after every entry\n"),
				"00first.md":               []byte("before every entry\n"),
			})
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Write: %v, want %q", err, tc.want)
				}
				if got := git(t, dir, "rev-list", "--count", "HEAD"); got != "1" {
					t.Errorf("a refused write committed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if after := git(t, dir, "status", "--porcelain"); after != before {
				t.Errorf("git status before:\n%s\nafter:\n%s", before, after)
			}
			vAfter, extAfter := indexShape(t, dir)
			t.Logf("index version %d %q -> %d %q", vBefore, extBefore, vAfter, extAfter)
			if vAfter != vBefore || !slices.Contains(extBefore, "TREE") || !slices.Contains(extAfter, "TREE") {
				t.Errorf("index version %d %q -> %d %q: want the version kept and a cache tree before and after", vBefore, extBefore, vAfter, extAfter)
			}
			if before == "" {
				checkClean(t, dir)
			}
			// git reads it and writes its own commits on top.
			writeWorktree(t, dir, "incidents/2024/01/a0.md", "edited by hand\n")
			git(t, dir, "commit", "--quiet", "-am", "by hand")
			if got := git(t, dir, "show", "HEAD:incidents/2024/01/a0.md"); got != "edited by hand" {
				t.Errorf("after git commit: %q", got)
			}
			want := "incidents/2024/01/a0.md"
			if before != "" {
				want += "\nplaybooks/new.cue" // the change staged before, committed now
			}
			if got := git(t, dir, "diff", "--name-only", "HEAD~1", "HEAD"); got != want {
				t.Errorf("git commit after the write changed:\n%s", got)
			}
			if out, err := gitErr(t, dir, "fsck", "--strict", "--no-dangling"); err != nil {
				t.Errorf("fsck: %v\n%s", err, out)
			}
		})
	}
}

// indexShape returns the version and the extensions of a worktree's index.
func indexShape(t *testing.T, dir string) (uint32, []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ".git", "index"))
	if err != nil {
		t.Fatal(err)
	}
	sc := entryScanner{data: data[:len(data)-20], off: 12, version: binary.BigEndian.Uint32(data[4:8])}
	for range binary.BigEndian.Uint32(data[8:12]) {
		if err := sc.next(); err != nil {
			t.Fatal(err)
		}
	}
	var exts []string
	for off := sc.off; off < len(data)-20; {
		exts = append(exts, string(data[off:off+4]))
		off += 8 + int(binary.BigEndian.Uint32(data[off+4:off+8]))
	}
	return sc.version, exts
}

func TestLocalRefusesToOverwriteLocalWork(t *testing.T) {
	const path = "incidents/2024/01/a.md"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		ok    bool
	}{
		{"modified in the worktree", func(t *testing.T, dir string) { writeWorktree(t, dir, path, "my notes\n") }, false},
		{"staged", func(t *testing.T, dir string) {
			writeWorktree(t, dir, path, "staged notes\n")
			git(t, dir, "add", path)
		}, false},
		{"untracked in the way", func(t *testing.T, dir string) { writeWorktree(t, dir, "incidents/2024/01/new.md", "mine\n") }, false},
		{"a symlinked directory on the path", func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, "..", "elsewhere"), 0o755)
			os.Symlink(filepath.Join(dir, "..", "elsewhere"), filepath.Join(dir, "incidents", "2026"))
		}, false},
		{"already holds the new content", func(t *testing.T, dir string) { writeWorktree(t, dir, path, "firebreak's\n") }, true},
		{"touched but unchanged (stat only)", func(t *testing.T, dir string) {
			now := time.Now().Add(time.Hour)
			os.Chtimes(filepath.Join(dir, path), now, now)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newRepo(t, seed)
			tc.setup(t, dir)
			before := git(t, dir, "status", "--porcelain")
			l := openLocalT(t, dir, Options{})
			files := map[string][]byte{path: []byte("firebreak's\n")}
			switch tc.name {
			case "untracked in the way":
				files = map[string][]byte{"incidents/2024/01/new.md": []byte("firebreak's\n")}
			case "a symlinked directory on the path":
				files = map[string][]byte{"incidents/2026/01/x.md": []byte("firebreak's\n")}
			}
			_, _, err := l.Write(t.Context(), "incident", files)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				checkClean(t, dir)
				return
			}
			if !errors.Is(err, ErrLocalChange) {
				t.Fatalf("Write: %v, want ErrLocalChange", err)
			}
			if got := git(t, dir, "rev-list", "--count", "HEAD"); got != "1" {
				t.Errorf("a refused write committed")
			}
			if after := git(t, dir, "status", "--porcelain"); after != before {
				t.Errorf("status changed:\n%s\n->\n%s", before, after)
			}
		})
	}
}

// TestLocalLostRace moves the branch between the moment a write is built
// and the moment it locks the branch — once with the git CLI committing in
// the same worktree, once with another Ledger — and checks the write is
// built again on the new head and nothing is lost.
func TestLocalLostRace(t *testing.T) {
	for _, tc := range []struct {
		name string
		race func(t *testing.T, dir string)
	}{
		{"git commit", func(t *testing.T, dir string) {
			writeWorktree(t, dir, "playbooks/by-hand.cue", "package playbooks\n")
			git(t, dir, "add", "playbooks/by-hand.cue")
			git(t, dir, "commit", "--quiet", "-m", "by hand")
		}},
		{"another ledger", func(t *testing.T, dir string) {
			other := openLocalT(t, dir, Options{})
			if _, _, err := other.Write(context.Background(), "other", map[string][]byte{"incidents/2024/01/a.md": []byte("other\n")}); err != nil {
				t.Error(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newRepo(t, seed)
			l := openLocalT(t, dir, Options{})
			b := l.b.(*local)
			once := sync.Once{}
			b.beforeLock = func() { once.Do(func() { tc.race(t, dir) }) }
			commit, _, err := l.Write(t.Context(), "mine", map[string][]byte{"incidents/2025/01/mine.md": []byte("mine\n")})
			if err != nil {
				t.Fatal(err)
			}
			if b.races != 1 {
				t.Errorf("races = %d, want 1", b.races)
			}
			if got := git(t, dir, "log", "--format=%s", "-3"); got != "mine\n"+map[string]string{"git commit": "by hand", "another ledger": "other"}[tc.name]+"\ninitial commit" {
				t.Errorf("history:\n%s", got)
			}
			if head := git(t, dir, "rev-parse", "HEAD"); head != commit {
				t.Errorf("HEAD %s, commit %s", head, commit)
			}
			checkClean(t, dir)
		})
	}
}

func TestLocalLockWait(t *testing.T) {
	dir := newRepo(t, seed)
	lock := filepath.Join(dir, ".git", "index.lock")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l := openLocalT(t, dir, Options{LockWait: 200 * time.Millisecond})
	_, _, err := l.Write(t.Context(), "m", map[string][]byte{"x.md": []byte("x")})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "index.lock") {
		t.Fatalf("Write with index.lock held: %v", err)
	}

	// A lock released while the write waits.
	time.AfterFunc(300*time.Millisecond, func() { os.Remove(lock) })
	l2 := openLocalT(t, dir, Options{LockWait: 5 * time.Second})
	if _, _, err := l2.Write(t.Context(), "m", map[string][]byte{"x.md": []byte("x")}); err != nil {
		t.Fatal(err)
	}
	checkClean(t, dir)

	// The wait ends with the context.
	ref := filepath.Join(dir, ".git", "refs", "heads", "main.lock")
	os.WriteFile(ref, nil, 0o644)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := l2.Write(ctx, "m", map[string][]byte{"y.md": []byte("y")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write with a ref lock held and a deadline: %v", err)
	}
	os.Remove(ref)
	if _, err := os.Stat(lock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("index.lock left behind: %v", err)
	}
}

func TestLocalWriteBranch(t *testing.T) {
	ctx := t.Context()
	dir := newRepo(t, seed)
	l := openLocalT(t, dir, Options{})
	main := git(t, dir, "rev-parse", "main")

	const pm = "postmortems/INC-0001.md"
	c1, changed, err := l.WriteBranch(ctx, "postmortem/INC-0001", "main", "postmortem INC-0001: draft", map[string][]byte{pm: []byte("# INC-0001\n")})
	if err != nil || !changed {
		t.Fatalf("WriteBranch = %v, %v", changed, err)
	}
	if got := git(t, dir, "rev-parse", "postmortem/INC-0001"); got != c1 {
		t.Errorf("branch at %s, want %s", got, c1)
	}
	if got := git(t, dir, "rev-parse", "postmortem/INC-0001~1"); got != main {
		t.Errorf("branch starts from %s, want main %s", got, main)
	}
	if got := git(t, dir, "rev-parse", "main"); got != main {
		t.Error("main moved")
	}
	if _, err := os.Stat(filepath.Join(dir, pm)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a write to another branch reached the worktree")
	}
	checkClean(t, dir)

	c2, changed, err := l.WriteBranch(ctx, "postmortem/INC-0001", "main", "postmortem INC-0001: timeline", map[string][]byte{pm: []byte("# INC-0001\n\n## Timeline\n")})
	if err != nil || !changed {
		t.Fatalf("second WriteBranch = %v, %v", changed, err)
	}
	if got := git(t, dir, "rev-parse", "postmortem/INC-0001~1"); got != c1 {
		t.Errorf("second commit's parent %s, want %s", got, c1)
	}
	if c3, changed, err := l.WriteBranch(ctx, "postmortem/INC-0001", "main", "again", map[string][]byte{pm: []byte("# INC-0001\n\n## Timeline\n")}); err != nil || changed || c3 != c2 {
		t.Errorf("idempotent WriteBranch = %s, %v, %v", c3, changed, err)
	}

	// The current branch through WriteBranch is Write.
	if _, _, err := l.WriteBranch(ctx, "main", "", "on main", map[string][]byte{"incidents/x.md": []byte("x\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "incidents/x.md")); err != nil {
		t.Errorf("write to the current branch missed the worktree: %v", err)
	}
	// From a commit hash; and nothing to add still makes the branch.
	if c, changed, err := l.WriteBranch(ctx, "from-hash", main, "nothing", map[string][]byte{"firebreak.cue": []byte("package firebreak\n")}); err != nil || changed || c != main {
		t.Errorf("WriteBranch with nothing to add = %s, %v, %v", c, changed, err)
	}
	if got := git(t, dir, "rev-parse", "from-hash"); got != main {
		t.Errorf("from-hash at %s", got)
	}
	if _, _, err := l.WriteBranch(ctx, "x", "no-such-base", "m", map[string][]byte{"a": []byte("a")}); err == nil {
		t.Error("missing base: no error")
	}
	checkClean(t, dir)
	if out, err := gitErr(t, dir, "fsck", "--strict"); err != nil {
		t.Errorf("fsck: %v\n%s", err, out)
	}
}

func TestLocalRepositoryShapes(t *testing.T) {
	t.Run("unborn branch", func(t *testing.T) {
		dir := newRepo(t, nil)
		l := openLocalT(t, dir, Options{})
		if data, err := l.Read(t.Context(), "x"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Read on an empty repository = %q, %v", data, err)
		}
		if _, _, err := l.Write(t.Context(), "first", map[string][]byte{"incidents/2025/01/a.md": []byte("a\n")}); err != nil {
			t.Fatal(err)
		}
		if got := git(t, dir, "log", "--format=%s"); got != "first" {
			t.Errorf("log = %q", got)
		}
		checkClean(t, dir)
	})
	t.Run("detached HEAD", func(t *testing.T) {
		dir := newRepo(t, seed)
		git(t, dir, "checkout", "--quiet", "--detach")
		l := openLocalT(t, dir, Options{})
		if _, _, err := l.Write(t.Context(), "m", map[string][]byte{"a": []byte("a")}); !errors.Is(err, ErrDetachedHead) {
			t.Errorf("Write on a detached HEAD: %v", err)
		}
	})
	t.Run("packed refs", func(t *testing.T) {
		dir := newRepo(t, seed)
		git(t, dir, "pack-refs", "--all", "--prune")
		l := openLocalT(t, dir, Options{})
		if _, _, err := l.Write(t.Context(), "m", map[string][]byte{"a.md": []byte("a")}); err != nil {
			t.Fatal(err)
		}
		git(t, dir, "pack-refs", "--all", "--prune")
		if _, _, err := l.Write(t.Context(), "m2", map[string][]byte{"b.md": []byte("b")}); err != nil {
			t.Fatal(err)
		}
		if got := git(t, dir, "rev-list", "--count", "HEAD"); got != "3" {
			t.Errorf("commits: %s", got)
		}
		checkClean(t, dir)
	})
	t.Run("repacked while open", func(t *testing.T) {
		dir := newRepo(t, seed)
		l := openLocalT(t, dir, Options{})
		if _, _, err := l.Write(t.Context(), "m", map[string][]byte{"a.md": []byte("a")}); err != nil {
			t.Fatal(err)
		}
		git(t, dir, "repack", "-a", "-d", "-q")
		git(t, dir, "prune-packed")
		if _, _, err := l.Write(t.Context(), "m2", map[string][]byte{"incidents/2024/01/b.md": []byte("b")}); err != nil {
			t.Fatal(err)
		}
		checkClean(t, dir)
	})
	t.Run("bare", func(t *testing.T) {
		dir := newRepo(t, seed)
		bare := filepath.Join(t.TempDir(), "bare.git")
		git(t, "", "clone", "--quiet", "--bare", dir, bare)
		l := openLocalT(t, bare, Options{})
		if _, _, err := l.Write(t.Context(), "in bare", map[string][]byte{"incidents/a.md": []byte("a")}); err != nil {
			t.Fatal(err)
		}
		if got := git(t, bare, "show", "main:incidents/a.md"); got != "a" {
			t.Errorf("show = %q", got)
		}
		if out, err := gitErr(t, bare, "fsck", "--strict", "--no-dangling"); err != nil {
			t.Errorf("fsck: %v\n%s", err, out)
		}
	})
	t.Run("linked worktree", func(t *testing.T) {
		dir := newRepo(t, seed)
		wt := filepath.Join(t.TempDir(), "wt")
		git(t, dir, "worktree", "add", "--quiet", "-b", "ops", wt)
		l := openLocalT(t, wt, Options{})
		if _, _, err := l.Write(t.Context(), "in worktree", map[string][]byte{"incidents/a.md": []byte("a")}); err != nil {
			t.Fatal(err)
		}
		if got := git(t, dir, "log", "-1", "--format=%s", "ops"); got != "in worktree" {
			t.Errorf("ops: %q", got)
		}
		if got := git(t, dir, "log", "-1", "--format=%s", "main"); got != "initial commit" {
			t.Errorf("main moved: %q", got)
		}
		checkClean(t, wt)
		checkClean(t, dir)
	})
	t.Run("sha256", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "r")
		git(t, "", "init", "--quiet", "--object-format=sha256", dir)
		if _, err := OpenLocal(dir, Options{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("OpenLocal of a SHA-256 repository: %v", err)
		}
	})
	t.Run("not a repository", func(t *testing.T) {
		if _, err := OpenLocal(t.TempDir(), Options{}); err == nil {
			t.Error("no error")
		}
	})
}

// TestLocalConcurrentLedgers has two Ledgers on one worktree, each written
// by four goroutines at once: every write must land as its own commit.
func TestLocalConcurrentLedgers(t *testing.T) {
	dir := newRepo(t, seed)
	ledgers := []*Ledger{openLocalT(t, dir, Options{}), openLocalT(t, dir, Options{})}
	const perGoroutine = 25
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for li, l := range ledgers {
		for g := range 4 {
			wg.Go(func() {
				for i := range perGoroutine {
					id := fmt.Sprintf("L%d-G%d-%02d", li, g, i)
					p := fmt.Sprintf("incidents/2025/%02d/%s.md", i%12+1, id)
					if _, changed, err := l.Write(t.Context(), "incident "+id, map[string][]byte{p: []byte("id: " + id + "\n")}); err != nil || !changed {
						errs <- fmt.Errorf("%s: changed=%v err=%v", id, changed, err)
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := git(t, dir, "rev-list", "--count", "HEAD"); got != "201" {
		t.Errorf("commits: %s, want 201", got)
	}
	files := strings.Fields(git(t, dir, "ls-tree", "-r", "--name-only", "HEAD", "incidents/2025"))
	if len(files) != 200 {
		t.Errorf("files: %d, want 200", len(files))
	}
	races := ledgers[0].b.(*local).races + ledgers[1].b.(*local).races
	t.Logf("lost races, rebuilt: %d", races)
	checkClean(t, dir)
}

// TestLocalTwoProcesses runs two firebreak processes writing 100
// incidents each into the same worktree at once.
func TestLocalTwoProcesses(t *testing.T) {
	dir := newRepo(t, seed)
	runHelpers(t, "local", dir, 100)
	if got := git(t, dir, "rev-list", "--count", "HEAD"); got != "201" {
		t.Errorf("commits: %s, want 201", got)
	}
	checkIncidents(t, func(p string) (string, bool) {
		out, err := gitErr(t, dir, "show", "HEAD:"+p)
		return out, err == nil
	}, 100)
	checkClean(t, dir)
}

// runHelpers runs two helper processes, P0 and P1, each writing n
// incidents to target, starting at the same moment.
func runHelpers(t *testing.T, mode, target string, n int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(300 * time.Millisecond).UnixNano()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := range 2 {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(),
			"LEDGER_HELPER="+mode, "LEDGER_TARGET="+target, "LEDGER_PREFIX=P"+strconv.Itoa(i),
			"LEDGER_N="+strconv.Itoa(n), "LEDGER_START="+strconv.FormatInt(start, 10),
			"LEDGER_CACHE="+t.TempDir(),
		)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper P%d: %v\n%s", i, err, outs[i])
		} else {
			t.Logf("helper P%d: %s", i, strings.TrimSpace(outs[i].String()))
		}
	}
}

func incidentPath(prefix string, i int) string {
	return fmt.Sprintf("incidents/2025/%02d/%s-%03d.md", i%12+1, prefix, i)
}

func incidentBody(prefix string, i int) string {
	return fmt.Sprintf("---\nid: %s-%03d\nstatus: open\n---\n", prefix, i)
}

// checkIncidents checks every incident of both helpers is there with its
// own content.
func checkIncidents(t *testing.T, show func(p string) (string, bool), n int) {
	t.Helper()
	missing := 0
	for _, prefix := range []string{"P0", "P1"} {
		for i := range n {
			got, ok := show(incidentPath(prefix, i))
			if want := strings.TrimSpace(incidentBody(prefix, i)); !ok || got != want {
				missing++
				if missing < 5 {
					t.Errorf("%s: %q (present %v)", incidentPath(prefix, i), got, ok)
				}
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d incidents missing or clobbered", missing, 2*n)
	}
}

// helper is the body of a helper process: write LEDGER_N incidents.
func helper(mode string) error {
	n, _ := strconv.Atoi(os.Getenv("LEDGER_N"))
	prefix, target := os.Getenv("LEDGER_PREFIX"), os.Getenv("LEDGER_TARGET")
	startNs, _ := strconv.ParseInt(os.Getenv("LEDGER_START"), 10, 64)
	var l *Ledger
	var err error
	switch mode {
	case "local":
		l, err = OpenLocal(target, Options{})
	case "remote":
		store := gitrepo.NewStore(os.Getenv("LEDGER_CACHE"), nil)
		defer store.Close()
		l, err = OpenRemote(store, gitrepo.Remote{URL: target, Branch: "main"}, Options{})
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	defer l.Close()
	time.Sleep(time.Until(time.Unix(0, startNs)))
	ctx := context.Background()
	began := time.Now()
	for i := range n {
		_, changed, err := l.Write(ctx, fmt.Sprintf("incident %s-%03d: opened", prefix, i),
			map[string][]byte{incidentPath(prefix, i): []byte(incidentBody(prefix, i))})
		if err != nil {
			return fmt.Errorf("write %d: %w", i, err)
		}
		if !changed {
			return fmt.Errorf("write %d: no change", i)
		}
	}
	fmt.Printf("%d writes in %s", n, time.Since(began).Round(time.Millisecond))
	if lb, ok := l.b.(*local); ok {
		fmt.Printf(", %d lost races rebuilt", lb.races)
	}
	fmt.Println()
	return nil
}
