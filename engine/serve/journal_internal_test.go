package serve

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/schema"
)

// TestJournalAppendsAtOnce: appends from many goroutines at once each get
// their own entry, durable (a directory sync begun after its rename) and
// readable; they share directory syncs rather than queue for one each.
func TestJournalAppendsAtOnce(t *testing.T) {
	j, err := OpenJournal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a := schema.Alert{Source: "generic", Status: "firing", Fingerprint: "fp", Labels: map[string]string{"alertname": "A"}}
			id, err := j.Append(&Entry{Source: "generic", Received: time.Now(), Alerts: []schema.Alert{a}})
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	pending, err := j.Pending()
	if err != nil || len(pending) != n {
		t.Fatalf("%d entries pending (%v), want %d", len(pending), err, n)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("id %s given twice", id)
		}
		seen[id] = true
		if e, err := j.Read(id); err != nil || len(e.Alerts) != 1 {
			t.Fatalf("entry %s: %+v, %v", id, e, err)
		}
	}
	if j.syncing || j.done != j.begun || j.begun == 0 || j.begun > n {
		t.Errorf("directory syncs: %d begun, %d done, running %v; want all done, between 1 and %d", j.begun, j.done, j.syncing, n)
	}
	t.Logf("%d appends, %d directory syncs", n, j.begun)
}

// TestJournalDirSyncFails: when the directory cannot be synced, the
// appends that waited for that sync fail: their 2xx is not sent.
func TestJournalDirSyncFails(t *testing.T) {
	j, err := OpenJournal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("disk gone")
	j.syncFn = func(string) error { return broken }
	if _, err := j.Append(&Entry{Source: "generic", Received: time.Now()}); !errors.Is(err, broken) {
		t.Fatalf("append over a failing directory sync: %v, want %v", err, broken)
	}
	j.syncFn = syncDir
	if _, err := j.Append(&Entry{Source: "generic", Received: time.Now()}); err != nil {
		t.Fatalf("append once the sync works again: %v", err)
	}
}
