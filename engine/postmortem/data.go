package postmortem

import (
	"cmp"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
)

// Bounds of the draft, which is for people to read and edit; the
// incident file has everything.
const (
	maxTitle    = 200 // runes of the title
	maxText     = 300 // runes of an event text, step result or error
	maxValue    = 120 // runes of a label value, name, target or status
	maxEvents   = 500 // rows of the timeline
	maxSteps    = 500 // rows of the actions
	maxServices = 20  // services listed in the impact
)

// none stands for a time or value that is not known.
const none = "—"

// Data is what a postmortem template receives. Every string field is
// Markdown ready to write inline (a paragraph, a list item, a table
// cell): values of the record are escaped with incident.EscapeMarkdown,
// times are "2006-01-02 15:04:05 UTC" and durations "1h 2m 3s", "—"
// when unknown. Raw, Durations and Links are not escaped.
type Data struct {
	// ID is the incident id, Title its title, or the id when it has none.
	ID    string
	Title string

	Playbook string
	// PlaybooksCommit is the first 12 hex digits of the playbooks'
	// commit, empty when unknown.
	PlaybooksCommit string
	Owner           string
	Severity        string
	Status          string
	// Group holds the group labels, by name.
	Group []Label

	// Incident is a link to the incident's file; Issue a link to its
	// issue, "#12" without IssueURL, "—" when there is none.
	Incident string
	Issue    string

	Detected, Opened, Acknowledged, Mitigated, Resolved string

	// TimeToDetect is Opened − Detected, TimeToAcknowledge Acknowledged −
	// Opened, TimeToMitigate Mitigated − Opened, TimeToRecover Resolved −
	// Detected (see incident.Durations).
	TimeToDetect, TimeToAcknowledge, TimeToMitigate, TimeToRecover string

	Impact Impact
	// Timeline holds the first 500 events of the record, in order;
	// MoreEvents counts those left out.
	Timeline   []Event
	MoreEvents int
	// Steps holds the first 500 steps of the record, in order; MoreSteps
	// counts those left out.
	Steps     []Step
	MoreSteps int

	// Raw is the record as given, unescaped: pass its strings through
	// escape.
	Raw *incident.Incident
	// Durations are the record's response times, unescaped.
	Durations incident.Durations
	// Links are the links given to Draft, unescaped.
	Links Links
}

// Label is one group label.
type Label struct {
	Name, Value string
}

// Impact is what the incident affected.
type Impact struct {
	// Duration is from the first alert to resolution, as TimeToRecover.
	Duration string
	// Alerts is how many alerts the incident grouped.
	Alerts int
	// Services are the distinct values of the alerts' service label, by
	// name, at most 20, MoreServices counting the others; when no alert
	// has one, the group's service label, if any.
	Services     []string
	MoreServices int
}

// Event is one timeline entry.
type Event struct {
	At, Kind, Text string
}

// Step is what happened to one step of the playbook.
type Step struct {
	Name, Action, Target, Status string
	Started, Finished            string
	Result, Error                string
	// Commit is the step's commit, its first 12 hex digits linked to
	// Links.RepoURL when there is one; empty when there is none.
	Commit string
	// ApprovedBy is who approved the step, empty when nobody had to.
	ApprovedBy string
	ApprovedAt string
	// Outcome is Result, "error: " Error and "approved by" ApprovedBy
	// at ApprovedAt, joined by "; ", for a single table cell.
	Outcome string
}

func newData(in *incident.Incident, links Links) Data {
	d := Data{
		ID:              escape(in.ID, maxValue),
		Title:           escape(cmp.Or(in.Title, in.ID), maxTitle),
		Playbook:        escape(in.Playbook, maxValue),
		PlaybooksCommit: shortCommit(in.PlaybooksCommit),
		Owner:           escape(in.Owner, maxValue),
		Severity:        escape(in.Severity, maxValue),
		Status:          escape(string(in.Status), maxValue),
		Incident:        incidentLink(in, links.IncidentFile),
		Issue:           issueLink(in.Issue, links.IssueURL),
		Raw:             clone(in),
		Durations:       in.Durations(),
		Links:           links,
	}
	for _, k := range slices.Sorted(maps.Keys(in.Group)) {
		d.Group = append(d.Group, Label{escape(k, maxValue), escape(in.Group[k], maxValue)})
	}

	ts := in.Timestamps
	d.Detected, d.Opened, d.Acknowledged = clock(ts.Detected), clock(ts.Opened), clock(ts.Acknowledged)
	d.Mitigated, d.Resolved = clock(ts.Mitigated), clock(ts.Resolved)
	du := d.Durations
	d.TimeToDetect = durationOr(du.Detect, du.DetectOK)
	d.TimeToAcknowledge = durationOr(du.Acknowledge, du.AcknowledgeOK)
	d.TimeToMitigate = durationOr(du.Mitigate, du.MitigateOK)
	d.TimeToRecover = durationOr(du.Recover, du.RecoverOK)

	d.Impact = Impact{Duration: d.TimeToRecover, Alerts: len(in.Alerts)}
	services := services(in)
	for i, s := range services {
		if i == maxServices {
			d.Impact.MoreServices = len(services) - i
			break
		}
		d.Impact.Services = append(d.Impact.Services, escape(s, maxValue))
	}

	for i, e := range in.Timeline {
		if i == maxEvents {
			d.MoreEvents = len(in.Timeline) - i
			break
		}
		d.Timeline = append(d.Timeline, Event{At: clock(e.At), Kind: escape(e.Kind, maxValue), Text: escape(e.Text, maxText)})
	}
	for i, s := range in.Steps {
		if i == maxSteps {
			d.MoreSteps = len(in.Steps) - i
			break
		}
		d.Steps = append(d.Steps, newStep(s, links.RepoURL))
	}
	return d
}

