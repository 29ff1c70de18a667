package replay

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/schema"
)

// Marker starts every Markdown report, so that a workflow can find the
// one pull-request comment it posted and update it.
const Marker = "<!-- firebreak:replay -->"

// Limits of the Markdown report, which must stay short enough for a
// comment: a table longer than collapseRows rows is folded into <details>
// and cut after tableMax; at most listMax unchanged alerts or base
// problems are listed; a cell or line is cut to maxValue characters.
const (
	collapseRows = 10
	tableMax     = 200
	listMax      = 100
	maxValue     = 500
)

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteText writes r for a terminal. Every value from the repository or
// an alert is quoted or stripped of control characters.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "firebreak replay: %s\n", r.Summary.Text)
	fmt.Fprintf(&b, "%s; %s\n", plain(r.baseLine()), r.replayedLine())
	if !r.Base.Valid {
		fmt.Fprintln(&b, "\nThe base does not load; it counts as a repository where nothing matches:")
		for i, d := range r.Base.Problems {
			if i == listMax {
				fmt.Fprintf(&b, "  … and %d more\n", len(r.Base.Problems)-listMax)
				break
			}
			fmt.Fprintf(&b, "  %s\n", plain(d.String()))
		}
	}
	if r.Summary.MatchChanged > 0 {
		fmt.Fprintln(&b, "\nAlerts that match differently:")
		for _, c := range r.Alerts {
			if !c.MatchChanged() {
				continue
			}
			fmt.Fprintf(&b, "  %s  (%s)\n", plain(alertText(c.Alert)), plain(originText(c.Alert.Origins)))
			fmt.Fprintf(&b, "    before: %s\n", names(c.Base))
			fmt.Fprintf(&b, "    after:  %s\n", names(c.Head))
			for _, ref := range c.Approvals {
				fmt.Fprintf(&b, "    NEW APPROVAL: %s %s\n", ref.Playbook, refText(ref))
			}
		}
	}
	if groups := byPlaybook(r.Alerts); len(groups) > 0 {
		fmt.Fprintln(&b, "\nStep changes:")
		for _, g := range groups {
			fmt.Fprintf(&b, "  %s%s\n", g.playbook, wasText(g.was))
			for _, e := range g.entries {
				fmt.Fprintf(&b, "    %s  (%s)\n", plain(alertText(e.alert)), plain(originText(e.alert.Origins)))
				for _, line := range planLines(e.pc) {
					text := line.text
					if line.step != "" {
						text = line.step + ": " + text
					}
					fmt.Fprintf(&b, "      %s %s\n", line.mark, plain(text))
				}
			}
		}
	}
	if d := r.Playbooks; d.count() > 0 {
		fmt.Fprintln(&b, "\nPlaybooks:")
		for _, n := range d.Added {
			fmt.Fprintf(&b, "  + %s (added)\n", n)
		}
		for _, n := range d.Removed {
			fmt.Fprintf(&b, "  - %s (removed)\n", n)
		}
		for _, rn := range d.Renamed {
			fmt.Fprintf(&b, "  ~ %s renamed to %s\n", rn.From, rn.To)
		}
		for _, e := range d.Changed {
			fmt.Fprintf(&b, "  ~ %s%s: %s\n", e.Playbook, wasText(e.Was), plain(fieldsText(e.Fields)))
		}
	}
	if len(r.Policy) > 0 {
		fmt.Fprintln(&b, "\nPolicy (firebreak.cue):")
		for _, c := range r.Policy {
			fmt.Fprintf(&b, "  %s\n", plain(changeText(c)))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown writes r as a pull-request comment: Marker, the summary
// in one line, then compact tables, long ones folded. Every value from
// the repository or an alert goes through incident.EscapeMarkdown.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString(Marker + "\n")
	b.WriteString("### firebreak replay\n\n")
	fmt.Fprintf(&b, "**%s**\n\n", esc(upperFirst(r.Summary.Text)))
	fmt.Fprintf(&b, "%s; %s.\n", esc(r.baseLine()), r.replayedLine())
	if !r.Base.Valid {
		b.WriteString("\n> [!WARNING]\n> The base does not load; it counts as a repository where nothing matches.\n\n")
		var items []string
		for _, d := range r.Base.Problems {
			items = append(items, esc(d.String()))
		}
		list(&b, plural(len(items), "problem in the base", "problems in the base"), items)
	}
	if r.Summary.MatchChanged > 0 {
		b.WriteString("\n#### Alerts that match differently\n\n")
		var t table
		for _, c := range r.Alerts {
			if c.MatchChanged() {
				after := mdNames(c.Head)
				for _, ref := range c.Approvals {
					after += "<br>**new approval**: " + code(ref.Playbook) + " " + esc(refText(ref))
				}
				t.row(alertCell(c.Alert), mdNames(c.Base), after)
			}
		}
		t.write(&b, plural(len(t.rows), "alert matches differently", "alerts match differently"), "Alert", "Before", "After")
	}
	if groups := byPlaybook(r.Alerts); len(groups) > 0 {
		b.WriteString("\n#### Step changes\n")
		for _, g := range groups {
			title := code(g.playbook) + esc(wasText(g.was))
			fmt.Fprintf(&b, "\n%s, %s:\n\n", title, plural(len(g.entries), "alert", "alerts"))
			var t table
			for _, e := range g.entries {
				cell := alertCell(e.alert)
				for _, line := range planLines(e.pc) {
					text := esc(line.text)
					if line.newApproval {
						text = "**new approval**: " + esc(strings.TrimSuffix(line.text, " [NEW APPROVAL]"))
					}
					t.row(cell, line.stepCell(), text)
					cell = ""
				}
			}
			t.write(&b, fmt.Sprintf("%s: %s", code(g.playbook), plural(len(t.rows), "change", "changes")), "Alert", "Step", "Change")
		}
	}
	if d := r.Playbooks; d.count() > 0 {
		b.WriteString("\n#### Playbooks\n\n")
		for _, n := range d.Added {
			fmt.Fprintf(&b, "- added %s\n", code(n))
		}
		for _, n := range d.Removed {
			fmt.Fprintf(&b, "- removed %s\n", code(n))
		}
		for _, rn := range d.Renamed {
			fmt.Fprintf(&b, "- renamed %s → %s\n", code(rn.From), code(rn.To))
		}
		for _, e := range d.Changed {
			fmt.Fprintf(&b, "- %s%s: %s\n", code(e.Playbook), esc(wasText(e.Was)), esc(fieldsText(e.Fields)))
		}
	}
	if len(r.Policy) > 0 {
		b.WriteString("\n#### Policy (firebreak.cue)\n\n")
		for _, c := range r.Policy {
			fmt.Fprintf(&b, "- %s\n", esc(changeText(c)))
		}
	}
	if len(r.Unchanged) > 0 {
		b.WriteString("\n")
		var items []string
		for _, a := range r.Unchanged {
			items = append(items, esc(alertText(a))+" ("+esc(originText(a.Origins))+")")
		}
		list(&b, plural(len(items), "alert unchanged", "alerts unchanged"), items)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) baseLine() string {
	s := "base " + cmp.Or(r.Base.Ref, "(none)")
	if len(r.Base.Commit) >= 12 {
		s += " (" + r.Base.Commit[:12] + ")"
	}
	return s + " against the working tree"
}

func (r *Report) replayedLine() string {
	s := r.Summary
	return fmt.Sprintf("replayed %s from %s and %s, %d unchanged",
		plural(s.Alerts, "alert", "alerts"), plural(s.Tests, "test", "tests"), plural(s.Incidents, "incident", "incidents"), len(r.Unchanged))
}

// group is the alerts whose plan of one playbook changed.
type group struct {
	playbook, was string
	entries       []entry
}

type entry struct {
	alert AlertID
	pc    PlanChange
}

func byPlaybook(alerts []AlertChange) []group {
	m := map[string]*group{}
	for _, c := range alerts {
		for _, pc := range c.Playbooks {
			g := m[pc.Playbook]
			if g == nil {
				g = &group{playbook: pc.Playbook, was: pc.Was}
				m[pc.Playbook] = g
			}
			g.entries = append(g.entries, entry{c.Alert, pc})
		}
	}
	out := make([]group, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, *m[k])
	}
	return out
}

// line is one change of a plan, for either format.
type line struct {
	mark        string // + - ~ or !
	step        string // "2 rollback", "on failure 1 page"; "" for the plan
	text        string
	newApproval bool
}

func (l line) stepCell() string {
	if l.step == "" {
		return "plan"
	}
	i := strings.LastIndexByte(l.step, ' ')
	return esc(l.step[:i]) + " " + code(l.step[i+1:])
}

func planLines(pc PlanChange) []line {
	var out []line
	if pc.BaseError != pc.HeadError {
		switch {
		case pc.HeadError == "":
			out = append(out, line{mark: "~", text: "renders again (before: " + pc.BaseError + ")"})
		default:
			out = append(out, line{mark: "!", text: "cannot render: " + pc.HeadError})
		}
	}
	for _, s := range pc.Steps {
		l := line{step: stepLabel(s), newApproval: s.NewApproval}
		switch s.Change {
		case StepAdded:
			l.mark, l.text = "+", "added: "+stepText(s.Head)
		case StepRemoved:
			l.mark, l.text = "-", "removed: "+stepText(s.Base)
		case StepMoved:
			l.mark, l.text = "~", "moved: "+fieldsText(s.Fields)
		default:
			l.mark, l.text = "~", fieldsText(s.Fields)
		}
		if s.NewApproval {
			l.text += " [NEW APPROVAL]"
		}
		out = append(out, l)
	}
	return out
}

func stepLabel(s StepChange) string {
	prefix := "step "
	if s.List == ListOnFailure {
		prefix = "on failure "
	}
	return prefix + strconv.Itoa(s.Index) + " " + s.Name
}

// stepText is a step as plan prints it: action, params, flags.
func stepText(s *schema.Step) string {
	if s == nil {
		return ""
	}
	parts := []string{s.Action}
	for _, k := range slices.Sorted(maps.Keys(s.Params)) {
		parts = append(parts, k+"="+valueText(normalize(s.Params[k])))
	}
	if s.Approval == "required" {
		parts = append(parts, "[approval required]")
	}
	if s.Timeout != "" {
		parts = append(parts, "[timeout "+s.Timeout+"]")
	}
	if s.ContinueOnError {
		parts = append(parts, "[continue on error]")
	}
	return strings.Join(parts, " ")
}

func fieldsText(fields []ValueChange) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = changeText(f)
	}
	return strings.Join(parts, "; ")
}

