package ledger

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
)

const counterPath = "state/counter"

// increment is a change that adds one to the counter file (0 when
// missing), counting its calls in calls.
func increment(calls *atomic.Int64) func(View) (string, map[string][]byte, error) {
	return func(v View) (string, map[string][]byte, error) {
		calls.Add(1)
		n := 0
		data, err := v.Read(counterPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return "", nil, err
		default:
			if n, err = strconv.Atoi(strings.TrimSpace(string(data))); err != nil {
				return "", nil, err
			}
		}
		return fmt.Sprintf("counter: %d", n+1), map[string][]byte{counterPath: []byte(strconv.Itoa(n+1) + "\n")}, nil
	}
}

// hammer runs goroutines per Ledger, each adding perGoroutine to the
// counter, and returns how many times change ran in all.
func hammer(t *testing.T, ledgers []*Ledger, goroutines, perGoroutine int) int64 {
	t.Helper()
	var calls atomic.Int64
	var wg sync.WaitGroup
	for li, l := range ledgers {
		for g := range goroutines {
			wg.Go(func() {
				for i := range perGoroutine {
					if _, changed, err := l.Update(t.Context(), increment(&calls)); err != nil || !changed {
						t.Errorf("L%d G%d #%d: changed=%v err=%v", li, g, i, changed, err)
					}
				}
			})
		}
	}
	wg.Wait()
	return calls.Load()
}

// TestLocalUpdateCounter increments one counter from three goroutines on
// each of two Ledgers on one worktree: no increment may be lost, and each
// is its own commit.
func TestLocalUpdateCounter(t *testing.T) {
	dir := newRepo(t, seed)
	ledgers := []*Ledger{openLocalT(t, dir, Options{}), openLocalT(t, dir, Options{})}
	const goroutines, per = 3, 5
	const total = 2 * goroutines * per
	calls := hammer(t, ledgers, goroutines, per)
	if got := git(t, dir, "show", "HEAD:"+counterPath); got != strconv.Itoa(total) {
		t.Errorf("counter = %s, want %d", got, total)
	}
	if got := git(t, dir, "rev-list", "--count", "HEAD"); got != strconv.Itoa(total+1) {
		t.Errorf("commits: %s, want %d", got, total+1)
	}
	races := ledgers[0].b.(*local).races + ledgers[1].b.(*local).races
	if calls != int64(total+races) {
		t.Errorf("change ran %d times for %d increments and %d lost races", calls, total, races)
	}
	t.Logf("change ran %d times; lost races, planned again: %d", calls, races)
	checkClean(t, dir)
}

// TestRemoteUpdateCounter is TestLocalUpdateCounter against a remote, with
// a Store (its own cache) per Ledger as two firebreak processes have.
func TestRemoteUpdateCounter(t *testing.T) {
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("playbooks", seed)
	ledgers := []*Ledger{openRemoteT(t, url, ""), openRemoteT(t, url, "")}
	const goroutines, per = 2, 3
	const total = 2 * goroutines * per
	calls := hammer(t, ledgers, goroutines, per)
	clone := srv.Clone("playbooks")
	if got := clone.File(counterPath); got != strconv.Itoa(total)+"\n" {
		t.Errorf("counter = %q, want %d", got, total)
	}
	if got := clone.Git("rev-list", "--count", "HEAD"); got != strconv.Itoa(total+1) {
		t.Errorf("commits: %s, want %d", got, total+1)
	}
	t.Logf("change ran %d times; pushes reaching the server: %d for %d increments", calls, srv.Pushes(), total)
}

