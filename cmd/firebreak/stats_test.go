package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
)

// statsIncidents returns n incident records, the same ones for the same
// now: severities and owners of every kind (the schema's four, another
// name, none), the three statuses, timestamps unset, equal, in order and
// skewed (a later one before an earlier one), steps of every status with
// and without approvals, and opening times spread over 90 days so that a
// --since window cuts through them. No opening (or detection, when it
// stands in) lies within an hour of now − 720h, so the window the test
// uses is not decided by the seconds between generating and running.
func statsIncidents(n int, now time.Time) []*incident.Incident {
	rng := rand.New(rand.NewPCG(500, 2026))
	severities := []string{"critical", "high", "warning", "info", "", "sev-custom"}
	owners := []string{"@acme/payments", "@acme/sre", "@alice", "", "@acme/db"}
	statuses := []incident.Status{incident.Open, incident.Mitigated, incident.Resolved, incident.Resolved}
	stepStatuses := []string{"succeeded", "succeeded", "succeeded", "failed", "refused", "skipped", "waiting", "denied", "pending", "running"}
	secs := func(max int) time.Duration { return time.Duration(rng.IntN(max)) * time.Second }
	// later is a time after t, or t itself, or unset, or before t.
	later := func(t time.Time, max int) time.Time {
		switch rng.IntN(10) {
		case 0:
			return time.Time{}
		case 1:
			return t.Add(-1 - secs(600)) // the later clock is behind
		case 2:
			return t
		}
		return t.Add(secs(max))
	}
	boundary := now.Add(-720 * time.Hour)
	var ins []*incident.Incident
	for i := range n {
		in := &incident.Incident{
			Title:    fmt.Sprintf("generated incident %d", i),
			Severity: severities[rng.IntN(len(severities))],
			Owner:    owners[rng.IntN(len(owners))],
			Status:   statuses[rng.IntN(len(statuses))],
			Playbook: "gen",
		}
		ts := &in.Timestamps
		ts.Opened = now.Add(-secs(90 * 24 * 3600))
		if d := ts.Opened.Sub(boundary); d > -time.Hour && d < time.Hour {
			ts.Opened = ts.Opened.Add(2 * time.Hour)
		}
		switch rng.IntN(10) {
		case 0:
			ts.Detected = time.Time{}
		case 1:
			ts.Detected = ts.Opened.Add(1 + secs(300)) // alert source's clock ahead
		default:
			ts.Detected = ts.Opened.Add(-secs(1200))
		}
		ts.Acknowledged = later(ts.Opened, 3600)
		if in.Status != incident.Open {
			ts.Mitigated = later(ts.Opened, 4*3600)
		}
		if in.Status == incident.Resolved {
			ts.Resolved = later(ts.Opened, 12*3600)
		}
		switch i % 40 {
		case 3:
			ts.Opened = time.Time{} // the window places it by detection
			if ts.Detected.IsZero() {
				ts.Detected = now.Add(-24 * time.Hour)
			}
		case 4:
			ts.Opened, ts.Detected = time.Time{}, time.Time{} // no window keeps it
		}
		for j := range rng.IntN(5) {
			s := incident.Step{Name: fmt.Sprintf("step-%d", j), Action: "notify", Status: "succeeded"}
			if rng.IntN(3) == 0 {
				s.Status = stepStatuses[rng.IntN(len(stepStatuses))]
			}
			switch rng.IntN(12) {
			case 0:
				s.ApprovedBy = "@alice"
			case 1:
				s.ApprovedAt = ts.Opened.Add(time.Minute)
			}
			in.Steps = append(in.Steps, s)
		}
		detected := ts.Detected
		if detected.IsZero() {
			detected = ts.Opened
		}
		in.ID = fmt.Sprintf("%s-gen-%04d", detected.UTC().Format(time.DateOnly), i)
		ins = append(ins, in)
	}
	return ins
}

