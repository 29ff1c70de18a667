// Package incident is the incident record and its file format: one
// Markdown file per incident, incidents/YYYY/MM/<id>.md, whose YAML front
// matter holds the machine-readable record of SPEC section 3 and whose
// body is a readable summary derived from it. It only turns records into
// bytes and back; storing them in Git and mirroring them on GitHub is done
// elsewhere.
//
// Label, annotation and other alert-derived values are hostile. The
// record keeps them faithfully (see Normalize for the two exceptions:
// invalid UTF-8 and oversize values), the front matter quotes them so no
// value can end the block early, the body escapes them (see
// EscapeMarkdown), and ids and paths never contain them (see NewID).
package incident

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/schema"
)

// Status is where an incident is in its lifecycle.
type Status string

// Incident statuses.
const (
	Open      Status = "open"
	Mitigated Status = "mitigated"
	Resolved  Status = "resolved"
)

// Valid reports whether s is one of the three statuses.
func (s Status) Valid() bool {
	return s == Open || s == Mitigated || s == Resolved
}

// Event kinds the engine records; Kind is free text, these are the usual
// ones.
const (
	EventAlertFiring   = "alert_firing"
	EventAlertResolved = "alert_resolved"
	EventOpened        = "opened"
	EventAcknowledged  = "acknowledged"
	EventStep          = "step"
	EventApproval      = "approval"
	EventMitigated     = "mitigated"
	EventResolved      = "resolved"
	EventIssue         = "issue"
	EventPostmortem    = "postmortem"
	EventNote          = "note"
)

// Incident is the full record of one incident: one group of alerts
// handled by one playbook. Its yaml tags name the front matter keys, which
// Marshal writes in field order.
type Incident struct {
	ID     string `yaml:"id" json:"id"`
	Title  string `yaml:"title" json:"title"`
	Status Status `yaml:"status" json:"status"`
	// Severity is the playbook's: critical, high, warning or info.
	Severity string `yaml:"severity" json:"severity"`
	Playbook string `yaml:"playbook" json:"playbook"`
	// PlaybooksCommit is the commit of the playbook repository the
	// incident's steps were planned from.
	PlaybooksCommit string `yaml:"playbooks_commit" json:"playbooks_commit"`
	// Owner is the playbook's owner, a GitHub team or user.
	Owner string `yaml:"owner" json:"owner"`
	// GroupKey identifies the alert group: alerts of the same playbook
	// and group key join this incident while it is open (see GroupKey).
	GroupKey string `yaml:"group_key" json:"group_key"`
	// Group holds the values of the playbook's group_by labels.
	Group      map[string]string `yaml:"group" json:"group"`
	Timestamps Timestamps        `yaml:"timestamps" json:"timestamps"`
	// Issue is the number of the incident's GitHub issue, 0 when none.
	Issue int `yaml:"issue" json:"issue"`
	// PostmortemPR is the number of the postmortem pull request, 0 when
	// none.
	PostmortemPR int        `yaml:"postmortem_pr" json:"postmortem_pr"`
	Alerts       []AlertRef `yaml:"alerts" json:"alerts"`
	Steps        []Step     `yaml:"steps" json:"steps"`
	// Timeline is the incident's history, in the order recorded; the
	// body's timeline is rendered from it.
	Timeline []Event `yaml:"timeline" json:"timeline"`
}

// Timestamps are the lifecycle times of an incident; a zero time has not
// happened.
type Timestamps struct {
	// Detected is the earliest startsAt of the incident's alerts.
	Detected time.Time `yaml:"detected,omitempty" json:"detected,omitzero"`
	// Opened is when firebreak opened the incident.
	Opened time.Time `yaml:"opened,omitempty" json:"opened,omitzero"`
	// Acknowledged is when a person first acted on the incident.
	Acknowledged time.Time `yaml:"acknowledged,omitempty" json:"acknowledged,omitzero"`
	Mitigated    time.Time `yaml:"mitigated,omitempty" json:"mitigated,omitzero"`
	Resolved     time.Time `yaml:"resolved,omitempty" json:"resolved,omitzero"`
}

