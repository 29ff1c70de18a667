package serve

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzJournalOpen: whatever a segment file holds, opening the journal
// does not panic; what it lists pending reads back or fails with an
// error, and is done once.
func FuzzJournalOpen(f *testing.F) {
	whole := appendRecord(nil, kindEntry, []byte(`{"source":"generic","received":"2026-11-21T09:00:00Z","normalized":true}`+"\n"+
		`[{"source":"generic","status":"firing","fingerprint":"fp","labels":{"alertname":"A"}}]`))
	f.Add(whole)
	f.Add(append(slices.Clone(whole), appendRecord(nil, kindDone, []byte("00000000000000000001-000000000000"))...))
	f.Add(whole[:len(whole)-3])
	f.Add(append(slices.Clone(whole), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add(appendRecord(nil, kindEntry, []byte("{}\n{}")))
	f.Add(appendRecord(nil, 'X', []byte("x")))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.wal"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := OpenJournal(dir)
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := j.Pending()
		if !slices.IsSorted(ids) {
			t.Fatalf("pending not in order: %v", ids)
		}
		for _, id := range ids {
			if _, _, _, err := parseID(id); err != nil {
				t.Fatalf("pending id %q: %v", id, err)
			}
			j.Read(id)
			if err := j.Done(id); err != nil {
				t.Fatalf("done %s: %v", id, err)
			}
		}
		if left, _ := j.Pending(); len(left) != 0 {
			t.Fatalf("pending after every entry is done: %v", left)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
