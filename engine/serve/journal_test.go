package serve_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/engine/alert"
	"github.com/firebreak-dev/firebreak/engine/serve"
	"github.com/firebreak-dev/firebreak/schema"
)

// TestJournalEntries: an entry keeps the request's body and reads back as
// the alerts it decodes to, stamped with the receipt; entries of
// normalized alerts, and whole-JSON entries an earlier version left, read
// back too.
func TestJournalEntries(t *testing.T) {
	dir := t.TempDir()
	j, err := serve.OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	received := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	body, err := os.ReadFile("../../testdata/fixtures/alertmanager/firing-from-rule.json")
	if err != nil {
		t.Fatal(err)
	}
	in, err := alert.DecodeSource("alertmanager", "body", body)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]schema.Alert(nil), in.Alerts...)
	for i := range want {
		want[i].ReceivedAt = received
	}

	id, err := j.Append(&serve.Entry{Source: "alertmanager", Received: received, Alerts: in.Alerts, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	e, err := j.Read(id)
	if err != nil {
		t.Fatal(err)
	}
	if e.Source != "alertmanager" || !e.Received.Equal(received) || !reflect.DeepEqual(e.Alerts, want) {
		t.Errorf("body entry read back as %+v, want the alerts %+v", e, want)
	}

	id2, err := j.Append(&serve.Entry{Source: "generic", Received: received, Alerts: want})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := j.Read(id2); err != nil || !reflect.DeepEqual(e.Alerts, want) {
		t.Errorf("normalized entry read back as %+v, %v", e, err)
	}

	old := `{"source":"alertmanager","received":"2026-11-21T09:00:00Z","alerts":[{"source":"alertmanager","status":"firing","fingerprint":"fp-1","labels":{"alertname":"Old"},"annotations":{},"startsAt":"2026-11-21T08:59:00Z"}]}`
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001-000001.json"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err = j.Read("00000000000000000001-000001")
	if err != nil || len(e.Alerts) != 1 || e.Alerts[0].Labels["alertname"] != "Old" {
		t.Errorf("an earlier version's entry read back as %+v, %v", e, err)
	}

	ids, err := j.Pending()
	if err != nil || len(ids) != 3 || ids[0] != "00000000000000000001-000001" {
		t.Errorf("pending %v, %v; want 3, the oldest first", ids, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000002-000001.json"), []byte("{\"source\":\"alertmanager\"}\n{\"alerts\": 7}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Read("00000000000000000002-000001"); err == nil {
		t.Error("an entry whose body does not decode read back without an error")
	}
}
