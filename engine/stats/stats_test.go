package stats

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/run"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// stepStatuses are every step status the engine writes, and one it does
// not, which must count as unfinished too.
var stepStatuses = []string{run.Succeeded, run.Failed, run.Refused, run.Skipped, run.Waiting, run.Planned, "denied"}

// generate returns n incidents, the same ones every time, with every
// case Compute must tell apart: unset and skewed timestamps, ties between
// durations, every step status, approvals, incidents outside any window
// and incidents with no time at all.
func generate(n int) []*incident.Incident {
	rng := rand.New(rand.NewPCG(2026, 11))
	severities := []string{"critical", "high", "warning", "info", "", "page-me"}
	owners := []string{"@acme/sre", "@acme/payments", "@alice", "", "@acme/db", "@bob"}
	statuses := []incident.Status{incident.Open, incident.Mitigated, incident.Resolved, incident.Resolved}
	// after returns a time some seconds after t, or unset, or before t
	// (clock skew). Small ranges make ties between incidents likely.
	after := func(t time.Time, maxSecs int) time.Time {
		switch rng.IntN(12) {
		case 0:
			return time.Time{}
		case 1:
			return t.Add(-time.Duration(1+rng.IntN(300)) * time.Second)
		case 2:
			return t // a zero duration
		}
		return t.Add(time.Duration(rng.IntN(maxSecs)) * time.Second)
	}
	var ins []*incident.Incident
	for i := range n {
		in := &incident.Incident{
			ID:       fmt.Sprintf("2026-11-21-gen-%04d", i),
			Severity: severities[rng.IntN(len(severities))],
			Owner:    owners[rng.IntN(len(owners))],
			Status:   statuses[rng.IntN(len(statuses))],
		}
		ts := &in.Timestamps
		ts.Opened = now.Add(-time.Duration(rng.IntN(90*24*3600)) * time.Second)
		switch rng.IntN(20) {
		case 0:
			ts.Detected = time.Time{}
		case 1:
			ts.Detected = ts.Opened.Add(time.Duration(1+rng.IntN(120)) * time.Second) // skewed
		default:
			ts.Detected = ts.Opened.Add(-time.Duration(rng.IntN(900)) * time.Second)
		}
		ts.Acknowledged = after(ts.Opened, 1800)
		if in.Status != incident.Open {
			ts.Mitigated = after(ts.Opened, 7200)
		}
		if in.Status == incident.Resolved {
			ts.Resolved = after(ts.Opened, 4*3600)
		}
		switch i % 50 {
		case 7:
			ts.Opened = time.Time{} // placed by Detected
		case 8:
			ts.Opened, ts.Detected = time.Time{}, time.Time{} // placed nowhere
		}
		steps := rng.IntN(6)
		for j := range steps {
			s := incident.Step{Name: fmt.Sprintf("step-%d", j), Action: "notify"}
			// Half the incidents only have succeeded steps, so that some
			// are automated.
			if rng.IntN(2) == 0 {
				s.Status = stepStatuses[rng.IntN(len(stepStatuses))]
			} else {
				s.Status = run.Succeeded
			}
			switch rng.IntN(10) {
			case 0:
				s.ApprovedBy = "alice"
			case 1:
				s.ApprovedAt = ts.Opened
			}
			in.Steps = append(in.Steps, s)
		}
		ins = append(ins, in)
		if i%100 == 42 {
			ins = append(ins, nil)
		}
	}
	return ins
}

