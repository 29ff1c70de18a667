package alert

import (
	"fmt"
	"strconv"

	"github.com/firebreak-dev/firebreak/schema"
)

// pagerDutyStatus maps the PagerDuty event types that start or end an
// incident to an alert status. Every other event type (acknowledged,
// escalated, annotated, priority_updated, pagey.ping, service.*, …) changes
// nothing firebreak acts on.
var pagerDutyStatus = map[string]string{
	"incident.triggered": "firing",
	"incident.reopened":  "firing",
	"incident.resolved":  "resolved",
}

// DecodePagerDuty reads a PagerDuty V3 webhook body, {"event": {…}}, whose
// signature the caller has checked (VerifyPagerDuty). An
// incident.triggered or incident.reopened event is one firing alert, an
// incident.resolved one resolved alert; any other event type is valid and
// Ignored. Fields it does not know are ignored, as PagerDuty adds fields
// over time. Telling a redelivered event (same X-Webhook-Id) from a new one
// is the caller's job.
//
// The alert, with source "pagerduty", is the incident (event.data):
//
//	fingerprint    data.id, the same for every event of one incident
//	startsAt       data.created_at
//	endsAt         event.occurred_at, when resolved
//	generatorURL   data.html_url
//	labels         alertname (data.title), incident_id (data.id),
//	               incident_number, incident_key, service (service.summary),
//	               service_id, urgency, priority (priority.summary),
//	               escalation_policy (escalation_policy.summary)
//	annotations    summary (data.title), incident_url (data.html_url),
//	               event_id, event_type, agent (agent.summary), client (client.name)
//
// A label or annotation whose field is absent or empty is left out.
func DecodePagerDuty(name string, data []byte) (Input, error) {
	d, root, err := parse(name, data)
	if err != nil {
		return Input{}, err
	}
	return d.pagerduty(root)
}

// pagerduty decodes the PagerDuty webhook body root.
func (d *decoder) pagerduty(root span) (Input, error) {
	if k := d.kind(root); k != "object" {
		return Input{}, d.errorf(root.off, "", "want a PagerDuty webhook object, got %s", k)
	}
	body, err := d.object(root, "")
	if err != nil {
		return Input{}, err
	}
	if _, ok := body.get("event"); !ok {
		if _, v2 := body.get("messages"); v2 {
			return Input{}, d.errorf(root.off, "", `a PagerDuty V2 webhook ("messages"): only V3 webhooks are supported`)
		}
		return Input{}, d.errorf(root.off, "", `no "event" field: not a PagerDuty V3 webhook`)
	}
	ev, err := body.obj("event", true)
	if err != nil {
		return Input{}, err
	}
	in := Input{Source: "pagerduty"}
	if in.ID, err = ev.str("id", false); err != nil {
		return Input{}, err
	}
	if in.Kind, err = ev.str("event_type", true); err != nil {
		return Input{}, err
	}
	status, ok := pagerDutyStatus[in.Kind]
	if !ok {
		in.Ignored = fmt.Sprintf("PagerDuty event type %s is not a trigger or a resolve", quote(in.Kind))
		return in, nil
	}
	a := schema.Alert{Source: "pagerduty", Status: status, Labels: map[string]string{}, Annotations: map[string]string{}}
	occurred, err := ev.time("occurred_at")
	if err != nil {
		return Input{}, err
	}
	if status == "resolved" {
		a.EndsAt = occurred
	}
	agent, err := ev.nested("agent", "summary")
	if err != nil {
		return Input{}, err
	}
	client, err := ev.nested("client", "name")
	if err != nil {
		return Input{}, err
	}
	inc, err := ev.obj("data", true)
	if err != nil {
		return Input{}, err
	}
	if err := d.incident(inc, in.Kind, &a); err != nil {
		return Input{}, err
	}
	annotate(&a, "event_id", in.ID)
	annotate(&a, "event_type", in.Kind)
	annotate(&a, "agent", agent)
	annotate(&a, "client", client)
	in.Alerts = []schema.Alert{a}
	return in, nil
}

// incident fills a from the incident inc, the data of an event of type
// kind.
func (d *decoder) incident(inc *object, kind string, a *schema.Alert) error {
	typ, err := inc.str("type", false)
	if err != nil {
		return err
	}
	if typ != "" && typ != "incident" {
		v, _ := inc.get("type")
		return d.errorf(v.off, join(inc.path, "type"), `want "incident" for event type %s, got %s`, quote(kind), quote(typ))
	}
	if a.Fingerprint, err = inc.str("id", true); err != nil {
		return err
	}
	if a.StartsAt, err = inc.time("created_at"); err != nil {
		return err
	}
	if a.GeneratorURL, err = inc.str("html_url", false); err != nil {
		return err
	}
	n, hasNumber, err := inc.integer("number", false)
	if err != nil {
		return err
	}
	if hasNumber {
		a.Labels["incident_number"] = strconv.FormatInt(n, 10)
	}
	a.Labels["incident_id"] = a.Fingerprint
	fields := []struct{ label, key, sub string }{
		{"alertname", "title", ""},
		{"incident_key", "incident_key", ""},
		{"urgency", "urgency", ""},
		{"service", "service", "summary"},
		{"service_id", "service", "id"},
		{"priority", "priority", "summary"},
		{"escalation_policy", "escalation_policy", "summary"},
	}
	for _, f := range fields {
		var s string
		if f.sub == "" {
			s, err = inc.str(f.key, false)
		} else {
			s, err = inc.nested(f.key, f.sub)
		}
		if err != nil {
			return err
		}
		if s != "" {
			a.Labels[f.label] = s
		}
	}
	annotate(a, "summary", a.Labels["alertname"])
	annotate(a, "incident_url", a.GeneratorURL)
	return nil
}
