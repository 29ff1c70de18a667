// Package replay shows what a change to a playbook repository would do: it
// replays alerts — those of the playbook tests and of past incidents —
// against the repository at a base revision and as changed, and reports
// the alerts that now match differently, the steps that changed, new
// approvals, and the changes to playbooks and policy. It has no side
// effects; `firebreak replay` prints its report, for a terminal or as a
// pull-request comment.
package replay

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/plan"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

// Origin kinds.
const (
	FromTest     = "test"
	FromIncident = "incident"
)

// Source is one alert to replay and where it came from.
type Source struct {
	Alert  schema.Alert
	Origin Origin
}

// Origin is a playbook test or a recorded incident an alert came from.
type Origin struct {
	Kind string `json:"kind"` // FromTest or FromIncident
	Name string `json:"name"` // the test's name or the incident's id
	File string `json:"file,omitempty"`
}

// String is "test NAME" or "incident ID".
func (o Origin) String() string { return o.Kind + " " + o.Name }

// TestSources returns the alerts of r's playbook tests; nil for nil r.
func TestSources(r *repo.Repo) []Source {
	if r == nil {
		return nil
	}
	out := make([]Source, 0, len(r.Tests))
	for _, t := range r.Tests {
		out = append(out, Source{Alert: t.Alert, Origin: Origin{Kind: FromTest, Name: t.Name, File: t.File}})
	}
	return out
}

// IncidentSources returns the alerts recorded in ins, made back into
// firing alerts. The record keeps labels and annotations but not the
// alert's source, so the alerts come back as "generic"; fingerprint and
// times describe a past moment, not what matching and planning look at,
// and are left out, so that alerts alike in labels and annotations are
// replayed once.
func IncidentSources(ins []*incident.Incident) []Source {
	var out []Source
	for _, in := range ins {
		for _, a := range in.Alerts {
			out = append(out, Source{
				Alert: schema.Alert{
					Source:      "generic",
					Status:      "firing",
					Labels:      nonNil(a.Labels),
					Annotations: nonNil(a.Annotations),
				},
				Origin: Origin{Kind: FromIncident, Name: in.ID},
			})
		}
	}
	return out
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

// maxIncidentFile bounds the incident files ReadIncidents reads.
const maxIncidentFile = 8 << 20

// ReadIncidents reads the incident records under root/dir (dir as in
// paths.incidents; "incidents" when empty). A directory that does not
// exist holds no incidents; a record that cannot be read is returned as
// an error and left out.
func ReadIncidents(root, dir string) ([]*incident.Incident, []error) {
	if dir == "" {
		dir = "incidents"
	}
	base := filepath.Join(root, filepath.FromSlash(dir))
	var ins []*incident.Incident
	var bad []error
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == base && os.IsNotExist(err) {
				return filepath.SkipDir
			}
			bad = append(bad, err)
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), ".md") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if info, err := d.Info(); err == nil && info.Size() > maxIncidentFile {
			bad = append(bad, fmt.Errorf("%s: larger than %d bytes", rel, maxIncidentFile))
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			bad = append(bad, err)
			return nil
		}
		in, err := incident.Unmarshal(data)
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", rel, err))
			return nil
		}
		ins = append(ins, in)
		return nil
	})
	if err != nil {
		bad = append(bad, err)
	}
	return ins, bad
}

// Report is what a change does to the replayed alerts, its playbooks and
// its policy. Every list is in a deterministic order.
type Report struct {
	// Changed is whether anything below differs between base and head.
	Changed bool    `json:"changed"`
	Summary Summary `json:"summary"`
	Base    Side    `json:"base"`
	// Alerts are the replayed alerts that match or plan differently.
	Alerts []AlertChange `json:"alerts"`
	// Unchanged are the replayed alerts that match and plan the same.
	Unchanged []AlertID     `json:"unchanged"`
	Playbooks PlaybookDelta `json:"playbooks"`
	// Policy lists the changes to policy, targets and channels in
	// firebreak.cue.
	Policy []ValueChange `json:"policy"`
}

// Side describes the base the change is compared with.
type Side struct {
	Ref    string `json:"ref,omitempty"`
	Commit string `json:"commit,omitempty"`
	// Valid is false when the base does not load or validate; it then
	// counts as a repository where nothing matches.
	Valid    bool              `json:"valid"`
	Problems []repo.Diagnostic `json:"problems,omitempty"`
}

