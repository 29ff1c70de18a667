// Package stats computes the response figures of `firebreak stats` over
// incident records: time to detect, acknowledge, mitigate and recover as
// percentiles, incidents by severity and by owner, the step success rate
// and the automation rate. Definitions, which the command's help quotes,
// says exactly how each is computed.
//
// Percentiles are nearest-rank: the p-th percentile of n durations is the
// smallest of them such that at least p% of the n are less than or equal
// to it, which is the ceil(p×n/100)-th smallest (counting from 1). It is
// always one of the recorded durations, never an interpolation.
package stats

import (
	"cmp"
	"slices"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/run"
)

// Report holds the figures over a set of incidents. Durations are in
// seconds; a percentile or rate is null when nothing was there to compute
// it over.
type Report struct {
	// From is the start of the window: incidents opened at or after it
	// were kept. It is zero when every incident was kept.
	From time.Time `json:"from,omitzero"`
	// Incidents is how many incidents were kept.
	Incidents int `json:"incidents"`

	// MTTD is the time to detect: opened − detected.
	MTTD Figure `json:"mttd"`
	// MTTA is the time to acknowledge: acknowledged − opened.
	MTTA Figure `json:"mtta"`
	// TimeToMitigate is mitigated − opened.
	TimeToMitigate Figure `json:"time_to_mitigate"`
	// MTTR is the time to recover: resolved − detected.
	MTTR Figure `json:"mttr"`

	// BySeverity counts incidents by severity: critical, high, warning,
	// info, then any other severity by name.
	BySeverity []Count `json:"by_severity"`
	// ByOwner counts incidents by owner, most incidents first, then by
	// name.
	ByOwner []Count `json:"by_owner"`

	Steps      Steps      `json:"steps"`
	Automation Automation `json:"automation"`
}

// Figure is one response time over the incidents that have it.
type Figure struct {
	// Count is how many incidents the percentiles are computed over.
	Count int `json:"count"`
	// P50 and P90 are nearest-rank percentiles in seconds, nil when Count
	// is 0.
	P50 *float64 `json:"p50_seconds"`
	P90 *float64 `json:"p90_seconds"`
}

// Count is how many incidents have one severity or owner; Name is empty
// for incidents that have none.
type Count struct {
	Name      string `json:"name"`
	Incidents int    `json:"incidents"`
}

// Steps counts the steps of the kept incidents by outcome.
type Steps struct {
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	// Unfinished counts the steps of any other status (refused, skipped,
	// waiting, planned, …), which the success rate leaves out.
	Unfinished int `json:"unfinished"`
	// SuccessRate is Succeeded ÷ (Succeeded + Failed), between 0 and 1;
	// nil when no step succeeded or failed.
	SuccessRate *float64 `json:"success_rate"`
}

// Automation counts the incidents handled without a person, as
// Definitions says.
type Automation struct {
	Automated int `json:"automated"`
	Incidents int `json:"incidents"`
	// Rate is Automated ÷ Incidents, between 0 and 1; nil when there is
	// no incident.
	Rate *float64 `json:"rate"`
}

