package incident

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzUnmarshal checks that no input makes Unmarshal panic, that an error
// is one short line, and that whatever Unmarshal accepts Marshal writes
// and reads back unchanged.
func FuzzUnmarshal(f *testing.F) {
	// Small seeds: the fuzzer minimizes what it finds, which is slow on
	// long inputs. TestGolden and TestHostile cover the long files.
	for _, v := range hostile[:24] {
		data, err := Marshal(smallIncident(v, v, v))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("---\nid: a\nstatus: open\ngroup: {a: !!binary /w==, b: 1, c: ~, d: 2026-01-01}\n---\n"))
	f.Add([]byte("---\nid: a\nstatus: open\ntimeline: [{at: 2026-01-01T00:00:00+14:00, text: &x y}, {at: 2026-01-01, text: *x}]\n---\n"))
	f.Add([]byte("---\nid: a\nstatus: open\nsteps:\n  - {name: \"a\\nb\", status: x, approved_at: 2026-01-01T00:00:00Z}\n---\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := Unmarshal(data)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "front matter: ") || len(msg) > 400 || !utf8.ValidString(msg) || strings.ContainsFunc(msg, unicode.IsControl) {
				t.Fatalf("error is not one short front matter line: %q", msg)
			}
			return
		}
		out, err := Marshal(in)
		if err != nil {
			t.Fatalf("Marshal of what Unmarshal accepted: %v", err)
		}
		back, err := Unmarshal(out)
		if err != nil {
			t.Fatalf("Unmarshal(Marshal(x)): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, in) {
			t.Fatalf("Unmarshal(Marshal(x)) = %#v, want %#v", back, in)
		}
		if again, err := Marshal(back); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Marshal is not stable (err %v)", err)
		}
	})
}

// smallIncident is a record with key, value and text in every kind of
// place a label or annotation reaches, small enough to fuzz fast.
func smallIncident(key, value, text string) *Incident {
	return &Incident{
		ID: NewID(value, map[string]string{key: value}, at("2026-11-21T09:12:03Z")), Status: Open,
		Title: text, Playbook: value, Owner: value, GroupKey: value,
		Group:      map[string]string{key: value},
		Timestamps: Timestamps{Detected: at("2026-11-21T09:12:03Z"), Opened: at("2026-11-21T09:13:15Z")},
		Alerts:     []AlertRef{{Fingerprint: value, Status: "firing", StartsAt: at("2026-11-21T09:12:03Z"), Labels: map[string]string{key: value, "alertname": text}}},
		Steps:      []Step{{Name: key, Action: "rollback", Target: value, Status: "failed", Result: text, Commit: value, Error: text}},
		Timeline: []Event{
			{At: at("2026-11-21T09:12:03Z"), Kind: EventAlertFiring, Text: text},
			{At: at("2026-11-21T09:12:03Z"), Kind: key, Text: value},
		},
	}
}

// FuzzMarshalRoundTrip fuzzes label names, label values and annotation
// text and checks what checkSafe checks.
func FuzzMarshalRoundTrip(f *testing.F) {
	short := func(s string) string { return s[:min(len(s), 200)] }
	for i, v := range hostile {
		f.Add(short(hostile[(i+1)%len(hostile)]), short(v), short(hostile[(i+7)%len(hostile)]))
	}
	f.Fuzz(func(t *testing.T, key, value, text string) {
		checkSafe(t, smallIncident(key, value, text))
	})
}