// changeText is `path: base → head`, or for a list of strings on both
// sides `path: +"a" -"b"`.
func changeText(c ValueChange) string {
	if c.Added != nil || c.Removed != nil {
		var parts []string
		for _, s := range c.Added {
			parts = append(parts, "+"+valueText(s))
		}
		for _, s := range c.Removed {
			parts = append(parts, "-"+valueText(s))
		}
		return c.Path + ": " + strings.Join(parts, " ")
	}
	if c.Path == "match" {
		// CUE text, shown as written.
		return fmt.Sprintf("match: %v → %v", c.Base, c.Head)
	}
	return c.Path + ": " + valueText(c.Base) + " → " + valueText(c.Head)
}

// refText is "step NAME", or "on failure step NAME".
func refText(ref StepRef) string {
	if ref.List == ListOnFailure {
		return "on failure step " + ref.Name
	}
	return "step " + ref.Name
}

// valueText is v as JSON, "(unset)" for nil.
func valueText(v any) string {
	if v == nil {
		return "(unset)"
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// alertText names an alert: alertname and its other labels, the status
// when it is not firing.
func alertText(a AlertID) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		if k == "alertname" && a.Name != "" {
			continue
		}
		parts = append(parts, k+"="+strconv.Quote(a.Labels[k]))
	}
	s := a.Name + "{" + strings.Join(parts, ", ") + "}"
	if a.Status != "" && a.Status != "firing" {
		s = a.Status + " " + s
	}
	return s
}

