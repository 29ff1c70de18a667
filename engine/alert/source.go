package alert

import (
	"fmt"
	"slices"

	"github.com/firebreak-dev/firebreak/schema"
)

// Input is one decoded input document. Exactly one of Alerts, Comment, Push
// and Ignored is set.
type Input struct {
	Source  string         // what it was decoded as: alertmanager, grafana, pagerduty, github or generic (normalized alerts)
	Kind    string         // the sender's name for what happened, such as "incident.triggered" or "issue_comment"; empty for alert documents
	ID      string         // the sender's id for the event, where the body carries one (PagerDuty's event.id)
	Alerts  []schema.Alert // the alerts it carries
	Comment *Comment       // a GitHub issue_comment event
	Push    *Push          // a GitHub push event
	// Ignored says why a valid input carries nothing firebreak acts on,
	// such as a PagerDuty incident.acknowledged: a server answers it 2xx,
	// so that the sender neither retries it nor disables the webhook.
	Ignored string
}

// decodeSources are the sources DecodeSource knows, "auto" first.
var decodeSources = []string{"auto", "alertmanager", "grafana", "pagerduty", "github", "generic"}

// DecodeSource reads one input document of the given source: "alertmanager"
// (DecodeAlertmanager), "grafana" (DecodeGrafana), "pagerduty"
// (DecodePagerDuty), "generic" (normalized alerts, DecodeNormalized),
// "github" (a GitHub event; its kind is told from its shape, see below) or
// "auto" (or empty): whichever of these the document is.
//
// Auto-detection reads an array as normalized alerts; an object with
// "alerts" as an Alertmanager or Grafana body, as Decode does; one with
// "labels" as a normalized alert; one whose "event" is an object as a
// PagerDuty webhook; and a GitHub event by the fields only that event has:
// "client_payload" (repository_dispatch), "comment" and "issue"
// (issue_comment), "workflow" and "inputs" (workflow_dispatch), or "ref",
// "before" and "after" (push). A caller that knows the GitHub event name
// should call DecodeGitHub with it instead.
//
// An unknown source is an error that is not an *Error.
func DecodeSource(source, name string, data []byte) (Input, error) {
	if source == "" {
		source = "auto"
	}
	if !slices.Contains(decodeSources, source) {
		return Input{}, fmt.Errorf("unknown alert source %s (want one of auto, alertmanager, grafana, pagerduty, github, generic)", quote(source))
	}
	d, root, err := parse(name, data)
	if err != nil {
		return Input{}, err
	}
	if source == "auto" {
		source, err = d.detect(root)
		if err != nil {
			return Input{}, err
		}
	}
	in := Input{Source: source}
	switch source {
	case "alertmanager", "grafana":
		var ms []member
		if ms, err = d.webhookObject(root, source); err != nil {
			break
		}
		if source == "grafana" {
			in.Alerts, _, err = d.grafana(root, ms, "")
		} else {
			in.Alerts, _, err = d.alertmanager(root, ms, "")
		}
	case "generic":
		in.Alerts, err = d.normalized(root)
	case "pagerduty":
		return d.pagerduty(root)
	case "github":
		ms, err := d.webhookObject(root, "github")
		if err != nil {
			return Input{}, err
		}
		kind := githubKind(ms)
		if kind == "" {
			return Input{}, d.errorf(root.off, "", "not a GitHub repository_dispatch, workflow_dispatch, issue_comment or push event")
		}
		return d.github(kind, &object{d: d, v: root, ms: ms})
	}
	if err != nil {
		return Input{}, err
	}
	return in, nil
}

// detect tells which source the document root is from, as DecodeSource
// describes.
func (d *decoder) detect(root span) (string, error) {
	switch k := d.kind(root); k {
	case "array":
		return "generic", nil
	case "object":
	default:
		return "", d.errorf(root.off, "", "want an alert, an array of alerts or a webhook body, got %s", k)
	}
	ms, err := d.members(root, "")
	if err != nil {
		return "", err
	}
	switch {
	case has(ms, "alerts"):
		if d.isGrafana(ms) {
			return "grafana", nil
		}
		return "alertmanager", nil
	case has(ms, "labels"):
		return "generic", nil
	case githubKind(ms) != "":
		return "github", nil
	}
	for _, m := range ms {
		if m.key == "event" && d.kind(m.val) == "object" {
			return "pagerduty", nil
		}
	}
	if looksLikeAlert(ms) {
		return "generic", nil // decoding it as an alert names the mistake
	}
	return "", d.errorf(root.off, "", "cannot tell what this is: not an alert, nor an Alertmanager, Grafana, PagerDuty or GitHub webhook body")
}

// webhookObject returns the members of root, which must be an object: the
// body of a webhook from source.
func (d *decoder) webhookObject(root span, source string) ([]member, error) {
	if k := d.kind(root); k != "object" {
		return nil, d.errorf(root.off, "", "want %s webhook object, got %s", sourceTitle[source], k)
	}
	return d.members(root, "")
}

// sourceTitle names each source in messages, with its article.
var sourceTitle = map[string]string{
	"alertmanager": "an Alertmanager",
	"grafana":      "a Grafana",
	"pagerduty":    "a PagerDuty",
	"github":       "a GitHub",
}

// normalized decodes root as DecodeNormalized does.
func (d *decoder) normalized(root span) ([]schema.Alert, error) {
	switch k := d.kind(root); k {
	case "array":
		return d.alertList(root, "", "")
	case "object":
		ms, err := d.members(root, "")
		if err != nil {
			return nil, err
		}
		a, err := d.alert(root, ms, "", "")
		if err != nil {
			return nil, err
		}
		return []schema.Alert{a}, nil
	default:
		return nil, d.errorf(root.off, "", "want an alert object or an array of alerts, got %s", k)
	}
}
