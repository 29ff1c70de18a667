package stats

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/run"
)

// sample is a small report whose three formats are checked byte for
// byte.
func sample() Report {
	at := func(min int) time.Time { return now.Add(time.Duration(min) * time.Minute) }
	ins := []*incident.Incident{
		{Status: incident.Resolved, Severity: "critical", Owner: "@acme/payments",
			Timestamps: incident.Timestamps{Detected: at(-600), Opened: at(-598), Acknowledged: at(-590), Mitigated: at(-560), Resolved: at(-300)},
			Steps:      []incident.Step{{Status: run.Succeeded}, {Status: run.Succeeded}}},
		{Status: incident.Mitigated, Severity: "warning", Owner: "@acme/sre",
			Timestamps: incident.Timestamps{Detected: at(-3000), Opened: at(-2999), Mitigated: at(-2995)},
			Steps:      []incident.Step{{Status: run.Succeeded, ApprovedBy: "alice"}, {Status: run.Failed}, {Status: run.Skipped}}},
		{Status: incident.Open, Severity: "critical", Owner: "line\nbreak \x1b[31m|evil|",
			Timestamps: incident.Timestamps{Detected: at(-20), Opened: at(-25)}},
	}
	return Compute(ins, now, 7*24*time.Hour)
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `Incidents: 3, opened since 2026-11-14 12:00:00 UTC

FIGURE                                 N  P50  P90
MTTD (alert start → opened)            2  1m   2m
MTTA (opened → acknowledged)           1  8m   8m
Time to mitigate (opened → mitigated)  2  4m   38m
MTTR (detected → resolved)             1  5h   5h

SEVERITY  INCIDENTS
critical  2
warning   1

OWNER                   INCIDENTS
@acme/payments          1
@acme/sre               1
line break �[31m|evil|  1

Step success rate  75.0%  3 succeeded of 4 finished; 1 unfinished
Automation rate    33.3%  1 of 3 incidents
`
	if got := b.String(); got != want {
		t.Errorf("WriteTable:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	want := `**Incidents:** 3, opened since 2026-11-14 12:00:00 UTC

| Figure | n | p50 | p90 |
| --- | ---: | ---: | ---: |
| MTTD (alert start → opened) | 2 | 1m | 2m |
| MTTA (opened → acknowledged) | 1 | 8m | 8m |
| Time to mitigate (opened → mitigated) | 2 | 4m | 38m |
| MTTR (detected → resolved) | 1 | 5h | 5h |

| Severity | Incidents |
| --- | ---: |
| critical | 2 |
| warning | 1 |

| Owner | Incidents |
| --- | ---: |
| @` + "\u2060" + `acme/payments | 1 |
| @` + "\u2060" + `acme/sre | 1 |
| line break �\[31m\|evil\| | 1 |

| Rate | Value | Over |
| --- | ---: | --- |
| Step success rate | 75.0% | 3 succeeded of 4 finished; 1 unfinished |
| Automation rate | 33.3% | 1 of 3 incidents |
`
	if got := b.String(); got != want {
		t.Errorf("WriteMarkdown:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteJSON(t *testing.T) {
	for name, r := range map[string]Report{
		"sample":    sample(),
		"generated": Compute(generate(500), now, 0),
		"empty":     Compute(nil, now, 0),
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := r.WriteJSON(&b); err != nil {
				t.Fatal(err)
			}
			if !json.Valid(b.Bytes()) {
				t.Fatalf("WriteJSON is not valid JSON:\n%s", b.String())
			}
			var back Report
			if err := json.Unmarshal(b.Bytes(), &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, r) {
				t.Errorf("JSON round trip differs:\n%s", b.String())
			}
		})
	}

	var b bytes.Buffer
	if err := sample().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{
		`"from": "2026-11-14T12:00:00Z"`,
		`"incidents": 3`,
		`"mttd": {` + "\n" + `    "count": 2,` + "\n" + `    "p50_seconds": 60,` + "\n" + `    "p90_seconds": 120` + "\n  }",
		`"mtta": {` + "\n" + `    "count": 1,` + "\n" + `    "p50_seconds": 480,`,
		`"success_rate": 0.75`,
		`"rate": 0.3333333333333333`,
	} {
		if !strings.Contains(b.String(), field) {
			t.Errorf("WriteJSON lacks %s:\n%s", field, b.String())
		}
	}
	empty := Compute(nil, now, 0)
	b.Reset()
	if err := empty.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"p50_seconds": null`, `"by_severity": []`, `"success_rate": null`, `"rate": null`} {
		if !strings.Contains(b.String(), field) {
			t.Errorf("empty WriteJSON lacks %s:\n%s", field, b.String())
		}
	}
	if strings.Contains(b.String(), `"from"`) {
		t.Errorf("WriteJSON of every incident has a from:\n%s", b.String())
	}
}

// TestTableAligned checks on the generated report that every row of a
// table block starts its columns where the header does.
func TestTableAligned(t *testing.T) {
	var b bytes.Buffer
	if err := Compute(generate(500), now, 0).WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(b.String(), "\n\n")[1:] {
		lines := strings.Split(strings.TrimSuffix(block, "\n"), "\n")
		starts := columnStarts(lines[0])
		for _, l := range lines[1:] {
			if got := columnStarts(l); !reflect.DeepEqual(got, starts) {
				t.Errorf("row %q has columns at %v, header %q at %v", l, got, lines[0], starts)
			}
		}
	}
}

// columnStarts returns where, in characters, each column after the first
// starts: after a run of two or more spaces.
func columnStarts(l string) []int {
	var starts []int
	spaces := 0
	for i, r := range []rune(l) {
		if r == ' ' {
			spaces++
			continue
		}
		if spaces >= 2 {
			starts = append(starts, i)
		}
		spaces = 0
	}
	return starts
}

func TestEmptyFormats(t *testing.T) {
	r := Compute(nil, now, 0)
	var table, md bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	wantTable := `Incidents: 0, all recorded

FIGURE                                 N  P50  P90
MTTD (alert start → opened)            0  —    —
MTTA (opened → acknowledged)           0  —    —
Time to mitigate (opened → mitigated)  0  —    —
MTTR (detected → resolved)             0  —    —

Step success rate  —  0 succeeded of 0 finished; 0 unfinished
Automation rate    —  0 of 0 incidents
`
	if table.String() != wantTable {
		t.Errorf("WriteTable:\n%s\nwant:\n%s", table.String(), wantTable)
	}
	if strings.Contains(md.String(), "| Severity |") || !strings.Contains(md.String(), "| MTTR (detected → resolved) | 0 | — | — |") {
		t.Errorf("WriteMarkdown:\n%s", md.String())
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{400 * time.Millisecond, "0s"},
		{500 * time.Millisecond, "1s"},
		{45 * time.Second, "45s"},
		{time.Hour, "1h"},
		{time.Hour + 5*time.Second, "1h 5s"},
		{26*time.Hour + 3*time.Minute + 4*time.Second, "1d 2h 3m 4s"},
		{400 * 24 * time.Hour, "400d"},
	}
	for _, tc := range tests {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