// AlertRef is one alert of the incident's group.
type AlertRef struct {
	Fingerprint string            `yaml:"fingerprint" json:"fingerprint"`
	Status      string            `yaml:"status" json:"status"`
	StartsAt    time.Time         `yaml:"starts_at,omitempty" json:"starts_at,omitzero"`
	EndsAt      time.Time         `yaml:"ends_at,omitempty" json:"ends_at,omitzero"`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Annotations are kept so that the incident's steps can be planned
	// again from its record after a restart.
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// Step is what happened to one step of the incident's playbook.
type Step struct {
	Name     string    `yaml:"name" json:"name"`
	Action   string    `yaml:"action" json:"action"`
	Target   string    `yaml:"target,omitempty" json:"target,omitempty"`
	Status   string    `yaml:"status" json:"status"`
	Started  time.Time `yaml:"started,omitempty" json:"started,omitzero"`
	Finished time.Time `yaml:"finished,omitempty" json:"finished,omitzero"`
	// Result is the action's one-line summary.
	Result string `yaml:"result,omitempty" json:"result,omitempty"`
	// Commit is the commit holding the step's change, for git actions.
	Commit     string    `yaml:"commit,omitempty" json:"commit,omitempty"`
	Error      string    `yaml:"error,omitempty" json:"error,omitempty"`
	ApprovedBy string    `yaml:"approved_by,omitempty" json:"approved_by,omitempty"`
	ApprovedAt time.Time `yaml:"approved_at,omitempty" json:"approved_at,omitzero"`
}

// Event is one entry of an incident's timeline.
type Event struct {
	At   time.Time `yaml:"at" json:"at"`
	Kind string    `yaml:"kind" json:"kind"`
	Text string    `yaml:"text" json:"text"`
}

// StepByName returns the step called name, or nil.
func (in *Incident) StepByName(name string) *Step {
	for i := range in.Steps {
		if in.Steps[i].Name == name {
			return &in.Steps[i]
		}
	}
	return nil
}

// Record appends e to the timeline.
func (in *Incident) Record(e Event) {
	in.Timeline = append(in.Timeline, e)
}

// SetStep records r in the step of the same name, adding the step when
// the incident has none of that name, and returns it. An approval already
// recorded on the step is kept.
func (in *Incident) SetStep(r run.StepResult) *Step {
	s := in.StepByName(r.Name)
	if s == nil {
		in.Steps = append(in.Steps, Step{Name: r.Name})
		s = &in.Steps[len(in.Steps)-1]
	}
	s.Action, s.Target, s.Status = r.Action, r.Target, r.Status
	s.Started, s.Finished, s.Error = r.Started, r.Finished, r.Error
	s.Result, s.Commit = "", ""
	if r.Outcome != nil {
		s.Result, s.Commit = r.Outcome.Summary, r.Outcome.Commit
		if s.Target == "" {
			s.Target = r.Outcome.Target
		}
	}
	return s
}

// AlertRefOf is the record of a.
func AlertRefOf(a *schema.Alert) AlertRef {
	return AlertRef{
		Fingerprint: a.Fingerprint,
		Status:      a.Status,
		StartsAt:    a.StartsAt,
		EndsAt:      a.EndsAt,
		Labels:      maps.Clone(a.Labels),
		Annotations: maps.Clone(a.Annotations),
	}
}

// SetAlert records a in the alert of the same fingerprint, adding it when
// there is none (or a has no fingerprint), and keeps Timestamps.Detected
// the earliest startsAt of the incident's alerts. It reports whether a was
// added.
func (in *Incident) SetAlert(a AlertRef) (added bool) {
	if !a.StartsAt.IsZero() && (in.Timestamps.Detected.IsZero() || a.StartsAt.Before(in.Timestamps.Detected)) {
		in.Timestamps.Detected = a.StartsAt
	}
	if a.Fingerprint != "" {
		for i := range in.Alerts {
			if in.Alerts[i].Fingerprint == a.Fingerprint {
				in.Alerts[i] = a
				return false
			}
		}
	}
	in.Alerts = append(in.Alerts, a)
	return true
}

// Durations are the response times of one incident. Each is the
// difference of two Timestamps; its OK flag is false, and the duration
// zero, when either timestamp is unset or the later one is before the
// earlier one (clock skew between the alert source and firebreak).
type Durations struct {
	// Detect is the time to detect: Opened − Detected, from the earliest
	// alert's startsAt to the incident being opened.
	Detect   time.Duration
	DetectOK bool
	// Acknowledge is the time to acknowledge: Acknowledged − Opened.
	Acknowledge   time.Duration
	AcknowledgeOK bool
	// Mitigate is the time to mitigate: Mitigated − Opened.
	Mitigate   time.Duration
	MitigateOK bool
	// Recover is the time to recover: Resolved − Detected, from the
	// earliest alert's startsAt to the incident being resolved.
	Recover   time.Duration
	RecoverOK bool
}

// Durations returns the incident's response times as Durations defines
// them.
func (in *Incident) Durations() Durations {
	ts := in.Timestamps
	var d Durations
	d.Detect, d.DetectOK = span(ts.Detected, ts.Opened)
	d.Acknowledge, d.AcknowledgeOK = span(ts.Opened, ts.Acknowledged)
	d.Mitigate, d.MitigateOK = span(ts.Opened, ts.Mitigated)
	d.Recover, d.RecoverOK = span(ts.Detected, ts.Resolved)
	return d
}

func span(from, to time.Time) (time.Duration, bool) {
	if from.IsZero() || to.IsZero() || to.Before(from) {
		return 0, false
	}
	return to.Sub(from), true
}

// idPattern is what an id may look like: lower-case letters, digits and
// inner dashes, so that it is safe as a file name, a branch name
// (postmortem/<id>) and a URL segment.
var idPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,126}[a-z0-9])?$`)

// ValidID reports whether id is safe as a file and branch name: 1 to 128
// lower-case letters, digits and dashes, starting and ending with a
// letter or digit. Every id NewID returns is valid.
func ValidID(id string) bool {
	return idPattern.MatchString(id)
}

// maxSlug bounds the playbook part of an id.
const maxSlug = 64

// NewID returns the id of the incident that playbook opens for the alert
// group group, first detected at detected: the UTC date, the playbook
// name made file-name safe (lower case, anything but letters and digits
// becomes a dash, at most 64 characters), and 8 hex digits of a SHA-256
// over the playbook, the group labels and detected's Unix time, e.g.
// 2026-11-21-checkout-crashloop-3f2a1c9b. The same inputs give the same
// id; label values only ever reach it through the hash.
func NewID(playbook string, group map[string]string, detected time.Time) string {
	h := hashOf(playbook, group)
	h.Write(binary.AppendVarint(nil, detected.Unix()))
	return detected.UTC().Format(time.DateOnly) + "-" + slug(playbook) + "-" + hex.EncodeToString(h.Sum(nil))[:8]
}

// GroupKey returns the key that alerts of playbook alike in group share:
// the playbook's slug and 16 hex digits of a SHA-256 over the playbook
// and the group labels. It contains no label value.
func GroupKey(playbook string, group map[string]string) string {
	return slug(playbook) + "-" + hex.EncodeToString(hashOf(playbook, group).Sum(nil))[:16]
}

// hashOf hashes playbook and group unambiguously: every string is length
// prefixed and the labels are sorted.
func hashOf(playbook string, group map[string]string) hash.Hash {
	h := sha256.New()
	put := func(s string) {
		h.Write(binary.AppendUvarint(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	put("firebreak incident v1")
	put(playbook)
	h.Write(binary.AppendUvarint(nil, uint64(len(group))))
	for _, k := range slices.Sorted(maps.Keys(group)) {
		put(k)
		put(group[k])
	}
	return h
}

func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			sep := dash && b.Len() > 0
			if sep && b.Len()+2 > maxSlug || b.Len()+1 > maxSlug {
				break
			}
			if sep {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	if b.Len() == 0 {
		return "incident"
	}
	return b.String()
}

// Path returns the repository path of in's file,
// incidentsDir/YYYY/MM/<id>.md, with year and month (UTC) of
// Timestamps.Detected, or of Opened when Detected is unset. An id that is
// not ValidID never reaches the path: it is replaced by "invalid-" and 8
// hex digits of its SHA-256.
func Path(incidentsDir string, in *Incident) string {
	t := in.Timestamps.Detected
	if t.IsZero() {
		t = in.Timestamps.Opened
	}
	t = t.UTC()
	name := in.ID
	if !ValidID(name) {
		sum := sha256.Sum256([]byte(name))
		name = "invalid-" + hex.EncodeToString(sum[:4])
	}
	return path.Join(incidentsDir, fmt.Sprintf("%04d", t.Year()), fmt.Sprintf("%02d", int(t.Month())), name+".md")
}

// MaxValueBytes bounds every string of a record, label names and values
// included. Normalize cuts a longer one, on a UTF-8 boundary, to at most
// MaxValueBytes bytes ending in TruncatedMarker.
const MaxValueBytes = 4096

// TruncatedMarker ends every string Normalize cut.
const TruncatedMarker = "…[truncated]"

// Normalize puts in into the form Marshal writes and Unmarshal returns,
// so that Unmarshal(Marshal(in)) equals in once in is normalized:
//   - every string (label names included) is valid UTF-8, each invalid
//     byte sequence replaced by U+FFFD, and at most MaxValueBytes long;
//   - every time is in UTC, truncated to the second;
//   - empty maps and slices are nil.
//
// Two label names that become equal keep the value of the smaller
// original name. Normalize is idempotent.
func (in *Incident) Normalize() {
	for _, p := range []*string{&in.ID, &in.Title, &in.Severity, &in.Playbook, &in.PlaybooksCommit, &in.Owner, &in.GroupKey} {
		*p = clean(*p)
	}
	in.Status = Status(clean(string(in.Status)))
	in.Group = cleanMap(in.Group)
	ts := &in.Timestamps
	for _, p := range []*time.Time{&ts.Detected, &ts.Opened, &ts.Acknowledged, &ts.Mitigated, &ts.Resolved} {
		*p = cleanTime(*p)
	}
	if len(in.Alerts) == 0 {
		in.Alerts = nil
	}
	for i := range in.Alerts {
		a := &in.Alerts[i]
		a.Fingerprint, a.Status = clean(a.Fingerprint), clean(a.Status)
		a.StartsAt, a.EndsAt = cleanTime(a.StartsAt), cleanTime(a.EndsAt)
		a.Labels = cleanMap(a.Labels)
		a.Annotations = cleanMap(a.Annotations)
	}
	if len(in.Steps) == 0 {
		in.Steps = nil
	}
	for i := range in.Steps {
		s := &in.Steps[i]
		for _, p := range []*string{&s.Name, &s.Action, &s.Target, &s.Status, &s.Result, &s.Commit, &s.Error, &s.ApprovedBy} {
			*p = clean(*p)
		}
		for _, p := range []*time.Time{&s.Started, &s.Finished, &s.ApprovedAt} {
			*p = cleanTime(*p)
		}
	}
	if len(in.Timeline) == 0 {
		in.Timeline = nil
	}
	for i := range in.Timeline {
		e := &in.Timeline[i]
		e.At, e.Kind, e.Text = cleanTime(e.At), clean(e.Kind), clean(e.Text)
	}
}

// Clone returns a copy of in that can be changed without changing in.
// The alerts' label and annotation maps are shared: firebreak never
// changes them in place (Normalize replaces them), and copying them was
// most of the cost of every change to the incident log in a storm.
func (in *Incident) Clone() *Incident {
	c := *in
	c.Group = maps.Clone(in.Group)
	c.Alerts = slices.Clone(in.Alerts)
	c.Steps = slices.Clone(in.Steps)
	c.Timeline = slices.Clone(in.Timeline)
	return &c
}

func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxValueBytes {
		return s
	}
	cut := MaxValueBytes - len(TruncatedMarker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + TruncatedMarker
}

func cleanMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ck := clean(k)
		if _, dup := out[ck]; !dup {
			out[ck] = clean(m[k])
		}
	}
	return out
}

func cleanTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Second)
}
