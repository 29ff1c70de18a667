package incident

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds of the body, which is for reading: the record in the front
// matter has everything.
const (
	maxTitle       = 200 // runes of the title
	maxText        = 300 // runes of an event text, step result or error
	maxValue       = 120 // runes of a label value, target or name
	maxTableEvents = 500 // rows of the timeline table
	maxChartEvents = 40  // events in the Mermaid timeline
	maxChartText   = 80  // runes of one event in the Mermaid timeline
)

// bodyTime is how the body shows a time, always UTC.
const bodyTime = "2006-01-02 15:04:05"

// writeBody writes the readable part of in's file. Every value from the
// record goes through EscapeMarkdown (or chartText inside the Mermaid
// block); only the body's own syntax is written raw.
func writeBody(b *bytes.Buffer, in *Incident) {
	title := in.Title
	if title == "" {
		title = in.ID
	}
	fmt.Fprintf(b, "# %s\n\n", EscapeMarkdown(title, maxTitle))
	fmt.Fprintf(b, "**Severity:** %s · **Owner:** %s · **Playbook:** %s · **Status:** %s\n\n",
		orNone(EscapeMarkdown(in.Severity, maxValue)), orNone(EscapeMarkdown(in.Owner, maxValue)),
		orNone(EscapeMarkdown(in.Playbook, maxValue)), in.Status)

	facts := []string{"**Incident:** " + in.ID}
	if len(in.Group) > 0 {
		facts = append(facts, "**Group:** "+labelList(in.Group))
	}
	if in.Issue > 0 {
		facts = append(facts, fmt.Sprintf("**Issue:** #%d", in.Issue))
	}
	if in.PostmortemPR > 0 {
		facts = append(facts, fmt.Sprintf("**Postmortem PR:** #%d", in.PostmortemPR))
	}
	if in.PlaybooksCommit != "" {
		facts = append(facts, "**Playbooks at:** "+commit(in.PlaybooksCommit))
	}
	b.WriteString(strings.Join(facts, " · ") + "\n\n")

	d := in.Durations()
	var times []string
	for _, t := range []struct {
		name string
		d    time.Duration
		ok   bool
	}{{"detect", d.Detect, d.DetectOK}, {"acknowledge", d.Acknowledge, d.AcknowledgeOK}, {"mitigate", d.Mitigate, d.MitigateOK}, {"recover", d.Recover, d.RecoverOK}} {
		if t.ok {
			times = append(times, fmt.Sprintf("**Time to %s:** %s", t.name, t.d))
		}
	}
	if len(times) > 0 {
		b.WriteString(strings.Join(times, " · ") + "\n\n")
	}

	writeTimeline(b, in)
	writeChart(b, in)
	writeSteps(b, in)
	writeAlerts(b, in)
}

func writeTimeline(b *bytes.Buffer, in *Incident) {
	b.WriteString("## Timeline\n\n")
	if len(in.Timeline) == 0 {
		b.WriteString("Nothing recorded yet.\n\n")
		return
	}
	b.WriteString("| Time (UTC) | Event |\n| --- | --- |\n")
	for i, e := range in.Timeline {
		if i == maxTableEvents {
			fmt.Fprintf(b, "| | %d more events in the front matter |\n", len(in.Timeline)-i)
			break
		}
		row(b, clock(e.At), EscapeMarkdown(e.Text, maxText))
	}
	b.WriteString("\n")
}

// writeChart writes the timeline as a Mermaid timeline: a section per
// day, a period per minute (written 09.12: a period cannot hold a colon)
// and an event per entry.
func writeChart(b *bytes.Buffer, in *Incident) {
	var events []Event
	for _, e := range in.Timeline {
		if !e.At.IsZero() {
			events = append(events, e)
		}
	}
	if len(events) == 0 {
		return
	}
	b.WriteString("```mermaid\ntimeline\n    title " + in.ID + "\n")
	day, minute := "", ""
	for i, e := range events {
		if i == maxChartEvents {
			fmt.Fprintf(b, "        later : %d more events in the table\n", len(events)-i)
			break
		}
		at := e.At.UTC()
		if d := at.Format(time.DateOnly); d != day {
			day, minute = d, ""
			b.WriteString("    section " + d + "\n")
		}
		text := chartText(e.Text)
		if m := at.Format("15.04"); m != minute {
			minute = m
			b.WriteString("        " + m + " : " + text + "\n")
		} else {
			b.WriteString("              : " + text + "\n")
		}
	}
	b.WriteString("```\n\n")
}

func writeSteps(b *bytes.Buffer, in *Incident) {
	b.WriteString("## Steps\n\n")
	if len(in.Steps) == 0 {
		b.WriteString("No steps ran.\n\n")
		return
	}
	b.WriteString("| Step | Action | Target | Status | Commit | Result |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, s := range in.Steps {
		var result []string
		if s.Result != "" {
			result = append(result, EscapeMarkdown(s.Result, maxText))
		}
		if s.Error != "" {
			result = append(result, "error: "+EscapeMarkdown(s.Error, maxText))
		}
		if s.ApprovedBy != "" {
			approved := "approved by " + EscapeMarkdown(s.ApprovedBy, maxValue)
			if !s.ApprovedAt.IsZero() {
				approved += " at " + clock(s.ApprovedAt)
			}
			result = append(result, approved)
		}
		row(b, EscapeMarkdown(s.Name, maxValue), EscapeMarkdown(s.Action, maxValue), EscapeMarkdown(s.Target, maxValue),
			EscapeMarkdown(s.Status, maxValue), commit(s.Commit), strings.Join(result, "; "))
	}
	b.WriteString("\n")
}

