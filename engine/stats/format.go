package stats

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/firebreak-dev/firebreak/engine/incident"
)

// unknown stands for a figure there was nothing to compute over.
const unknown = "—"

// maxName bounds a severity or owner name in the text formats.
const maxName = 80

// figureRow is a response time with the label the text formats give it.
type figureRow struct {
	label string
	f     Figure
}

func (r Report) figureRows() []figureRow {
	return []figureRow{
		{"MTTD (alert start → opened)", r.MTTD},
		{"MTTA (opened → acknowledged)", r.MTTA},
		{"Time to mitigate (opened → mitigated)", r.TimeToMitigate},
		{"MTTR (detected → resolved)", r.MTTR},
	}
}

// WriteJSON writes r as indented JSON, durations in seconds.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as aligned plain-text tables for a terminal.
// Severity and owner names are cut and stripped of control characters,
// so a record cannot move the cursor or recolour the terminal.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Incidents: %d, %s\n\n", r.Incidents, r.window())
	fmt.Fprintln(tw, "FIGURE\tN\tP50\tP90")
	for _, row := range r.figureRows() {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", row.label, row.f.Count, human(row.f.P50), human(row.f.P90))
	}
	for _, block := range []struct {
		title string
		cs    []Count
	}{{"SEVERITY", r.BySeverity}, {"OWNER", r.ByOwner}} {
		if len(block.cs) == 0 {
			continue
		}
		fmt.Fprintf(tw, "\n%s\tINCIDENTS\n", block.title)
		for _, c := range block.cs {
			fmt.Fprintf(tw, "%s\t%d\n", plain(c.Name), c.Incidents)
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "Step success rate\t%s\t%s\n", percent(r.Steps.SuccessRate), r.Steps.over())
	fmt.Fprintf(tw, "Automation rate\t%s\t%s\n", percent(r.Automation.Rate), r.Automation.over())
	return tw.Flush()
}

// WriteMarkdown writes r as GitHub Markdown tables. Severity and owner
// names go through incident.EscapeMarkdown like every record value.
func (r Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "**Incidents:** %d, %s\n\n", r.Incidents, r.window())
	b.WriteString("| Figure | n | p50 | p90 |\n| --- | ---: | ---: | ---: |\n")
	for _, row := range r.figureRows() {
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", row.label, row.f.Count, human(row.f.P50), human(row.f.P90))
	}
	for _, block := range []struct {
		title string
		cs    []Count
	}{{"Severity", r.BySeverity}, {"Owner", r.ByOwner}} {
		if len(block.cs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n| %s | Incidents |\n| --- | ---: |\n", block.title)
		for _, c := range block.cs {
			name := incident.EscapeMarkdown(c.Name, maxName)
			if name == "" {
				name = "(none)"
			}
			fmt.Fprintf(&b, "| %s | %d |\n", name, c.Incidents)
		}
	}
	b.WriteString("\n| Rate | Value | Over |\n| --- | ---: | --- |\n")
	fmt.Fprintf(&b, "| Step success rate | %s | %s |\n", percent(r.Steps.SuccessRate), r.Steps.over())
	fmt.Fprintf(&b, "| Automation rate | %s | %s |\n", percent(r.Automation.Rate), r.Automation.over())
	_, err := io.WriteString(w, b.String())
	return err
}

func (r Report) window() string {
	if r.From.IsZero() {
		return "all recorded"
	}
	return "opened since " + r.From.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

func (s Steps) over() string {
	return fmt.Sprintf("%d succeeded of %d finished; %d unfinished", s.Succeeded, s.Succeeded+s.Failed, s.Unfinished)
}

func (a Automation) over() string {
	return fmt.Sprintf("%d of %d incidents", a.Automated, a.Incidents)
}

func percent(rate *float64) string {
	if rate == nil {
		return unknown
	}
	return strconv.FormatFloat(*rate*100, 'f', 1, 64) + "%"
}

// human writes a duration in seconds as humanDuration does, or "—".
func human(secs *float64) string {
	if secs == nil {
		return unknown
	}
	return humanDuration(time.Duration(*secs * float64(time.Second)))
}

// humanDuration writes d as days, hours, minutes and seconds, rounded to
// the second, leaving out the units that are zero: "1d 2h 5s", "45m",
// "0s".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d <= 0 {
		return "0s"
	}
	var parts []string
	for _, u := range []struct {
		suffix string
		size   time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if n := d / u.size; n > 0 {
			parts = append(parts, strconv.FormatInt(int64(n), 10)+u.suffix)
			d -= n * u.size
		}
	}
	return strings.Join(parts, " ")
}

// plain is name as one line of terminal text: invalid UTF-8, control and
// bidirectional formatting characters replaced with U+FFFD, runs of white
// space made one space and both ends trimmed, at most maxName characters
// ending in "…", and "(none)" when empty.
func plain(name string) string {
	var b strings.Builder
	n, space := 0, false
	for _, r := range strings.ToValidUTF8(name, "\uFFFD") {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if n == maxName {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if unicode.IsControl(r) || bidi(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
		n++
	}
	if b.Len() == 0 {
		return "(none)"
	}
	return b.String()
}

// bidi reports whether r is a bidirectional formatting character, which
// can make a terminal show text in another order than it reads.
func bidi(r rune) bool {
	return r == '\u061C' || r == '\u200E' || r == '\u200F' ||
		r >= '\u202A' && r <= '\u202E' || r >= '\u2066' && r <= '\u2069'
}