// expect computes by hand, independently of Compute, what Compute must
// return.
func expect(ins []*incident.Incident, now time.Time, since time.Duration) Report {
	want := Report{BySeverity: []Count{}, ByOwner: []Count{}}
	var kept []*incident.Incident
	for _, in := range ins {
		if in == nil {
			continue
		}
		if since > 0 {
			want.From = now.Add(-since)
			at := in.Timestamps.Opened
			if at.IsZero() {
				at = in.Timestamps.Detected
			}
			if at.IsZero() || at.Before(now.Add(-since)) {
				continue
			}
		}
		kept = append(kept, in)
	}
	want.Incidents = len(kept)

	spans := func(from, to func(*incident.Incident) time.Time) Figure {
		var ds []time.Duration
		for _, in := range kept {
			f, t := from(in), to(in)
			if !f.IsZero() && !t.IsZero() && t.Sub(f) >= 0 {
				ds = append(ds, t.Sub(f))
			}
		}
		fig := Figure{Count: len(ds)}
		if len(ds) > 0 {
			p50, p90 := bruteNearestRank(ds, 50).Seconds(), bruteNearestRank(ds, 90).Seconds()
			fig.P50, fig.P90 = &p50, &p90
		}
		return fig
	}
	detected := func(in *incident.Incident) time.Time { return in.Timestamps.Detected }
	opened := func(in *incident.Incident) time.Time { return in.Timestamps.Opened }
	want.MTTD = spans(detected, opened)
	want.MTTA = spans(opened, func(in *incident.Incident) time.Time { return in.Timestamps.Acknowledged })
	want.TimeToMitigate = spans(opened, func(in *incident.Incident) time.Time { return in.Timestamps.Mitigated })
	want.MTTR = spans(detected, func(in *incident.Incident) time.Time { return in.Timestamps.Resolved })

	sev, own := map[string]int{}, map[string]int{}
	for _, in := range kept {
		sev[in.Severity]++
		own[in.Owner]++
	}
	for _, name := range []string{"critical", "high", "warning", "info"} {
		if sev[name] > 0 {
			want.BySeverity = append(want.BySeverity, Count{name, sev[name]})
		}
		delete(sev, name)
	}
	var others []string
	for name := range sev {
		others = append(others, name)
	}
	sort.Strings(others)
	for _, name := range others {
		want.BySeverity = append(want.BySeverity, Count{name, sev[name]})
	}
	for name, n := range own {
		want.ByOwner = append(want.ByOwner, Count{name, n})
	}
	sort.Slice(want.ByOwner, func(i, j int) bool {
		a, b := want.ByOwner[i], want.ByOwner[j]
		if a.Incidents != b.Incidents {
			return a.Incidents > b.Incidents
		}
		return a.Name < b.Name
	})

	for _, in := range kept {
		for _, s := range in.Steps {
			switch s.Status {
			case "succeeded":
				want.Steps.Succeeded++
			case "failed":
				want.Steps.Failed++
			default:
				want.Steps.Unfinished++
			}
		}
	}
	if finished := want.Steps.Succeeded + want.Steps.Failed; finished > 0 {
		r := float64(want.Steps.Succeeded) / float64(finished)
		want.Steps.SuccessRate = &r
	}

	for _, in := range kept {
		ok := (in.Status == "mitigated" || in.Status == "resolved") && len(in.Steps) > 0
		for _, s := range in.Steps {
			if s.Status != "succeeded" || s.ApprovedBy != "" || !s.ApprovedAt.IsZero() {
				ok = false
			}
		}
		if ok {
			want.Automation.Automated++
		}
	}
	want.Automation.Incidents = len(kept)
	if len(kept) > 0 {
		r := float64(want.Automation.Automated) / float64(len(kept))
		want.Automation.Rate = &r
	}
	return want
}

// bruteNearestRank is the definition read literally: the smallest value
// v of ds such that at least p% of ds are ≤ v.
func bruteNearestRank(ds []time.Duration, p int) time.Duration {
	best, found := time.Duration(0), false
	for _, v := range ds {
		atMost := 0
		for _, w := range ds {
			if w <= v {
				atMost++
			}
		}
		if atMost*100 >= p*len(ds) && (!found || v < best) {
			best, found = v, true
		}
	}
	return best
}

func TestComputeGenerated(t *testing.T) {
	ins := generate(500)
	checkCoverage(t, ins)
	for _, since := range []time.Duration{0, 30 * 24 * time.Hour, 7 * 24 * time.Hour, time.Hour, 365 * 24 * time.Hour} {
		t.Run(fmt.Sprint(since), func(t *testing.T) {
			got, want := Compute(ins, now, since), expect(ins, now, since)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Compute:\n%s\nwant:\n%s", jsonOf(t, got), jsonOf(t, want))
			}
			if since == 0 && got.Incidents != 500 {
				t.Errorf("kept %d incidents, want all 500", got.Incidents)
			}
		})
	}
}

// checkCoverage makes sure generate still produces every case the test
// relies on.
func checkCoverage(t *testing.T, ins []*incident.Incident) {
	t.Helper()
	seen := map[string]int{}
	for _, in := range ins {
		if in == nil {
			seen["nil"]++
			continue
		}
		ts, d := in.Timestamps, in.Durations()
		if ts.Opened.IsZero() && ts.Detected.IsZero() {
			seen["no time"]++
		}
		if !ts.Detected.IsZero() && !ts.Opened.IsZero() && !d.DetectOK {
			seen["skewed detect"]++
		}
		if !ts.Acknowledged.IsZero() && !ts.Opened.IsZero() && !d.AcknowledgeOK {
			seen["skewed acknowledge"]++
		}
		if ts.Acknowledged.IsZero() {
			seen["unset acknowledge"]++
		}
		if d.MitigateOK && d.Mitigate == 0 {
			seen["zero mitigate"]++
		}
		for _, s := range in.Steps {
			seen["step "+s.Status]++
		}
		if automated(in) {
			seen["automated"]++
		}
	}
	for _, c := range []string{"nil", "no time", "skewed detect", "skewed acknowledge", "unset acknowledge", "zero mitigate", "automated"} {
		if seen[c] == 0 {
			t.Errorf("generated incidents have no %q case", c)
		}
	}
	for _, s := range stepStatuses {
		if seen["step "+s] == 0 {
			t.Errorf("generated incidents have no step %s", s)
		}
	}
}

