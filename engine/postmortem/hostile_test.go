package postmortem

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/firebreak-dev/firebreak/engine/incident"
)

// hostile are label and annotation values an alert may carry.
var hostile = []string{
	"line one\nline two\r\nline three\u2028four\u0085five\u2029six\vseven\fend",
	"---",
	"a\n---\nb",
	"\n---\n",
	"../../../etc/passwd",
	"..",
	"<script>alert(1)</script>",
	"<img src=x onerror=alert(1)>",
	"<!-- comment -->",
	"-->",
	"<details open>",
	"[x](javascript:alert(1))",
	"![img](https://evil.example/x.png)",
	"[ref]: https://evil.example",
	"<https://evil.example>",
	"https://evil.example/phish",
	"www.evil.example",
	"ops@evil.example",
	"@acme/everyone please look",
	"#1 and acme/ops#3",
	":smile: :+1:",
	"a | b | c",
	"|",
	"trailing backslash \\",
	"```\ncode fence\n```",
	"~~~",
	"`inline` ``double``",
	"# heading",
	"- list",
	"- [ ] task",
	"1. ordered",
	"> quote",
	"    indented code",
	"===",
	"**bold** _em_ ~~strike~~ $math$ ^sup^",
	"&lt;entity&gt; &#60;",
	"{{.Raw.Title}} {{template \"x\"}}",
	"",
	" ",
	"bad \xff\xfe utf8 \xc3",
	"\x00\x01\x1b[31mred\x1b[0m\x7f",
	"\u202eevil\u202c bidi \u2066x\u2069",
	strings.Repeat("A", 100*1024),
	strings.Repeat("|`<\n", 25*1024),
	strings.Repeat("&", 100*1024),
	strings.Repeat("\xff", 10*1024),
}

// hostileIncident puts v in every string of a record.
func hostileIncident(v string) *incident.Incident {
	in := realistic()
	in.ID, in.Title, in.Severity, in.Owner, in.Playbook, in.PlaybooksCommit, in.GroupKey = v, v, v, v, v, v, v
	in.Status = incident.Status(v)
	in.Issue = 0
	in.Group = map[string]string{v: v, "service": v}
	for i := range in.Alerts {
		a := &in.Alerts[i]
		a.Fingerprint, a.Status = v, v
		a.Labels = map[string]string{"alertname": v, v: v, "service": v}
	}
	for i := range in.Steps {
		s := &in.Steps[i]
		s.Name, s.Action, s.Target, s.Status, s.Result, s.Commit, s.Error, s.ApprovedBy = v, v, v, v, v, v, v, v
	}
	for i := range in.Timeline {
		in.Timeline[i].Kind, in.Timeline[i].Text = v, v
	}
	return in
}

// allAtOnce puts every value of values in one record, each in a label,
// an event and a step of its own.
func allAtOnce(values []string) *incident.Incident {
	in := realistic()
	in.Issue = 0
	for i, v := range values {
		in.Group[v] = v
		in.Alerts = append(in.Alerts, incident.AlertRef{Fingerprint: v, Status: v, Labels: map[string]string{"service": v, v: v}})
		in.Record(incident.Event{At: in.Timestamps.Resolved, Kind: v, Text: v})
		in.Steps = append(in.Steps, incident.Step{Name: v, Action: v, Target: v, Status: v, Result: v, Error: v, Commit: v, ApprovedBy: values[len(values)-1-i]})
	}
	return in
}

var hostileLinks = Links{RepoURL: "https://github.com/acme/deploy"}

func TestHostile(t *testing.T) {
	benign := draft(t, hostileIncident("benign"), nil, hostileLinks)
	for _, v := range hostile {
		t.Run(fmt.Sprintf("%.30q", v), func(t *testing.T) {
			checkSafe(t, hostileIncident(v), benign)
		})
	}
	t.Run("all at once", func(t *testing.T) {
		var names []string
		for i := range hostile {
			names = append(names, fmt.Sprintf("v%d", i))
		}
		checkSafe(t, allAtOnce(hostile), draft(t, allAtOnce(names), nil, hostileLinks))
	})
}

var (
	// draftLine is every line the built-in template writes; values are
	// only ever inside one.
	draftLine = regexp.MustCompile(`^(?:|# Postmortem: .*|## [A-Z][a-z]+(?: [a-z]+)*|## Follow-ups|> Blameless draft .*|- \*\*[A-Z][a-z ]+:\*\* .*|\| .*\||Detect: first alert .*|Nothing recorded\.|No steps ran\.|(?:- \[ \] )?<!-- [^<>]* -->)$`)
	autolink  = regexp.MustCompile(`(?i)://|www\.|@[\pL\pN]|#[\pL\pN]|:[\pL]`)
	ownLinks  = regexp.MustCompile(`\]\(\.\./incidents/\d{4}/\d{2}/[a-z0-9-]+\.md\)|\[[0-9a-f]{12}\]\(https://github\.com/acme/deploy/commit/[0-9a-f]{40}\)`)
)