// statsJSON is `firebreak stats --format json`, read without the stats
// package.
type statsJSON struct {
	From      *time.Time  `json:"from"`
	Incidents int         `json:"incidents"`
	MTTD      figureJSON  `json:"mttd"`
	MTTA      figureJSON  `json:"mtta"`
	Mitigate  figureJSON  `json:"time_to_mitigate"`
	MTTR      figureJSON  `json:"mttr"`
	Severity  []countJSON `json:"by_severity"`
	Owner     []countJSON `json:"by_owner"`
	Steps     struct {
		Succeeded, Failed, Unfinished int
		SuccessRate                   *float64 `json:"success_rate"`
	} `json:"steps"`
	Automation struct {
		Automated, Incidents int
		Rate                 *float64 `json:"rate"`
	} `json:"automation"`
}

type figureJSON struct {
	Count int      `json:"count"`
	P50   *float64 `json:"p50_seconds"`
	P90   *float64 `json:"p90_seconds"`
}

type countJSON struct {
	Name      string `json:"name"`
	Incidents int    `json:"incidents"`
}

// handStats computes, straight from the records and the definitions in
// `firebreak stats --help`, what the command must print.
func handStats(ins []*incident.Incident, now time.Time, since time.Duration) statsJSON {
	var want statsJSON
	var kept []*incident.Incident
	for _, in := range ins {
		at := in.Timestamps.Opened
		if at.IsZero() {
			at = in.Timestamps.Detected
		}
		if since == 0 || !at.IsZero() && !at.Before(now.Add(-since)) {
			kept = append(kept, in)
		}
	}
	want.Incidents = len(kept)
	// figure: the spans from → to that are set and not negative, and
	// their nearest-rank percentiles found by the definition itself:
	// the smallest span such that at least p% of all are ≤ it.
	figure := func(from, to func(incident.Timestamps) time.Time) figureJSON {
		var ds []time.Duration
		for _, in := range kept {
			f, t := from(in.Timestamps), to(in.Timestamps)
			if !f.IsZero() && !t.IsZero() && !t.Before(f) {
				ds = append(ds, t.Sub(f))
			}
		}
		fig := figureJSON{Count: len(ds)}
		pct := func(p int) *float64 {
			var best *float64
			for _, d := range ds {
				atMost := 0
				for _, e := range ds {
					if e <= d {
						atMost++
					}
				}
				if s := d.Seconds(); atMost*100 >= p*len(ds) && (best == nil || s < *best) {
					best = &s
				}
			}
			return best
		}
		fig.P50, fig.P90 = pct(50), pct(90)
		return fig
	}
	detected := func(ts incident.Timestamps) time.Time { return ts.Detected }
	opened := func(ts incident.Timestamps) time.Time { return ts.Opened }
	want.MTTD = figure(detected, opened)
	want.MTTA = figure(opened, func(ts incident.Timestamps) time.Time { return ts.Acknowledged })
	want.Mitigate = figure(opened, func(ts incident.Timestamps) time.Time { return ts.Mitigated })
	want.MTTR = figure(detected, func(ts incident.Timestamps) time.Time { return ts.Resolved })

	bySeverity, byOwner := map[string]int{}, map[string]int{}
	for _, in := range kept {
		bySeverity[in.Severity]++
		byOwner[in.Owner]++
	}
	want.Severity, want.Owner = []countJSON{}, []countJSON{}
	for _, s := range []string{"critical", "high", "warning", "info", "", "sev-custom"} { // "" sorts before other names
		if bySeverity[s] > 0 {
			want.Severity = append(want.Severity, countJSON{s, bySeverity[s]})
		}
	}
	for o, n := range byOwner {
		want.Owner = append(want.Owner, countJSON{o, n})
	}
	slices.SortFunc(want.Owner, func(a, b countJSON) int {
		if a.Incidents != b.Incidents {
			return b.Incidents - a.Incidents
		}
		return strings.Compare(a.Name, b.Name)
	})

	for _, in := range kept {
		automated := in.Status != incident.Open && len(in.Steps) > 0
		for _, s := range in.Steps {
			switch s.Status {
			case "succeeded":
				want.Steps.Succeeded++
			case "failed":
				want.Steps.Failed++
			default:
				want.Steps.Unfinished++
			}
			if s.Status != "succeeded" || s.ApprovedBy != "" || !s.ApprovedAt.IsZero() {
				automated = false
			}
		}
		if automated {
			want.Automation.Automated++
		}
	}
	if n := want.Steps.Succeeded + want.Steps.Failed; n > 0 {
		r := float64(want.Steps.Succeeded) / float64(n)
		want.Steps.SuccessRate = &r
	}
	want.Automation.Incidents = len(kept)
	if len(kept) > 0 {
		r := float64(want.Automation.Automated) / float64(len(kept))
		want.Automation.Rate = &r
	}
	return want
}

