package alert

import (
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

// checkError checks that err is an *Error on one line of bounded length, at
// a position inside data.
func checkError(t *testing.T, fn string, data []byte, err error) {
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v is a %T, want *Error", fn, err, err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") || len(msg) > 400 {
		t.Fatalf("%s: error is not one short line: %q", fn, msg)
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
