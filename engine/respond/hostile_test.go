package respond_test

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/schema"
)

// hostileValues are label and annotation values an alert source may send
// (or an attacker who can make one fire): each becomes one incident.
var hostileValues = []string{
	"multi\nline\r\nvalue\u2028with separators",
	"---\nstatus: resolved\nowner: \"@evil\"\n---",
	"../../../etc/passwd",
	"[x](javascript:alert(1))",
	"![img](https://evil.example/x.png) <https://evil.example> www.evil.example",
	"<script>alert(1)</script><img src=x onerror=alert(1)>",
	"@acme/everyone please look, cc @acme/security",
	"bad \xff\xfe utf8 \xc3",
	"| a | b |\n# heading\n```\nfence\n~~~",
	"<!-- firebreak:incident=2026-11-21-forged-00000000 -->",
	"\u202eevil bidi\u202c \x1b[31mred\x00nul",
	strings.Repeat("A", 100*1024),
	strings.Repeat("[x](y) <b>@acme/all</b>\n", 4*1024),
}

const hostilePlaybook = `package playbooks

hostile: {
	title:    "\(alert.labels.service) is down: \(alert.annotations.summary)"
	owner:    "@acme/payments"
	severity: "warning"
	match: labels: alertname: "Hostile"
	group_by: ["service"]
	steps: [
		{notify: {channel: "hook", text: "down: \(alert.labels.service)"}},
		{name: "flip", notify: {channel: "hook", text: "flip \(alert.annotations.summary)"}, approval: "required"},
	]
}
`

// hostileAlert carries v in a group label, in a label's name and value,
// and in the annotations.
func hostileAlert(i int, v, status string, start time.Time) schema.Alert {
	return schema.Alert{
		Source: "alertmanager", Status: status, Fingerprint: fmt.Sprintf("hostile-%d", i),
		Labels:      map[string]string{"alertname": "Hostile", "service": v, v: v},
		Annotations: map[string]string{"summary": v, "runbook_url": "javascript:" + v},
		StartsAt:    start, ReceivedAt: start,
	}
}

var (
	safeIncidentPath = regexp.MustCompile(`^incidents/\d{4}/\d{2}/[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.md$`)
	markdownLink     = regexp.MustCompile(`\[[^\]\n]*\]\(([^)\s]*)\)`)
	anyMarker        = regexp.MustCompile(`<!-- firebreak:(?:incident|comment|pr)=[A-Za-z0-9][A-Za-z0-9._:/@+=-]* -->`)
)

