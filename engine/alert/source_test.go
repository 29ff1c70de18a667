package alert

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

// TestDecodeSourceExplicit checks that a named source decodes what it
// names, and refuses what another source sends.
func TestDecodeSourceExplicit(t *testing.T) {
	am := readFixture(t, "firing-from-rule.json")
	grafana := readSource(t, filepath.Join("grafana", "firing.json"))
	pd := readSource(t, filepath.Join("pagerduty", "incident-triggered.json"))
	dispatchAM := readSource(t, filepath.Join("github", "repository_dispatch-alertmanager.json"))
	tests := []struct {
		source string
		data   []byte
		from   string // the source of the first alert, or the start of the error
		err    bool
	}{
		{"alertmanager", am, "alertmanager", false},
		{"grafana", grafana, "grafana", false},
		// An Alertmanager body read as Grafana's: the version says no.
		{"grafana", am, `fixture:35:16: version: unsupported Grafana webhook version "4", want "1"`, true},
		{"alertmanager", grafana, `fixture:78:14: version: unsupported Alertmanager webhook version "1", want "4"`, true},
		{"pagerduty", pd, "pagerduty", false},
		{"pagerduty", am, `fixture:1:1: no "event" field: not a PagerDuty V3 webhook`, true},
		{"github", dispatchAM, "alertmanager", false},
		{"github", am, "fixture:1:1: not a GitHub repository_dispatch, workflow_dispatch, issue_comment or push event", true},
		{"generic", []byte(`{"labels": {}}`), "generic", false},
		{"generic", am, `fixture:2:5: unknown field "receiver"`, true},
		{"", am, "alertmanager", false},
		{"auto", pd, "pagerduty", false},
	}
	for _, tc := range tests {
		t.Run(tc.source+" "+tc.from, func(t *testing.T) {
			in, err := DecodeSource(tc.source, "fixture", tc.data)
			if tc.err {
				if err == nil || err.Error() != tc.from {
					t.Errorf("DecodeSource = %+v, %v; want error %s", in, err, tc.from)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeSource: %v", err)
			}
			if len(in.Alerts) == 0 || in.Alerts[0].Source != tc.from {
				t.Errorf("DecodeSource = %+v, want alerts from %s", in, tc.from)
			}
		})
	}
}

func TestDecodeSourceAuto(t *testing.T) {
	tests := []struct {
		name, in, source string
	}{
		{"array", `[{"labels": {}}]`, "generic"},
		{"alert", `{"labels": {}}`, "generic"},
		{"alertmanager", `{"alerts": [{}]}`, "alertmanager"},
		{"grafana", `{"version": "1", "alerts": [{}]}`, "grafana"},
		{"pagerduty", `{"event": {"event_type": "incident.acknowledged"}}`, "pagerduty"},
		{"repository_dispatch", dispatch(`{"labels": {}}`), "github"},
		{"workflow_dispatch", inputs(`"alertname": "A"`), "github"},
		{"issue_comment", `{"action": "created", "issue": {"number": 1}, "comment": {"id": 2, "user": {"login": "x"}}}`, "github"},
		{"push", `{"ref": "r", "before": "a", "after": "b"}`, "github"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := DecodeSource("auto", "in.json", []byte(tc.in))
			if err != nil {
				t.Fatalf("DecodeSource: %v", err)
			}
			if in.Source != tc.source {
				t.Errorf("DecodeSource: source %q, want %q", in.Source, tc.source)
			}
			checkInput(t, "DecodeSource", in)
		})
	}
}

func TestDecodeSourceErrors(t *testing.T) {
	tests := []struct {
		name, source, in, want string
	}{
		{"unknown source", "nagios", `{}`, `unknown alert source "nagios" (want one of auto, alertmanager, grafana, pagerduty, github, generic)`},
		{"empty", "auto", ``, "in.json:1:1: empty input"},
		{"number", "auto", `42`, "in.json:1:1: want an alert, an array of alerts or a webhook body, got number"},
		{"unknown object", "auto", `{"zen": "x", "hook_id": 1}`, "in.json:1:1: cannot tell what this is: not an alert, nor an Alertmanager, Grafana, PagerDuty or GitHub webhook body"},
		{"event not an object", "auto", `{"event": "x"}`, "in.json:1:1: cannot tell what this is: not an alert, nor an Alertmanager, Grafana, PagerDuty or GitHub webhook body"},
		{"near miss is an alert", "auto", `{"lables": {}}`, `in.json:1:2: unknown field "lables" (did you mean "labels"?)`},
		{"github array", "github", `[]`, "in.json:1:1: want a GitHub webhook object, got array"},
		{"pagerduty array", "pagerduty", `[]`, "in.json:1:1: want a PagerDuty webhook object, got array"},
		{"grafana array", "grafana", `[]`, "in.json:1:1: want a Grafana webhook object, got array"},
		{"generic string", "generic", `"x"`, "in.json:1:1: want an alert object or an array of alerts, got string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := DecodeSource(tc.source, "in.json", []byte(tc.in))
			if err == nil {
				t.Fatalf("DecodeSource = %+v, want error %q", in, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("DecodeSource error:\n got %s\nwant %s", err, tc.want)
			}
			var e *Error
			if errors.As(err, &e) == (tc.name == "unknown source") {
				t.Errorf("DecodeSource error %v: *Error is %v", err, e != nil)
			}
		})
	}
}

// checkInput checks the invariant of Input: exactly one of Alerts, Comment,
// Push and Ignored is set, and Source is one a schema.Alert may have.
func checkInput(t testing.TB, fn string, in Input) {
	t.Helper()
	set := 0
	for _, ok := range []bool{len(in.Alerts) > 0, in.Comment != nil, in.Push != nil, in.Ignored != ""} {
		if ok {
			set++
		}
	}
	if set != 1 {
		t.Fatalf("%s: %d of Alerts, Comment, Push and Ignored are set in %+v", fn, set, in)
	}
	if !slices.Contains(sources, in.Source) {
		t.Fatalf("%s: source %q", fn, in.Source)
	}
}
