// Package alert decodes alert input — normalized alerts, Alertmanager and
// Grafana webhook bodies, PagerDuty V3 webhooks and GitHub events — into
// schema.Alert, and verifies the signatures PagerDuty and GitHub put on
// their webhooks.
//
// Every error is one line, "name:line:col: path: message", where line and
// col are 1-based and col counts bytes, and path (left out at the top level)
// names the field, as in alerts[0].labels.severity. An error quotes at most
// 32 bytes of the input.
//
// Strings are decoded by encoding/json, which replaces invalid UTF-8 with
// U+FFFD; the decoder keeps that replacement, so every label, annotation and
// other string it returns is valid UTF-8. Times are converted to UTC.
// ReceivedAt is left as the input gives it (zero unless a normalized alert
// carries it): stamping it is the caller's job.
package alert

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/firebreak-dev/firebreak/schema"
)

// MaxAlerts is the most alerts one document may carry; more is an error.
const MaxAlerts = 100_000

// Meta is what an Alertmanager webhook says about the group it delivers.
type Meta struct {
	GroupKey        string `json:"groupKey"`
	Receiver        string `json:"receiver"`
	ExternalURL     string `json:"externalURL"`
	TruncatedAlerts int    `json:"truncatedAlerts"`
}

// fields are the json names of schema.Alert's fields; a test keeps them in
// step with the struct tags.
var fields = []string{"source", "status", "fingerprint", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "receivedAt"}

// amFields are the fields of an alert in an Alertmanager (or Grafana)
// webhook that carry over into schema.Alert.
var amFields = []string{"status", "fingerprint", "labels", "annotations", "startsAt", "endsAt", "generatorURL"}

var (
	sources  = []string{"alertmanager", "grafana", "pagerduty", "generic", "github"}
	statuses = []string{"firing", "resolved"}
)

// Decode reads one alert input document — a single normalized alert (JSON
// object with "labels"), a JSON array of normalized alerts, or a Prometheus
// Alertmanager (version "4") or Grafana (version "1") webhook body (JSON
// object with "alerts") — and returns the normalized alerts. A body with
// "alerts" is Grafana's when it says version "1", or says no version but
// has Grafana's "orgId" and "state"; otherwise it is Alertmanager's. name is
// used in error messages (a file name or a request description).
// DecodeSource reads PagerDuty webhooks and GitHub events as well.
func Decode(name string, data []byte) ([]schema.Alert, error) {
	d, root, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	return d.alerts(root)
}

// alerts decodes the alert document at v as Decode describes.
func (d *decoder) alerts(v span) ([]schema.Alert, error) {
	switch d.kind(v) {
	case "array":
		return d.alertList(v, "", "")
	case "object":
		ms, err := d.members(v, "")
		if err != nil {
			return nil, err
		}
		if has(ms, "alerts") || looksLikeAlert(ms) {
			return d.alertObject(v, ms, "")
		}
		return nil, d.errorf(v.off, "", `object has neither "labels" (an alert) nor "alerts" (an Alertmanager webhook)`)
	}
	return nil, d.errorf(v.off, "", "want an alert, an array of alerts or an Alertmanager webhook, got %s", d.kind(v))
}

// alertObject decodes the object v, with members ms, that is an
// Alertmanager or Grafana webhook body (it has "alerts") or else a
// normalized alert.
func (d *decoder) alertObject(v span, ms []member, path string) ([]schema.Alert, error) {
	// "alerts" wins over "labels": a webhook body may grow fields, a
	// normalized alert may not.
	if has(ms, "alerts") {
		if d.isGrafana(ms) {
			alerts, _, err := d.grafana(v, ms, path)
			return alerts, err
		}
		alerts, _, err := d.alertmanager(v, ms, path)
		return alerts, err
	}
	// Not only "labels": an alert's other fields or a near miss such as
	// "lables" also say what was meant, and decoding it as an alert
	// reports the precise mistake.
	a, err := d.alert(v, ms, path, "")
	if err != nil {
		return nil, err
	}
	return []schema.Alert{a}, nil
}

