package incident

import (
	"bytes"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostile are label and annotation values an alert may carry.
var hostile = []string{
	"line one\nline two\r\nline three\u2028four\u0085five\u2029six\vseven\fend",
	"---",
	"a\n---\nb",
	"\n---\n",
	"---\n",
	"...",
	"a\n...\nb",
	"../../../etc/passwd",
	"..",
	"<script>alert(1)</script>",
	"<img src=x onerror=alert(1)>",
	"<!-- comment -->",
	"<details open>",
	"[x](javascript:alert(1))",
	"[x]( javascript:alert(1) )",
	"![img](https://evil.example/x.png)",
	"[ref]: https://evil.example",
	"[x][ref]",
	"<https://evil.example>",
	"https://evil.example/phish",
	"HTTP://EVIL.EXAMPLE",
	"www.evil.example",
	"WWW.EVIL.EXAMPLE",
	"mailto:ops@evil.example",
	"ops@evil.example",
	"@acme/everyone please look",
	"#1 and acme/ops#3",
	":smile: :+1:",
	"a | b | c",
	"|",
	"\\|",
	"trailing backslash \\",
	"```\ncode fence\n```",
	"```mermaid",
	"~~~",
	"`inline` ``double`` ```triple```",
	"timeline : event ; other %% comment #35; title x\n    section evil",
	"%%{init: {'theme':'dark'}}%%",
	"09.12 : forged : event",
	"end\n```\n# injected",
	"# heading",
	"- list",
	"+ list",
	"1. ordered",
	"1) ordered",
	"> quote",
	"    indented code",
	"===",
	"**bold** _em_ ~~strike~~ $math$ $$x$$ ^sup^",
	"&lt;entity&gt; &amp; &#60;",
	"key: value\nother: 1",
	"- a\n- b",
	"'single' \"double\"",
	"&anchor *alias !!binary tag",
	"{a: [b, c]}",
	"? complex\n: key",
	"%YAML 1.1",
	"null",
	"true",
	"0x1F",
	"1e9",
	"2026-11-21",
	"",
	" ",
	"\t",
	"bad \xff\xfe utf8 \xc3",
	"\xed\xa0\x80 surrogate",
	"\x00\x01\x1b[31mred\x1b[0m\x7f",
	"\u202eevil\u202c bidi \u2066x\u2069",
	"\ufeffbom",
	"zero\u200bwidth\u2060joiner",
	strings.Repeat("A", 100*1024),
	strings.Repeat("|`<\n", 25*1024),
	strings.Repeat("é", 50*1024),
	strings.Repeat("\xff", 10*1024),
}

// hostileIncident puts v in every string of a record.
func hostileIncident(v string) *Incident {
	in := realistic()
	in.Title, in.Severity, in.Owner, in.Playbook, in.PlaybooksCommit, in.GroupKey = v, v, v, v, v, v
	in.Issue, in.PostmortemPR = 0, 0
	in.Group = map[string]string{v: v, "deployment": v}
	in.ID = NewID(v, in.Group, in.Timestamps.Detected)
	for i := range in.Alerts {
		a := &in.Alerts[i]
		a.Fingerprint, a.Status = v, v
		a.Labels = map[string]string{"alertname": v, v: v}
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

func TestHostile(t *testing.T) {
	for _, v := range hostile {
		name := v
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			checkSafe(t, hostileIncident(v))
		})
	}
	t.Run("all at once", func(t *testing.T) {
		in := realistic()
		in.Issue, in.PostmortemPR = 0, 0
		for i, v := range hostile {
			in.Group[v] = v
			in.Alerts[0].Labels[v] = v
			in.Timeline = append(in.Timeline, Event{At: in.Timestamps.Resolved, Kind: v, Text: v})
			in.Steps = append(in.Steps, Step{Name: v, Action: v, Target: v, Status: v, Result: v, Error: v, Commit: v, ApprovedBy: hostile[len(hostile)-1-i]})
		}
		checkSafe(t, in)
	})
}

var (
	mermaidLine = regexp.MustCompile(`^(?:timeline|    title [a-z0-9-]+|    section \d{4}-\d{2}-\d{2}|        (?:\d\d\.\d\d|later) : [^:;#%<>&\x60"\[\]{}\\|]+|              : [^:;#%<>&\x60"\[\]{}\\|]+)$`)
	bodyLine    = regexp.MustCompile(`^(?:|# .*|## [A-Z][a-z]+|\*\*.*|\| .*|- .*|Nothing recorded yet\.|No steps ran\.|No alerts\.)$`)
	autolink    = regexp.MustCompile(`(?i)://|www\.|@[\pL\pN]|#[\pL\pN]|:[\pL]`)
	safePath    = regexp.MustCompile(`^incidents/\d{4}/\d{2}/[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.md$`)
)

// checkSafe marshals in and checks everything the file promises for
// hostile values: the record reads back as written, the front matter
// cannot end early, the body renders nothing but text, and the path is
// safe.
func checkSafe(t *testing.T, in *Incident) {
	t.Helper()
	checkEmit(t, in)
	data, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(data) {
		t.Errorf("file is not valid UTF-8")
	}

	// The record reads back as written, and writes the same again.
	want := in.Clone()
	want.Normalize()
	got, err := Unmarshal(data)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Unmarshal(Marshal(x)) differs from x normalized")
	}
	if again, err := Marshal(got); err != nil || !bytes.Equal(again, data) {
		t.Errorf("Marshal is not stable across a round trip (err %v)", err)
	}

	// Exactly two --- lines, the delimiters: the first line, and the one
	// before the body's heading.
	lines := strings.Split(string(data), "\n")
	var delims []int
	for i, l := range lines {
		if l == "---" {
			delims = append(delims, i)
		}
		if strings.HasPrefix(l, "...") {
			t.Errorf("line %d starts with ...: %.60q", i+1, l)
		}
	}
	if len(delims) != 2 || delims[0] != 0 || len(lines) < delims[1]+3 || !strings.HasPrefix(lines[delims[1]+2], "# ") {
		t.Fatalf("--- lines at %v, want the first line and the front matter's end", delims)
	}

	body := strings.Join(lines[delims[1]+1:], "\n")
	if strings.ContainsAny(body, "<>") {
		t.Errorf("body holds a raw < or >")
	}
	if strings.Contains(body, "](") {
		t.Errorf("body holds ](")
	}
	if len(body) > 256<<10 {
		t.Errorf("body is %d bytes", len(body))
	}

	fences, table := 0, 0
	inChart := false
	for i, l := range lines[delims[1]+1:] {
		switch {
		case strings.HasPrefix(l, "```") || strings.HasPrefix(l, "~~~"):
			fences++
			inChart = l == "```mermaid"
			if !inChart && l != "```" {
				t.Errorf("body line %d is a stray fence: %.60q", i+1, l)
			}
		case inChart:
			if !mermaidLine.MatchString(l) {
				t.Errorf("Mermaid line %.80q breaks the timeline syntax", l)
			}
		case !bodyLine.MatchString(l):
			t.Errorf("body line %d starts with a value: %.60q", i+1, l)
		default:
			// Outside the Mermaid block (code, which GitHub leaves alone).
			if m := autolink.FindString(l); m != "" {
				t.Errorf("body line %d holds %q, which GitHub may turn into a link", i+1, m)
			}
		}
		// Every row of a table has the header's number of cells.
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
	if fences != 2 {
		t.Errorf("%d fence lines, want 2 (the Mermaid block)", fences)
	}

	if p := Path("incidents", got); !safePath.MatchString(p) {
		t.Errorf("Path = %q", p)
	}
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

func TestEscapeMarkdown(t *testing.T) {
	const wj = "\u2060"
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"line\nbreaks\r\n and  tabs\t", "line breaks and tabs"},
		{"<script>alert(1)</script>", "&lt;script&gt;alert\\(1\\)&lt;/script&gt;"},
		{"[x](javascript:alert(1))", "\\[x\\]\\(javascript:" + wj + "alert\\(1\\)\\)"},
		{"a | b", "a \\| b"},
		{"`code`", "\\`code\\`"},
		{"*em* _em_ ~s~ $m$", "\\*em\\* \\_em\\_ \\~s\\~ \\$m\\$"},
		{"&amp;", "&amp;amp;"},
		{"https://x.example", "https:" + wj + "//x.example"},
		{"www.x.example", "www" + wj + ".x.example"},
		{"a@b.example", "a@" + wj + "b.example"},
		{"@team", "@" + wj + "team"},
		{"#12", "\\#" + wj + "12"},
		{":smile:", ":" + wj + "smile:"},
		{"10:30", "10:" + wj + "30"},
		{"- x", "\\- x"},
		{"+ x", "\\+ x"},
		{"= x", "\\= x"},
		{"12. x", "12\\. x"},
		{"1) x", "1\\) x"},
		{"v1.2", "v1.2"},
		{"a\x00b\x1bc", "a\uFFFDb\uFFFDc"},
		{"\u202eabc", "\uFFFDabc"},
		{"bad\xffbyte", "bad\uFFFDbyte"},
		{"abcdef", "abc…"},
	}
	for _, tc := range tests {
		max := 0
		if tc.in == "abcdef" {
			max = 3
		}
		if got := EscapeMarkdown(tc.in, max); got != tc.want {
			t.Errorf("EscapeMarkdown(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// checkEmit: where emit writes a record's front matter, it writes exactly
// what yaml.v3 writes.
func checkEmit(t *testing.T, in *Incident) (emitted bool) {
	t.Helper()
	c := in.Clone()
	c.Normalize()
	doc := frontMatterNode(c, false)
	got, ok := emit(doc)
	if !ok {
		return false
	}
	want, err := yamlEncode(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("emit differs from yaml.v3:\n--- emit\n%s\n--- yaml.v3\n%s", got, want)
	}
	return true
}