func jsonOf(t *testing.T, r Report) string {
	t.Helper()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func secs(s float64) *float64 { return &s }

func TestComputeEdges(t *testing.T) {
	at := func(min int) time.Time { return now.Add(time.Duration(min) * time.Minute) }
	one := &incident.Incident{
		Status: incident.Resolved, Severity: "high", Owner: "@acme/sre",
		Timestamps: incident.Timestamps{Detected: at(-60), Opened: at(-58), Acknowledged: at(-50), Mitigated: at(-40), Resolved: at(-10)},
		Steps:      []incident.Step{{Name: "restart", Status: run.Succeeded}},
	}
	unset := &incident.Incident{Status: incident.Open}
	tests := []struct {
		name  string
		ins   []*incident.Incident
		since time.Duration
		want  Report
	}{
		{"no incidents", nil, 0, Report{BySeverity: []Count{}, ByOwner: []Count{}}},
		{"only nil", []*incident.Incident{nil, nil}, 0, Report{BySeverity: []Count{}, ByOwner: []Count{}}},
		{"one", []*incident.Incident{one}, 0, Report{
			Incidents:      1,
			MTTD:           Figure{1, secs(120), secs(120)},
			MTTA:           Figure{1, secs(480), secs(480)},
			TimeToMitigate: Figure{1, secs(1080), secs(1080)},
			MTTR:           Figure{1, secs(3000), secs(3000)},
			BySeverity:     []Count{{"high", 1}},
			ByOwner:        []Count{{"@acme/sre", 1}},
			Steps:          Steps{Succeeded: 1, SuccessRate: secs(1)},
			Automation:     Automation{Automated: 1, Incidents: 1, Rate: secs(1)},
		}},
		{"one outside the window", []*incident.Incident{one}, 30 * time.Minute, Report{
			From: at(-30), BySeverity: []Count{}, ByOwner: []Count{},
		}},
		{"one at the window's start", []*incident.Incident{one}, 58 * time.Minute, func() Report {
			r := Compute([]*incident.Incident{one}, now, 0)
			r.From = at(-58)
			return r
		}()},
		{"all unset", []*incident.Incident{unset, unset}, 0, Report{
			Incidents:  2,
			BySeverity: []Count{{"", 2}},
			ByOwner:    []Count{{"", 2}},
			Automation: Automation{Incidents: 2, Rate: secs(0)},
		}},
		{"all unset with a window", []*incident.Incident{unset}, time.Hour, Report{
			From: at(-60), BySeverity: []Count{}, ByOwner: []Count{},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Compute(tc.ins, now, tc.since); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Compute:\n%s\nwant:\n%s", jsonOf(t, got), jsonOf(t, tc.want))
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		values   []int
		p50, p90 int
	}{
		{[]int{7}, 7, 7},
		{[]int{1, 2}, 1, 2},
		{[]int{1, 2, 3}, 2, 3},
		{[]int{1, 2, 3, 4}, 2, 4},
		{[]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 5, 9},
		{[]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 6, 10},
		{[]int{5, 5, 5, 9}, 5, 9},
		{[]int{0, 0, 0, 0, 0, 0, 0, 0, 0, 100}, 0, 0},
	}
	for _, tc := range tests {
		var ds []time.Duration
		for _, v := range tc.values {
			ds = append(ds, time.Duration(v))
		}
		if got := percentile(ds, 50); got != time.Duration(tc.p50) {
			t.Errorf("p50 of %v = %d, want %d", tc.values, got, tc.p50)
		}
		if got := percentile(ds, 90); got != time.Duration(tc.p90) {
			t.Errorf("p90 of %v = %d, want %d", tc.values, got, tc.p90)
		}
	}
	// The integer rank agrees with the definition for every n up to 200.
	for n := 1; n <= 200; n++ {
		ds := make([]time.Duration, n)
		for i := range ds {
			ds[i] = time.Duration(i)
		}
		for _, p := range []int{50, 90} {
			if got, want := percentile(ds, p), bruteNearestRank(ds, p); got != want {
				t.Fatalf("p%d of 0..%d = %d, want %d", p, n-1, got, want)
			}
		}
	}
}
