package alert

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/schema"
)

// fixtures holds webhook bodies captured from a real Alertmanager 0.25. It
// lies outside the module: a test run without it fails rather than skips.
const fixtures = "../../testdata/fixtures/alertmanager" // copied from the shared captures

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return data
}

func TestDecodeAlertmanagerFixtures(t *testing.T) {
	started := time.Date(2026, 11, 21, 9, 25, 43, 8992687, time.UTC)
	direct := map[string]string{"alertname": "DirectAlert", "service": "payments", "severity": "page"}
	tests := map[string]struct {
		alerts []schema.Alert
		meta   Meta
	}{
		"firing-from-api.json": {
			alerts: []schema.Alert{{
				Source:       "alertmanager",
				Status:       "firing",
				Fingerprint:  "78bf52301626ee7f",
				Labels:       direct,
				Annotations:  map[string]string{"summary": "direct via API"},
				StartsAt:     started,
				GeneratorURL: "http://probe/x",
			}},
			meta: Meta{GroupKey: `{}:{alertname="DirectAlert"}`, Receiver: "webhook", ExternalURL: "http://vm:19093"},
		},
		"firing-from-rule.json": {
			alerts: []schema.Alert{{
				Source:      "alertmanager",
				Status:      "firing",
				Fingerprint: "6b157f79b26a43ad",
				Labels:      map[string]string{"alertname": "AlwaysFiring", "service": "checkout", "severity": "critical"},
				Annotations: map[string]string{
					"runbook_url": "http://example.invalid/runbook",
					"summary":     "probe alert always firing",
				},
				StartsAt:     time.Date(2026, 11, 21, 9, 25, 32, 553000000, time.UTC),
				GeneratorURL: "http://vm:19090/graph?g0.expr=vector%281%29+%3E+0&g0.tab=1",
			}},
			meta: Meta{GroupKey: `{}:{alertname="AlwaysFiring"}`, Receiver: "webhook", ExternalURL: "http://vm:19093"},
		},
		"resolved.json": {
			alerts: []schema.Alert{{
				Source:       "alertmanager",
				Status:       "resolved",
				Fingerprint:  "78bf52301626ee7f",
				Labels:       direct,
				Annotations:  map[string]string{"summary": "direct via API"},
				StartsAt:     started,
				EndsAt:       time.Date(2026, 11, 21, 9, 25, 49, 0, time.UTC),
				GeneratorURL: "http://probe/x",
			}},
			meta: Meta{GroupKey: `{}:{alertname="DirectAlert"}`, Receiver: "webhook", ExternalURL: "http://vm:19093"},
		},
	}

	// A fixture added later must come with its expectations.
	files, err := filepath.Glob(filepath.Join(fixtures, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s (err %v)", fixtures, err)
	}
	for _, f := range files {
		if _, ok := tests[filepath.Base(f)]; !ok {
			t.Errorf("fixture %s has no test case", filepath.Base(f))
		}
	}

	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			data := readFixture(t, name)
			alerts, meta, err := DecodeAlertmanager(name, data)
			if err != nil {
				t.Fatalf("DecodeAlertmanager: %v", err)
			}
			if !reflect.DeepEqual(alerts, tc.alerts) {
				t.Errorf("DecodeAlertmanager alerts:\n got %+v\nwant %+v", alerts, tc.alerts)
			}
			if meta != tc.meta {
				t.Errorf("DecodeAlertmanager meta:\n got %+v\nwant %+v", meta, tc.meta)
			}
			alerts, err = Decode(name, data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(alerts, tc.alerts) {
				t.Errorf("Decode:\n got %+v\nwant %+v", alerts, tc.alerts)
			}
		})
	}
}

