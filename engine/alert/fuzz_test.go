package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/firebreak-dev/firebreak/schema"
)

// FuzzDecode checks that no input makes a decoder panic; that an error is
// one short line at a position inside the input; and that what decodes is
// valid and survives a round trip through encoding/json and
// DecodeNormalized unchanged.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(fixtures, "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures in %s (err %v)", fixtures, err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range errorCases {
		f.Add([]byte(tc.in))
	}
	for _, tc := range normalCases {
		f.Add([]byte(tc.in))
	}
	addSeeds(f, "grafana")

	f.Fuzz(func(t *testing.T, data []byte) {
		for fn, decode := range decoders {
			alerts, err := decode("fuzz.json", data)
			if err != nil {
				checkError(t, fn, data, err)
				continue
			}
			checkAlerts(t, fn, alerts)
		}
	})
}

// FuzzGrafana checks DecodeGrafana, and Decode and DecodeSource on the same
// input, as FuzzDecode does.
func FuzzGrafana(f *testing.F) {
	addSeeds(f, "grafana")
	for _, tc := range grafanaCases {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(`{"version": "1", "alerts": [{"values": {"B": 1e999, "C": "NaN"}}]}`))
	f.Add([]byte(`{"evalMatches": [], "state": "alerting"}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		alerts, _, err := DecodeGrafana("fuzz.json", data)
		if err != nil {
			checkError(t, "DecodeGrafana", data, err)
		} else {
			checkAlerts(t, "DecodeGrafana", alerts)
			for _, a := range alerts {
				if a.Source != "grafana" {
					t.Fatalf("DecodeGrafana: source %q", a.Source)
				}
			}
		}
		checkSource(t, "auto", data)
	})
}

// FuzzPagerDuty checks DecodePagerDuty as FuzzDecode checks the alert
// decoders, and that VerifyPagerDuty takes any header.
func FuzzPagerDuty(f *testing.F) {
	addSeeds(f, "pagerduty")
	f.Add([]byte(`{"event": {"event_type": "incident.resolved", "data": {"id": "P", "number": 1e3}}}`))
	f.Add([]byte(`{"messages": []}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := DecodePagerDuty("fuzz.json", data)
		if err != nil {
			checkError(t, "DecodePagerDuty", data, err)
		} else {
			checkInput(t, "DecodePagerDuty", in)
			if in.Alerts != nil {
				checkAlerts(t, "DecodePagerDuty", in.Alerts)
			}
		}
		checkSource(t, "pagerduty", data)
		checkSource(t, "auto", data)
		// The data as a header: any header is answered, none panics.
		if VerifyPagerDuty([]byte(pdSecret), data, string(data)) == nil {
			t.Fatalf("VerifyPagerDuty accepted the body as its own signature")
		}
	})
}

// githubOps are what FuzzGitHubEvent does with an input: decode it as one
// kind of event, or with DecodeSource as "github" or "auto". One operation
// per run keeps runs cheap, which matters when the fuzzer minimizes an
// input of a few kilobytes.
var githubOps = []string{"repository_dispatch", "workflow_dispatch", "issue_comment", "push", "ping", "github", "auto"}

// FuzzGitHubEvent checks DecodeGitHub, and DecodeSource's telling the kind
// of event from its shape, as FuzzDecode checks the alert decoders.
func FuzzGitHubEvent(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(sourceFixtures, "github", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no GitHub fixtures (err %v)", err)
	}
	for _, file := range files {
		kind, _, _ := strings.Cut(strings.TrimSuffix(filepath.Base(file), ".json"), "-")
		op := slices.Index(githubOps, kind)
		data := readCompact(f, file)
		f.Add(uint8(op), data)
		f.Add(uint8(len(githubOps)-2), data) // as "github"
	}
	f.Add(uint8(0), []byte(dispatch(`{"version": "4", "alerts": [{"labels": {"a": "b"}}]}`)))
	f.Add(uint8(0), []byte(dispatch(`{"version": "1", "alerts": [{"values": {"B": 1}}]}`)))
	f.Add(uint8(1), []byte(inputs(`"alert": "[{\"labels\": {}}]"`)))
	f.Add(uint8(1), []byte(inputs(`"alertname": "A", "labels": "{\"a\": \"b\"}", "annotations": "x=1, y=\"2\"", "status": "resolved"`)))
	f.Add(uint8(2), []byte(`{"action": "created", "issue": {"number": 1}, "comment": {"id": 2, "body": "/approve", "user": {"login": "x"}}}`))
	f.Add(uint8(3), []byte(`{"ref": "r", "before": "a", "after": "b", "repository": {"full_name": "o/r"}}`))

	f.Fuzz(func(t *testing.T, op uint8, data []byte) {
		kind := githubOps[int(op)%len(githubOps)]
		if kind == "github" || kind == "auto" {
			checkSource(t, kind, data)
			return
		}
		in, err := DecodeGitHub(kind, "fuzz.json", data)
		if err != nil {
			checkError(t, "DecodeGitHub "+kind, data, err)
		} else {
			checkInput(t, "DecodeGitHub "+kind, in)
			if in.Alerts != nil {
				checkAlerts(t, "DecodeGitHub "+kind, in.Alerts)
			}
		}
		if VerifyGitHub([]byte("s"), data, string(data)) == nil {
			t.Fatalf("VerifyGitHub accepted the body as its own signature")
		}
	})
}