// TestStatsOnGeneratedIncidents commits 500 generated incident files (and
// one broken file) with the git CLI and checks every figure `firebreak
// stats` prints, over all of them and with --since, against figures
// computed by hand from the records; then that the table and Markdown
// formats show the same counts.
func TestStatsOnGeneratedIncidents(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	ins := statsIncidents(500, now)
	dir := t.TempDir()
	writeFile(t, dir, "firebreak.cue", pageConfig)
	writeFile(t, dir, "playbooks/page.cue", pagePlaybooks)
	seen := map[string]bool{}
	for _, in := range ins {
		data, err := incident.Marshal(in)
		if err != nil {
			t.Fatalf("incident %s: %v", in.ID, err)
		}
		p := incident.Path("incidents", in)
		if seen[p] {
			t.Fatalf("two incidents at %s", p)
		}
		seen[p] = true
		writeFile(t, dir, p, string(data))
	}
	// A record nobody can read is reported and left out, not fatal.
	writeFile(t, dir, "incidents/2026/01/2026-01-01-broken-0000.md", "---\nid: [\n---\n")
	gitInit(t, dir)
	if n := strings.Count(gitOut(t, dir, "ls-files", "incidents"), "\n"); n != 501 {
		t.Fatalf("%d incident files committed, want 501", n)
	}

	stats := func(t *testing.T, args ...string) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := execute(t.Context(), append(append([]string{"stats"}, args...), dir), &stdout, &stderr); code != 0 {
			t.Fatalf("stats %v: exit %d\n%s", args, code, stderr.String())
		}
		return stdout.String(), stderr.String()
	}

	for _, tc := range []struct {
		name  string
		since time.Duration
		args  []string
	}{
		{"all", 0, nil},
		{"since 720h", 720 * time.Hour, []string{"--since", "720h"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut := stats(t, append([]string{"--format", "json"}, tc.args...)...)
			if !strings.Contains(errOut, "skipped: incidents/2026/01/2026-01-01-broken-0000.md") {
				t.Errorf("the broken record is not reported on stderr:\n%s", errOut)
			}
			var got statsJSON
			dec := json.NewDecoder(strings.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("stats --format json: %v\n%s", err, out)
			}
			want := handStats(ins, now, tc.since)
			// The window starts at the command's own now less since: a
			// moment after the test's.
			switch {
			case tc.since == 0 && got.From != nil:
				t.Errorf("from = %v over every incident, want none", got.From)
			case tc.since > 0 && (got.From == nil || got.From.Sub(now.Add(-tc.since)) < 0 || got.From.Sub(now.Add(-tc.since)) > time.Minute):
				t.Errorf("from = %v, want about %v", got.From, now.Add(-tc.since))
			}
			got.From = nil
			if want.Incidents < 100 || tc.since > 0 && want.Incidents > 400 {
				t.Fatalf("the generated window keeps %d incidents: not a test of it", want.Incidents)
			}
			compareStats(t, got, want)

			// The text formats carry the same counts.
			table, _ := stats(t, append([]string{"--format", "table"}, tc.args...)...)
			markdown, _ := stats(t, append([]string{"--format", "markdown"}, tc.args...)...)
			if !strings.HasPrefix(table, fmt.Sprintf("Incidents: %d, ", want.Incidents)) ||
				!strings.HasPrefix(markdown, fmt.Sprintf("**Incidents:** %d, ", want.Incidents)) {
				t.Errorf("headline: table %q, markdown %q", firstLine(table), firstLine(markdown))
			}
			severities := block(table, "SEVERITY")
			rate := strconv.FormatFloat(*want.Steps.SuccessRate*100, 'f', 1, 64) + "%"
			for _, c := range want.Severity {
				name := c.Name
				if name == "" {
					name = "(none)"
				}
				if !containsRow(severities, name, strconv.Itoa(c.Incidents)) {
					t.Errorf("table lacks severity %s with %d:\n%s", name, c.Incidents, table)
				}
				if !strings.Contains(markdown, fmt.Sprintf("| %s | %d |\n", name, c.Incidents)) {
					t.Errorf("markdown lacks severity %s with %d:\n%s", name, c.Incidents, markdown)
				}
			}
			if !containsRow(table, "Step", "success", "rate", rate) || !strings.Contains(markdown, "| Step success rate | "+rate+" |") {
				t.Errorf("step success rate %s not shown:\n%s\n%s", rate, table, markdown)
			}
			for _, row := range []string{"MTTD", "MTTA", "Time to mitigate", "MTTR"} {
				if !strings.Contains(table, row) || !strings.Contains(markdown, "| "+row) {
					t.Errorf("%s row missing", row)
				}
			}
		})
	}

	var stdout, stderr bytes.Buffer
	if code := execute(t.Context(), []string{"stats", "--format", "yaml", dir}, &stdout, &stderr); code != exitUsage {
		t.Errorf("--format yaml: exit %d, want %d", code, exitUsage)
	}
}