// TestLocalUpdate covers what one Update does and does not commit.
func TestLocalUpdate(t *testing.T) {
	ctx := t.Context()
	dir := newRepo(t, seed)
	l := openLocalT(t, dir, Options{})
	start := git(t, dir, "rev-parse", "HEAD")

	t.Run("reads at the head it builds on", func(t *testing.T) {
		var head string
		var read []byte
		var listed []string
		commit, changed, err := l.Update(ctx, func(v View) (string, map[string][]byte, error) {
			head = v.Head()
			var err error
			if read, err = v.Read("incidents/2024/01/a.md"); err != nil {
				return "", nil, err
			}
			if listed, err = v.List("incidents"); err != nil {
				return "", nil, err
			}
			if _, err := v.Read("incidents/none.md"); !errors.Is(err, fs.ErrNotExist) {
				return "", nil, fmt.Errorf("read of a missing file: %v", err)
			}
			if _, err := v.Read("../x"); !errors.Is(err, gitrepo.ErrBadPath) {
				return "", nil, fmt.Errorf("read of a bad path: %v", err)
			}
			return "index", map[string][]byte{"incidents/index": []byte(strings.Join(listed, "\n") + "\n")}, nil
		})
		if err != nil || !changed {
			t.Fatalf("Update = %s, %v, %v", commit, changed, err)
		}
		if head != start || git(t, dir, "rev-parse", "HEAD~1") != start {
			t.Errorf("change saw head %s; the commit's parent is %s", head, git(t, dir, "rev-parse", "HEAD~1"))
		}
		if string(read) != "old incident a\n" || strings.Join(listed, " ") != "incidents/2024/01/a.md incidents/2024/02/b.md" {
			t.Errorf("change read %q and listed %q", read, listed)
		}
		if got := git(t, dir, "log", "-1", "--format=%s"); got != "index" {
			t.Errorf("message: %q", got)
		}
		checkClean(t, dir)
	})

	t.Run("an error commits nothing", func(t *testing.T) {
		head := git(t, dir, "rev-parse", "HEAD")
		errMine := errors.New("mine")
		_, changed, err := l.Update(ctx, func(View) (string, map[string][]byte, error) {
			return "m", map[string][]byte{"x.md": []byte("x")}, errMine
		})
		if err != errMine || changed {
			t.Errorf("Update = %v, %v; want the change's error as is", changed, err)
		}
		if got := git(t, dir, "rev-parse", "HEAD"); got != head {
			t.Error("a failed change committed")
		}
		checkClean(t, dir)
	})

	t.Run("nothing to change", func(t *testing.T) {
		head := git(t, dir, "rev-parse", "HEAD")
		for name, change := range map[string]func(View) (string, map[string][]byte, error){
			"no files": func(View) (string, map[string][]byte, error) { return "", nil, nil },
			"same bytes": func(v View) (string, map[string][]byte, error) {
				data, err := v.Read("firebreak.cue")
				return "same", map[string][]byte{"firebreak.cue": data, "incidents/gone.md": nil}, err
			},
		} {
			commit, changed, err := l.Update(ctx, change)
			if err != nil || changed || commit != head {
				t.Errorf("%s: Update = %s, %v, %v; want %s, false", name, commit, changed, err, head)
			}
		}
		if got := git(t, dir, "rev-parse", "HEAD"); got != head {
			t.Error("a change with nothing to change committed")
		}
	})

	t.Run("bad output", func(t *testing.T) {
		head := git(t, dir, "rev-parse", "HEAD")
		for name, change := range map[string]func(View) (string, map[string][]byte, error){
			"empty message": func(View) (string, map[string][]byte, error) {
				return " \n", map[string][]byte{"x.md": []byte("x")}, nil
			},
			"bad path": func(View) (string, map[string][]byte, error) { return "m", map[string][]byte{"../x": []byte("x")}, nil },
			"nil":      nil,
		} {
			if _, _, err := l.Update(ctx, change); err == nil {
				t.Errorf("%s: no error", name)
			}
		}
		if got := git(t, dir, "rev-parse", "HEAD"); got != head {
			t.Error("a refused change committed")
		}
	})

	t.Run("the view ends with its change", func(t *testing.T) {
		var kept View
		l.Update(ctx, func(v View) (string, map[string][]byte, error) { kept = v; return "", nil, nil })
		if _, err := kept.Read("firebreak.cue"); !errors.Is(err, errViewDone) {
			t.Errorf("Read after the change returned: %v", err)
		}
		if _, err := kept.List("incidents"); !errors.Is(err, errViewDone) {
			t.Errorf("List after the change returned: %v", err)
		}
	})
}

