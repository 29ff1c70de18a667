package serve

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/schema"
)

func testEntry(name string) *Entry {
	a := schema.Alert{Source: "generic", Status: "firing", Fingerprint: "fp-" + name, Labels: map[string]string{"alertname": name}}
	return &Entry{Source: "generic", Received: time.Now(), Alerts: []schema.Alert{a}}
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestJournalAppendsAtOnce: appends from many goroutines at once each get
// their own entry, durable and readable; they share syncs rather than
// queue for one each.
func TestJournalAppendsAtOnce(t *testing.T) {
	j, err := OpenJournal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var syncs sync.Map // file name → syncs
	j.syncFile = func(f *os.File) error {
		n, _ := syncs.LoadOrStore(f.Name(), new(int))
		*n.(*int)++ // the leader alone syncs
		return fdatasync(f)
	}
	const n = 64
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id, err := j.Append(testEntry(fmt.Sprint("A", i)))
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
	for i, id := range ids {
		if seen[id] {
			t.Fatalf("id %s given twice", id)
		}
		seen[id] = true
		e, err := j.Read(id)
		if err != nil || len(e.Alerts) != 1 || e.Alerts[0].Labels["alertname"] != fmt.Sprint("A", i) {
			t.Fatalf("entry %s: %+v, %v", id, e, err)
		}
	}
	if j.syncing || j.next != nil || j.rounds == 0 || j.rounds > n {
		t.Errorf("syncs: %d rounds, running %v, next %v; want all done, between 1 and %d", j.rounds, j.syncing, j.next, n)
	}
	if segs := segments(t, j.dir); len(segs) != 1 {
		t.Errorf("segments %v, want one", segs)
	}
	t.Logf("%d appends, %d syncs", n, j.rounds)
}

// TestJournalSyncFails: when a sync fails, the appends that waited for it
// fail (their 2xx is not sent) and are not pending; the next appends go
// to a new segment and succeed once syncing works again.
func TestJournalSyncFails(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := j.Append(testEntry("kept"))
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("disk gone")
	j.syncFile = func(*os.File) error { return broken }
	if _, err := j.Append(testEntry("lost")); !errors.Is(err, broken) {
		t.Fatalf("append over a failing sync: %v, want %v", err, broken)
	}
	j.syncFile = fdatasync
	after, err := j.Append(testEntry("after"))
	if err != nil {
		t.Fatalf("append once the sync works again: %v", err)
	}
	if ids, err := j.Pending(); err != nil || !slices.Equal(ids, []string{kept, after}) {
		t.Errorf("pending %v (%v), want %v", ids, err, []string{kept, after})
	}
	if segs := segments(t, dir); len(segs) != 2 {
		t.Errorf("segments %v, want the failed one and a new one", segs)
	}

	// The directory's sync fails: the append in the new segment fails.
	j.syncDir = func(string) error { return broken }
	j.mu.Lock()
	j.active.full = true
	j.mu.Unlock()
	if _, err := j.Append(testEntry("no-dir")); !errors.Is(err, broken) {
		t.Fatalf("append into a segment whose directory entry did not sync: %v", err)
	}
}

// TestJournalRestart: what a process left pending is pending for the
// next, read back as it was; done entries are not, even those marked
// done in a later segment than theirs; segments are removed oldest first
// once nothing in them is pending, and a clean close leaves nothing.
func TestJournalRestart(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	j.segMax = 1 << 10 // a few entries per segment
	var ids []string
	for i := range 40 {
		id, err := j.Append(testEntry(fmt.Sprint("R", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if len(segments(t, dir)) < 5 {
		t.Fatalf("segments %v, want several", segments(t, dir))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	doneSet := map[string]bool{}
	for _, i := range rng.Perm(len(ids))[:25] {
		if err := j.Done(ids[i]); err != nil {
			t.Fatal(err)
		}
		doneSet[ids[i]] = true
	}
	if err := j.Done(ids[0]); err != nil { // twice is fine
		t.Fatal(err)
	}
	want := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return doneSet[id] || id == ids[0] })
	// A crash: the next process opens the directory as it is.
	j2, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := j2.Pending()
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("after a restart pending %v (%v),\nwant %v", got, err, want)
	}
	for _, id := range got {
		if e, err := j2.Read(id); err != nil || len(e.Alerts) != 1 {
			t.Fatalf("entry %s after a restart: %+v, %v", id, e, err)
		}
	}
	for _, id := range got {
		if err := j2.Done(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := j2.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("after every entry is done and a clean close, the journal holds %d files", len(left))
	}
}

// TestJournalTornTail: a crash during an append leaves a torn last record
// or zeros; the entries before it are pending and nothing is reported.
// Damage elsewhere is reported, with a copy kept, and the entries before
// it are still handled.
func TestJournalTornTail(t *testing.T) {
	for name, tail := range map[string]func(rec []byte) []byte{
		"cut short": func(rec []byte) []byte { return rec[:len(rec)/2] },
		"zeros":     func(rec []byte) []byte { return make([]byte, len(rec)) },
		"bad sum":   func(rec []byte) []byte { r := slices.Clone(rec); r[len(r)-1] ^= 1; return r },
		"header":    func(rec []byte) []byte { return rec[:5] },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			j, _ := OpenJournal(dir)
			id, err := j.Append(testEntry("whole"))
			if err != nil {
				t.Fatal(err)
			}
			seg := segments(t, dir)[0]
			f, _ := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
			f.Write(tail(appendRecord(nil, kindEntry, []byte(`{"source":"generic"}`+"\n[]"))))
			f.Close()
			j2, err := OpenJournal(dir)
			if err != nil {
				t.Fatal(err)
			}
			if ids, err := j2.Pending(); err != nil || !slices.Equal(ids, []string{id}) {
				t.Errorf("pending %v, %v; want %s and no error", ids, err, id)
			}
		})
	}

	dir := t.TempDir()
	j, _ := OpenJournal(dir)
	first, _ := j.Append(testEntry("first"))
	j.Append(testEntry("second"))
	third, _ := j.Append(testEntry("third"))
	seg := segments(t, dir)[0]
	data, _ := os.ReadFile(seg)
	_, off, _, _ := parseID(third)
	data[off-3] ^= 0xff // in the second entry
	os.WriteFile(seg, data, 0o600)
	j2, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := j2.Pending()
	if err == nil || !slices.Equal(ids, []string{first}) {
		t.Errorf("pending %v, %v; want %s and the damage reported", ids, err, first)
	}
	if _, serr := os.Stat(seg + ".damaged"); serr != nil {
		t.Errorf("no copy of the damaged segment: %v (error %v)", serr, err)
	}
	t.Log(err)
}

// TestJournalRefusesHugeEntry: an entry bigger than a record holds is
// refused (its sender gets a 5xx) rather than written as one the next
// start would read as torn; the journal goes on.
func TestJournalRefusesHugeEntry(t *testing.T) {
	defer func(n int) { recordMax = n }(recordMax)
	recordMax = 1 << 10
	j, err := OpenJournal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	huge := &Entry{Source: "generic", Received: time.Now(), Body: make([]byte, 2<<10)}
	if _, err := j.Append(huge); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("a 2 KB entry with records of 1 KB: %v", err)
	}
	id, err := j.Append(testEntry("small"))
	if err != nil {
		t.Fatal(err)
	}
	j2, err := OpenJournal(j.dir)
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := j2.Pending(); err != nil || !slices.Equal(ids, []string{id}) {
		t.Errorf("pending after a restart %v (%v), want only %s", ids, err, id)
	}
}

// waitSpare waits for the journal's spare segment to be ready.
func waitSpare(t *testing.T, j *Journal) {
	t.Helper()
	for range 1000 {
		j.mu.Lock()
		ready := j.spare != nil
		j.mu.Unlock()
		if ready {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no spare segment after 5 s")
}

// TestJournalPreallocated: with Preallocate, segments are zero-filled
// files prepared ahead, entries are written over the zeros and read
// back, each rotation takes the spare and a new one is prepared; after a
// crash the zeros past the last record are no damage, a record torn in
// the middle of a preallocated segment is a torn tail, and a clean close
// leaves nothing.
func TestJournalPreallocated(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	j.segMax = 4 << 10
	j.Preallocate()
	t.Cleanup(j.prep.Wait) // the crash below leaves it preparing a spare
	waitSpare(t, j)
	var ids []string
	for i := range 40 { // about 200 bytes each: two segments and a bit
		id, err := j.Append(testEntry(fmt.Sprint("P", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		if i == 0 {
			fi, err := os.Stat(segments(t, dir)[0])
			if err != nil || fi.Size() != j.segMax {
				t.Fatalf("the first segment: %v, %v; want a preallocated %d bytes", fi, err, j.segMax)
			}
		}
		if i%10 == 9 {
			waitSpare(t, j) // each rotation has one ready, as a server's would
		}
	}
	segs := segments(t, dir)
	if len(segs) < 2 {
		t.Fatalf("%d segments, want a rotation", len(segs))
	}
	for _, s := range segs {
		if fi, _ := os.Stat(s); fi.Size() < j.segMax {
			t.Errorf("segment %s is %d bytes: not preallocated", filepath.Base(s), fi.Size())
		}
	}
	for i, id := range ids {
		e, err := j.Read(id)
		if err != nil || e.Alerts[0].Labels["alertname"] != fmt.Sprint("P", i) {
			t.Fatalf("Read %s = %+v, %v", id, e, err)
		}
	}
	for _, id := range ids[:25] {
		if err := j.Done(id); err != nil {
			t.Fatal(err)
		}
	}
	j.durable()

	// A crash: another process opens the journal as it is.
	j2, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := j2.Pending(); err != nil || !slices.Equal(got, ids[25:]) {
		t.Fatalf("after a crash: pending %v, %v; want %v and no damage", got, err, ids[25:])
	}
	if _, err := os.Stat(filepath.Join(dir, spareName)); err == nil {
		t.Errorf("the crashed process's spare is still there after a start")
	}

	// A clean close, with the spare prepared, leaves nothing once all
	// is done.
	j2.Preallocate()
	waitSpare(t, j2)
	for _, id := range ids[25:] {
		j2.Done(id)
	}
	if err := j2.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("after a clean close with nothing pending: %d files", len(left))
	}

	// The last record torn in its middle, zeros after it, as a crash
	// mid-append leaves a preallocated segment: a torn tail, no damage.
	dir = t.TempDir()
	j, _ = OpenJournal(dir)
	j.Preallocate()
	t.Cleanup(j.prep.Wait)
	waitSpare(t, j)
	first, _ := j.Append(testEntry("first"))
	second, _ := j.Append(testEntry("second"))
	seq, off, _, _ := parseID(second)
	data, _ := os.ReadFile(j.segmentPath(seq))
	for i := off + recordHeader + 4; i < off+recordHeader+12; i++ {
		data[i] = 0
	}
	os.WriteFile(j.segmentPath(seq), data, 0o600)
	j3, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := j3.Pending(); err != nil || !slices.Equal(got, []string{first}) {
		t.Fatalf("after a torn last record: pending %v, %v; want %s and no damage", got, err, first)
	}
}