// Compute returns the figures over the incidents of ins (nil entries are
// ignored) whose Timestamps.Opened, or Detected when Opened is unset, is
// at or after now − since. A since of 0 keeps every incident, those with
// neither timestamp included; otherwise those are left out, as they
// cannot be placed in the window.
func Compute(ins []*incident.Incident, now time.Time, since time.Duration) Report {
	r := Report{BySeverity: []Count{}, ByOwner: []Count{}}
	if since > 0 {
		r.From = now.Add(-since).UTC()
	}
	var detect, ack, mitigate, recover []time.Duration
	severities, owners := map[string]int{}, map[string]int{}
	for _, in := range ins {
		if in == nil || !r.keeps(in) {
			continue
		}
		r.Incidents++
		d := in.Durations()
		detect = appendIf(detect, d.Detect, d.DetectOK)
		ack = appendIf(ack, d.Acknowledge, d.AcknowledgeOK)
		mitigate = appendIf(mitigate, d.Mitigate, d.MitigateOK)
		recover = appendIf(recover, d.Recover, d.RecoverOK)
		severities[in.Severity]++
		owners[in.Owner]++
		for _, s := range in.Steps {
			switch s.Status {
			case run.Succeeded:
				r.Steps.Succeeded++
			case run.Failed:
				r.Steps.Failed++
			default:
				r.Steps.Unfinished++
			}
		}
		if automated(in) {
			r.Automation.Automated++
		}
	}
	r.MTTD, r.MTTA, r.TimeToMitigate, r.MTTR = figure(detect), figure(ack), figure(mitigate), figure(recover)
	r.BySeverity = counts(severities, severityOrder)
	r.ByOwner = counts(owners, byIncidents)
	r.Steps.SuccessRate = ratio(r.Steps.Succeeded, r.Steps.Succeeded+r.Steps.Failed)
	r.Automation.Incidents = r.Incidents
	r.Automation.Rate = ratio(r.Automation.Automated, r.Incidents)
	return r
}

// keeps reports whether in falls in r's window.
func (r *Report) keeps(in *incident.Incident) bool {
	if r.From.IsZero() {
		return true
	}
	at := in.Timestamps.Opened
	if at.IsZero() {
		at = in.Timestamps.Detected
	}
	return !at.IsZero() && !at.Before(r.From)
}

// automated reports whether in reached mitigated or resolved with every
// step run by firebreak alone: it has steps, all succeeded, and none
// records an approval. A step that needed an approval and got it, or that
// failed, was refused, skipped or is waiting, makes the incident not
// automated; so does having no step at all, as nothing was automated.
func automated(in *incident.Incident) bool {
	if in.Status != incident.Mitigated && in.Status != incident.Resolved || len(in.Steps) == 0 {
		return false
	}
	for _, s := range in.Steps {
		if s.Status != run.Succeeded || s.ApprovedBy != "" || !s.ApprovedAt.IsZero() {
			return false
		}
	}
	return true
}

func appendIf(ds []time.Duration, d time.Duration, ok bool) []time.Duration {
	if ok {
		return append(ds, d)
	}
	return ds
}

func figure(ds []time.Duration) Figure {
	f := Figure{Count: len(ds)}
	if len(ds) == 0 {
		return f
	}
	slices.Sort(ds)
	f.P50, f.P90 = seconds(percentile(ds, 50)), seconds(percentile(ds, 90))
	return f
}

// percentile returns the nearest-rank p-th percentile of sorted, which is
// not empty: its ceil(p×n/100)-th smallest value, computed in integers so
// that no rounding can move the rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

func seconds(d time.Duration) *float64 {
	s := d.Seconds()
	return &s
}

func ratio(n, of int) *float64 {
	if of == 0 {
		return nil
	}
	r := float64(n) / float64(of)
	return &r
}

// severityRank puts the four severities of the schema first, in order of
// urgency; others come after, by name.
var severityRank = map[string]int{"critical": 1, "high": 2, "warning": 3, "info": 4}

func severityOrder(a, b Count) int {
	ra, rb := severityRank[a.Name], severityRank[b.Name]
	if ra == 0 {
		ra = len(severityRank) + 1
	}
	if rb == 0 {
		rb = len(severityRank) + 1
	}
	return cmp.Or(cmp.Compare(ra, rb), cmp.Compare(a.Name, b.Name))
}

func byIncidents(a, b Count) int {
	return cmp.Or(cmp.Compare(b.Incidents, a.Incidents), cmp.Compare(a.Name, b.Name))
}

func counts(m map[string]int, order func(a, b Count) int) []Count {
	out := make([]Count, 0, len(m))
	for name, n := range m {
		out = append(out, Count{Name: name, Incidents: n})
	}
	slices.SortFunc(out, order)
	return out
}
