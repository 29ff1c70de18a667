package alert

import (
	"math"
	"strconv"

	"github.com/firebreak-dev/firebreak/schema"
)

// GrafanaMeta is what a Grafana alerting webhook says about the notification
// as a whole.
type GrafanaMeta struct {
	Meta           // receiver, group key, external URL and truncated alerts, as Alertmanager has them
	OrgID   int64  // the Grafana organization the alerts belong to
	State   string // "alerting" or "ok", as Grafana has it; not checked, Grafana may add states
	Title   string // the notification's title, rendered by Grafana
	Message string // the notification's message, rendered by Grafana
}

// DecodeGrafana reads a Grafana alerting webhook body (unified alerting,
// version "1") and returns its alerts with source "grafana", and what the
// body says about the notification. Fields it does not know are ignored, as
// Grafana adds fields over time.
//
// An alert's fields beyond Alertmanager's become annotations, so that a
// playbook can match on them and steps can quote them:
//
//	values: {"B": 44.2}   value_B: "44.2" (the number as Grafana wrote it)
//	valueString           value_string
//	dashboardURL          dashboard_url
//	panelURL              panel_url
//	silenceURL            silence_url
//	imageURL              image_url
//
// An empty one is left out, and an annotation the alert rule itself sets
// under the same name is kept: the rule's author chose it.
func DecodeGrafana(name string, data []byte) ([]schema.Alert, GrafanaMeta, error) {
	d, root, err := parse(name, data)
	if err != nil {
		return nil, GrafanaMeta{}, err
	}
	ms, err := d.webhookObject(root, "grafana")
	if err != nil {
		return nil, GrafanaMeta{}, err
	}
	return d.grafana(root, ms, "")
}

// isGrafana reports whether the webhook body with members ms is Grafana's
// rather than Alertmanager's. Grafana always sends version "1" and
// Alertmanager "4"; a body without a version is Grafana's only if it also
// has the two fields Alertmanager never sends.
func (d *decoder) isGrafana(ms []member) bool {
	for _, m := range ms {
		if m.key == "version" && d.kind(m.val) != "null" {
			return d.kind(m.val) == "string" && d.unquote(m.val.off, m.val.end) == "1"
		}
	}
	return has(ms, "orgId") && has(ms, "state")
}

// grafana decodes the Grafana webhook body root, whose members are ms,
// found at path.
func (d *decoder) grafana(root span, ms []member, path string) ([]schema.Alert, GrafanaMeta, error) {
	var meta GrafanaMeta
	var alerts *member
	// As for Alertmanager, the version and the notification's fields
	// come first, whatever their order in the body.
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
			if err == nil && v != "1" {
				err = d.errorf(m.val.off, join(path, m.key), `unsupported Grafana webhook version %s, want "1"`, quote(v))
			}
		case "orgId":
			var n int
			n, err = d.count(m.val, path, m.key)
			meta.OrgID = int64(n)
		case "state":
			meta.State, err = d.str(m.val, path, m.key)
		case "title":
			meta.Title, err = d.str(m.val, path, m.key)
		case "message":
			meta.Message, err = d.str(m.val, path, m.key)
		default:
			err = d.metaField(&meta.Meta, m, path)
		}
		if err != nil {
			return nil, GrafanaMeta{}, err
		}
	}
	if alerts == nil {
		if has(ms, "evalMatches") {
			return nil, GrafanaMeta{}, d.errorf(root.off, path, `a legacy Grafana alerting body ("evalMatches"): only unified alerting webhooks (version "1") are supported`)
		}
		return nil, GrafanaMeta{}, d.errorf(root.off, path, `no "alerts" field: not a Grafana alerting webhook`)
	}
	list, err := d.alertList(alerts.val, join(path, "alerts"), "grafana")
	if err != nil {
		return nil, GrafanaMeta{}, err
	}
	return list, meta, nil
}

// grafanaAnnotations names the annotation each of a Grafana alert's string
// fields becomes.
var grafanaAnnotations = map[string]string{
	"valueString":  "value_string",
	"dashboardURL": "dashboard_url",
	"panelURL":     "panel_url",
	"silenceURL":   "silence_url",
	"imageURL":     "image_url",
}

// grafanaExtras adds to a, decoded from the Grafana alert with members ms at
// path, the annotations DecodeGrafana describes.
func (d *decoder) grafanaExtras(a *schema.Alert, ms []member, path string) error {
	for _, m := range ms {
		if d.kind(m.val) == "null" {
			continue
		}
		if m.key == "values" {
			if err := d.values(a, m.val, join(path, m.key)); err != nil {
				return err
			}
			continue
		}
		ann, ok := grafanaAnnotations[m.key]
		if !ok {
			continue
		}
		s, err := d.str(m.val, path, m.key)
		if err != nil {
			return err
		}
		annotate(a, ann, s)
	}
	return nil
}

// values adds Grafana's values, the object v at path mapping each query or
// expression (its refID) to a number, to a as annotations value_<refID>.
// The number is kept as Grafana wrote it: reformatting could change what a
// playbook or a reader sees.
func (d *decoder) values(a *schema.Alert, v span, path string) error {
	if k := d.kind(v); k != "object" {
		return d.errorf(v.off, path, "want object, got %s", k)
	}
	ms, err := d.members(v, path)
	if err != nil {
		return err
	}
	for _, m := range ms {
		switch k := d.kind(m.val); k {
		case "null":
			continue
		case "number":
		default:
			return d.errorf(m.val.off, keyPath(path, m.key), "want number, got %s", k)
		}
		raw := string(d.data[m.val.off:m.val.end])
		// Grafana's values are float64s; a literal beyond their range is
		// not something Grafana sent.
		if f, err := strconv.ParseFloat(raw, 64); err != nil || math.IsInf(f, 0) {
			return d.errorf(m.val.off, keyPath(path, m.key), "number %s is out of range", clip(raw))
		}
		annotate(a, "value_"+m.key, raw)
	}
	return nil
}

// annotate sets the annotation name of a to value, unless value is empty or
// a already has that annotation.
func annotate(a *schema.Alert, name, value string) {
	if _, ok := a.Annotations[name]; ok || value == "" {
		return
	}
	a.Annotations[name] = value
}
