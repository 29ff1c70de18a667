package respond

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/ledger"
)

// TestRecorderFailedChangeLeavesNoTrace: a change that fails after it
// changed records, the index and the outbox leaves the log as it was; the
// log's records are never changed in place by a change.
func TestRecorderFailedChangeLeavesNoTrace(t *testing.T) {
	r := newRecorder(t)
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	in := &incident.Incident{ID: "2026-11-21-p-0123abcd", Title: "t", Status: incident.Open, Playbook: "p", GroupKey: "k"}
	in.Timestamps.Opened, in.Timestamps.Detected = at, at
	p, _ := pathOf("incidents", in.ID)
	put := func(t2 *tx) error {
		idx, err := t2.index()
		if err != nil {
			return err
		}
		idx.Open["k"] = openEntry{ID: in.ID, Path: p}
		t2.touchIndex()
		t2.put(p, in.Clone())
		return t2.owe(in.ID, keyIssue)
	}
	boom := errors.New("boom")
	if seq, err := r.apply(func(t2 *tx) error { put(t2); return boom }, nil); seq != 0 || !errors.Is(err, boom) {
		t.Fatalf("failed change: seq %d, %v", seq, err)
	}
	// It took the shared index: the log was rebuilt without it.
	idx, err := r.cur.index()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.cur.dirty) != 0 || len(r.cur.oweDirty) != 0 || len(r.cur.records) != 0 || len(idx.Open) != 0 || len(r.cur.owed[in.ID]) != 0 {
		t.Fatalf("a failed change left a trace: records %v index %v owed %v", r.cur.records, idx.Open, r.cur.owed)
	}
	seq, err := r.apply(put, put)
	if seq != 1 || err != nil {
		t.Fatalf("change: seq %d, %v", seq, err)
	}
	held := r.cur.records[p]
	if _, err := r.apply(func(t2 *tx) error {
		got, _, err := t2.byID(in.ID)
		if err != nil {
			return err
		}
		got.Status = incident.Mitigated
		t2.put(p, got)
		return boom
	}, nil); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if r.cur.records[p] != held || held.Status != incident.Open {
		t.Fatalf("the log's record was changed in place: %s", held.Status)
	}
	// A failure after taking the index rebuilds the log from the changes
	// applied: the one that succeeded is still there.
	if _, err := r.apply(func(t2 *tx) error {
		idx, _ := t2.index()
		delete(idx.Open, "k")
		return boom
	}, nil); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if idx, err := r.cur.index(); err != nil || idx.Open["k"].ID != in.ID || r.cur.records[p] == nil || !r.cur.dirty[p] {
		t.Fatalf("after the rebuild: index %v (%v), record %v", idx, err, r.cur.records[p])
	}
	if r.Applied() != 1 || r.done != 0 {
		t.Fatalf("applied %d, committed %d", r.Applied(), r.done)
	}
}

// TestRecorderAppliesEveryChangeOnceInOrder: changes applied from many
// goroutines at once are each applied exactly once; those one goroutine
// submits together are applied in the order submitted; a failed one
// fails only its caller.
func TestRecorderAppliesEveryChangeOnceInOrder(t *testing.T) {
	r := newRecorder(t)
	const writers, each = 16, 25
	var applied []string // written under r.mu only, by the changes
	boom := errors.New("boom")
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			reqs := make([]*applyReq, each)
			for i := range each {
				name := fmt.Sprintf("%02d-%02d", w, i)
				reqs[i] = r.submit(func(t2 *tx) error {
					applied = append(applied, name)
					if i == 7 {
						return boom
					}
					return t2.owe("2026-11-21-p-"+name, keyIssue)
				}, nil)
			}
			for i, req := range reqs {
				seq, err := r.await(req)
				if i == 7 {
					if !errors.Is(err, boom) || seq != 0 {
						t.Errorf("%02d-%02d: seq %d, %v; want the change's own error", w, i, seq, err)
					}
					continue
				}
				if err != nil || seq == 0 {
					t.Errorf("%02d-%02d: seq %d, %v", w, i, seq, err)
				}
			}
		})
	}
	wg.Wait()
	if len(applied) != writers*each {
		t.Fatalf("%d changes applied, want %d", len(applied), writers*each)
	}
	last := map[string]string{}
	for _, name := range applied {
		w := name[:2]
		if prev, ok := last[w]; ok && prev >= name {
			t.Fatalf("%s applied after %s: out of the order submitted", name, prev)
		}
		last[w] = name
	}
	if got := r.Applied(); got != writers*(each-1) {
		t.Errorf("log at change %d, want %d", got, writers*(each-1))
	}
}

// newRecorder opens a Recorder on a fresh local repository with one
// empty commit on main.
func newRecorder(t *testing.T) *Recorder {
	t.Helper()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "empty"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	l, err := ledger.OpenLocal(dir, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r, err := NewRecorder(t.Context(), l, "incidents", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
