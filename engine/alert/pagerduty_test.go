package alert

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/schema"
)

func TestDecodePagerDutyFixtures(t *testing.T) {
	incident := func(status string, endsAt time.Time, annotations map[string]string) []schema.Alert {
		ann := map[string]string{
			"summary":      "[FIRING:1] KubePodCrashLooping shop checkout-api",
			"incident_url": "https://acme.pagerduty.com/incidents/Q2W7XK0NRDT3LM",
		}
		for k, v := range annotations {
			ann[k] = v
		}
		return []schema.Alert{{
			Source:      "pagerduty",
			Status:      status,
			Fingerprint: "Q2W7XK0NRDT3LM",
			Labels: map[string]string{
				"alertname":         "[FIRING:1] KubePodCrashLooping shop checkout-api",
				"incident_id":       "Q2W7XK0NRDT3LM",
				"incident_number":   "1873",
				"incident_key":      "9c1f2e4a7b3d5e60",
				"service":           "Checkout API",
				"service_id":        "PF9KMXH",
				"urgency":           "high",
				"priority":          "P1",
				"escalation_policy": "Payments on-call",
			},
			Annotations:  ann,
			StartsAt:     time.Date(2026, 11, 21, 9, 15, 2, 0, time.UTC),
			EndsAt:       endsAt,
			GeneratorURL: "https://acme.pagerduty.com/incidents/Q2W7XK0NRDT3LM",
		}}
	}
	resolved := incident("resolved", time.Date(2026, 11, 21, 9, 41, 37, 905e6, time.UTC), map[string]string{
		"event_id": "01FCRMA9T4ZQ1V8KJ3YB6N2HXE", "event_type": "incident.resolved", "agent": "Dana Whitfield", "client": "PagerDuty",
	})
	delete(resolved[0].Labels, "priority") // null in the resolve

	tests := map[string]Input{
		"incident-triggered.json": {
			Source: "pagerduty", Kind: "incident.triggered", ID: "01FCRKD3J8XQ6ZB2T7WN4PVH5A",
			Alerts: incident("firing", time.Time{}, map[string]string{
				"event_id": "01FCRKD3J8XQ6ZB2T7WN4PVH5A", "event_type": "incident.triggered", "agent": "Checkout API", "client": "Alertmanager",
			}),
		},
		"incident-resolved.json": {
			Source: "pagerduty", Kind: "incident.resolved", ID: "01FCRMA9T4ZQ1V8KJ3YB6N2HXE", Alerts: resolved,
		},
		"incident-acknowledged.json": {
			Source: "pagerduty", Kind: "incident.acknowledged", ID: "01FCRKF0Q7MN5W2XE8RT3YDV6C",
			Ignored: `PagerDuty event type "incident.acknowledged" is not a trigger or a resolve`,
		},
		"pagey-ping.json": {
			Source: "pagerduty", Kind: "pagey.ping", ID: "01FCRJZ8W1P6QK4VB9TN2HXM3D",
			Ignored: `PagerDuty event type "pagey.ping" is not a trigger or a resolve`,
		},
	}
	checkFixtures(t, "pagerduty", tests)

	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			data := readSource(t, filepath.Join("pagerduty", name))
			got, err := DecodePagerDuty(name, data)
			if err != nil {
				t.Fatalf("DecodePagerDuty: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DecodePagerDuty:\n got %+v\nwant %+v", got, want)
			}
			got, err = DecodeSource("auto", name, data)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("DecodeSource auto = %+v, %v; want the same", got, err)
			}
		})
	}
}

// pdEvent wraps fields of an incident (event.data) into a webhook body of
// the given event type.
func pdEvent(eventType, data string) string {
	return `{"event": {"id": "E1", "event_type": "` + eventType + `", "occurred_at": "2026-11-21T10:00:00+02:00", "data": {` + data + `}}}`
}