// Summary counts the report's findings.
type Summary struct {
	// Alerts is the number of distinct alerts replayed, from Tests tests
	// and Incidents incidents.
	Alerts    int `json:"alerts"`
	Tests     int `json:"tests"`
	Incidents int `json:"incidents"`
	// MatchChanged counts the alerts whose matched playbooks differ.
	MatchChanged int `json:"match_changed"`
	// PlanChanged counts the alerts with a step added, removed or changed
	// in a playbook matched on both sides.
	PlanChanged int `json:"plan_changed"`
	// StepsChanged counts distinct steps (playbook, list, step name)
	// changed for at least one alert, and NewApprovals those among them
	// that now wait for an approval they did not need before.
	StepsChanged int `json:"steps_changed"`
	NewApprovals int `json:"new_approvals"`
	// PlaybooksChanged counts playbooks added, removed, renamed or
	// changed in their other fields.
	PlaybooksChanged int `json:"playbooks_changed"`
	PolicyChanges    int `json:"policy_changes"`
	// Text is the one-line summary.
	Text string `json:"text"`
}

// AlertID identifies a replayed alert readably.
type AlertID struct {
	Name        string            `json:"name"` // the alertname label
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Origins     []Origin          `json:"origins"`
}

// AlertChange is how one alert fares differently.
type AlertChange struct {
	Alert AlertID `json:"alert"`
	// Base and Head are the names of the playbooks the alert matches, in
	// order, on each side.
	Base []string `json:"base"`
	Head []string `json:"head"`
	// Added and Removed are the playbooks it matches only in head, only in
	// base (renamed playbooks count as the same).
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Approvals are the steps of the Added playbooks that wait for an
	// approval: new approvals for this alert.
	Approvals []StepRef `json:"approvals,omitempty"`
	// Reordered is set when the playbooks matched on both sides come in
	// another order.
	Reordered bool `json:"reordered,omitempty"`
	// Playbooks are the playbooks matched on both sides whose plan for the
	// alert differs.
	Playbooks []PlanChange `json:"playbooks,omitempty"`
}

// MatchChanged reports whether the alert matches other playbooks, or the
// same in another order.
func (c *AlertChange) MatchChanged() bool {
	return len(c.Added) > 0 || len(c.Removed) > 0 || c.Reordered
}

// StepRef names one step of a playbook's plan.
type StepRef struct {
	Playbook string `json:"playbook"`
	List     string `json:"list"` // ListSteps or ListOnFailure
	Name     string `json:"name"`
}

// PlanChange is how the plan of one playbook differs for one alert.
type PlanChange struct {
	Playbook string `json:"playbook"`
	// Was is the playbook's name in base when it was renamed.
	Was   string       `json:"was,omitempty"`
	Steps []StepChange `json:"steps,omitempty"`
	// BaseError and HeadError say why the plan could not be rendered on a
	// side, when they differ.
	BaseError string `json:"base_error,omitempty"`
	HeadError string `json:"head_error,omitempty"`
}

// Step change kinds.
const (
	StepAdded   = "added"
	StepRemoved = "removed"
	StepChanged = "changed"
	StepMoved   = "moved"
)

// Step lists.
const (
	ListSteps     = "steps"
	ListOnFailure = "on_failure"
)

// StepChange is one step added, removed, changed or moved.
type StepChange struct {
	List   string `json:"list"`   // ListSteps or ListOnFailure
	Change string `json:"change"` // StepAdded, StepRemoved, StepChanged, StepMoved
	// Index is the step's position, from 1, in head (in base when
	// removed).
	Index  int          `json:"index"`
	Name   string       `json:"name"`
	Action string       `json:"action"`
	Base   *schema.Step `json:"base,omitempty"`
	Head   *schema.Step `json:"head,omitempty"`
	// Fields are the fields that differ, for a changed or moved step:
	// name, action, params.KEY, approval, timeout, continue_on_error,
	// position.
	Fields []ValueChange `json:"fields,omitempty"`
	// NewApproval is set when the step waits for an approval it did not
	// need in base (an added step that needs one included).
	NewApproval bool `json:"new_approval,omitempty"`
}