func compareStats(t *testing.T, got, want statsJSON) {
	t.Helper()
	if got.Incidents != want.Incidents {
		t.Errorf("incidents %d, want %d", got.Incidents, want.Incidents)
	}
	for _, f := range []struct {
		name      string
		got, want figureJSON
	}{{"mttd", got.MTTD, want.MTTD}, {"mtta", got.MTTA, want.MTTA}, {"time_to_mitigate", got.Mitigate, want.Mitigate}, {"mttr", got.MTTR, want.MTTR}} {
		if f.got.Count != f.want.Count || !sameFloat(f.got.P50, f.want.P50) || !sameFloat(f.got.P90, f.want.P90) {
			t.Errorf("%s: n %d p50 %s p90 %s, want n %d p50 %s p90 %s", f.name,
				f.got.Count, floatText(f.got.P50), floatText(f.got.P90), f.want.Count, floatText(f.want.P50), floatText(f.want.P90))
		}
		if f.want.Count < 50 {
			t.Errorf("%s over %d incidents only: the generator is not testing it", f.name, f.want.Count)
		}
	}
	if !slices.Equal(got.Severity, want.Severity) {
		t.Errorf("by severity %v, want %v", got.Severity, want.Severity)
	}
	if !slices.Equal(got.Owner, want.Owner) {
		t.Errorf("by owner %v, want %v", got.Owner, want.Owner)
	}
	if got.Steps.Succeeded != want.Steps.Succeeded || got.Steps.Failed != want.Steps.Failed || got.Steps.Unfinished != want.Steps.Unfinished ||
		!sameFloat(got.Steps.SuccessRate, want.Steps.SuccessRate) {
		t.Errorf("steps %+v rate %s, want %+v rate %s", got.Steps, floatText(got.Steps.SuccessRate), want.Steps, floatText(want.Steps.SuccessRate))
	}
	if got.Automation.Automated != want.Automation.Automated || got.Automation.Incidents != want.Automation.Incidents ||
		!sameFloat(got.Automation.Rate, want.Automation.Rate) {
		t.Errorf("automation %+v rate %s, want %+v rate %s", got.Automation, floatText(got.Automation.Rate), want.Automation, floatText(want.Automation.Rate))
	}
	if want.Automation.Automated == 0 || want.Automation.Automated == want.Incidents {
		t.Errorf("%d of %d automated: the generator is not testing it", want.Automation.Automated, want.Incidents)
	}
}

// sameFloat compares two figures that must be the same float64 computed
// the same way (a ratio of integers, or whole seconds).
func sameFloat(a, b *float64) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func floatText(f *float64) string {
	if f == nil {
		return "null"
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}

// containsRow reports whether some line of text has exactly the fields
// given, in order, separated by any white space.
func containsRow(text string, fields ...string) bool {
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) >= len(fields) && slices.Equal(f[:len(fields)], fields) {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// block returns the paragraph of text whose first line starts with head.
func block(text, head string) string {
	for _, b := range strings.Split(text, "\n\n") {
		if strings.HasPrefix(b, head) {
			return b
		}
	}
	return ""
}