func TestDecodePagerDuty(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Input
	}{
		{
			name: "minimal trigger",
			in:   pdEvent("incident.triggered", `"id": "P1"`),
			want: Input{Source: "pagerduty", Kind: "incident.triggered", ID: "E1", Alerts: []schema.Alert{{
				Source: "pagerduty", Status: "firing", Fingerprint: "P1",
				Labels:      map[string]string{"incident_id": "P1"},
				Annotations: map[string]string{"event_id": "E1", "event_type": "incident.triggered"},
			}}},
		},
		{
			// A reopened incident fires again, under the same fingerprint.
			name: "reopened",
			in:   pdEvent("incident.reopened", `"id": "P1", "type": "incident", "title": "t", "agent": 5`),
			want: Input{Source: "pagerduty", Kind: "incident.reopened", ID: "E1", Alerts: []schema.Alert{{
				Source: "pagerduty", Status: "firing", Fingerprint: "P1",
				Labels:      map[string]string{"incident_id": "P1", "alertname": "t"},
				Annotations: map[string]string{"event_id": "E1", "event_type": "incident.reopened", "summary": "t"},
			}}},
		},
		{
			// The resolve ends at occurred_at, in UTC.
			name: "resolved",
			in:   pdEvent("incident.resolved", `"id": "P1", "created_at": "2026-11-21T09:00:00+02:00", "service": null, "priority": null, "number": null`),
			want: Input{Source: "pagerduty", Kind: "incident.resolved", ID: "E1", Alerts: []schema.Alert{{
				Source: "pagerduty", Status: "resolved", Fingerprint: "P1",
				Labels:      map[string]string{"incident_id": "P1"},
				Annotations: map[string]string{"event_id": "E1", "event_type": "incident.resolved"},
				StartsAt:    time.Date(2026, 11, 21, 7, 0, 0, 0, time.UTC),
				EndsAt:      time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC),
			}}},
		},
		{
			// Neither data nor anything else of an event that is not an
			// alert is looked at: PagerDuty must get its 2xx.
			name: "ignored event with odd data",
			in:   `{"event": {"event_type": "incident.annotated", "data": [1, "x"], "occurred_at": 7}}`,
			want: Input{Source: "pagerduty", Kind: "incident.annotated", Ignored: `PagerDuty event type "incident.annotated" is not a trigger or a resolve`},
		},
		{
			name: "service event",
			in:   `{"event": {"id": "E2", "event_type": "service.updated", "resource_type": "service", "agent": null, "client": null, "data": {"type": "service"}}}`,
			want: Input{Source: "pagerduty", Kind: "service.updated", ID: "E2", Ignored: `PagerDuty event type "service.updated" is not a trigger or a resolve`},
		},
		{
			name: "invalid UTF-8 replaced",
			in:   pdEvent("incident.triggered", "\"id\": \"P\xff1\", \"title\": \"a\xfeb\""),
			want: Input{Source: "pagerduty", Kind: "incident.triggered", ID: "E1", Alerts: []schema.Alert{{
				Source: "pagerduty", Status: "firing", Fingerprint: "P\uFFFD1",
				Labels:      map[string]string{"incident_id": "P\uFFFD1", "alertname": "a\uFFFDb"},
				Annotations: map[string]string{"event_id": "E1", "event_type": "incident.triggered", "summary": "a\uFFFDb"},
			}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodePagerDuty("pd.json", []byte(tc.in))
			if err != nil {
				t.Fatalf("DecodePagerDuty: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DecodePagerDuty:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDecodePagerDutyErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", " ", "pd.json:1:1: empty input"},
		{"truncated", `{"event": {"event_type": "incident.trig`, "pd.json:1:40: invalid JSON: unexpected end of input"},
		{"array", `[]`, "pd.json:1:1: want a PagerDuty webhook object, got array"},
		{"no event", `{"alerts": []}`, `pd.json:1:1: no "event" field: not a PagerDuty V3 webhook`},
		{"null event", `{"event": null}`, `pd.json:1:1: no "event" field: not a PagerDuty V3 webhook`},
		{"V2 webhook", `{"messages": [{"event": "incident.trigger"}]}`, `pd.json:1:1: a PagerDuty V2 webhook ("messages"): only V3 webhooks are supported`},
		{"event string", `{"event": "incident.triggered"}`, "pd.json:1:11: event: want object, got string"},
		{"no event_type", `{"event": {"id": "E1"}}`, `pd.json:1:11: event: missing field "event_type"`},
		{"event_type number", `{"event": {"event_type": 1}}`, "pd.json:1:26: event.event_type: want string, got number"},
		{"id number", `{"event": {"id": 1, "event_type": "x"}}`, "pd.json:1:18: event.id: want string, got number"},
		{"no data", `{"event": {"event_type": "incident.triggered"}}`, `pd.json:1:11: event: missing field "data"`},
		{"data array", `{"event": {"event_type": "incident.resolved", "data": []}}`, "pd.json:1:55: event.data: want object, got array"},
		{"no incident id", "{\"event\": {\"event_type\": \"incident.triggered\",\n \"data\": {\"title\": \"x\"}}}", `pd.json:2:10: event.data: missing field "id"`},
		{"wrong data type", pdEvent("incident.triggered", `"id": "P1", "type": "incident_note"`), `pd.json:1:133: event.data.type: want "incident" for event type "incident.triggered", got "incident_note"`},
		{"bad occurred_at", `{"event": {"event_type": "incident.triggered", "occurred_at": "now", "data": {"id": "P1"}}}`, `pd.json:1:63: event.occurred_at: want an RFC3339 time, got "now"`},
		{"bad created_at", pdEvent("incident.triggered", `"id": "P1", "created_at": 1700000000`), "pd.json:1:139: event.data.created_at: want string, got number"},
		{"number string", pdEvent("incident.triggered", `"id": "P1", "number": "1873"`), "pd.json:1:135: event.data.number: want integer, got string"},
		{"number fraction", pdEvent("incident.triggered", `"id": "P1", "number": 18.5`), "pd.json:1:135: event.data.number: want a non-negative integer, got 18.5"},
		{"service string", pdEvent("incident.triggered", `"id": "P1", "service": "Checkout"`), "pd.json:1:136: event.data.service: want object, got string"},
		{"service summary number", pdEvent("incident.triggered", `"id": "P1", "service": {"summary": 3}`), "pd.json:1:148: event.data.service.summary: want string, got number"},
		{"priority string", pdEvent("incident.triggered", `"id": "P1", "priority": "P1"`), "pd.json:1:137: event.data.priority: want object, got string"},
		{"agent array", `{"event": {"event_type": "incident.triggered", "agent": [], "data": {"id": "P1"}}}`, "pd.json:1:57: event.agent: want object, got array"},
		{"client name bool", `{"event": {"event_type": "incident.triggered", "client": {"name": true}, "data": {"id": "P1"}}}`, "pd.json:1:67: event.client.name: want string, got boolean"},
		{"duplicate event_type", `{"event": {"event_type": "incident.acknowledged", "event_type": "incident.triggered"}}`, `pd.json:1:51: event: duplicate key "event_type"`},
		{"trailing garbage", pdEvent("incident.triggered", `"id": "P1"`) + "}", "pd.json:1:126: invalid JSON: unexpected data after the top-level value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := DecodePagerDuty("pd.json", []byte(tc.in))
			if err == nil {
				t.Fatalf("DecodePagerDuty = %+v, want error %q", in, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("DecodePagerDuty error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

// TestDecodePagerDutyHuge checks that a body of many megabytes decodes in
// one piece and that its error quotes a bounded part of it.
func TestDecodePagerDutyHuge(t *testing.T) {
	title := strings.Repeat("ü", 4<<20)
	in, err := DecodePagerDuty("pd.json", []byte(pdEvent("incident.triggered", `"id": "P1", "title": "`+title+`"`)))
	if err != nil || in.Alerts[0].Labels["alertname"] != title {
		t.Fatalf("DecodePagerDuty of an 8 MB title: %v", err)
	}
	in, err = DecodePagerDuty("pd.json", []byte(pdEvent(title, `"id": "P1"`)))
	if err != nil || len(in.Ignored) > 200 {
		t.Fatalf("DecodePagerDuty of an 8 MB event type: %.200q, %v", in.Ignored, err)
	}
	_, err = DecodePagerDuty("pd.json", []byte(pdEvent("incident.triggered", `"id": "P1", "type": "`+title+`"`)))
	if err == nil || len(err.Error()) > 300 {
		t.Errorf("DecodePagerDuty error is not short: %.300v", err)
	}
}