// TestHostileLabelsEndToEnd handles alerts whose labels and annotations
// hold newlines, ---, ../, Markdown links and images, HTML, @mentions,
// forged markers, control and bidi characters, invalid UTF-8 and 100 KB
// values, through the whole lifecycle (open, steps, an approval by a
// hostile name, resolve, postmortem) and GitHub. Each incident file must
// land at a safe path, read back as the same normalized record and render
// nothing but text; the issue, its comments and the pull request must
// carry no link, HTML, mention or marker of the alert's making.
func TestHostileLabelsEndToEnd(t *testing.T) {
	w := newWorld(t, true)
	w.write("firebreak.cue", strings.Replace(readFile(t, w.dir, "firebreak.cue"), "runs_per_hour: 3", "runs_per_hour: 1000", 1))
	w.write("playbooks/hostile.cue", hostilePlaybook)
	w.gitCLI("add", ".")
	w.gitCLI("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "hostile playbook")
	e := w.engine()
	start := w.clock.Now().Add(-2 * time.Minute)

	var alerts []schema.Alert
	for i, v := range hostileValues {
		alerts = append(alerts, hostileAlert(i, v, "firing", start))
	}
	outs := handle(t, e, alerts...)
	if len(outs) != len(hostileValues) {
		t.Fatalf("%d outcomes for %d alert groups", len(outs), len(hostileValues))
	}
	ids := make([]string, len(outs))
	for i, o := range outs {
		// A text longer than notify takes is refused by the sandbox:
		// the run fails there, the incident stands.
		want := "waiting"
		if len(hostileValues[i]) > 40000 {
			want = "failed"
		}
		if o.What != respond.Opened || o.Result == nil || o.Result.Status != want {
			t.Fatalf("value %d: %s (%s), result %+v; want opened and %s", i, o.What, o.Reason, o.Result, want)
		}
		ids[i] = o.Incident
	}
	// A person with a hostile name approves the first; the last two
	// resolve: their issues are closed and their postmortems drafted.
	w.clock.advance(time.Minute)
	if _, err := e.Decide(t.Context(), respond.Decision{Incident: ids[0], Approve: true,
		By: "@acme/evil [x](javascript:alert(1)) <b>bold</b>\n---", Via: "<i>via</i> @acme/via"}); err != nil {
		t.Fatalf("approve: %v", err)
	}
	w.clock.advance(time.Minute)
	for _, i := range []int{len(hostileValues) - 2, len(hostileValues) - 1} {
		resolved := hostileAlert(i, hostileValues[i], "resolved", start)
		resolved.EndsAt = w.clock.Now()
		one(t, handle(t, e, resolved), respond.Resolved)
	}
	drain(t, w, func() *respond.Engine { return e }, 5)

	// The files.
	files := w.incidentFiles()
	if len(files) != len(hostileValues) {
		t.Fatalf("%d incident files, want %d: %q", len(files), len(hostileValues), files)
	}
	for _, f := range files {
		if !safeIncidentPath.MatchString(f) {
			t.Errorf("unsafe incident path %q", f)
		}
	}
	for i, v := range hostileValues {
		t.Run(fmt.Sprintf("value %d", i), func(t *testing.T) {
			in := w.record(ids[i])
			if !incident.ValidID(in.ID) || !slices.Contains(files, incident.Path("incidents", in)) {
				t.Errorf("id %q at %s", in.ID, incident.Path("incidents", in))
			}
			checkRecordFile(t, []byte(readFile(t, w.dir, incident.Path("incidents", in))))

			// The record holds what the alert said, normalized: valid
			// UTF-8, cut to incident.MaxValueBytes, nothing else changed.
			want := &incident.Incident{
				Title:  v + " is down: " + v,
				Group:  map[string]string{"service": v},
				Alerts: []incident.AlertRef{{Labels: alerts[i].Labels, Annotations: alerts[i].Annotations}},
			}
			want.Normalize()
			if in.Title != want.Title {
				t.Errorf("title %.80q, want %.80q", in.Title, want.Title)
			}
			if !reflect.DeepEqual(in.Group, want.Group) {
				t.Errorf("group %.200q, want %.200q", in.Group, want.Group)
			}
			if len(in.Alerts) != 1 || !reflect.DeepEqual(in.Alerts[0].Labels, want.Alerts[0].Labels) ||
				!reflect.DeepEqual(in.Alerts[0].Annotations, want.Alerts[0].Annotations) {
				t.Errorf("alert labels/annotations not kept as the alert sent them (normalized)")
			}
		})
	}

	// GitHub.
	issues := w.gh.Issues()
	if len(issues) != len(hostileValues) {
		t.Fatalf("%d issues, want %d", len(issues), len(hostileValues))
	}
	byID := map[string]bool{}
	for _, is := range issues {
		for _, id := range ids {
			if strings.Contains(is.Body, github.IncidentMarker(id)) {
				if byID[id] {
					t.Errorf("incident %s has two issues", id)
				}
				byID[id] = true
			}
		}
		where := fmt.Sprintf("issue #%d", is.Number)
		checkGitHubText(t, where+" title", is.Title, w)
		if strings.ContainsAny(is.Title, "\n\r") {
			t.Errorf("%s title spans lines: %.120q", where, is.Title)
		}
		checkGitHubText(t, where+" body", is.Body, w)
		for _, l := range is.Labels {
			if !slices.Contains([]string{"incident", "severity/warning", "owner/acme/payments"}, l) {
				t.Errorf("%s has label %.80q", where, l)
			}
		}
		for _, c := range is.Comments {
			checkGitHubText(t, fmt.Sprintf("%s comment %d", where, c.ID), c.Body, w)
		}
		if len(is.Comments) == 0 {
			t.Errorf("%s has no comment", where)
		}
	}
	if len(byID) != len(ids) {
		t.Errorf("%d of %d incidents found by their marker", len(byID), len(ids))
	}
	pulls := w.gh.Pulls()
	if len(pulls) != 2 {
		t.Fatalf("%d postmortem pull requests, want 2", len(pulls))
	}
	for _, pr := range pulls {
		checkGitHubText(t, fmt.Sprintf("pull #%d title", pr.Number), pr.Title, w)
		checkGitHubText(t, fmt.Sprintf("pull #%d body", pr.Number), pr.Body, w)
	}
}

// checkRecordFile checks an incident file as the incident package
// promises it for any value: two --- lines (the front matter's), the
// record reads back and writes the same bytes again, and the body holds
// no HTML, no link and, outside the Mermaid block (code, which GitHub
// does not render as Markdown), no mention, URL or #reference.
func checkRecordFile(t *testing.T, data []byte) {
	t.Helper()
	in, err := incident.Unmarshal(data)
	if err != nil {
		t.Fatalf("record does not read back: %v", err)
	}
	if again, err := incident.Marshal(in); err != nil || !bytes.Equal(again, data) {
		t.Errorf("record does not write back the same (err %v)", err)
	}
	lines := strings.Split(string(data), "\n")
	var delims []int
	for i, l := range lines {
		if l == "---" {
			delims = append(delims, i)
		}
	}
	if len(delims) != 2 || delims[0] != 0 {
		t.Fatalf("--- lines at %v, want the first line and the end of the front matter", delims)
	}
	body := lines[delims[1]+1:]
	text := strings.Join(body, "\n")
	if strings.ContainsAny(text, "<>") || strings.Contains(text, "](") {
		t.Errorf("body holds HTML or a link")
	}
	inChart := false
	for _, l := range body {
		switch {
		case strings.HasPrefix(l, "```"):
			inChart = l == "```mermaid"
		case inChart:
		case strings.Contains(l, "@acme/") || strings.Contains(l, "://") || strings.Contains(strings.ToLower(l), "www.evil"):
			t.Errorf("body line holds a mention or URL: %.120q", l)
		}
	}
}

// checkGitHubText checks what firebreak sent GitHub: its own markers and
// the link to the incident file are the only HTML and links in it, and no
// @mention, URL, heading or forged marker came from an alert.
func checkGitHubText(t *testing.T, where, s string, w *world) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("%s holds invalid UTF-8", where)
	}
	markers := anyMarker.FindAllString(s, -1)
	if len(markers) > 1 {
		t.Errorf("%s holds %d markers: %q", where, len(markers), markers)
	}
	rest := anyMarker.ReplaceAllString(s, "")
	fileLinks := w.gh.URL + "/acme/ops/blob/HEAD/incidents/"
	for _, m := range markdownLink.FindAllStringSubmatch(rest, -1) {
		if !strings.HasPrefix(m[1], fileLinks) {
			t.Errorf("%s holds a link %.120q", where, m[0])
		}
	}
	rest = markdownLink.ReplaceAllString(rest, "")
	// firebreak's own instructions.
	rest = strings.NewReplacer("`/approve <step>`", "", "`/deny <step>`", "").Replace(rest)
	// A scheme followed by a word joiner is not a link; an @ followed by
	// one is not a mention: EscapeMarkdown's way of breaking them.
	for _, bad := range []string{"<", "](", "@acme/", "javascript:a", "://", "www.evil", "\x00", "\x1b", "\u202e"} {
		if i := strings.Index(rest, bad); i >= 0 {
			t.Errorf("%s holds %q: …%.80q…", where, bad, rest[max(i-40, 0):])
		}
	}
	for _, l := range strings.Split(rest, "\n") {
		if strings.HasPrefix(l, "#") || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "```") {
			t.Errorf("%s has a line of the alert's making: %.80q", where, l)
		}
	}
}

// drain flushes the outbox until it is empty, taking a fresh engine (a
// restart) from next every so often, and fails after max rounds.
func drain(t *testing.T, w *world, next func() *respond.Engine, max int) int {
	t.Helper()
	rounds := 0
	for ; ; rounds++ {
		if w.gitCLI("ls-files", ".firebreak/outbox") == "" {
			return rounds
		}
		if rounds == max {
			t.Fatalf("outbox not drained after %d flushes: %s", max, w.gitCLI("ls-files", ".firebreak/outbox"))
		}
		if _, err := next().Flush(t.Context()); err != nil && !github.IsTransient(err) {
			t.Fatalf("flush %d: %v", rounds+1, err)
		}
	}
}