// addSeeds adds the fixtures of a source to f's corpus.
func addSeeds(f *testing.F, dir string) {
	files, err := filepath.Glob(filepath.Join(sourceFixtures, dir, "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures in %s (err %v)", dir, err)
	}
	for _, file := range files {
		f.Add(readCompact(f, file))
	}
}

// readCompact returns the JSON file without its indentation: smaller seeds
// are quicker for the fuzzer to minimize.
func readCompact(f *testing.F, file string) []byte {
	data, err := os.ReadFile(file)
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		f.Fatalf("%s: %v", file, err)
	}
	return buf.Bytes()
}

// checkSource checks DecodeSource of data as source.
func checkSource(t *testing.T, source string, data []byte) {
	in, err := DecodeSource(source, "fuzz.json", data)
	if err != nil {
		checkError(t, "DecodeSource "+source, data, err)
		return
	}
	checkInput(t, "DecodeSource "+source, in)
	if in.Alerts != nil {
		checkAlerts(t, "DecodeSource "+source, in.Alerts)
	}
}

// checkError checks that err is an *Error on one line of bounded length, at
// a position inside data. An error in an input holding JSON of its own
// (workflow_dispatch's) is positioned within that input, which is not
// checked here.
func checkError(t *testing.T, fn string, data []byte, err error) {
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v is a %T, want *Error", fn, err, err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") || len(msg) > 400 {
		t.Fatalf("%s: error is not one short line: %q", fn, msg)
	}
	if e.Name != "fuzz.json" {
		if !slices.Contains([]string{"fuzz.json (inputs.alert)", "fuzz.json (inputs.labels)", "fuzz.json (inputs.annotations)"}, e.Name) {
			t.Fatalf("%s: error %s names %q", fn, msg, e.Name)
		}
		return
	}
	lines := strings.Split(string(data), "\n")
	if e.Line < 1 || e.Line > len(lines) || e.Column < 1 || e.Column > len(lines[e.Line-1])+1 {
		t.Fatalf("%s: error %s is outside the input", fn, msg)
	}
}

// checkAlerts checks decoded alerts and their round trip.
func checkAlerts(t *testing.T, fn string, alerts []schema.Alert) {
	if len(alerts) == 0 || len(alerts) > MaxAlerts {
		t.Fatalf("%s: %d alerts", fn, len(alerts))
	}
	for i, a := range alerts {
		if !slices.Contains(statuses, a.Status) || !slices.Contains(sources, a.Source) {
			t.Fatalf("%s: alert %d has status %q and source %q", fn, i, a.Status, a.Source)
		}
		if a.Labels == nil || a.Annotations == nil {
			t.Fatalf("%s: alert %d has a nil map", fn, i)
		}
	}
	out, err := json.Marshal(alerts)
	if err != nil {
		t.Fatalf("%s: encode: %v", fn, err)
	}
	again, err := DecodeNormalized("again.json", out)
	if err != nil {
		t.Fatalf("%s: decode %s again: %v", fn, out, err)
	}
	if !reflect.DeepEqual(again, alerts) {
		t.Fatalf("%s: round trip changed the alerts:\n got %+v\nwant %+v", fn, again, alerts)
	}
}