func writeAlerts(b *bytes.Buffer, in *Incident) {
	b.WriteString("## Alerts\n\n")
	if len(in.Alerts) == 0 {
		b.WriteString("No alerts.\n")
		return
	}
	for _, a := range in.Alerts {
		parts := []string{"**" + orNone(EscapeMarkdown(a.Status, maxValue)) + "**"}
		if a.Fingerprint != "" {
			parts = append(parts, "fingerprint "+EscapeMarkdown(a.Fingerprint, maxValue))
		}
		if !a.StartsAt.IsZero() {
			parts = append(parts, "started "+clock(a.StartsAt))
		}
		if !a.EndsAt.IsZero() {
			parts = append(parts, "ended "+clock(a.EndsAt))
		}
		if len(a.Labels) > 0 {
			parts = append(parts, labelList(a.Labels))
		}
		b.WriteString("- " + strings.Join(parts, " · ") + "\n")
	}
}

// row writes one table row; cells are escaped already.
func row(b *bytes.Buffer, cells ...string) {
	b.WriteString("|")
	for _, c := range cells {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n")
}

func labelList(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, EscapeMarkdown(k, maxValue)+"="+EscapeMarkdown(m[k], maxValue))
	}
	return strings.Join(parts, ", ")
}

var hexCommit = regexp.MustCompile(`^[0-9a-f]{40}(?:[0-9a-f]{24})?$`)

// commit shows a commit id by its first 12 hex digits.
func commit(c string) string {
	if hexCommit.MatchString(c) {
		return c[:12]
	}
	return EscapeMarkdown(c, maxValue)
}

func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(bodyTime)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

// Word joiner: invisible, and not a letter, digit, colon or dot, so it
// breaks what GitHub would otherwise turn into a link.
const wordJoiner = '\u2060'

// EscapeMarkdown returns s as one line of GitHub Markdown text that
// renders as exactly its characters and nothing else: no link, image,
// HTML tag, emphasis, code span, math, table cell break, heading or list,
// wherever it is put inline (a paragraph, a heading, a table cell, the
// start of a line). It
//   - replaces invalid UTF-8, control characters and bidirectional
//     formatting characters with U+FFFD;
//   - turns every run of white space (line breaks included) into one
//     space and trims both ends;
//   - writes & < > as &amp; &lt; &gt;;
//   - backslash-escapes \ ` * _ [ ] ( ) { } # ! | ~ $ ^, and + - = or
//     the dot of a number at the start;
//   - puts a U+2060 WORD JOINER, which shows as nothing, after a : @ or
//     # that a letter, digit or / follows, and inside "www.", so that no
//     URL, e-mail address, @mention, #reference or :emoji: is recognized;
//   - cuts it to maxRunes characters of s, ending in "…", when maxRunes
//     is positive.
func EscapeMarkdown(s string, maxRunes int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	n, space := 0, false
	for i, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if maxRunes > 0 && n == maxRunes {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		n++
		next, _ := utf8.DecodeRuneInString(s[i+utf8.RuneLen(r):])
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case strings.ContainsRune("\\`*_[](){}#!|~$^", r), b.Len() == 0 && strings.ContainsRune("+-=", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		case unicode.IsControl(r), bidi(r):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
		switch {
		case (r == ':' || r == '@' || r == '#') && (isAlnum(next) || next == '/'):
			b.WriteRune(wordJoiner)
		case (r == 'w' || r == 'W') && next == '.' && i >= 2 && strings.EqualFold(s[i-2:i], "ww"):
			b.WriteRune(wordJoiner)
		}
	}
	out := b.String()
	// "1." at the start of a line begins a list ("1)" is escaped above).
	if j := strings.IndexFunc(out, func(r rune) bool { return r < '0' || r > '9' }); j > 0 && out[j] == '.' {
		out = out[:j] + "\\" + out[j:]
	}
	return out
}

func isAlnum(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// bidi reports whether r is a bidirectional formatting character, which
// can make text display in another order than it reads.
func bidi(r rune) bool {
	switch {
	case r == '\u061C', r == '\u200E', r == '\u200F':
		return true
	case r >= '\u202A' && r <= '\u202E', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// chartText is s as the text of a Mermaid timeline event: letters,
// digits, spaces and - _ . , / + = ? ! ' ( ) @ * only, every other
// character (Mermaid's : ; # % and line breaks, Markdown's backticks,
// HTML's < > &) turned into a space, runs of spaces into one, at most
// maxChartText characters.
func chartText(s string) string {
	var b strings.Builder
	n, space := 0, false
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || strings.ContainsRune("-_.,/+=?!'()@*", r)) {
			space = b.Len() > 0
			continue
		}
		if n == maxChartText {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		n++
	}
	if b.Len() == 0 {
		return "event"
	}
	return b.String()
}