// DecodeAlertmanager reads an Alertmanager webhook body (version 4) and
// returns its alerts with source "alertmanager", and what the body says
// about the alert group. Fields it does not know are ignored, as
// Alertmanager adds fields over time.
func DecodeAlertmanager(name string, data []byte) ([]schema.Alert, Meta, error) {
	d, root, err := parse(name, data)
	if err != nil {
		return nil, Meta{}, err
	}
	ms, err := d.webhookObject(root, "alertmanager")
	if err != nil {
		return nil, Meta{}, err
	}
	return d.alertmanager(root, ms, "")
}

// DecodeNormalized reads one normalized alert (a JSON object) or a JSON array
// of them. Field names must match schema.Alert's exactly: an unknown field,
// such as a misspelt "lables", is an error.
func DecodeNormalized(name string, data []byte) ([]schema.Alert, error) {
	d, root, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	return d.normalized(root)
}

// alertmanager decodes the Alertmanager webhook body root, whose members are
// ms, found at path.
func (d *decoder) alertmanager(root span, ms []member, path string) ([]schema.Alert, Meta, error) {
	var meta Meta
	var alerts *member
	// The version and the group's fields come first, whatever their order
	// in the body: under a version we do not know, errors in the alerts
	// would only mislead.
	for i, m := range ms {
		if m.key == "alerts" {
			alerts = &ms[i]
			continue
		}
		if d.kind(m.val) == "null" {
			continue
		}
		var err error
		switch m.key {
		case "version":
			var v string
			v, err = d.str(m.val, path, m.key)
			if err == nil && v != "4" {
				err = d.errorf(m.val.off, join(path, m.key), `unsupported Alertmanager webhook version %s, want "4"`, quote(v))
			}
		default:
			err = d.metaField(&meta, m, path)
		}
		if err != nil {
			return nil, Meta{}, err
		}
	}
	if alerts == nil {
		return nil, Meta{}, d.errorf(root.off, path, `no "alerts" field: not an Alertmanager webhook`)
	}
	list, err := d.alertList(alerts.val, join(path, "alerts"), "alertmanager")
	if err != nil {
		return nil, Meta{}, err
	}
	return list, meta, nil
}

// metaField decodes m into meta if it is one of the fields of Meta, which
// Alertmanager and Grafana bodies share.
func (d *decoder) metaField(meta *Meta, m member, path string) error {
	var err error
	switch m.key {
	case "groupKey":
		meta.GroupKey, err = d.str(m.val, path, m.key)
	case "receiver":
		meta.Receiver, err = d.str(m.val, path, m.key)
	case "externalURL":
		meta.ExternalURL, err = d.str(m.val, path, m.key)
	case "truncatedAlerts":
		meta.TruncatedAlerts, err = d.count(m.val, path, m.key)
	}
	return err
}

// alertList decodes a JSON array of alerts: normalized ones when from is
// empty, else alerts of a webhook body from that source ("alertmanager" or
// "grafana").
func (d *decoder) alertList(v span, path string, from string) ([]schema.Alert, error) {
	if k := d.kind(v); k != "array" {
		return nil, d.errorf(v.off, path, "want an array of alerts, got %s", k)
	}
	elems, err := d.elements(v, path)
	if err != nil {
		return nil, err
	}
	if len(elems) == 0 {
		return nil, d.errorf(v.off, path, "no alerts")
	}
	alerts := make([]schema.Alert, 0, len(elems))
	for i, e := range elems {
		p := path + "[" + strconv.Itoa(i) + "]"
		if k := d.kind(e); k != "object" {
			return nil, d.errorf(e.off, p, "want an alert object, got %s", k)
		}
		ms, err := d.members(e, p)
		if err != nil {
			return nil, err
		}
		a, err := d.alert(e, ms, p, from)
		if err == nil && from == "grafana" {
			err = d.grafanaExtras(&a, ms, p)
		}
		if err != nil {
			return nil, err
		}
		alerts = append(alerts, a)
	}
	return alerts, nil
}

