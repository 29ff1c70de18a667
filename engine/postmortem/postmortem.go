// Package postmortem drafts the postmortem of a resolved incident,
// postmortems/<id>.md, which firebreak commits on branch postmortem/<id>
// and proposes in a pull request.
//
// The draft has a title, a summary (playbook, owner, severity, status,
// group labels), the impact (duration, alerts, services affected), the
// times to detect, acknowledge, mitigate and recover, the timeline, the
// steps' actions and outcomes, and empty sections for the root cause,
// what went well, what went badly and the follow-ups.
//
// # Templates
//
// It comes from the built-in blameless template, or from the
// repository's own postmortems/TEMPLATE.md when there is one: a Go
// text/template executed with Data. Values of the record come from
// alerts and are hostile (labels with line breaks, "---", "../", HTML,
// links, 100 KB, invalid UTF-8), so every string field of Data is Markdown
// escaped with incident.EscapeMarkdown already: wherever a template
// writes one inline it renders as its text and nothing else, and cannot
// start a line, a link, a tag or a heading. Data.Raw, Data.Durations and
// Data.Links are the values as they are: a template writing one of their
// strings must pass it through escape. Besides text/template's own
// functions, a template may call
//
//	escape V    V, any value printed as by fmt.Sprint, as one line of
//	            Markdown text cut to 300 characters
//	duration D  a time.Duration as "1d 2h 3m 4s", units that are zero
//	            left out
//	clock T     a time.Time as "2006-01-02 15:04:05 UTC", "—" when zero
//	commit C    a commit id as its first 12 hex digits; anything else
//	            escaped
//
// For example:
//
//	# {{.Title}}
//
//	{{.Owner}} recovered in {{.TimeToRecover}} ({{duration .Durations.Recover}}).
//	{{range .Steps}}- {{.Name}}: {{.Status}} {{.Commit}}
//	{{end}}
//
// A template that does not parse, fails to execute, writes more than
// MaxBytes or writes nothing fails Draft with one line naming
// postmortems/TEMPLATE.md and the line at fault.
package postmortem

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/firebreak-dev/firebreak/engine/incident"
)

// TemplatePath is where a repository keeps its own postmortem template.
const TemplatePath = "postmortems/TEMPLATE.md"

// MaxBytes bounds a draft: a template that writes more fails rather than
// commit a file nobody will read. The built-in template stays well under
// it for any record, as Data holds at most 500 events and 500 steps of
// bounded length.
const MaxBytes = 8 << 20

// builtin is the blameless template used when the repository has none.
//
//go:embed template.md
var builtin string

// builtinName names the built-in template in its errors, which would be
// firebreak's bugs.
const builtinName = "built-in postmortem template"

// Links are where the draft points to; all may be empty.
type Links struct {
	// IncidentFile is the repository path of the incident's file; empty
	// means incident.Path("incidents", in). The draft links to it
	// relative to postmortems/.
	IncidentFile string
	// IssueURL is the web address of the incident's GitHub issue.
	IssueURL string
	// RepoURL is the web address of the repository holding the steps'
	// commits, e.g. https://github.com/acme/deploy; with it, step
	// commits become links.
	RepoURL string
}

// File returns the repository path of the postmortem of incident id,
// postmortems/<id>.md. It fails for an id that is not incident.ValidID,
// which must reach no path.
func File(id string) (string, error) {
	if !incident.ValidID(id) {
		return "", errors.New("postmortem file: invalid incident id")
	}
	return "postmortems/" + id + ".md", nil
}

// Branch returns the branch the postmortem of incident id is proposed
// on, postmortem/<id>. It fails for an id that is not incident.ValidID.
func Branch(id string) (string, error) {
	if !incident.ValidID(id) {
		return "", errors.New("postmortem branch: invalid incident id")
	}
	return "postmortem/" + id, nil
}

// Draft returns the postmortem of in, from tmpl, the content of the
// repository's TemplatePath, or from the built-in blameless template when
// tmpl is nil. The same record, template and links always give the same
// bytes. A template error is one line naming TemplatePath and the line at
// fault, e.g. "postmortems/TEMPLATE.md:3: function "foo" not defined".
func Draft(in *incident.Incident, tmpl []byte, links Links) ([]byte, error) {
	if in == nil {
		return nil, errors.New("draft postmortem: no incident")
	}
	name, text := builtinName, builtin
	if tmpl != nil {
		name, text = TemplatePath, string(tmpl)
	}
	t, err := template.New(name).Funcs(funcs).Parse(text)
	if err != nil {
		return nil, templateError(name, err)
	}
	out := &capped{max: MaxBytes}
	if err := t.Execute(out, newData(in, links)); err != nil {
		return nil, templateError(name, err)
	}
	if len(bytes.TrimSpace(out.buf.Bytes())) == 0 {
		return nil, fmt.Errorf("%s: the template writes nothing", name)
	}
	return out.buf.Bytes(), nil
}

var errTooLong = fmt.Errorf("the draft is over %d bytes", MaxBytes)

// capped is a buffer that refuses to grow past max bytes.
type capped struct {
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.max {
		return 0, errTooLong
	}
	return c.buf.Write(p)
}

// execPrefix is how text/template starts an execution error:
// `template: NAME:LINE:COL: executing "NAME" at <ACTION>: `.
var execPrefix = regexp.MustCompile(`^template: (.*?): executing "(?:[^"\\]|\\.)*" `)

// templateError makes err one line starting with the template's name and
// the line (and column) at fault, as an editor expects.
func templateError(name string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, errTooLong):
		msg = name + ": " + errTooLong.Error()
	case execPrefix.MatchString(msg):
		msg = execPrefix.ReplaceAllString(msg, "$1: ")
	default:
		msg = strings.TrimPrefix(msg, "template: ")
	}
	return errors.New(strings.Join(strings.Fields(msg), " "))
}
