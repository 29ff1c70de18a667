package respond_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/ledger"
	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/schema"
)

// withRecorder gives e a Recorder on its own ledger (lockWait for git's
// lock files) and run slots, as serve does, and returns the Recorder and
// a func starting its committer.
func withRecorder(t *testing.T, w *world, e *respond.Engine, lockWait time.Duration) (*respond.Recorder, func()) {
	t.Helper()
	l, err := ledger.OpenLocal(w.dir, ledger.Options{Now: w.clock.Now, LockWait: lockWait})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r, err := respond.NewRecorder(t.Context(), l, e.Repo.Config.Paths.Incidents, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Ledger, e.Recorder, e.RunSlots = l, r, respond.NewRunSlots(4)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r, func() { wg.Go(func() { r.Run(ctx) }) }
}

// unlimited lifts the world's runs_per_hour, which a storm would hit.
func unlimited(t *testing.T, w *world) {
	t.Helper()
	cfg := readFile(t, w.dir, "firebreak.cue")
	w.write("firebreak.cue", strings.Replace(cfg, "runs_per_hour: 3", "runs_per_hour: 1000", 1))
	w.gitCLI("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "no run limit")
}

func commits(w *world) int { return strings.Count(w.gitCLI("log", "--oneline"), "\n") }

// TestRecorderBatchesCommits: four batches of alerts handled at once by
// an engine with a Recorder open 40 incidents whose steps run before their
// records are committed; once Wait returns every record is in the
// repository, complete (opened, the step succeeded, mitigated), in far
// fewer commits than one per change, the worktree clean. The same alerts
// again (a redelivery) join, and nothing runs twice.
func TestRecorderBatchesCommits(t *testing.T) {
	w := newWorld(t, false)
	unlimited(t, w)
	e := w.engine()
	r, run := withRecorder(t, w, e, 0)
	run()
	before := commits(w)
	start := w.clock.Now().Add(-time.Minute)
	batch := func(k int) []schema.Alert {
		var alerts []schema.Alert
		for i := range 10 {
			svc := fmt.Sprintf("svc-%d-%d", k, i)
			alerts = append(alerts, alertOf("Chatty", svc, "firing", "fp-"+svc, start))
		}
		return alerts
	}
	var wg sync.WaitGroup
	for k := range 4 {
		wg.Go(func() {
			out, err := e.Handle(t.Context(), batch(k))
			if err != nil {
				t.Errorf("handle: %v", err)
			}
			for _, o := range out {
				if o.What != respond.Opened || o.Result == nil || o.Result.Status != "succeeded" {
					t.Errorf("outcome %+v", o)
				}
			}
		})
	}
	wg.Wait()
	if err := r.Wait(t.Context(), r.Applied()); err != nil {
		t.Fatal(err)
	}
	files := w.incidentFiles()
	if len(files) != 40 {
		t.Fatalf("%d incident files, want 40", len(files))
	}
	for _, f := range files {
		in := w.record(strings.TrimSuffix(filepath.Base(f), ".md"))
		if in.Status != incident.Mitigated || stepStatuses(in) != "notify=succeeded" {
			t.Errorf("%s: %s, steps %s", in.ID, in.Status, stepStatuses(in))
		}
	}
	// 40 incidents × (opened, step running, step succeeded, mitigated).
	if n := commits(w) - before; n < 1 || n >= 40 {
		t.Errorf("%d commits for 160 changes; want them batched", n)
	}
	if st := w.gitCLI("status", "--porcelain"); st != "" {
		t.Errorf("worktree not clean:\n%s", st)
	}
	if n := len(w.hooks.all()); n != 40 {
		t.Fatalf("%d deliveries, want 40", n)
	}

	for k := range 4 {
		for _, o := range handle(t, e, batch(k)...) {
			if o.What != respond.Joined {
				t.Errorf("redelivery: %+v", o)
			}
		}
	}
	if n := len(w.hooks.all()); n != 40 {
		t.Errorf("%d deliveries after the redelivery, want 40", n)
	}
}

// TestRecorderListsWhatIsNotCommitted: with a Recorder, List and Get show
// an incident as soon as it is applied, before any commit (its committer
// is not even running), and after the commit still once.
func TestRecorderListsWhatIsNotCommitted(t *testing.T) {
	w := newWorld(t, false)
	e := w.engine()
	r, run := withRecorder(t, w, e, 0)
	before := commits(w)
	o := one(t, handle(t, e, alertOf("Chatty", "api", "firing", "fp-api", w.clock.Now())), respond.Opened)
	if commits(w) != before {
		t.Fatalf("a commit without the committer running")
	}
	ids := func() []string {
		t.Helper()
		ins, errs, err := e.List(t.Context())
		if err != nil || len(errs) > 0 {
			t.Fatalf("List: %v %v", err, errs)
		}
		var out []string
		for _, in := range ins {
			out = append(out, in.ID+"="+string(in.Status))
		}
		return out
	}
	want := []string{o.Incident + "=" + string(incident.Mitigated)}
	if got := ids(); !slices.Equal(got, want) {
		t.Errorf("List before the commit: %v, want %v", got, want)
	}
	if in, err := e.Get(t.Context(), o.Incident); err != nil || in.Status != incident.Mitigated {
		t.Errorf("Get before the commit: %v, %v", in, err)
	}
	run()
	if err := r.Wait(t.Context(), r.Applied()); err != nil {
		t.Fatal(err)
	}
	if got := ids(); !slices.Equal(got, want) {
		t.Errorf("List after the commit: %v, want %v", got, want)
	}
}

// TestRecorderAnotherWriter: another engine commits an incident while the
// Recorder holds changes not committed; the Recorder applies them again
// on the new head, so both incidents and both entries of the shared index
// are kept, and a fresh engine finds both open.
func TestRecorderAnotherWriter(t *testing.T) {
	w := newWorld(t, false)
	e := w.engine()
	r, run := withRecorder(t, w, e, 0)
	start := w.clock.Now().Add(-time.Minute)
	one(t, handle(t, e, alertOf("Chatty", "a", "firing", "fp-a", start)), respond.Opened)
	if got := w.incidentFiles(); len(got) != 0 {
		t.Fatalf("committed before the committer ran: %v", got)
	}
	one(t, handle(t, w.engine(), alertOf("Chatty", "b", "firing", "fp-b", start)), respond.Opened)
	run()
	if err := r.Wait(t.Context(), r.Applied()); err != nil {
		t.Fatal(err)
	}
	if got := w.incidentFiles(); len(got) != 2 {
		t.Fatalf("incident files %v, want a's and b's", got)
	}
	out := handle(t, w.engine(), alertOf("Chatty", "a", "firing", "fp-a2", start), alertOf("Chatty", "b", "firing", "fp-b2", start))
	if len(out) != 2 || out[0].What != respond.Joined || out[1].What != respond.Joined {
		t.Fatalf("after both writers: %+v", out)
	}
	// Changes applied after the rebuild still commit.
	one(t, handle(t, e, alertOf("Chatty", "c", "firing", "fp-c", start)), respond.Opened)
	if err := r.Wait(t.Context(), r.Applied()); err != nil {
		t.Fatal(err)
	}
	if got := w.incidentFiles(); len(got) != 3 {
		t.Fatalf("incident files %v, want three", got)
	}
	if n := len(w.hooks.all()); n != 3 {
		t.Errorf("%d deliveries, want 3", n)
	}
}

// TestRecorderCommitFails: while git's lock on the branch is held by
// someone else, commits fail; Wait does not return, nothing applied is
// dropped, and once the lock is gone everything lands.
func TestRecorderCommitFails(t *testing.T) {
	w := newWorld(t, false)
	e := w.engine()
	r, run := withRecorder(t, w, e, 20*time.Millisecond)
	lock := filepath.Join(w.dir, ".git", "refs", "heads", "main.lock")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	run()
	start := w.clock.Now().Add(-time.Minute)
	one(t, handle(t, e, alertOf("Chatty", "a", "firing", "fp-a", start)), respond.Opened)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if err := r.Wait(ctx, r.Applied()); err == nil {
		t.Fatal("Wait returned while the branch was locked")
	}
	// Applied changes are visible before they are committed.
	in, err := e.Get(t.Context(), one(t, handle(t, e, alertOf("Chatty", "a", "firing", "fp-a", start)), respond.Joined).Incident)
	if err != nil || in.Status != incident.Mitigated {
		t.Fatalf("Get before the commit: %v %v", in, err)
	}
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(t.Context(), r.Applied()); err != nil {
		t.Fatal(err)
	}
	files := w.incidentFiles()
	if len(files) != 1 {
		t.Fatalf("incident files %v", files)
	}
	got := w.record(in.ID)
	if got.Status != incident.Mitigated || stepStatuses(got) != "notify=succeeded" {
		t.Errorf("record %s, steps %s", got.Status, stepStatuses(got))
	}
	if !slices.ContainsFunc(got.Timeline, func(ev incident.Event) bool { return ev.Kind == incident.EventMitigated }) {
		t.Errorf("timeline lacks the mitigation: %+v", got.Timeline)
	}
}

// TestRecorderSeesResolveByHand: an incident resolved from a terminal (a
// second engine committing straight to the branch) is seen resolved by an
// idle server's log, so the group's next alert opens a new incident
// instead of joining the old one.
func TestRecorderSeesResolveByHand(t *testing.T) {
	t.Cleanup(respond.SetRefreshEvery(20 * time.Millisecond)) // undone after the committer stops
	w := newWorld(t, false)
	e := w.engine()
	r, run := withRecorder(t, w, e, 0)
	run()
	start := w.clock.Now().Add(-time.Minute)
	id := one(t, handle(t, e, alertOf("Chatty", "a", "firing", "fp-a", start)), respond.Opened).Incident
	if err := r.Wait(t.Context(), r.Applied()); err != nil {
		t.Fatal(err)
	}
	if err := w.engine().Resolve(t.Context(), id, "alice"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, err := e.Get(t.Context(), id)
		if err == nil && in.Status == incident.Resolved {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's log still has %s as %v (%v)", id, in.Status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.clock.advance(time.Hour)
	o := one(t, handle(t, e, alertOf("Chatty", "a", "firing", "fp-a2", w.clock.Now())), respond.Opened)
	if o.Incident == id {
		t.Fatalf("the new alert went to the resolved incident %s", id)
	}
	if err := r.Wait(t.Context(), r.Applied()); err != nil {
		t.Fatal(err)
	}
	if got := w.incidentFiles(); len(got) != 2 {
		t.Errorf("incident files %v, want two", got)
	}
}

// TestRecorderFirstStepStartsWithOpen: with steps run in the background,
// the change that opens an incident records its first step running, and
// the run goes straight to the action: three changes per incident
// (opened with its step running, the step's end, mitigated), not four.
// The record keeps the step's real start, and the step runs once.
func TestRecorderFirstStepStartsWithOpen(t *testing.T) {
	w := newWorld(t, false)
	e := w.engine()
	r, run := withRecorder(t, w, e, 0)
	run()
	before := r.Applied()
	opened := w.clock.Now()
	out := handle(t, e, alertOf("Chatty", "svc-a", "firing", "fp-a", opened.Add(-time.Minute)))
	if len(out) != 1 || out[0].What != respond.Opened || out[0].Result == nil || out[0].Result.Status != "succeeded" {
		t.Fatalf("outcome %+v", out)
	}
	if n := r.Applied() - before; n != 3 {
		t.Errorf("%d changes for one incident and its one step, want 3", n)
	}
	if err := r.Wait(t.Context(), r.Applied()); err != nil {
		t.Fatal(err)
	}
	in := w.record(out[0].Incident)
	if stepStatuses(in) != "notify=succeeded" || in.Steps[0].Started.Before(in.Timestamps.Opened) || in.Steps[0].Finished.IsZero() {
		t.Errorf("record: steps %s, started %v, finished %v, opened %v", stepStatuses(in), in.Steps[0].Started, in.Steps[0].Finished, in.Timestamps.Opened)
	}
	if n := len(w.hooks.all()); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}