// checkSafe drafts in's postmortem with the built-in template and checks
// that its hostile values render as text and nothing else: the draft has
// the lines of benign, the draft of a record alike but for its values,
// each starting as there; no value adds a line, a tag, a link, an
// autolink, a fence or a table cell; and the draft stays small.
func checkSafe(t *testing.T, in *incident.Incident, benign string) {
	t.Helper()
	out, err := Draft(in, nil, hostileLinks)
	if err != nil {
		t.Fatalf("Draft: %v", err)
	}
	got := string(out)
	if again, _ := Draft(in, nil, hostileLinks); string(again) != got {
		t.Errorf("Draft is not deterministic")
	}
	if !utf8.ValidString(got) {
		t.Errorf("draft is not valid UTF-8")
	}
	if len(got) > 512<<10 {
		t.Errorf("draft is %d bytes", len(got))
	}
	lines, want := strings.Split(got, "\n"), strings.Split(benign, "\n")
	if len(lines) != len(want) {
		t.Fatalf("draft has %d lines, a benign one %d:\n%.2000s", len(lines), len(want), got)
	}
	table := 0
	for i, l := range lines {
		if !draftLine.MatchString(l) {
			t.Errorf("line %d is not one the template writes: %.80q", i+1, l)
		}
		if prefix(l) != prefix(want[i]) {
			t.Errorf("line %d starts %q, benign %q", i+1, prefix(l), prefix(want[i]))
		}
		if !strings.HasPrefix(l, "<!--") && !strings.HasPrefix(l, "- [ ] <!--") {
			if strings.ContainsAny(strings.TrimPrefix(l, "> "), "<>") {
				t.Errorf("line %d holds a raw < or >: %.80q", i+1, l)
			}
			rest := ownLinks.ReplaceAllString(l, "")
			if strings.Contains(rest, "](") {
				t.Errorf("line %d holds a link: %.80q", i+1, l)
			}
			if m := autolink.FindString(rest); m != "" {
				t.Errorf("line %d holds %q, which GitHub may turn into a link: %.80q", i+1, m, l)
			}
		}
		if strings.HasPrefix(l, "|") {
			n := cells(l)
			if table == 0 {
				table = n
			} else if n != table {
				t.Errorf("table row has %d cells, header %d: %.80q", n, table, l)
			}
		} else {
			table = 0
		}
	}
}

// prefix is how a line starts, up to its first value.
func prefix(l string) string {
	for _, p := range []string{"# Postmortem: ", "> Blameless draft", "| ", "- [ ] ", "<!--"} {
		if strings.HasPrefix(l, p) {
			return p
		}
	}
	if i := strings.Index(l, ":** "); strings.HasPrefix(l, "- **") && i > 0 {
		return l[:i+4]
	}
	return l
}

// cells counts a table row's cells: the |s not escaped by a backslash,
// less one.
func cells(row string) int {
	n, escaped := 0, false
	for _, r := range row {
		switch {
		case escaped:
			escaped = false
		case r == '\\':
			escaped = true
		case r == '|':
			n++
		}
	}
	return n - 1
}

// TestHostileCustom checks that a repository's template writing Data's
// fields, and Raw's through escape, is as safe as the built-in one: one
// value per line, and no value adds a line.
func TestHostileCustom(t *testing.T) {
	tmpl := []byte(`{{.Title}}
{{.Owner}}|{{.Severity}}|{{.Status}}|{{.Playbook}}|{{.PlaybooksCommit}}|{{.ID}}
{{range .Group}}{{.Name}}={{.Value}} {{end}}
{{range .Impact.Services}}{{.}} {{end}}
{{range .Timeline}}{{.Kind}} {{.Text}} {{end}}
{{range .Steps}}{{.Name}} {{.Action}} {{.Target}} {{.Status}} {{.Outcome}} {{.Commit}} {{end}}
{{escape .Raw.Title}} {{escape .Raw.Status}} {{commit .Raw.PlaybooksCommit}} {{range $k, $v := .Raw.Group}}{{escape $k}}={{escape $v}} {{end}}
`)
	for _, v := range hostile {
		t.Run(fmt.Sprintf("%.30q", v), func(t *testing.T) {
			out, err := Draft(hostileIncident(v), tmpl, hostileLinks)
			if err != nil {
				t.Fatalf("Draft: %v", err)
			}
			if n := strings.Count(string(out), "\n"); n != 7 {
				t.Errorf("draft has %d lines, want 7:\n%.2000s", n, out)
			}
			if strings.ContainsAny(string(out), "<>") {
				t.Errorf("draft holds a raw < or >")
			}
			if strings.Contains(string(out), "](") {
				t.Errorf("draft holds a link")
			}
		})
	}
}
