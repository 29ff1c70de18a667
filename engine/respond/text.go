package respond

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/run"
)

// What firebreak writes on GitHub. Every value that came from an alert is
// escaped with incident.EscapeMarkdown: a label cannot mention, link or
// format anything.

func esc(s string) string { return incident.EscapeMarkdown(s, 200) }

func (e *Engine) issueSpec(in *incident.Incident, number int) github.IssueSpec {
	return github.IssueSpec{
		IncidentID: in.ID,
		// The title is rendered from alert labels: escaped like the body,
		// so that it mentions, links and formats nothing either.
		Title:    fmt.Sprintf("[%s] %s: %s", in.Severity, in.ID, esc(in.Title)),
		Body:     e.issueBody(in),
		Severity: in.Severity,
		Owner:    in.Owner,
		Number:   number,
		Opened:   in.Timestamps.Opened,
	}
}

func (e *Engine) issueBody(in *incident.Incident) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**\n\n", esc(in.Title))
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| incident | `%s` |\n", in.ID)
	fmt.Fprintf(&b, "| playbook | `%s` |\n", esc(in.Playbook))
	fmt.Fprintf(&b, "| severity | %s |\n", esc(in.Severity))
	fmt.Fprintf(&b, "| owner | %s |\n", esc(in.Owner))
	for _, k := range slices.Sorted(maps.Keys(in.Group)) {
		fmt.Fprintf(&b, "| %s | %s |\n", esc(k), esc(in.Group[k]))
	}
	fmt.Fprintf(&b, "| alerts | %d |\n", len(in.Alerts))
	if !in.Timestamps.Detected.IsZero() {
		fmt.Fprintf(&b, "| detected | %s |\n", in.Timestamps.Detected.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "\nThe record: %s\n", e.fileLink(in))
	if len(in.Steps) > 0 {
		b.WriteString("\nSteps:\n")
		for _, s := range in.Steps {
			fmt.Fprintf(&b, "- `%s` %s\n", esc(s.Name), esc(s.Action))
		}
	}
	b.WriteString("\nApprove a step waiting for approval with a comment `/approve <step>`, or refuse it with `/deny <step>`.\n")
	return b.String()
}

// fileLink is a link to the incident file on GitHub, or its path when the
// repository is not on GitHub.
func (e *Engine) fileLink(in *incident.Incident) string {
	p := incident.Path(e.dir(), in)
	gh := e.Repo.Config.GitHub
	if gh == nil {
		return "`" + p + "`"
	}
	web := "https://github.com"
	if u, err := url.Parse(gh.APIURL); err == nil && u.Host != "api.github.com" && u.Host != "" {
		web = u.Scheme + "://" + u.Host
	}
	return fmt.Sprintf("[%s](%s/%s/%s/blob/HEAD/%s)", p, web, url.PathEscape(gh.Owner), url.PathEscape(gh.Repo), p)
}

// commentBody is the comment for an outbox key; ok is false when the
// record no longer has what the key is about.
func commentBody(in *incident.Incident, key string) (string, bool) {
	parts := strings.Split(key, "/")
	switch {
	case key == keyMitigated:
		d := in.Durations()
		text := "Mitigated."
		if d.MitigateOK {
			text = fmt.Sprintf("Mitigated %s after the incident opened.", d.Mitigate.Round(time.Second))
		}
		return text, true
	case len(parts) == 3 && parts[0] == "step":
		s := in.StepByName(parts[1])
		if s == nil {
			return "", false
		}
		text := fmt.Sprintf("Step `%s` (%s", esc(s.Name), esc(s.Action))
		if s.Target != "" {
			text += " on " + esc(s.Target)
		}
		text += "): **" + parts[2] + "**"
		switch {
		case parts[2] == run.Waiting:
			text += fmt.Sprintf(". Comment `/approve %s` to run it or `/deny %s` to refuse it.", s.Name, s.Name)
		case s.Error != "" && parts[2] == s.Status:
			text += ": " + esc(s.Error)
		case s.Result != "" && parts[2] == s.Status:
			text += ": " + esc(s.Result)
		}
		if s.Commit != "" && parts[2] == s.Status {
			text += fmt.Sprintf(" (commit %s)", s.Commit)
		}
		return text, true
	case len(parts) == 3 && parts[0] == "approval":
		s := in.StepByName(parts[1])
		if s == nil {
			return "", false
		}
		return fmt.Sprintf("Step `%s` %s by %s.", esc(s.Name), parts[2], esc(s.ApprovedBy)), true
	}
	return "", false
}

func closeComment(in *incident.Incident) string {
	d := in.Durations()
	if d.RecoverOK {
		return fmt.Sprintf("Resolved. Time to recover: %s.", d.Recover.Round(time.Second))
	}
	return "Resolved."
}

func (e *Engine) prSpec(in *incident.Incident) github.PRSpec {
	base := e.Branch
	if base == "" {
		base = "main"
	}
	var reviewers []string
	if in.Owner != "" {
		reviewers = []string{in.Owner}
	}
	body := fmt.Sprintf("Postmortem draft of incident `%s` (%s).\n\nThe record: %s\n", in.ID, esc(in.Title), e.fileLink(in))
	if in.Issue != 0 {
		body += fmt.Sprintf("\nIncident issue: #%d\n", in.Issue)
	}
	return github.PRSpec{
		IncidentID: in.ID,
		Head:       postmortemBranch(in.ID),
		Base:       base,
		Title:      "Postmortem: " + in.ID,
		Body:       body,
		Reviewers:  reviewers,
	}
}

func postmortemBranch(id string) string { return "postmortem/" + id }