// ValueChange is one value that differs; nil is unset. For a list of
// strings, Added and Removed hold its elements that differ when both
// sides have the list.
type ValueChange struct {
	Path    string   `json:"path"`
	Base    any      `json:"base"`
	Head    any      `json:"head"`
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// PlaybookDelta lists the playbooks added, removed, renamed or changed in
// fields other than their steps, which the alerts show.
type PlaybookDelta struct {
	Added   []string       `json:"added"`
	Removed []string       `json:"removed"`
	Renamed []Rename       `json:"renamed"`
	Changed []PlaybookEdit `json:"changed"`
}

// Rename is a playbook that kept its title (or its match) under another
// name.
type Rename struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// PlaybookEdit is a playbook whose title, owner, severity, match,
// group_by or cooldown changed.
type PlaybookEdit struct {
	Playbook string        `json:"playbook"`
	Was      string        `json:"was,omitempty"`
	Fields   []ValueChange `json:"fields"`
}

func (d PlaybookDelta) count() int {
	return len(d.Added) + len(d.Removed) + len(d.Renamed) + len(d.Changed)
}

// Compare replays alerts against base and head and reports what differs.
// Alerts alike in everything but when they were received are replayed
// once, with all their origins. head is expected to be valid; an invalid
// base (or a nil one) is reported in Report.Base and counts as a
// repository where nothing matches.
func Compare(base, head *repo.Repo, alerts []Source) Report {
	rep := Report{
		Base:      Side{Valid: base != nil && base.Valid()},
		Alerts:    []AlertChange{},
		Unchanged: []AlertID{},
		Policy:    []ValueChange{},
	}
	if base != nil {
		rep.Base.Problems = base.Diagnostics
	}
	bp, hp := planner(base), planner(head)
	var renames map[string]string
	if rep.Base.Valid {
		rep.Playbooks, renames = comparePlaybooks(base.Playbooks, head.Playbooks)
		rep.Policy = comparePolicy(base.Config, head.Config)
	} else {
		rep.Playbooks = PlaybookDelta{Added: []string{}, Removed: []string{}, Renamed: []Rename{}, Changed: []PlaybookEdit{}}
	}
	steps, approvals := map[string]bool{}, map[string]bool{}
	for _, id := range dedupe(alerts) {
		a := id.alert
		ch := compareAlert(plans(bp, &a), plans(hp, &a), renames)
		ch.Alert = id.AlertID
		if !ch.MatchChanged() && len(ch.Playbooks) == 0 {
			rep.Unchanged = append(rep.Unchanged, id.AlertID)
			continue
		}
		rep.Alerts = append(rep.Alerts, ch)
		if ch.MatchChanged() {
			rep.Summary.MatchChanged++
		}
		if len(ch.Playbooks) > 0 {
			rep.Summary.PlanChanged++
		}
		for _, ref := range ch.Approvals {
			approvals[ref.Playbook+"\x00"+ref.List+"\x00"+ref.Name+"\x00"+StepAdded] = true
		}
		for _, pc := range ch.Playbooks {
			for _, s := range pc.Steps {
				key := pc.Playbook + "\x00" + s.List + "\x00" + s.Name + "\x00" + s.Change
				steps[key] = true
				if s.NewApproval {
					approvals[key] = true
				}
			}
		}
	}
	s := &rep.Summary
	s.Alerts = len(rep.Alerts) + len(rep.Unchanged)
	origins := map[Origin]bool{}
	for _, src := range alerts {
		o := Origin{Kind: src.Origin.Kind, Name: src.Origin.Name}
		if !origins[o] {
			origins[o] = true
			switch o.Kind {
			case FromTest:
				s.Tests++
			case FromIncident:
				s.Incidents++
			}
		}
	}
	s.StepsChanged, s.NewApprovals = len(steps), len(approvals)
	s.PlaybooksChanged, s.PolicyChanges = rep.Playbooks.count(), len(rep.Policy)
	rep.Changed = !rep.Base.Valid || len(rep.Alerts) > 0 || s.PlaybooksChanged > 0 || s.PolicyChanges > 0
	s.Text = summaryLine(&rep)
	return rep
}

func planner(r *repo.Repo) *plan.Planner {
	if r == nil || !r.Valid() {
		return nil
	}
	p, err := plan.New(r)
	if err != nil {
		return nil
	}
	return p
}

func plans(p *plan.Planner, a *schema.Alert) []plan.Match {
	if p == nil {
		return nil
	}
	return p.Plan(a).Matches
}

type uniqueAlert struct {
	AlertID
	alert schema.Alert
}

// dedupe merges alerts alike in everything but receivedAt, and sorts them
// by alertname, labels, status and annotations.
func dedupe(sources []Source) []uniqueAlert {
	byKey := map[string]*uniqueAlert{}
	var keys []string
	for _, src := range sources {
		a := src.Alert
		a.ReceivedAt = time.Time{}
		if a.Labels == nil {
			a.Labels = map[string]string{}
		}
		if a.Annotations == nil {
			a.Annotations = map[string]string{}
		}
		data, _ := json.Marshal(a)
		key := string(data)
		u := byKey[key]
		if u == nil {
			u = &uniqueAlert{alert: a, AlertID: AlertID{
				Name:        a.Labels["alertname"],
				Status:      a.Status,
				Labels:      a.Labels,
				Annotations: a.Annotations,
			}}
			if len(a.Annotations) == 0 {
				u.Annotations = nil
			}
			byKey[key] = u
			keys = append(keys, key)
		}
		if !slices.ContainsFunc(u.Origins, func(o Origin) bool { return o.Kind == src.Origin.Kind && o.Name == src.Origin.Name }) {
			u.Origins = append(u.Origins, src.Origin)
		}
	}
	out := make([]uniqueAlert, 0, len(keys))
	for _, k := range keys {
		u := byKey[k]
		slices.SortFunc(u.Origins, func(a, b Origin) int {
			return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name))
		})
		out = append(out, *u)
	}
	slices.SortStableFunc(out, func(a, b uniqueAlert) int {
		return cmp.Or(
			strings.Compare(a.Name, b.Name),
			strings.Compare(labelKey(a.Labels), labelKey(b.Labels)),
			strings.Compare(a.Status, b.Status),
			strings.Compare(labelKey(a.Annotations), labelKey(b.Annotations)),
			bytes.Compare(mustJSON(a.alert), mustJSON(b.alert)),
		)
	})
	return out
}

