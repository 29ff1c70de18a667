package gitrepo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
	git "github.com/go-git/go-git/v5"
)

const token = "tok-3f9a1c7e55d2b8"

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newStore(t *testing.T, opts ...gitrepo.Option) (*gitrepo.Store, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	s := gitrepo.NewStore(t.TempDir(), slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), opts...)
	t.Cleanup(func() { s.Close() })
	return s, logs
}

func open(t *testing.T, s *gitrepo.Store, r gitrepo.Remote) *gitrepo.Repo {
	t.Helper()
	repo, err := s.Open(r)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func TestUpdateCommitsAndPushes(t *testing.T) {
	srv := gittest.NewServer(t, gittest.WithToken(token))
	url := srv.CreateRepo("deploy", map[string]string{
		"apps/api/deploy.yaml": "replicas: 2\n",
		"apps/web/deploy.yaml": "replicas: 3\n",
		"README.md":            "hello\n",
	})
	store, logs := newStore(t, gitrepo.WithAuthor("firebreak-bot", "bot@example.com"))
	repo := open(t, store, gitrepo.Remote{URL: url, Branch: "main", Token: token})

	msg := "firebreak: scale api\n\nIncident INC-1, playbook p.\n\nFirebreak-Incident: INC-1"
	commit, changed, err := repo.Update(t.Context(), msg, func(tx *gitrepo.Tx) error {
		got, err := tx.ReadFile("apps/api/deploy.yaml")
		if err != nil {
			return err
		}
		if string(got) != "replicas: 2\n" {
			return fmt.Errorf("read %q", got)
		}
		if err := tx.WriteFile("apps/api/deploy.yaml", []byte("replicas: 4\n")); err != nil {
			return err
		}
		if err := tx.WriteFile("apps/new/deploy.yaml", []byte("replicas: 1\n")); err != nil {
			return err
		}
		return tx.Delete("README.md")
	})
	if err != nil || !changed {
		t.Fatalf("Update = %q, %v, %v", commit, changed, err)
	}

	clone := srv.Clone("deploy")
	if got := clone.Git("rev-parse", "HEAD"); got != commit {
		t.Errorf("remote head = %s, want %s", got, commit)
	}
	for path, want := range map[string]string{
		"apps/api/deploy.yaml": "replicas: 4\n",
		"apps/web/deploy.yaml": "replicas: 3\n",
		"apps/new/deploy.yaml": "replicas: 1\n",
	} {
		if got := clone.File(path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if clone.Exists("README.md") {
		t.Error("README.md still exists")
	}
	if got := clone.Git("log", "-1", "--format=%an <%ae>|%cn <%ce>"); got != "firebreak-bot <bot@example.com>|firebreak-bot <bot@example.com>" {
		t.Errorf("author|committer = %q", got)
	}
	if got := clone.Message("HEAD"); got != msg {
		t.Errorf("message = %q, want %q", got, msg)
	}
	clone.Git("fsck", "--strict")
	if strings.Contains(logs.String(), token) {
		t.Errorf("token in logs:\n%s", logs)
	}
}

func TestUpdateUnchangedMakesNoCommit(t *testing.T) {
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("deploy", map[string]string{"a.yaml": "x: 1\n"})
	store, _ := newStore(t)
	repo := open(t, store, gitrepo.Remote{URL: url})
	head := srv.Head("deploy")

	write := func(tx *gitrepo.Tx) error { return tx.WriteFile("a.yaml", []byte("x: 1\n")) }
	commit, changed, err := repo.Update(t.Context(), "no-op", write)
	if err != nil || changed || commit != head {
		t.Fatalf("Update = %q, %v, %v; want %s, false, nil", commit, changed, err, head)
	}
	// Writing then undoing within one transaction changes nothing either.
	commit, changed, err = repo.Update(t.Context(), "no-op", func(tx *gitrepo.Tx) error {
		if err := tx.WriteFile("a.yaml", []byte("x: 2\n")); err != nil {
			return err
		}
		return tx.WriteFile("a.yaml", []byte("x: 1\n"))
	})
	if err != nil || changed || commit != head {
		t.Fatalf("Update = %q, %v, %v; want %s, false, nil", commit, changed, err, head)
	}
	if srv.Pushes() != 0 || srv.Head("deploy") != head {
		t.Errorf("pushes = %d, head moved to %s", srv.Pushes(), srv.Head("deploy"))
	}
}

func TestUpdateRaceReappliesOnNewHead(t *testing.T) {
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("deploy", map[string]string{"a.yaml": "a: 1\n", "b.yaml": "b: 1\n"})
	store, _ := newStore(t)
	repo := open(t, store, gitrepo.Remote{URL: url})

	var other string
	srv.BeforeNextPush(func() {
		other = srv.Commit("deploy", "someone else", map[string]string{"b.yaml": "b: 2\n"})
	})
	var heads []string
	commit, changed, err := repo.Update(t.Context(), "firebreak: edit a", func(tx *gitrepo.Tx) error {
		heads = append(heads, tx.Head())
		return tx.WriteFile("a.yaml", []byte("a: 2\n"))
	})
	if err != nil || !changed {
		t.Fatalf("Update = %q, %v, %v", commit, changed, err)
	}
	if len(heads) != 2 || heads[1] != other {
		t.Fatalf("change ran on heads %v; want a second run on the competing commit %s", heads, other)
	}
	clone := srv.Clone("deploy")
	if got, want := clone.Subjects(), []string{"firebreak: edit a", "someone else", "initial commit"}; !slices.Equal(got, want) {
		t.Errorf("history = %q, want %q", got, want)
	}
	if clone.File("a.yaml") != "a: 2\n" || clone.File("b.yaml") != "b: 2\n" {
		t.Errorf("a.yaml = %q, b.yaml = %q", clone.File("a.yaml"), clone.File("b.yaml"))
	}
	if got := clone.Git("rev-parse", "HEAD^"); got != other {
		t.Errorf("parent of firebreak's commit = %s, want %s", got, other)
	}
}

func TestUpdateGivesUpOnABranchThatKeepsMoving(t *testing.T) {
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("deploy", map[string]string{"a.yaml": "a: 1\n"})
	store, _ := newStore(t, gitrepo.WithAttempts(3))
	repo := open(t, store, gitrepo.Remote{URL: url})

	var competing func()
	n := 0
	competing = func() {
		n++
		srv.Commit("deploy", fmt.Sprintf("other %d", n), map[string]string{"b.yaml": fmt.Sprint(n)})
		srv.BeforeNextPush(competing)
	}
	srv.BeforeNextPush(competing)
	runs := 0
	_, _, err := repo.Update(t.Context(), "firebreak", func(tx *gitrepo.Tx) error {
		runs++
		return tx.WriteFile("a.yaml", []byte("a: 2\n"))
	})
	if !errors.Is(err, gitrepo.ErrRejected) || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("err = %v; want ErrRejected after 3 attempts", err)
	}
	if runs != 3 {
		t.Errorf("change ran %d times, want 3", runs)
	}
	if srv.Clone("deploy").File("a.yaml") != "a: 1\n" {
		t.Error("firebreak's change landed")
	}
}

func TestConcurrentUpdatesBothLand(t *testing.T) {
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("deploy", map[string]string{"seed": "0"})
	// Two firebreaks with their own caches, and two goroutines of one.
	storeA, _ := newStore(t)
	storeB, _ := newStore(t)
	repos := []*gitrepo.Repo{
		open(t, storeA, gitrepo.Remote{URL: url}), open(t, storeA, gitrepo.Remote{URL: url}),
		open(t, storeB, gitrepo.Remote{URL: url}), open(t, storeB, gitrepo.Remote{URL: url}),
	}
	var wg sync.WaitGroup
	errs := make([]error, len(repos))
	for i, repo := range repos {
		wg.Go(func() {
			_, _, errs[i] = repo.Update(t.Context(), fmt.Sprintf("writer %d", i), func(tx *gitrepo.Tx) error {
				return tx.WriteFile(fmt.Sprintf("w%d", i), []byte("x"))
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	clone := srv.Clone("deploy")
	for i := range repos {
		if !clone.Exists(fmt.Sprintf("w%d", i)) {
			t.Errorf("w%d missing", i)
		}
	}
	if got := len(clone.Subjects()); got != len(repos)+1 {
		t.Errorf("%d commits, want %d", got, len(repos)+1)
	}
}

func TestRemoteErrors(t *testing.T) {
	srv := gittest.NewServer(t, gittest.WithToken(token))
	url := srv.CreateRepo("deploy", map[string]string{"a": "1"})
	tests := []struct {
		name   string
		remote gitrepo.Remote
		want   error
		text   string
	}{
		{"missing branch", gitrepo.Remote{URL: url, Branch: "release", Token: token}, gitrepo.ErrBranchNotFound, "branch release): branch not found on the remote"},
		{"bad token", gitrepo.Remote{URL: url, Token: "wrong-" + token}, gitrepo.ErrAuth, "authentication failed"},
		{"no token", gitrepo.Remote{URL: url}, gitrepo.ErrAuth, "has no token"},
		{"no repository", gitrepo.Remote{URL: srv.RepoURL("nope"), Token: token}, gitrepo.ErrRepoNotFound, "repository not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, logs := newStore(t)
			repo := open(t, store, tt.remote)
			_, err := repo.ReadFile(t.Context(), "a")
			t.Log(err)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %v; want %v containing %q", err, tt.want, tt.text)
			}
			_, _, uerr := repo.Update(t.Context(), "m", func(tx *gitrepo.Tx) error { return tx.WriteFile("a", []byte("2")) })
			if !errors.Is(uerr, tt.want) {
				t.Errorf("Update err = %v; want %v", uerr, tt.want)
			}
			for _, e := range []error{err, uerr} {
				if msg := e.Error(); strings.Contains(msg, token) || strings.Contains(msg, "\n") {
					t.Errorf("error leaks the token or spans lines: %q", msg)
				}
			}
			if strings.Contains(logs.String(), token) {
				t.Errorf("token in logs:\n%s", logs)
			}
		})
	}
	if got := srv.Head("deploy"); got != srv.Run(srv.BareDir("deploy"), "rev-list", "--max-parents=0", "HEAD") {
		t.Errorf("remote changed: head %s", got)
	}
}

func TestRedirectToAnotherHostRefused(t *testing.T) {
	srv := gittest.NewServer(t, gittest.WithToken(token))
	srv.CreateRepo("deploy", map[string]string{"a": "1"})
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+r.URL.RequestURI(), http.StatusFound)
	}))
	t.Cleanup(redirector.Close)
	store, _ := newStore(t)
	repo := open(t, store, gitrepo.Remote{URL: redirector.URL + "/deploy.git", Token: token})
	_, err := repo.ReadFile(t.Context(), "a")
	if !errors.Is(err, gitrepo.ErrRedirect) || strings.Contains(err.Error(), token) {
		t.Fatalf("err = %v; want ErrRedirect", err)
	}
	if got := srv.Requests(); len(got) != 0 {
		t.Errorf("the other host was asked: %v", got)
	}
}

func TestOpenRefuses(t *testing.T) {
	store, _ := newStore(t)
	for _, r := range []gitrepo.Remote{
		{URL: "https://user:" + token + "@example.com/x.git"},
		{URL: "ssh://git@example.com/x.git"},
		{URL: "https://example.com/x.git", Branch: "a..b"},
		{URL: "https://example.com/x.git", Branch: "-rf"},
	} {
		_, err := store.Open(r)
		if err == nil {
			t.Errorf("Open(%+v) succeeded", r)
			continue
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"apps/checkout", "apps/checkout"},
		{"./apps//checkout/", "apps/checkout"},
		{"flags/shop.flagd.json", "flags/shop.flagd.json"},
		{"a/b/./c", "a/b/c"},
		{"../../etc", ""},
		{"apps/../../etc/passwd", ""},
		{"apps/..", ""},
		{"/etc/passwd", ""},
		{"", ""},
		{".", ""},
		{"./", ""},
		{".git/config", ""},
		{"apps/.GIT/hooks", ""},
		{`apps\..\x`, ""},
		{"a\x00b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := gitrepo.CleanPath(tt.in)
			if tt.want == "" {
				if !errors.Is(err, gitrepo.ErrBadPath) {
					t.Fatalf("CleanPath(%q) = %q, %v; want ErrBadPath", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CleanPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestTxRefusesBadPaths(t *testing.T) {
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("deploy", map[string]string{"a": "1"})
	store, _ := newStore(t)
	repo := open(t, store, gitrepo.Remote{URL: url})
	ops := map[string]func(tx *gitrepo.Tx) error{
		"ReadFile":  func(tx *gitrepo.Tx) error { _, err := tx.ReadFile("../../etc/passwd"); return err },
		"WriteFile": func(tx *gitrepo.Tx) error { return tx.WriteFile("../../etc/passwd", []byte("x")) },
		"Delete":    func(tx *gitrepo.Tx) error { return tx.Delete("/etc") },
		"Restore":   func(tx *gitrepo.Tx) error { return tx.Restore("HEAD", "a/../..") },
		"Commits":   func(tx *gitrepo.Tx) error { _, err := tx.Commits("..", 1); return err },
		"FileAt":    func(tx *gitrepo.Tx) error { _, err := tx.FileAt("HEAD", ".git/config"); return err },
		"Files":     func(tx *gitrepo.Tx) error { _, err := tx.Files("../"); return err },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			_, _, err := repo.Update(t.Context(), "m", op)
			if !errors.Is(err, gitrepo.ErrBadPath) {
				t.Fatalf("err = %v; want ErrBadPath", err)
			}
		})
	}
	if srv.Pushes() != 0 {
		t.Errorf("%d pushes", srv.Pushes())
	}
}

func TestHistoryAndRevisions(t *testing.T) {
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("deploy", map[string]string{"apps/api/a.yaml": "v1\n", "apps/api/b.yaml": "b1\n", "other": "o1\n"})
	c1 := srv.Head("deploy")
	c2 := srv.Commit("deploy", "api v2", map[string]string{"apps/api/a.yaml": "v2\n"})
	srv.Commit("deploy", "other only", map[string]string{"other": "o2\n"})
	c4 := srv.Commit("deploy", "api v3, drop b", map[string]string{"apps/api/a.yaml": "v3\n", "apps/api/b.yaml": gittest.Deleted, "apps/api/c.yaml": "c\n"})
	store, _ := newStore(t)
	repo := open(t, store, gitrepo.Remote{URL: url})

	cs, err := repo.Commits(t.Context(), "apps/api", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := hashes(cs); !slices.Equal(got, []string{c4, c2, c1}) {
		t.Errorf("Commits(apps/api) = %v, want %v", got, []string{c4, c2, c1})
	}
	if cs[0].Subject() != "api v3, drop b" || cs[0].Author != "Other Engineer <other@example.com>" || cs[0].Parents[0] == "" {
		t.Errorf("newest = %+v", cs[0])
	}
	cs, err = repo.Commits(t.Context(), "apps/api/a.yaml", 1)
	if err != nil || len(cs) != 1 || cs[0].Hash != c4 {
		t.Errorf("Commits(a.yaml, 1) = %v, %v", cs, err)
	}
	cs, err = repo.Commits(t.Context(), "missing", 0)
	if err != nil || len(cs) != 0 {
		t.Errorf("Commits(missing) = %v, %v", cs, err)
	}

	data, err := repo.FileAt(t.Context(), c2, "apps/api/a.yaml")
	if err != nil || string(data) != "v2\n" {
		t.Errorf("FileAt(c2) = %q, %v", data, err)
	}
	data, err = repo.FileAt(t.Context(), c2[:10], "apps/api/b.yaml")
	if err != nil || string(data) != "b1\n" {
		t.Errorf("FileAt(abbreviated) = %q, %v", data, err)
	}
	if _, err := repo.FileAt(t.Context(), c1, "apps/api/c.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FileAt(missing file) err = %v", err)
	}
	if _, err := repo.FileAt(t.Context(), strings.Repeat("ab", 20), "other"); !errors.Is(err, gitrepo.ErrUnknownRevision) {
		t.Errorf("FileAt(unknown rev) err = %v", err)
	}
	if _, err := repo.ReadFile(t.Context(), "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(missing) err = %v", err)
	}

	err = repo.View(t.Context(), func(tx *gitrepo.Tx) error {
		changed, err := tx.Changed(c2, c4, "apps/api")
		if err != nil {
			return err
		}
		if want := []string{"apps/api/a.yaml", "apps/api/b.yaml", "apps/api/c.yaml"}; !slices.Equal(changed, want) {
			t.Errorf("Changed = %v, want %v", changed, want)
		}
		files, err := tx.Files("apps")
		if err != nil {
			return err
		}
		if want := []string{"apps/api/a.yaml", "apps/api/c.yaml"}; !slices.Equal(files, want) {
			t.Errorf("Files = %v, want %v", files, want)
		}
		if rev, err := tx.Resolve("HEAD~3"); err != nil || rev != c1 {
			t.Errorf("Resolve(HEAD~3) = %s, %v", rev, err)
		}
		if err := tx.WriteFile("x", nil); err == nil {
			t.Error("a View transaction accepted a write")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Restore a directory to an old revision: files come back, later ones go.
	diff, err := repo.Preview(t.Context(), func(tx *gitrepo.Tx) error { return tx.Restore(c1, "apps/api") })
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--- a/apps/api/a.yaml", "-v3", "+v1", "+++ b/apps/api/b.yaml", "+b1", "--- a/apps/api/c.yaml", "+++ /dev/null"} {
		if !strings.Contains(diff, want+"\n") {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}
	if srv.Pushes() != 0 {
		t.Error("Preview pushed")
	}
	commit, changed, err := repo.Update(t.Context(), "restore", func(tx *gitrepo.Tx) error { return tx.Restore(c1, "apps/api") })
	if err != nil || !changed {
		t.Fatalf("Update = %v, %v", changed, err)
	}
	clone := srv.Clone("deploy")
	if out := clone.Git("diff", "--stat", c1, commit, "--", "apps/api"); out != "" {
		t.Errorf("apps/api differs from %s after restore:\n%s", c1, out)
	}
	if clone.File("other") != "o2\n" {
		t.Error("restore touched a file outside its path")
	}
}

func TestContextCancelled(t *testing.T) {
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("deploy", map[string]string{"a": "1"})
	store, _ := newStore(t)
	repo := open(t, store, gitrepo.Remote{URL: url})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := repo.Head(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", err)
	}
}

func hashes(cs []gitrepo.Commit) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Hash
	}
	return out
}

// TestSharedCacheDir: two processes (two Stores) with one cache directory,
// as two `firebreak run` on one machine have. go-git's storage assumes it
// is alone, so the second works in a private clone: every update lands,
// and the private clone is gone after Close.
func TestSharedCacheDir(t *testing.T) {
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("deploy", map[string]string{"seed": "0"})
	dir := t.TempDir()
	stores := []*gitrepo.Store{gitrepo.NewStore(dir, nil), gitrepo.NewStore(dir, nil)}
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		repo := open(t, stores[i%2], gitrepo.Remote{URL: url})
		wg.Go(func() {
			_, _, errs[i] = repo.Update(t.Context(), fmt.Sprintf("writer %d", i), func(tx *gitrepo.Tx) error {
				return tx.WriteFile(fmt.Sprintf("w%d", i), []byte("x"))
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Clone("deploy").Subjects()); got != 11 {
		t.Errorf("%d commits, want 11", got)
	}
	private, _ := filepath.Glob(filepath.Join(dir, "*-private-*"))
	if len(private) != 1 {
		t.Errorf("private clones %v, want one", private)
	}
	for _, s := range stores {
		s.Close()
	}
	if private, _ := filepath.Glob(filepath.Join(dir, "*-private-*")); len(private) != 0 {
		t.Errorf("private clones left after Close: %v", private)
	}
}

// TestBrokenCacheRecovers: what a killed process can leave in the cache —
// a ref file truncated to nothing (go-git writes refs in place), a clone
// initialized without its remote — is dropped and cloned again, not a
// failure forever.
func TestBrokenCacheRecovers(t *testing.T) {
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("deploy", map[string]string{"a": "1"})
	dir := t.TempDir()
	update := func(i int) error {
		s := gitrepo.NewStore(dir, nil)
		defer s.Close()
		_, _, err := open(t, s, gitrepo.Remote{URL: url}).Update(t.Context(), fmt.Sprint("w", i), func(tx *gitrepo.Tx) error {
			return tx.WriteFile(fmt.Sprint("w", i), []byte("x"))
		})
		return err
	}
	if err := update(1); err != nil {
		t.Fatal(err)
	}
	refs, _ := filepath.Glob(filepath.Join(dir, "*", "refs", "remotes", "origin", "main"))
	if len(refs) != 1 {
		t.Fatalf("cached refs %v", refs)
	}
	if err := os.WriteFile(refs[0], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := update(2); err != nil {
		t.Fatalf("after an empty ref file: %v", err)
	}

	clone := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(refs[0]))))
	if err := os.RemoveAll(clone); err != nil {
		t.Fatal(err)
	}
	if _, err := git.PlainInit(clone, true); err != nil {
		t.Fatal(err)
	}
	if err := update(3); err != nil {
		t.Fatalf("after a clone without its remote: %v", err)
	}
	if got := len(srv.Clone("deploy").Subjects()); got != 4 {
		t.Errorf("%d commits, want 4", got)
	}
}