// TestLocalUpdateLostRace moves the branch, changing the counter, between
// the first run of change and the locking of the branch: change runs
// again on the new head and its result is computed from it.
func TestLocalUpdateLostRace(t *testing.T) {
	for _, tc := range []struct {
		name string
		race func(t *testing.T, dir string)
	}{
		{"git commit", func(t *testing.T, dir string) {
			writeWorktree(t, dir, counterPath, "41\n")
			git(t, dir, "add", counterPath)
			git(t, dir, "commit", "--quiet", "-m", "by hand")
		}},
		{"another ledger", func(t *testing.T, dir string) {
			other := openLocalT(t, dir, Options{})
			if _, _, err := other.Write(t.Context(), "other", map[string][]byte{counterPath: []byte("41\n")}); err != nil {
				t.Error(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newRepo(t, seed)
			l := openLocalT(t, dir, Options{})
			b := l.b.(*local)
			var once sync.Once
			b.beforeLock = func() { once.Do(func() { tc.race(t, dir) }) }
			var calls atomic.Int64
			var heads []string
			count := increment(&calls)
			commit, changed, err := l.Update(t.Context(), func(v View) (string, map[string][]byte, error) {
				heads = append(heads, v.Head())
				return count(v)
			})
			if err != nil || !changed {
				t.Fatalf("Update = %v, %v", changed, err)
			}
			if calls.Load() != 2 || b.races != 1 {
				t.Errorf("change ran %d times, %d lost races; want 2 and 1", calls.Load(), b.races)
			}
			if got := git(t, dir, "show", "HEAD:"+counterPath); got != "42" {
				t.Errorf("counter = %s, want 42", got)
			}
			if parent := git(t, dir, "rev-parse", commit+"~1"); len(heads) != 2 || heads[1] != parent || heads[0] != git(t, dir, "rev-parse", parent+"~1") {
				t.Errorf("change saw heads %q; the commit's parent is %s", heads, parent)
			}
			checkClean(t, dir)
		})
	}
}

func TestLocalUpdateBranch(t *testing.T) {
	ctx := t.Context()
	dir := newRepo(t, seed)
	l := openLocalT(t, dir, Options{})
	main := git(t, dir, "rev-parse", "main")
	var calls atomic.Int64
	var head string
	commit, changed, err := l.UpdateBranch(ctx, "counters", "main", func(v View) (string, map[string][]byte, error) {
		head = v.Head()
		return increment(&calls)(v)
	})
	if err != nil || !changed {
		t.Fatalf("UpdateBranch = %v, %v", changed, err)
	}
	if head != main || git(t, dir, "rev-parse", "counters~1") != main || git(t, dir, "rev-parse", "counters") != commit {
		t.Errorf("change saw %s; counters at %s, from %s", head, commit, main)
	}
	if _, _, err := l.UpdateBranch(ctx, "counters", "main", increment(&calls)); err != nil {
		t.Fatal(err)
	}
	if got := git(t, dir, "show", "counters:"+counterPath); got != "2" {
		t.Errorf("counter on the branch = %s", got)
	}
	if git(t, dir, "rev-parse", "main") != main {
		t.Error("main moved")
	}
	if _, _, err := l.UpdateBranch(ctx, "bad..name", "", increment(&calls)); err == nil {
		t.Error("bad branch name: no error")
	}
	checkClean(t, dir)
}

func TestRemoteUpdate(t *testing.T) {
	ctx := t.Context()
	srv := gittest.NewServer(t)
	url := srv.CreateRepo("playbooks", seed)
	l := openRemoteT(t, url, "")
	start := srv.Head("playbooks")

	// Someone else pushes between the ledger's fetch and its push: change
	// runs again on the fetched head.
	srv.BeforeNextPush(func() {
		srv.Commit("playbooks", "by hand", map[string]string{counterPath: "41\n"})
	})
	var calls atomic.Int64
	var heads []string
	count := increment(&calls)
	commit, changed, err := l.Update(ctx, func(v View) (string, map[string][]byte, error) {
		heads = append(heads, v.Head())
		if _, err := v.Read("incidents/none.md"); !errors.Is(err, fs.ErrNotExist) {
			return "", nil, fmt.Errorf("read of a missing file: %v", err)
		}
		return count(v)
	})
	if err != nil || !changed {
		t.Fatalf("Update = %v, %v", changed, err)
	}
	clone := srv.Clone("playbooks")
	if got := clone.File(counterPath); got != "42\n" {
		t.Errorf("counter = %q, want 42", got)
	}
	parent := clone.Git("rev-parse", commit+"~1")
	if calls.Load() != 2 || len(heads) != 2 || heads[0] != start || heads[1] != parent {
		t.Errorf("change ran %d times at %q; want twice, at %s then %s", calls.Load(), heads, start, parent)
	}
	if got := clone.Git("log", "-1", "--format=%s"); got != "counter: 42" {
		t.Errorf("message: %q", got)
	}

	// An error: returned as is, nothing pushed.
	pushes := srv.Pushes()
	errMine := errors.New("mine")
	if _, _, err := l.Update(ctx, func(View) (string, map[string][]byte, error) { return "m", nil, errMine }); err != errMine {
		t.Errorf("Update = %v, want the change's error as is", err)
	}
	// An error wrapping one the ledger retries on is still the change's.
	wrapped := fmt.Errorf("mine: %w", gitrepo.ErrRejected)
	calls.Store(0)
	if _, _, err := l.Update(ctx, func(View) (string, map[string][]byte, error) { calls.Add(1); return "", nil, wrapped }); err != wrapped || calls.Load() != 1 {
		t.Errorf("Update = %v after %d calls, want the change's error at once", err, calls.Load())
	}
	// Nothing to change: no push, the head returned.
	for _, files := range []map[string][]byte{nil, {counterPath: []byte("42\n")}} {
		if c, changed, err := l.Update(ctx, func(View) (string, map[string][]byte, error) { return "same", files, nil }); err != nil || changed || c != commit {
			t.Errorf("Update of %d files = %s, %v, %v; want %s, false", len(files), c, changed, err, commit)
		}
	}
	if srv.Pushes() != pushes || srv.Head("playbooks") != commit {
		t.Errorf("pushes %d (was %d), head %s (was %s)", srv.Pushes(), pushes, srv.Head("playbooks"), commit)
	}

	// A new branch: change reads its base.
	var head string
	if _, _, err := l.UpdateBranch(ctx, "counters", "", func(v View) (string, map[string][]byte, error) {
		head = v.Head()
		return count(v)
	}); err != nil {
		t.Fatal(err)
	}
	if head != commit {
		t.Errorf("on a new branch change saw %s, want main's %s", head, commit)
	}
	if got := srv.Run(srv.BareDir("playbooks"), "show", "counters:"+counterPath); got != "43" {
		t.Errorf("counter on the branch = %s", got)
	}
}
