package alert

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/schema"
)

func TestDecodeGitHubFixtures(t *testing.T) {
	crashloop := map[string]string{"alertname": "KubePodCrashLooping", "namespace": "shop", "deployment": "checkout-api"}
	withSeverity := map[string]string{"severity": "critical"}
	for k, v := range crashloop {
		withSeverity[k] = v
	}
	tests := map[string]Input{
		"repository_dispatch-alertmanager.json": {Source: "github", Kind: "repository_dispatch", Alerts: []schema.Alert{{
			Source:      "alertmanager",
			Status:      "firing",
			Fingerprint: "4a1d9e0b7c3f2e18",
			Labels:      withSeverity,
			Annotations: map[string]string{
				"summary":     "checkout-api pods are crash-looping",
				"runbook_url": "https://runbooks.acme.example/k8s/crashloop",
			},
			StartsAt:     time.Date(2026, 11, 21, 9, 12, 30, 112e6, time.UTC),
			GeneratorURL: "http://prometheus:9090/graph?g0.expr=kube_pod_container_status_waiting_reason%7Breason%3D%22CrashLoopBackOff%22%7D+%3E+0&g0.tab=1",
		}}},
		"repository_dispatch-alerts.json": {Source: "github", Kind: "repository_dispatch", Alerts: []schema.Alert{{
			// Normalized alerts that name no source are GitHub's.
			Source:       "github",
			Status:       "firing",
			Labels:       map[string]string{"alertname": "DeployVerifyFailed", "namespace": "shop", "deployment": "checkout-api"},
			Annotations:  map[string]string{"summary": "post-deploy smoke test failed"},
			StartsAt:     time.Date(2026, 11, 21, 8, 30, 0, 0, time.UTC),
			GeneratorURL: "https://github.com/acme/shop/actions/runs/11982374651",
		}, {
			Source:      "generic",
			Status:      "firing",
			Labels:      map[string]string{"alertname": "DeployVerifyFailed", "namespace": "shop", "deployment": "checkout-worker"},
			Annotations: map[string]string{},
		}}},
		"workflow_dispatch-labels.json": {Source: "github", Kind: "workflow_dispatch", Alerts: []schema.Alert{{
			Source: "github", Status: "firing", Labels: withSeverity, Annotations: map[string]string{},
		}}},
		"workflow_dispatch-alert.json": {Source: "github", Kind: "workflow_dispatch", Alerts: []schema.Alert{{
			Source: "github", Status: "resolved", Labels: crashloop, Annotations: map[string]string{},
			EndsAt: time.Date(2026, 11, 21, 9, 40, 0, 0, time.UTC),
		}}},
		"issue_comment.json": {Source: "github", Kind: "issue_comment", Comment: &Comment{
			Repo:              "acme/ops",
			IssueNumber:       42,
			CommentID:         2491837465,
			Action:            "created",
			Body:              "/approve flag\r\n\r\nchecked the dashboard, error rate is still climbing",
			Login:             "dana-w",
			AuthorAssociation: "MEMBER",
		}},
		"push.json": {Source: "github", Kind: "push", Push: &Push{
			Repo:   "acme/ops",
			Ref:    "refs/heads/main",
			Before: "e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3",
			After:  "7d3c5a1e9b2f40c68e1d2a3b4c5d6e7f80912a3b",
		}},
		"ping.json": {Source: "github", Kind: "ping", Ignored: "a GitHub ping: the webhook is set up"},
	}
	checkFixtures(t, "github", tests)

	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			data := readSource(t, filepath.Join("github", name))
			kind, _, _ := strings.Cut(strings.TrimSuffix(name, ".json"), "-")
			got, err := DecodeGitHub(kind, name, data)
			if err != nil {
				t.Fatalf("DecodeGitHub: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DecodeGitHub:\n got %+v\nwant %+v", got, want)
			}
			// Without its name, the event is told by its shape; a ping
			// has none firebreak knows.
			for _, source := range []string{"github", "auto"} {
				got, err = DecodeSource(source, name, data)
				if kind == "ping" {
					if err == nil {
						t.Errorf("DecodeSource %s of a ping = %+v, want an error", source, got)
					}
					continue
				}
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("DecodeSource %s = %+v, %v; want the same", source, got, err)
				}
			}
		})
	}
}