// normalCases are normalized inputs and what they decode to.
var normalCases = []struct {
	name string
	in   string
	want []schema.Alert
}{
	{
		name: "single with every field",
		in: `{
			"source": "grafana", "status": "resolved", "fingerprint": "f1",
			"labels": {"alertname": "DiskFull", "instance": "db-1"},
			"annotations": {"summary": "disk full"},
			"startsAt": "2026-11-21T10:00:00Z", "endsAt": "2026-11-21T10:05:00.5Z",
			"generatorURL": "http://grafana/x", "receivedAt": "2026-11-21T10:05:01Z"
		}`,
		want: []schema.Alert{{
			Source:       "grafana",
			Status:       "resolved",
			Fingerprint:  "f1",
			Labels:       map[string]string{"alertname": "DiskFull", "instance": "db-1"},
			Annotations:  map[string]string{"summary": "disk full"},
			StartsAt:     time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC),
			EndsAt:       time.Date(2026, 11, 21, 10, 5, 0, 5e8, time.UTC),
			GeneratorURL: "http://grafana/x",
			ReceivedAt:   time.Date(2026, 11, 21, 10, 5, 1, 0, time.UTC),
		}},
	},
	{
		name: "array",
		in:   `[{"labels": {"alertname": "A"}}, {"labels": {"alertname": "B"}, "status": "resolved", "source": "github"}]`,
		want: []schema.Alert{
			{Source: "generic", Status: "firing", Labels: map[string]string{"alertname": "A"}, Annotations: map[string]string{}},
			{Source: "github", Status: "resolved", Labels: map[string]string{"alertname": "B"}, Annotations: map[string]string{}},
		},
	},
	{
		name: "defaults",
		in:   `{"labels": {}, "source": "", "status": ""}`,
		want: []schema.Alert{{Source: "generic", Status: "firing", Labels: map[string]string{}, Annotations: map[string]string{}}},
	},
	{
		name: "null is absent",
		in:   `{"labels": null, "annotations": null, "source": null, "startsAt": null, "fingerprint": null}`,
		want: []schema.Alert{{Source: "generic", Status: "firing", Labels: map[string]string{}, Annotations: map[string]string{}}},
	},
	{
		name: "times in UTC",
		in:   `{"labels": {}, "startsAt": "2026-11-21T12:00:00.25+02:00", "endsAt": "0001-01-01T00:00:00Z"}`,
		want: []schema.Alert{{
			Source: "generic", Status: "firing", Labels: map[string]string{}, Annotations: map[string]string{},
			StartsAt: time.Date(2026, 11, 21, 10, 0, 0, 25e7, time.UTC),
		}},
	},
	{
		name: "escapes",
		in:   `{"labels": {"a\u00e9": "line\nnext \"q\""}}`,
		want: []schema.Alert{{Source: "generic", Status: "firing", Labels: map[string]string{"aé": "line\nnext \"q\""}, Annotations: map[string]string{}}},
	},
	{
		// Invalid UTF-8 is replaced with U+FFFD, as encoding/json does.
		name: "invalid UTF-8",
		in:   "{\"labels\": {\"pod\": \"a\xffb\", \"\xfe\": \"x\"}}",
		want: []schema.Alert{{Source: "generic", Status: "firing", Labels: map[string]string{"pod": "a\uFFFDb", "\uFFFD": "x"}, Annotations: map[string]string{}}},
	},
	{
		name: "white space and CRLF",
		in:   "\r\n\t [ {\"labels\" :\r\n{ \"a\" : \"b\" } } ] \r\n",
		want: []schema.Alert{{Source: "generic", Status: "firing", Labels: map[string]string{"a": "b"}, Annotations: map[string]string{}}},
	},
}