func labelKey(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	return b.String()
}

func mustJSON(v any) []byte {
	data, _ := json.Marshal(v)
	return data
}

// compareAlert compares the plans of one alert; renames maps base names to
// head names.
func compareAlert(base, head []plan.Match, renames map[string]string) AlertChange {
	ch := AlertChange{Base: []string{}, Head: []string{}}
	byName := map[string]plan.Match{}
	var baseNames []string // as named in head
	for _, m := range base {
		ch.Base = append(ch.Base, m.Playbook)
		name := m.Playbook
		if to, ok := renames[name]; ok {
			name = to
		}
		baseNames = append(baseNames, name)
		byName[name] = m
	}
	headSet := map[string]bool{}
	for _, m := range head {
		ch.Head = append(ch.Head, m.Playbook)
		headSet[m.Playbook] = true
	}
	var commonBase, commonHead []string
	for i, name := range baseNames {
		if headSet[name] {
			commonBase = append(commonBase, name)
		} else {
			ch.Removed = append(ch.Removed, ch.Base[i])
		}
	}
	for _, m := range head {
		b, ok := byName[m.Playbook]
		if !ok {
			ch.Added = append(ch.Added, m.Playbook)
			for _, l := range []struct {
				name  string
				steps []schema.Step
			}{{ListSteps, m.Steps}, {ListOnFailure, m.OnFailure}} {
				for _, s := range l.steps {
					if s.Approval == "required" {
						ch.Approvals = append(ch.Approvals, StepRef{Playbook: m.Playbook, List: l.name, Name: s.Name})
					}
				}
			}
			continue
		}
		commonHead = append(commonHead, m.Playbook)
		pc := comparePlan(b, m)
		if len(pc.Steps) > 0 || pc.BaseError != pc.HeadError {
			if b.Playbook != m.Playbook {
				pc.Was = b.Playbook
			}
			ch.Playbooks = append(ch.Playbooks, pc)
		}
	}
	ch.Reordered = !slices.Equal(commonBase, commonHead)
	return ch
}

func comparePlan(base, head plan.Match) PlanChange {
	pc := PlanChange{Playbook: head.Playbook}
	if base.Error != head.Error {
		pc.BaseError, pc.HeadError = base.Error, head.Error
	}
	if base.Error != "" || head.Error != "" {
		// One side has no plan to compare steps with.
		return pc
	}
	pc.Steps = append(compareSteps(ListSteps, base.Steps, head.Steps), compareSteps(ListOnFailure, base.OnFailure, head.OnFailure)...)
	return pc
}

// summaryLine is the report in one line, e.g. "2 alerts match
// differently, 1 step changed (3 alerts), 1 new approval".
func summaryLine(r *Report) string {
	s := r.Summary
	var parts []string
	if !r.Base.Valid {
		parts = append(parts, fmt.Sprintf("the base does not load (%s)", plural(len(r.Base.Problems), "problem", "problems")))
	}
	if s.MatchChanged > 0 {
		parts = append(parts, plural(s.MatchChanged, "alert matches differently", "alerts match differently"))
	}
	if s.StepsChanged > 0 {
		parts = append(parts, fmt.Sprintf("%s (%s)", plural(s.StepsChanged, "step changed", "steps changed"), plural(s.PlanChanged, "alert", "alerts")))
	} else if s.PlanChanged > 0 {
		parts = append(parts, plural(s.PlanChanged, "plan changed", "plans changed"))
	}
	if s.NewApprovals > 0 {
		parts = append(parts, plural(s.NewApprovals, "new approval", "new approvals"))
	}
	d := r.Playbooks
	for _, c := range []struct {
		n    int
		verb string
	}{{len(d.Added), "added"}, {len(d.Removed), "removed"}, {len(d.Renamed), "renamed"}, {len(d.Changed), "changed"}} {
		if c.n > 0 {
			parts = append(parts, plural(c.n, "playbook ", "playbooks ")+c.verb)
		}
	}
	if s.PolicyChanges > 0 {
		parts = append(parts, plural(s.PolicyChanges, "policy change", "policy changes"))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("no change: the %s replayed match and plan the same", plural(s.Alerts, "alert", "alerts"))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