// alert decodes the alert object v, whose members are ms. A normalized alert
// (from is empty) must have labels and no unknown fields; an alert of a
// webhook body may have any fields, and its source is always from.
func (d *decoder) alert(v span, ms []member, path string, from string) (schema.Alert, error) {
	var a schema.Alert
	am := from != ""
	for _, m := range ms {
		if am && !slices.Contains(amFields, m.key) {
			continue // Alertmanager adds fields over time
		}
		if !am && !slices.Contains(fields, m.key) {
			return a, d.errorf(m.keyOff, path, "unknown field %s%s", quote(m.key), suggest(m.key))
		}
		// null stands for an absent field, as encoding/json has it.
		if d.kind(m.val) == "null" {
			continue
		}
		var err error
		switch m.key {
		case "source":
			a.Source, err = d.oneOf(m.val, path, m.key, sources)
		case "status":
			a.Status, err = d.oneOf(m.val, path, m.key, statuses)
		case "fingerprint":
			a.Fingerprint, err = d.str(m.val, path, m.key)
		case "labels":
			a.Labels, err = d.strMap(m.val, path, m.key)
		case "annotations":
			a.Annotations, err = d.strMap(m.val, path, m.key)
		case "startsAt":
			a.StartsAt, err = d.time(m.val, path, m.key)
		case "endsAt":
			a.EndsAt, err = d.time(m.val, path, m.key)
		case "generatorURL":
			a.GeneratorURL, err = d.str(m.val, path, m.key)
		case "receivedAt":
			a.ReceivedAt, err = d.time(m.val, path, m.key)
		}
		if err != nil {
			return a, err
		}
	}
	if !am && !has(ms, "labels") {
		return a, d.errorf(v.off, path, `missing field "labels"`)
	}
	if am {
		a.Source = from
	}
	if a.Source == "" {
		a.Source = d.source
	}
	if a.Status == "" {
		a.Status = "firing"
	}
	if a.Labels == nil {
		a.Labels = map[string]string{}
	}
	if a.Annotations == nil {
		a.Annotations = map[string]string{}
	}
	return a, nil
}

// oneOf decodes a string, the field key of path, that when not empty must be
// one of want.
func (d *decoder) oneOf(v span, path, key string, want []string) (string, error) {
	s, err := d.str(v, path, key)
	if err != nil || s == "" || slices.Contains(want, s) {
		return s, err
	}
	return "", d.errorf(v.off, join(path, key), "want one of %s, got %s", strings.Join(want, ", "), quote(s))
}

// time decodes an RFC3339 time, the field key of path, in UTC.
// Alertmanager's "no end yet", 0001-01-01T00:00:00Z, is the zero time.Time.
func (d *decoder) time(v span, path, key string) (time.Time, error) {
	s, err := d.str(v, path, key)
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	if err := t.UnmarshalText([]byte(s)); err != nil {
		return time.Time{}, d.errorf(v.off, join(path, key), "want an RFC3339 time, got %s", quote(s))
	}
	if t.IsZero() {
		return time.Time{}, nil
	}
	t = t.UTC()
	// encoding/json cannot write a year outside 0–9999, which a zone
	// offset can reach once the time is in UTC.
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, d.errorf(v.off, join(path, key), "time %s is out of range in UTC", quote(s))
	}
	return t, nil
}

// looksLikeAlert reports whether any key of ms is, or is close to, an alert
// field.
func looksLikeAlert(ms []member) bool {
	for _, m := range ms {
		if slices.Contains(fields, m.key) || suggest(m.key) != "" {
			return true
		}
	}
	return false
}

// suggest returns a hint naming the alert field that name is likely a
// misspelling of, or "".
func suggest(name string) string {
	for _, f := range fields {
		// Lengths further apart than 2 cannot be 2 edits apart; checking
		// first keeps an object of many long keys cheap.
		near := abs(len(name)-len(f)) <= 2 && distance(name, f) <= 2
		if near || strings.EqualFold(name, f) {
			return fmt.Sprintf(" (did you mean %q?)", f)
		}
	}
	return ""
}

// distance is the Levenshtein distance between a and b, counted in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