func TestDecodeNormalized(t *testing.T) {
	for _, tc := range normalCases {
		t.Run(tc.name, func(t *testing.T) {
			for fn, decode := range map[string]func(string, []byte) ([]schema.Alert, error){
				"Decode":           Decode,
				"DecodeNormalized": DecodeNormalized,
			} {
				got, err := decode("alert.json", []byte(tc.in))
				if err != nil {
					t.Fatalf("%s: %v", fn, err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s:\n got %+v\nwant %+v", fn, got, tc.want)
				}
			}
		})
	}
}

// amBody is an Alertmanager webhook body with a label of the wrong type on
// line 7, column 21.
const amBody = `{
  "version": "4",
  "receiver": "webhook",
  "alerts": [
    {
      "labels": {
        "severity": 3,
        "alertname": "X"
      }
    }
  ]
}`

// errorCases are inputs each decoder must refuse, with the exact error.
var errorCases = []struct {
	name string
	fn   string // Decode, DecodeNormalized or DecodeAlertmanager
	in   string
	want string
}{
	{"empty", "Decode", "", "alert.json:1:1: empty input"},
	{"only white space", "Decode", " \n\t", "alert.json:1:1: empty input"},
	{"null", "Decode", "null", "alert.json:1:1: want an alert, an array of alerts or an Alertmanager webhook, got null"},
	{"string", "Decode", `"x"`, "alert.json:1:1: want an alert, an array of alerts or an Alertmanager webhook, got string"},
	{"empty array", "Decode", " []", "alert.json:1:2: no alerts"},
	{"unexpected end", "Decode", "{\n  \"labels\": {\n", "alert.json:3:1: invalid JSON: unexpected end of input"},
	{"unexpected end in literal", "Decode", `[tru`, "alert.json:1:5: invalid JSON: unexpected end of input"},
	{"bad character", "Decode", "{\"labels\": {\n  \"a\": x}}", "alert.json:2:8: invalid JSON: invalid character 'x' looking for beginning of value"},
	{"bad escape", "Decode", `{"labels": {"a": "\q"}}`, `alert.json:1:20: invalid JSON: invalid character 'q' in string escape code`},
	{"trailing garbage", "Decode", `{"labels": {}} x`, "alert.json:1:16: invalid JSON: unexpected data after the top-level value"},
	{"trailing value", "Decode", "[{\"labels\": {}}]\n[]", "alert.json:2:1: invalid JSON: unexpected data after the top-level value"},
	{"trailing bracket", "Decode", `[{"labels": {}}]]`, "alert.json:1:17: invalid JSON: unexpected data after the top-level value"},
	{"too deep", "Decode", strings.Repeat("[", 10001), "alert.json:1:10001: invalid JSON: invalid character '[' exceeded max depth"},
	{"neither labels nor alerts", "Decode", `{"foo": 1}`, `alert.json:1:1: object has neither "labels" (an alert) nor "alerts" (an Alertmanager webhook)`},
	{"typo", "Decode", "{\n  \"lables\": {\"a\": \"b\"}\n}", `alert.json:2:3: unknown field "lables" (did you mean "labels"?)`},
	{"typo in array", "DecodeNormalized", `[{"labels": {}}, {"labels": {}, "satus": "firing"}]`, `alert.json:1:33: [1]: unknown field "satus" (did you mean "status"?)`},
	{"case differs", "DecodeNormalized", `{"Labels": {}}`, `alert.json:1:2: unknown field "Labels" (did you mean "labels"?)`},
	{"unknown field", "DecodeNormalized", `{"labels": {}, "team": "x"}`, `alert.json:1:16: unknown field "team"`},
	{"missing labels", "DecodeNormalized", `{"status": "firing"}`, `alert.json:1:1: missing field "labels"`},
	{"missing labels via Decode", "Decode", `[{"status": "firing"}]`, `alert.json:1:2: [0]: missing field "labels"`},
	{"duplicate field", "Decode", `{"labels": {}, "labels": {"a": "b"}}`, `alert.json:1:16: duplicate key "labels"`},
	{"duplicate label", "Decode", `{"labels": {"a": "b", "a": "c"}}`, `alert.json:1:23: labels: duplicate key "a"`},
	{"labels not an object", "Decode", `{"labels": ["a"]}`, "alert.json:1:12: labels: want object, got array"},
	{"label not a string", "Decode", `{"labels": {"severity": 3}}`, "alert.json:1:25: labels.severity: want string, got number"},
	{"label null", "Decode", `{"labels": {"a": null}}`, "alert.json:1:18: labels.a: want string, got null"},
	{"odd label name", "Decode", `{"labels": {"a b": true}}`, `alert.json:1:20: labels["a b"]: want string, got boolean`},
	{"long label name", "Decode", `{"annotations": {"` + strings.Repeat("x", 100) + `": {}}, "labels": {}}`, `alert.json:1:122: annotations["xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"…]: want string, got object`},
	{"bad status", "Decode", `[{"labels": {}, "status": "fire"}]`, `alert.json:1:27: [0].status: want one of firing, resolved, got "fire"`},
	{"long status", "Decode", `{"labels": {}, "status": "` + strings.Repeat("é", 60) + `"}`, `alert.json:1:26: status: want one of firing, resolved, got "éééééééééééééééé"…`},
	{"bad source", "Decode", `{"labels": {}, "source": "nagios"}`, `alert.json:1:26: source: want one of alertmanager, grafana, pagerduty, generic, github, got "nagios"`},
	{"source not a string", "Decode", `{"labels": {}, "source": 1}`, "alert.json:1:26: source: want string, got number"},
	{"bad time", "Decode", `{"labels": {}, "startsAt": "yesterday"}`, `alert.json:1:28: startsAt: want an RFC3339 time, got "yesterday"`},
	{"time without zone", "Decode", `{"labels": {}, "endsAt": "2026-11-21T10:00:00"}`, `alert.json:1:26: endsAt: want an RFC3339 time, got "2026-11-21T10:00:00"`},
	{"time out of range", "Decode", `{"labels": {}, "startsAt": "0000-01-01T00:00:00+01:00"}`, `alert.json:1:28: startsAt: time "0000-01-01T00:00:00+01:00" is out of range in UTC`},
	{"element not an object", "Decode", `[{"labels": {}}, 3]`, "alert.json:1:18: [1]: want an alert object, got number"},
	{"alertmanager label", "Decode", amBody, "alert.json:7:21: alerts[0].labels.severity: want string, got number"},
	{"alertmanager no alerts", "Decode", `{"version": "4", "alerts": []}`, "alert.json:1:28: alerts: no alerts"},
	{"alertmanager alerts null", "Decode", `{"alerts": null}`, "alert.json:1:12: alerts: want an array of alerts, got null"},
	{"alertmanager alerts object", "DecodeAlertmanager", `{"alerts": {}}`, "alert.json:1:12: alerts: want an array of alerts, got object"},
	{"alertmanager alert not an object", "DecodeAlertmanager", `{"alerts": ["x"]}`, `alert.json:1:13: alerts[0]: want an alert object, got string`},
	{"alertmanager version", "Decode", "{\"alerts\": [{\"labels\": {\"severity\": 3}}],\n \"version\": \"5\"}", `alert.json:2:13: version: unsupported Alertmanager webhook version "5", want "4"`},
	{"alertmanager version number", "DecodeAlertmanager", `{"version": 4, "alerts": []}`, "alert.json:1:13: version: want string, got number"},
	{"alertmanager bad status", "DecodeAlertmanager", `{"alerts": [{"status": "pending"}]}`, `alert.json:1:24: alerts[0].status: want one of firing, resolved, got "pending"`},
	{"alertmanager truncated negative", "DecodeAlertmanager", `{"truncatedAlerts": -1, "alerts": []}`, "alert.json:1:21: truncatedAlerts: want a non-negative integer, got -1"},
	{"alertmanager truncated fraction", "DecodeAlertmanager", `{"truncatedAlerts": 1.5, "alerts": []}`, "alert.json:1:21: truncatedAlerts: want a non-negative integer, got 1.5"},
	{"alertmanager truncated huge", "DecodeAlertmanager", `{"truncatedAlerts": 1` + strings.Repeat("0", 60) + `}`, "alert.json:1:21: truncatedAlerts: want a non-negative integer, got 10000000000000000000000000000000…"},
	{"alertmanager truncated string", "DecodeAlertmanager", `{"truncatedAlerts": "0", "alerts": []}`, "alert.json:1:21: truncatedAlerts: want integer, got string"},
	{"alertmanager given normalized", "DecodeAlertmanager", `{"labels": {}}`, `alert.json:1:1: no "alerts" field: not an Alertmanager webhook`},
	{"alertmanager given array", "DecodeAlertmanager", `[{"labels": {}}]`, "alert.json:1:1: want an Alertmanager webhook object, got array"},
	{"normalized given alertmanager", "DecodeNormalized", amBody, `alert.json:2:3: unknown field "version"`},
	{"normalized given number", "DecodeNormalized", `42`, "alert.json:1:1: want an alert object or an array of alerts, got number"},
}

// decoders runs each decoder by name, for tables.
var decoders = map[string]func(name string, data []byte) ([]schema.Alert, error){
	"Decode":           Decode,
	"DecodeNormalized": DecodeNormalized,
	"DecodeAlertmanager": func(name string, data []byte) ([]schema.Alert, error) {
		alerts, _, err := DecodeAlertmanager(name, data)
		return alerts, err
	},
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			alerts, err := decoders[tc.fn]("alert.json", []byte(tc.in))
			if err == nil {
				t.Fatalf("%s = %+v, want error %q", tc.fn, alerts, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("%s error:\n got %s\nwant %s", tc.fn, err, tc.want)
			}
		})
	}
}

