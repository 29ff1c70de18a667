package alert

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/firebreak-dev/firebreak/schema"
)

// Comment is a GitHub issue_comment event: a comment written, edited or
// deleted on an issue or a pull request, such as "/approve rollback" on an
// incident's issue.
type Comment struct {
	Repo        string // the repository's full name, owner/name
	IssueNumber int    // the issue's or pull request's number
	CommentID   int64
	Action      string // created, edited or deleted
	Body        string
	Login       string // the comment's author
	// AuthorAssociation is what GitHub says the author is to the
	// repository: OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE, ….
	AuthorAssociation string
}

// Push is a GitHub push event.
type Push struct {
	Repo   string // the repository's full name, owner/name
	Ref    string // such as refs/heads/main
	Before string // the commit the ref was at; all zeros when the push created the ref
	After  string // the commit the ref is at now; all zeros when the push deleted the ref
}

// DecodeGitHub reads a GitHub event of the named kind: a webhook body,
// whose kind is its X-GitHub-Event header and whose signature the caller
// has checked (VerifyGitHub), or the file a GitHub Actions workflow finds
// at $GITHUB_EVENT_PATH, whose kind is $GITHUB_EVENT_NAME. Fields it does
// not know are ignored. Telling a redelivered event (same X-GitHub-Delivery)
// from a new one is the caller's job.
//
// An issue_comment is a Comment and a push a Push. A ping, or an event of
// any other kind, is valid and Ignored. Two kinds carry alerts, whose
// source is "github" unless they say otherwise:
//
// repository_dispatch: client_payload is an Alertmanager webhook body
// (with "version": "4"), a Grafana one (with "version": "1"), normalized
// alerts as {"alerts": [...]}, or a single normalized alert. Errors are
// positioned in the event file itself, with paths under client_payload.
// GitHub allows a client_payload at most 10 top-level fields and 64 KB: an
// Alertmanager body has exactly 10, a Grafana body must be cut down.
//
// workflow_dispatch, for running firebreak from the Actions UI, where every
// input is one line of text: either the input "alert", an alert document
// as Decode reads it (errors are positioned within the input and named
// "NAME (inputs.alert)"), or the input "alertname" with the optional
// inputs "labels" and "annotations", each a JSON object of strings or
// name=value pairs separated by commas (namespace=shop, deployment=checkout;
// a value may be in double quotes), and "status" (firing, the default, or
// resolved). An input left empty is absent.
//
// An empty kind is an error that is not an *Error.
func DecodeGitHub(kind, name string, data []byte) (Input, error) {
	if kind == "" {
		return Input{}, errors.New("no GitHub event name: a server has it from X-GitHub-Event, a workflow from $GITHUB_EVENT_NAME")
	}
	d, root, err := parse(name, data)
	if err != nil {
		return Input{}, err
	}
	ms, err := d.webhookObject(root, "github")
	if err != nil {
		return Input{}, err
	}
	return d.github(kind, &object{d: d, v: root, ms: ms})
}

// githubKind tells the kind of the GitHub event whose members are ms from
// the fields only that kind has, or returns "".
func githubKind(ms []member) string {
	switch {
	case has(ms, "client_payload"):
		return "repository_dispatch"
	case has(ms, "comment") && has(ms, "issue"):
		return "issue_comment"
	case has(ms, "workflow") && has(ms, "inputs"):
		return "workflow_dispatch"
	case has(ms, "ref") && has(ms, "before") && has(ms, "after"):
		return "push"
	}
	return ""
}

// github decodes the GitHub event o of the given kind.
func (d *decoder) github(kind string, o *object) (Input, error) {
	d.source = "github"
	in := Input{Source: "github", Kind: kind}
	var err error
	switch kind {
	case "repository_dispatch":
		in.Alerts, err = d.repositoryDispatch(o)
	case "workflow_dispatch":
		in.Alerts, err = d.workflowDispatch(o)
	case "issue_comment":
		in.Comment, err = issueComment(o)
	case "push":
		in.Push, err = push(o)
	case "ping":
		in.Ignored = "a GitHub ping: the webhook is set up"
	default:
		in.Ignored = fmt.Sprintf("GitHub event %s is not one firebreak acts on", quote(kind))
	}
	if err != nil {
		return Input{}, err
	}
	return in, nil
}

// repositoryDispatch decodes the alerts in the client_payload of o.
func (d *decoder) repositoryDispatch(o *object) ([]schema.Alert, error) {
	const path = "client_payload"
	v, ok := o.get(path)
	if !ok {
		return nil, d.errorf(o.v.off, "", `missing field "client_payload", which holds the alerts`)
	}
	switch k := d.kind(v); k {
	case "array":
		return d.alertList(v, path, "")
	case "object":
	default:
		return nil, d.errorf(v.off, path, "want object, got %s", k)
	}
	p, err := d.object(v, path)
	if err != nil {
		return nil, err
	}
	if _, ok := p.get("alerts"); ok {
		// A webhook body says its version; {"alerts": [...]} written by
		// hand need not, and its alerts are normalized ones.
		if _, ok := p.get("version"); ok || d.isGrafana(p.ms) {
			return d.alertObject(v, p.ms, path)
		}
		alerts, _ := p.get("alerts")
		return d.alertList(alerts, join(path, "alerts"), "")
	}
	if looksLikeAlert(p.ms) {
		return d.alertObject(v, p.ms, path)
	}
	return nil, d.errorf(v.off, path, `want an Alertmanager or Grafana webhook body, {"alerts": [...]} or an alert`)
}

