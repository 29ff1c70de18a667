package ledger

import (
	"errors"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
)

func openRemoteT(t *testing.T, url, token string) *Ledger {
	t.Helper()
	store := gitrepo.NewStore(t.TempDir(), nil)
	t.Cleanup(func() { store.Close() })
	l, err := OpenRemote(store, gitrepo.Remote{URL: url, Branch: "main", Token: token}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRemoteWrite(t *testing.T) {
	ctx := t.Context()
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("playbooks", seed)
	l := openRemoteT(t, url, "")

	const path = "incidents/2025/03/INC-0001.md"
	commit, changed, err := l.Write(ctx, "incident INC-0001: opened", map[string][]byte{path: []byte("id: INC-0001\n")})
	if err != nil || !changed {
		t.Fatalf("Write = %v, %v", changed, err)
	}
	if head := srv.Head("playbooks"); head != commit {
		t.Errorf("remote main at %s, Write returned %s", head, commit)
	}
	again, changed, err := l.Write(ctx, "incident INC-0001: opened", map[string][]byte{path: []byte("id: INC-0001\n")})
	if err != nil || changed || again != commit {
		t.Errorf("idempotent Write = %s, %v, %v", again, changed, err)
	}
	pushes := srv.Pushes()
	if _, _, err := l.Write(ctx, "incident INC-0001: resolved", map[string][]byte{
		path:                     []byte("id: INC-0001\nstatus: resolved\n"),
		"incidents/2024/01/a.md": nil,
	}); err != nil {
		t.Fatal(err)
	}
	if srv.Pushes() != pushes+1 {
		t.Errorf("pushes: %d, want one more than %d", srv.Pushes(), pushes)
	}

	clone := srv.Clone("playbooks")
	if got := clone.Subjects(); !slices.Equal(got, []string{"incident INC-0001: resolved", "incident INC-0001: opened", "initial commit"}) {
		t.Errorf("history: %q", got)
	}
	if got := clone.File(path); got != "id: INC-0001\nstatus: resolved\n" {
		t.Errorf("file: %q", got)
	}
	if clone.Exists("incidents/2024/01/a.md") {
		t.Error("removed file still there")
	}
	if got := clone.Git("log", "-1", "--format=%an <%ae>"); got != "firebreak <firebreak@localhost>" {
		t.Errorf("author: %q", got)
	}

	if data, err := l.Read(ctx, path); err != nil || string(data) != "id: INC-0001\nstatus: resolved\n" {
		t.Errorf("Read = %q, %v", data, err)
	}
	if _, err := l.Read(ctx, "incidents/none.md"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of a missing file: %v", err)
	}
	if files, err := l.List(ctx, "incidents"); err != nil || !slices.Equal(files, []string{"incidents/2024/02/b.md", path}) {
		t.Errorf("List = %q, %v", files, err)
	}
	if _, _, err := l.Write(ctx, "bad", map[string][]byte{"../x": []byte("x")}); !errors.Is(err, gitrepo.ErrBadPath) {
		t.Errorf("bad path: %v", err)
	}
}

// TestRemoteLostPush has someone else push between the ledger's fetch and
// its push: the write is applied again on the new head.
func TestRemoteLostPush(t *testing.T) {
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("playbooks", seed)
	l := openRemoteT(t, url, "")
	srv.BeforeNextPush(func() {
		srv.Commit("playbooks", "by hand", map[string]string{"incidents/2024/01/a.md": "by hand\n"})
	})
	if _, _, err := l.Write(t.Context(), "mine", map[string][]byte{"incidents/2025/01/mine.md": []byte("mine\n")}); err != nil {
		t.Fatal(err)
	}
	clone := srv.Clone("playbooks")
	if got := clone.Subjects(); !slices.Equal(got, []string{"mine", "by hand", "initial commit"}) {
		t.Errorf("history: %q", got)
	}
	if got := clone.File("incidents/2024/01/a.md"); got != "by hand\n" {
		t.Errorf("the other push was clobbered: %q", got)
	}
}

func TestRemoteWriteBranch(t *testing.T) {
	ctx := t.Context()
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("playbooks", seed)
	l := openRemoteT(t, url, "")
	main := srv.Head("playbooks")

	const pm = "postmortems/INC-0001.md"
	c1, changed, err := l.WriteBranch(ctx, "postmortem/INC-0001", "", "postmortem INC-0001: draft", map[string][]byte{pm: []byte("# INC-0001\n")})
	if err != nil || !changed {
		t.Fatalf("WriteBranch = %v, %v", changed, err)
	}
	c2, changed, err := l.WriteBranch(ctx, "postmortem/INC-0001", "", "postmortem INC-0001: timeline", map[string][]byte{pm: []byte("# INC-0001\n\n## Timeline\n")})
	if err != nil || !changed {
		t.Fatalf("second WriteBranch = %v, %v", changed, err)
	}
	if c3, changed, err := l.WriteBranch(ctx, "postmortem/INC-0001", "", "again", map[string][]byte{pm: []byte("# INC-0001\n\n## Timeline\n")}); err != nil || changed || c3 != c2 {
		t.Errorf("idempotent WriteBranch = %s, %v, %v", c3, changed, err)
	}

	clone := srv.Clone("playbooks")
	if got := clone.Git("rev-parse", "origin/postmortem/INC-0001", "origin/postmortem/INC-0001~1", "origin/postmortem/INC-0001~2"); got != c2+"\n"+c1+"\n"+main {
		t.Errorf("branch history:\n%s\nwant %s, %s, %s", got, c2, c1, main)
	}
	if got := clone.Show("origin/postmortem/INC-0001", pm); got != "# INC-0001\n\n## Timeline" {
		t.Errorf("postmortem: %q", got)
	}
	if srv.Head("playbooks") != main {
		t.Error("main moved")
	}

	// From a commit hash.
	if _, _, err := l.WriteBranch(ctx, "postmortem/INC-0002", main, "pm 2", map[string][]byte{"postmortems/INC-0002.md": []byte("2\n")}); err != nil {
		t.Fatal(err)
	}
	if got := srv.Run(srv.BareDir("playbooks"), "rev-parse", "postmortem/INC-0002~1"); got != main {
		t.Errorf("INC-0002 branch starts at %s", got)
	}
}

// TestRemoteTokenNeverInErrors writes with a wrong token: the errors say
// so without the token.
func TestRemoteTokenNeverInErrors(t *testing.T) {
	const right, wrong = "right-token-123", "wr0ng-s3cret-t0ken"
	srv := gittest.NewServer(t, gittest.WithToken(right))
	url := srv.CreateRepo("playbooks", seed)
	l := openRemoteT(t, url, wrong)
	_, _, err := l.Write(t.Context(), "m", map[string][]byte{"a.md": []byte("a")})
	if !errors.Is(err, gitrepo.ErrAuth) {
		t.Errorf("Write with a wrong token: %v", err)
	}
	_, _, err2 := l.WriteBranch(t.Context(), "pm/x", "", "m", map[string][]byte{"a.md": []byte("a")})
	if err2 == nil {
		t.Error("WriteBranch with a wrong token: no error")
	}
	t.Logf("errors: %v / %v", err, err2)
	for _, err := range []error{err, err2} {
		if err != nil && strings.Contains(err.Error(), wrong) {
			t.Errorf("error carries the token: %v", err)
		}
	}

	// With the right token, branch creation works through basic auth.
	ok := openRemoteT(t, url, right)
	if _, _, err := ok.WriteBranch(t.Context(), "pm/x", "", "m", map[string][]byte{"a.md": []byte("a")}); err != nil {
		t.Fatal(err)
	}
}

// TestRemoteTwoProcesses runs two firebreak processes, each with its own
// Store and cache, writing 100 incidents each to one remote at once.
func TestRemoteTwoProcesses(t *testing.T) {
	n := 100
	if testing.Short() {
		n = 20
	}
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("playbooks", seed)
	runHelpers(t, "remote", url, n)
	clone := srv.Clone("playbooks")
	if got := clone.Git("rev-list", "--count", "HEAD"); got != strconv.Itoa(2*n+1) {
		t.Errorf("commits: %s, want %d", got, 2*n+1)
	}
	checkIncidents(t, func(p string) (string, bool) {
		if !clone.Exists(p) {
			return "", false
		}
		return strings.TrimSpace(clone.File(p)), true
	}, n)
	if out := clone.Git("fsck", "--strict", "--no-dangling"); out != "" {
		t.Errorf("fsck: %s", out)
	}
	t.Logf("pushes reaching the server: %d for %d writes", srv.Pushes(), 2*n)
}