func newStep(s incident.Step, repoURL string) Step {
	st := Step{
		Name: escape(s.Name, maxValue), Action: escape(s.Action, maxValue),
		Target: escape(s.Target, maxValue), Status: escape(s.Status, maxValue),
		Started: clock(s.Started), Finished: clock(s.Finished),
		Result: escape(s.Result, maxText), Error: escape(s.Error, maxText),
		Commit:     commitLink(s.Commit, repoURL),
		ApprovedBy: escape(s.ApprovedBy, maxValue),
	}
	if !s.ApprovedAt.IsZero() {
		st.ApprovedAt = clock(s.ApprovedAt)
	}
	var outcome []string
	if st.Result != "" {
		outcome = append(outcome, st.Result)
	}
	if st.Error != "" {
		outcome = append(outcome, "error: "+st.Error)
	}
	if st.ApprovedBy != "" {
		approved := "approved by " + st.ApprovedBy
		if st.ApprovedAt != "" {
			approved += " at " + st.ApprovedAt
		}
		outcome = append(outcome, approved)
	}
	st.Outcome = strings.Join(outcome, "; ")
	return st
}

// clone returns a deep copy of in, so that a template calling one of
// Raw's methods, {{.Raw.SetAlert (index .Raw.Alerts 0)}} say, cannot
// change the caller's record.
func clone(in *incident.Incident) *incident.Incident {
	c := *in
	c.Group = maps.Clone(in.Group)
	c.Alerts = slices.Clone(in.Alerts)
	for i := range c.Alerts {
		c.Alerts[i].Labels = maps.Clone(c.Alerts[i].Labels)
	}
	c.Steps = slices.Clone(in.Steps)
	c.Timeline = slices.Clone(in.Timeline)
	return &c
}

// services returns the distinct service labels of in's alerts, sorted,
// or the group's service label when no alert has one.
func services(in *incident.Incident) []string {
	seen := map[string]bool{}
	for _, a := range in.Alerts {
		if s := a.Labels["service"]; s != "" {
			seen[s] = true
		}
	}
	if len(seen) == 0 && in.Group["service"] != "" {
		seen[in.Group["service"]] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

func escape(s string, maxRunes int) string {
	return incident.EscapeMarkdown(s, maxRunes)
}

// clock is how the draft shows a time: UTC, to the second, "—" when
// unset.
func clock(t time.Time) string {
	if t.IsZero() {
		return none
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

func durationOr(d time.Duration, ok bool) string {
	if !ok {
		return none
	}
	return humanDuration(d)
}

// humanDuration writes d as days, hours, minutes and seconds, rounded to
// the second, leaving out the units that are zero: "1d 2h 5s", "45m",
// "0s". It is the format of firebreak stats.
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d <= 0 {
		return "0s"
	}
	var parts []string
	for _, u := range []struct {
		suffix string
		size   time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if n := d / u.size; n > 0 {
			parts = append(parts, fmt.Sprintf("%d%s", n, u.suffix))
			d -= n * u.size
		}
	}
	return strings.Join(parts, " ")
}

var hexCommit = regexp.MustCompile(`^[0-9a-f]{40}(?:[0-9a-f]{24})?$`)

// shortCommit shows a commit id by its first 12 hex digits, and anything
// else escaped.
func shortCommit(c string) string {
	if hexCommit.MatchString(c) {
		return c[:12]
	}
	return escape(c, maxValue)
}

// commitLink is c short, linked to the commit on repoURL when c is a
// commit id and repoURL a safe web address.
func commitLink(c, repoURL string) string {
	if hexCommit.MatchString(c) && safeURL(repoURL) {
		return "[" + c[:12] + "](" + strings.TrimSuffix(repoURL, "/") + "/commit/" + c + ")"
	}
	return shortCommit(c)
}

// incidentLink links to the incident's file relative to postmortems/,
// so that it works on any branch and any host.
func incidentLink(in *incident.Incident, file string) string {
	if file == "" {
		file = incident.Path("incidents", in)
	}
	if !safePath.MatchString(file) || slices.Contains(strings.Split(file, "/"), "..") {
		return escape(file, maxValue)
	}
	return "[" + escape(file, 0) + "](../" + file + ")"
}

func issueLink(n int, issueURL string) string {
	text := "issue"
	if n > 0 {
		text = fmt.Sprintf("#%d", n)
	}
	switch {
	case safeURL(issueURL):
		return "[" + text + "](" + issueURL + ")"
	case n > 0:
		return text
	}
	return none
}

var (
	// safePath is a relative path of letters, digits and . _ - only.
	safePath = regexp.MustCompile(`^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$`)
	// urlChars are the characters a link destination may hold without
	// ending it early or opening anything: no space, quote, parenthesis,
	// angle or square bracket, backslash or backtick.
	urlChars = regexp.MustCompile(`^[A-Za-z0-9._~:/?#@!$&*+,;=%-]+$`)
)

// safeURL reports whether u is an http(s) address that can be written as
// a Markdown link destination as it is. Links come from firebreak's own
// configuration, but a bad one must not break the draft either.
func safeURL(u string) bool {
	if !urlChars.MatchString(u) {
		return false
	}
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "https" || p.Scheme == "http") && p.Host != ""
}