// workflowDispatch decodes the alert named by the inputs of o.
func (d *decoder) workflowDispatch(o *object) ([]schema.Alert, error) {
	inputs, err := o.obj("inputs", false)
	if err != nil {
		return nil, err
	}
	if inputs == nil {
		return nil, d.errorf(o.v.off, "", `no "inputs": firebreak needs the input "alert" or "alertname"`)
	}
	doc, err := inputs.line("alert")
	if err != nil {
		return nil, err
	}
	alertname, err := inputs.line("alertname")
	if err != nil {
		return nil, err
	}
	switch {
	case doc != "" && alertname != "":
		return nil, d.errorf(inputs.v.off, inputs.path, `give the input "alert" or "alertname", not both`)
	case doc != "":
		v, _ := inputs.get("alert")
		nd, root, err := parse(d.name+" (inputs.alert)", []byte(d.unquote(v.off, v.end)))
		if err != nil {
			return nil, err
		}
		nd.source = "github"
		return nd.alerts(root)
	case alertname == "":
		return nil, d.errorf(inputs.v.off, inputs.path, `no input "alert" or "alertname"`)
	}
	a := schema.Alert{Source: "github", Status: "firing"}
	if a.Labels, err = inputs.pairs("labels"); err != nil {
		return nil, err
	}
	if a.Annotations, err = inputs.pairs("annotations"); err != nil {
		return nil, err
	}
	if name, ok := a.Labels["alertname"]; ok && name != alertname {
		v, _ := inputs.get("labels")
		return nil, d.errorf(v.off, join(inputs.path, "labels"), "alertname %s differs from the input alertname %s", quote(name), quote(alertname))
	}
	a.Labels["alertname"] = alertname
	status, err := inputs.line("status")
	if err != nil {
		return nil, err
	}
	if status != "" {
		if !slices.Contains(statuses, status) {
			v, _ := inputs.get("status")
			return nil, d.errorf(v.off, join(inputs.path, "status"), "want one of %s, got %s", strings.Join(statuses, ", "), quote(status))
		}
		a.Status = status
	}
	return []schema.Alert{a}, nil
}

// line returns the string field key with white space trimmed: what a
// person typed into a one-line input.
func (o *object) line(key string) (string, error) {
	s, err := o.str(key, false)
	return strings.TrimSpace(s), err
}

// pairs returns the string field key, a JSON object of strings or
// name=value pairs as DecodeGitHub describes, as a map.
func (o *object) pairs(key string) (map[string]string, error) {
	m := map[string]string{}
	s, err := o.str(key, false)
	if err != nil || strings.TrimSpace(s) == "" {
		return m, err
	}
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		nd, root, err := parse(fmt.Sprintf("%s (inputs.%s)", o.d.name, key), []byte(s))
		if err != nil {
			return nil, err
		}
		return nd.strMap(root, "", "")
	}
	v, _ := o.get(key)
	path := join(o.path, key)
	for _, pair := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, value, ok := strings.Cut(pair, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return nil, o.d.errorf(v.off, path, "want a JSON object or name=value pairs separated by commas, got %s", quote(pair))
		}
		if _, dup := m[name]; dup {
			return nil, o.d.errorf(v.off, path, "duplicate name %s", quote(name))
		}
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		m[name] = value
	}
	return m, nil
}

// issueComment decodes the issue_comment event o.
func issueComment(o *object) (*Comment, error) {
	var c Comment
	var err error
	if c.Action, err = o.str("action", true); err != nil {
		return nil, err
	}
	if c.Repo, err = o.nested("repository", "full_name"); err != nil {
		return nil, err
	}
	issue, err := o.obj("issue", true)
	if err != nil {
		return nil, err
	}
	n, _, err := issue.integer("number", true)
	if err != nil {
		return nil, err
	}
	c.IssueNumber = int(n)
	comment, err := o.obj("comment", true)
	if err != nil {
		return nil, err
	}
	if c.CommentID, _, err = comment.integer("id", true); err != nil {
		return nil, err
	}
	if c.Body, err = comment.str("body", false); err != nil {
		return nil, err
	}
	if c.AuthorAssociation, err = comment.str("author_association", false); err != nil {
		return nil, err
	}
	user, err := comment.obj("user", true)
	if err != nil {
		return nil, err
	}
	if c.Login, err = user.str("login", true); err != nil {
		return nil, err
	}
	return &c, nil
}

// push decodes the push event o.
func push(o *object) (*Push, error) {
	var p Push
	var err error
	for _, f := range []struct {
		key string
		to  *string
	}{{"ref", &p.Ref}, {"before", &p.Before}, {"after", &p.After}} {
		if *f.to, err = o.str(f.key, true); err != nil {
			return nil, err
		}
	}
	if p.Repo, err = o.nested("repository", "full_name"); err != nil {
		return nil, err
	}
	return &p, nil
}