// dispatch is a repository_dispatch event whose client_payload is payload.
func dispatch(payload string) string {
	return `{"action": "alert", "client_payload": ` + payload + `}`
}

// inputs is a workflow_dispatch event with the inputs given.
func inputs(in string) string {
	return `{"ref": "refs/heads/main", "workflow": "w.yml", "inputs": {` + in + `}}`
}

func TestDecodeGitHub(t *testing.T) {
	firing := func(labels, annotations map[string]string) []schema.Alert {
		return []schema.Alert{{Source: "github", Status: "firing", Labels: labels, Annotations: annotations}}
	}
	none := map[string]string{}
	tests := []struct {
		name, kind, in string
		want           Input
	}{
		{"single alert", "repository_dispatch", dispatch(`{"labels": {"a": "b"}}`),
			Input{Source: "github", Kind: "repository_dispatch", Alerts: firing(map[string]string{"a": "b"}, none)}},
		{"array payload", "repository_dispatch", dispatch(`[{"labels": {"a": "b"}, "source": "pagerduty"}]`),
			Input{Source: "github", Kind: "repository_dispatch", Alerts: []schema.Alert{{Source: "pagerduty", Status: "firing", Labels: map[string]string{"a": "b"}, Annotations: none}}}},
		{"grafana payload", "repository_dispatch", dispatch(`{"version": "1", "alerts": [{"values": {"B": 3}}]}`),
			Input{Source: "github", Kind: "repository_dispatch", Alerts: []schema.Alert{{Source: "grafana", Status: "firing", Labels: none, Annotations: map[string]string{"value_B": "3"}}}}},
		{"normalized list ignores wrapper fields", "repository_dispatch", dispatch(`{"alerts": [{"labels": {}}], "note": 1}`),
			Input{Source: "github", Kind: "repository_dispatch", Alerts: firing(none, none)}},
		{"alertname and JSON labels", "workflow_dispatch", inputs(`"alertname": " DiskFull ", "labels": " {\"instance\": \"db-1\"} ", "status": "resolved"`),
			Input{Source: "github", Kind: "workflow_dispatch", Alerts: []schema.Alert{{Source: "github", Status: "resolved",
				Labels: map[string]string{"alertname": "DiskFull", "instance": "db-1"}, Annotations: none}}}},
		{"pairs on lines", "workflow_dispatch", inputs(`"alertname": "A", "labels": "a=1\n b = \"two three\" ,\n\nc=,d=\"", "annotations": "summary=x=y"`),
			Input{Source: "github", Kind: "workflow_dispatch", Alerts: firing(
				map[string]string{"alertname": "A", "a": "1", "b": "two three", "c": "", "d": `"`},
				map[string]string{"summary": "x=y"})}},
		{"alertname in labels agrees", "workflow_dispatch", inputs(`"alertname": "A", "labels": "alertname=A"`),
			Input{Source: "github", Kind: "workflow_dispatch", Alerts: firing(map[string]string{"alertname": "A"}, none)}},
		{"empty inputs are absent", "workflow_dispatch", inputs(`"alert": "  ", "alertname": "A", "labels": "", "status": " ", "other": 5`),
			Input{Source: "github", Kind: "workflow_dispatch", Alerts: firing(map[string]string{"alertname": "A"}, none)}},
		{"alert input as Alertmanager body", "workflow_dispatch", inputs(`"alert": "{\"version\": \"4\", \"alerts\": [{\"labels\": {\"a\": \"b\"}}]}"`),
			Input{Source: "github", Kind: "workflow_dispatch", Alerts: []schema.Alert{{Source: "alertmanager", Status: "firing", Labels: map[string]string{"a": "b"}, Annotations: none}}}},
		{"comment with null body", "issue_comment", `{"action": "deleted", "issue": {"number": 7}, "comment": {"id": 9, "body": null, "user": {"login": "x"}}}`,
			Input{Source: "github", Kind: "issue_comment", Comment: &Comment{IssueNumber: 7, CommentID: 9, Action: "deleted", Login: "x"}}},
		{"branch deleted", "push", `{"ref": "refs/heads/old", "before": "abc", "after": "0000000000000000000000000000000000000000", "deleted": true}`,
			Input{Source: "github", Kind: "push", Push: &Push{Ref: "refs/heads/old", Before: "abc", After: "0000000000000000000000000000000000000000"}}},
		{"other event", "pull_request", `{"action": "opened", "number": 3}`,
			Input{Source: "github", Kind: "pull_request", Ignored: `GitHub event "pull_request" is not one firebreak acts on`}},
		{"other event with alerts-like body", "check_run", dispatch(`{"labels": 5}`),
			Input{Source: "github", Kind: "check_run", Ignored: `GitHub event "check_run" is not one firebreak acts on`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeGitHub(tc.kind, "event.json", []byte(tc.in))
			if err != nil {
				t.Fatalf("DecodeGitHub: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DecodeGitHub:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeGitHubErrors(t *testing.T) {
	tests := []struct {
		name, kind, in, want string
	}{
		{"no kind", "", `{}`, "no GitHub event name: a server has it from X-GitHub-Event, a workflow from $GITHUB_EVENT_NAME"},
		{"empty", "push", "", "event.json:1:1: empty input"},
		{"truncated", "push", `{"ref": "refs/heads/ma`, "event.json:1:23: invalid JSON: unexpected end of input"},
		{"array", "push", `[]`, "event.json:1:1: want a GitHub webhook object, got array"},

		{"no client_payload", "repository_dispatch", `{"action": "alert"}`, `event.json:1:1: missing field "client_payload", which holds the alerts`},
		{"client_payload string", "repository_dispatch", dispatch(`"x"`), "event.json:1:39: client_payload: want object, got string"},
		{"client_payload neither", "repository_dispatch", dispatch(`{"foo": 1}`), `event.json:1:39: client_payload: want an Alertmanager or Grafana webhook body, {"alerts": [...]} or an alert`},
		// Errors inside client_payload are positioned in the event file.
		{"alertmanager label", "repository_dispatch", "{\"client_payload\": {\"version\": \"4\",\n \"alerts\": [{\"labels\": {\"a\": 1}}]}}", "event.json:2:30: client_payload.alerts[0].labels.a: want string, got number"},
		{"alertmanager version", "repository_dispatch", dispatch(`{"version": "5", "alerts": []}`), `event.json:1:51: client_payload.version: unsupported Alertmanager webhook version "5", want "4"`},
		{"alertmanager empty", "repository_dispatch", dispatch(`{"version": "4", "alerts": []}`), "event.json:1:66: client_payload.alerts: no alerts"},
		{"normalized typo", "repository_dispatch", dispatch(`{"alerts": [{"lables": {}}]}`), `event.json:1:52: client_payload.alerts[0]: unknown field "lables" (did you mean "labels"?)`},
		{"normalized missing labels", "repository_dispatch", dispatch(`{"status": "firing"}`), `event.json:1:39: client_payload: missing field "labels"`},
		{"grafana value", "repository_dispatch", dispatch(`{"version": "1", "alerts": [{"values": {"B": "x"}}]}`), "event.json:1:84: client_payload.alerts[0].values.B: want number, got string"},

		{"no inputs", "workflow_dispatch", `{"ref": "refs/heads/main", "inputs": null}`, `event.json:1:1: no "inputs": firebreak needs the input "alert" or "alertname"`},
		{"inputs array", "workflow_dispatch", `{"inputs": []}`, "event.json:1:12: inputs: want object, got array"},
		{"no alert input", "workflow_dispatch", inputs(`"dry_run": "true"`), `event.json:1:59: inputs: no input "alert" or "alertname"`},
		{"both inputs", "workflow_dispatch", inputs(`"alert": "[]", "alertname": "A"`), `event.json:1:59: inputs: give the input "alert" or "alertname", not both`},
		{"alertname number", "workflow_dispatch", inputs(`"alertname": 5`), "event.json:1:73: inputs.alertname: want string, got number"},
		// Errors in an input that holds JSON are positioned in the input.
		{"alert input invalid", "workflow_dispatch", inputs(`"alert": "{\"labels\": {\"a\": 1}}"`), "event.json (inputs.alert):1:18: labels.a: want string, got number"},
		{"alert input truncated", "workflow_dispatch", inputs(`"alert": "[{\"labels\": "`), "event.json (inputs.alert):1:13: invalid JSON: unexpected end of input"},
		{"labels input JSON", "workflow_dispatch", inputs(`"alertname": "A", "labels": "{\"a\": [1]}"`), "event.json (inputs.labels):1:7: a: want string, got array"},
		{"labels input not JSON", "workflow_dispatch", inputs(`"alertname": "A", "labels": "{a=b}"`), "event.json (inputs.labels):1:2: invalid JSON: invalid character 'a' looking for beginning of object key string"},
		{"labels pair without =", "workflow_dispatch", inputs(`"alertname": "A", "labels": "a=b, c"`), `event.json:1:88: inputs.labels: want a JSON object or name=value pairs separated by commas, got "c"`},
		{"labels pair without name", "workflow_dispatch", inputs(`"alertname": "A", "labels": " =b"`), `event.json:1:88: inputs.labels: want a JSON object or name=value pairs separated by commas, got "=b"`},
		{"labels duplicate", "workflow_dispatch", inputs(`"alertname": "A", "labels": "a=1,a=2"`), `event.json:1:88: inputs.labels: duplicate name "a"`},
		{"alertname differs", "workflow_dispatch", inputs(`"alertname": "A", "labels": "alertname=B"`), `event.json:1:88: inputs.labels: alertname "B" differs from the input alertname "A"`},
		{"bad status", "workflow_dispatch", inputs(`"alertname": "A", "status": " Firing"`), `event.json:1:88: inputs.status: want one of firing, resolved, got "Firing"`},

		{"comment no action", "issue_comment", `{"issue": {"number": 1}, "comment": {"id": 2, "user": {"login": "x"}}}`, `event.json:1:1: missing field "action"`},
		{"comment no issue", "issue_comment", `{"action": "created", "comment": {}}`, `event.json:1:1: missing field "issue"`},
		{"issue number string", "issue_comment", `{"action": "created", "issue": {"number": "42"}}`, "event.json:1:43: issue.number: want integer, got string"},
		{"issue number negative", "issue_comment", `{"action": "created", "issue": {"number": -4}}`, "event.json:1:43: issue.number: want a non-negative integer, got -4"},
		{"comment id huge", "issue_comment", `{"action": "created", "issue": {"number": 4}, "comment": {"id": 99999999999999999999}}`, "event.json:1:65: comment.id: want a non-negative integer, got 99999999999999999999"},
		{"comment body number", "issue_comment", `{"action": "created", "issue": {"number": 4}, "comment": {"id": 1, "body": 5}}`, "event.json:1:76: comment.body: want string, got number"},
		{"comment no user", "issue_comment", `{"action": "created", "issue": {"number": 4}, "comment": {"id": 1}}`, `event.json:1:58: comment: missing field "user"`},
		{"comment no login", "issue_comment", `{"action": "created", "issue": {"number": 4}, "comment": {"id": 1, "user": {"id": 3}}}`, `event.json:1:76: comment.user: missing field "login"`},
		{"repository string", "issue_comment", `{"action": "created", "repository": "acme/ops"}`, "event.json:1:37: repository: want object, got string"},

		{"push no after", "push", `{"ref": "refs/heads/main", "before": "a"}`, `event.json:1:1: missing field "after"`},
		{"push ref number", "push", `{"ref": 1}`, "event.json:1:9: ref: want string, got number"},
		{"push full_name null is fine, number is not", "push", `{"ref": "r", "before": "a", "after": "b", "repository": {"full_name": 3}}`, "event.json:1:71: repository.full_name: want string, got number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := DecodeGitHub(tc.kind, "event.json", []byte(tc.in))
			if err == nil {
				t.Fatalf("DecodeGitHub = %+v, want error %q", in, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("DecodeGitHub error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

func TestGitHubMaxAlerts(t *testing.T) {
	payload := func(n int) []byte {
		return []byte(dispatch(`{"alerts": [` + strings.Repeat(`{"labels":{}},`, n-1) + `{"labels":{}}]}`))
	}
	in, err := DecodeGitHub("repository_dispatch", "big.json", payload(MaxAlerts))
	if err != nil || len(in.Alerts) != MaxAlerts {
		t.Fatalf("DecodeGitHub of MaxAlerts alerts = %d alerts, %v", len(in.Alerts), err)
	}
	_, err = DecodeGitHub("repository_dispatch", "big.json", payload(MaxAlerts+1))
	want := "big.json:1:1400051: client_payload.alerts: more than 100000 alerts"
	if err == nil || err.Error() != want {
		t.Errorf("DecodeGitHub of MaxAlerts+1 alerts: got %v, want %s", err, want)
	}
}