func originText(os []Origin) string {
	parts := make([]string, len(os))
	for i, o := range os {
		parts[i] = o.String()
	}
	return strings.Join(parts, ", ")
}

func names(ns []string) string {
	if len(ns) == 0 {
		return "(none)"
	}
	return strings.Join(ns, ", ")
}

func wasText(was string) string {
	if was == "" {
		return ""
	}
	return " (was " + was + ")"
}

func mdNames(ns []string) string {
	if len(ns) == 0 {
		return "none"
	}
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = code(n)
	}
	return strings.Join(parts, ", ")
}

func alertCell(a AlertID) string {
	return esc(alertText(a)) + "<br><sub>" + esc(originText(a.Origins)) + "</sub>"
}

// table is a Markdown table, folded into <details> when long.
type table struct{ rows [][]string }

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(b *strings.Builder, summary string, header ...string) {
	folded := len(t.rows) > collapseRows
	if folded {
		fmt.Fprintf(b, "<details><summary>%s</summary>\n\n", summary)
	}
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|" + strings.Repeat(" --- |", len(header)) + "\n")
	for i, r := range t.rows {
		if i == tableMax {
			fmt.Fprintf(b, "\n… and %d more rows: `firebreak replay --format json` has them all.\n", len(t.rows)-tableMax)
			break
		}
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	if folded {
		b.WriteString("\n</details>\n")
	}
}

// list writes escaped items as a folded bullet list, at most listMax.
func list(b *strings.Builder, summary string, items []string) {
	fmt.Fprintf(b, "<details><summary>%s</summary>\n\n", summary)
	for i, it := range items {
		if i == listMax {
			fmt.Fprintf(b, "- … and %d more\n", len(items)-listMax)
			break
		}
		fmt.Fprintf(b, "- %s\n", it)
	}
	b.WriteString("\n</details>\n")
}

// code puts a playbook or step name in a code span; names are
// identifiers by the schema, anything else is escaped instead.
func code(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return esc(s)
		}
	}
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

func esc(s string) string { return incident.EscapeMarkdown(s, maxValue) }

// plain strips what could move a terminal's cursor or reorder its text.
func plain(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