func TestMaxAlerts(t *testing.T) {
	list := func(n int) []byte {
		return []byte("[" + strings.Repeat(`{"labels":{}},`, n-1) + `{"labels":{}}]`)
	}
	alerts, err := Decode("big.json", list(MaxAlerts))
	if err != nil || len(alerts) != MaxAlerts {
		t.Fatalf("Decode of MaxAlerts alerts = %d alerts, %v", len(alerts), err)
	}
	// The one too many starts at byte 1 + 14*MaxAlerts.
	_, err = Decode("big.json", list(MaxAlerts+1))
	want := "big.json:1:1400002: more than 100000 alerts"
	if err == nil || err.Error() != want {
		t.Errorf("Decode of MaxAlerts+1 alerts: got error %v, want %s", err, want)
	}
}

// TestFields keeps the decoder's field list in step with schema.Alert.
func TestFields(t *testing.T) {
	var tags []string
	typ := reflect.TypeFor[schema.Alert]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		tags = append(tags, name)
	}
	if !slices.Equal(tags, fields) {
		t.Errorf("fields = %q, schema.Alert's json names are %q", fields, tags)
	}
	for _, f := range amFields {
		if !slices.Contains(fields, f) {
			t.Errorf("amFields has %q, which is not a field of schema.Alert", f)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	one := `{"status":"firing","labels":{"alertname":"A","service":"payments","severity":"page","namespace":"shop"},` +
		`"annotations":{"summary":"direct via API"},"startsAt":"2026-11-21T09:25:43.008992687Z","endsAt":"0001-01-01T00:00:00Z",` +
		`"generatorURL":"http://probe/x","fingerprint":"78bf52301626ee7f"}`
	data := []byte(`{"version":"4","alerts":[` + strings.Repeat(one+",", 9999) + one + `]}`)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode("bench.json", data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEscapedQuotes: a quote ends a string unless an odd run of
// backslashes escapes it; the values decode as encoding/json decodes them.
func TestEscapedQuotes(t *testing.T) {
	values := []string{`a\\`, `a\\\"b`, `\\\\`, `\"\"`, `x\\\\\"y\\`, `\u00e9\\\"`, `"`}
	for _, v := range values {
		doc := `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A","v":"` + v +
			`","after":"\\"}}]}`
		var want struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		wantErr := json.Unmarshal([]byte(doc), &want)
		alerts, err := Decode("escapes.json", []byte(doc))
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%s: error %v, encoding/json's %v", v, err, wantErr)
		}
		if err != nil {
			continue
		}
		if got := alerts[0].Labels; !maps.Equal(got, want.Alerts[0].Labels) {
			t.Errorf("%s: labels %q, want %q", v, got, want.Alerts[0].Labels)
		}
	}
}
