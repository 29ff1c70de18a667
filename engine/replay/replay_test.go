package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

func writeFiles(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func load(t testing.TB, files map[string]string) *repo.Repo {
	t.Helper()
	r, err := repo.Load(writeFiles(t, "", files))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustValid(t testing.TB, r *repo.Repo) *repo.Repo {
	t.Helper()
	for _, d := range r.Diagnostics {
		t.Fatalf("invalid test repository: %s", d)
	}
	return r
}

const config = `
targets: {
	deploy: git: url: "https://git.example.com/deploy.git"
	flags: flagd: {repo: "deploy", file: "flags.json"}
}
channels: oncall: slack: webhook: secret: "SLACK"
policy: owners: "@acme/team": {rollback: ["deploy"], notify: ["oncall"], flag: {targets: ["flags"], keys: ["new-*"]}}
`

const playbooks = `package playbooks

rollback_api: {
	title:    "Roll back the API"
	owner:    "@acme/team"
	severity: "high"
	match: labels: {alertname: "APIDown", service: =~"^api-"}
	steps: [
		{notify: {channel: "oncall", text: "rolling back \(alert.labels.service)"}},
		{rollback: {target: "deploy", path: "apps/\(alert.labels.service)"}},
	]
}

disk_full: {
	title:    "Disk full"
	owner:    "@acme/team"
	severity: "warning"
	match: labels: alertname: "DiskFull"
	steps: [{notify: {channel: "oncall", text: "disk full on \(alert.labels.host)"}}]
}
`

const tests = `package tests

tests: rolls_back: {
	alert: labels: {alertname: "APIDown", service: "api-eu"}
	expect: playbooks: ["rollback_api"]
}
tests: web_down: {
	alert: labels: {alertname: "APIDown", service: "web"}
	expect: playbooks: []
}
tests: disk: {
	alert: labels: {alertname: "DiskFull", host: "db1"}
	expect: playbooks: ["disk_full"]
}
`

func baseFiles() map[string]string {
	return map[string]string{"firebreak.cue": config, "playbooks/p.cue": playbooks, "playbooks/tests/t.cue": tests}
}

func firing(labels map[string]string) schema.Alert {
	return schema.Alert{Source: "generic", Status: "firing", Labels: labels, Annotations: map[string]string{}}
}

// TestCompareMatchAndStep edits one match and one step: exactly the
// alerts the edits reach are reported, with exactly the step changed.
func TestCompareMatchAndStep(t *testing.T) {
	base := mustValid(t, load(t, baseFiles()))
	files := baseFiles()
	files["playbooks/p.cue"] = strings.NewReplacer(
		`service: =~"^api-"`, `service: =~"^(api-|web)"`,
		`path: "apps/\(alert.labels.service)"`, `path: "apps/v2/\(alert.labels.service)"`,
	).Replace(playbooks)
	head := mustValid(t, load(t, files))
	incidentAlert := firing(map[string]string{"alertname": "APIDown", "service": "api-us"})
	sources := append(TestSources(head), TestSources(base)...)
	sources = append(sources, Source{Alert: incidentAlert, Origin: Origin{Kind: FromIncident, Name: "2026-11-21-rollback-api-00000001"}})

	rep := Compare(base, head, sources)

	if !rep.Changed || !rep.Base.Valid {
		t.Fatalf("changed %v, base valid %v; want true, true", rep.Changed, rep.Base.Valid)
	}
	want := Summary{Alerts: 4, Tests: 3, Incidents: 1, MatchChanged: 1, PlanChanged: 2, StepsChanged: 1, PlaybooksChanged: 1,
		Text: "1 alert matches differently, 1 step changed (2 alerts), 1 playbook changed"}
	if rep.Summary != want {
		t.Errorf("summary:\n got %+v\nwant %+v", rep.Summary, want)
	}
	var got []string
	for _, c := range rep.Alerts {
		got = append(got, alertText(c.Alert)+" +"+strings.Join(c.Added, ",")+" -"+strings.Join(c.Removed, ","))
		for _, pc := range c.Playbooks {
			for _, s := range pc.Steps {
				got = append(got, "  "+pc.Playbook+" "+stepLabel(s)+" "+s.Change+": "+fieldsText(s.Fields))
			}
		}
	}
	wantLines := []string{
		`APIDown{service="api-eu"} + -`,
		`  rollback_api step 2 rollback changed: params.path: "apps/api-eu" → "apps/v2/api-eu"`,
		`APIDown{service="api-us"} + -`,
		`  rollback_api step 2 rollback changed: params.path: "apps/api-us" → "apps/v2/api-us"`,
		`APIDown{service="web"} +rollback_api -`,
	}
	if !reflect.DeepEqual(got, wantLines) {
		t.Errorf("alerts:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(wantLines, "\n     "))
	}
	if len(rep.Unchanged) != 1 || rep.Unchanged[0].Name != "DiskFull" {
		t.Errorf("unchanged = %+v, want the DiskFull alert alone", rep.Unchanged)
	}
	if len(rep.Playbooks.Changed) != 1 || rep.Playbooks.Changed[0].Fields[0].Path != "match" {
		t.Errorf("playbooks = %+v, want rollback_api's match changed", rep.Playbooks)
	}
	if len(rep.Policy) != 0 {
		t.Errorf("policy = %+v, want no change", rep.Policy)
	}
}

func TestCompareNoChange(t *testing.T) {
	base := mustValid(t, load(t, baseFiles()))
	head := mustValid(t, load(t, baseFiles()))
	rep := Compare(base, head, TestSources(head))
	if rep.Changed || len(rep.Alerts) != 0 || len(rep.Unchanged) != 3 {
		t.Errorf("changed %v, %d alerts, %d unchanged; want false, 0, 3", rep.Changed, len(rep.Alerts), len(rep.Unchanged))
	}
	if want := "no change: the 3 alerts replayed match and plan the same"; rep.Summary.Text != want {
		t.Errorf("summary %q, want %q", rep.Summary.Text, want)
	}
}

// TestCompareApprovalsAndPlaybooks covers new approvals (on a changed
// step and on a newly matching playbook), added steps, a rename, a
// removed playbook and policy changes.
func TestCompareApprovalsAndPlaybooks(t *testing.T) {
	base := mustValid(t, load(t, baseFiles()))
	files := baseFiles()
	files["firebreak.cue"] = strings.Replace(config, `notify: ["oncall"]`, `notify: ["oncall", "page"]`, 1) +
		"channels: page: slack: webhook: secret: \"PAGE\"\npolicy: paused: true\n"
	files["playbooks/p.cue"] = `package playbooks

api_rollback: {
	title:    "Roll back the API"
	owner:    "@acme/team"
	severity: "critical"
	match: labels: {alertname: "APIDown", service: =~"^api-"}
	steps: [
		{notify: {channel: "oncall", text: "rolling back \(alert.labels.service)"}},
		{notify: {channel: "page", text: "paging for \(alert.labels.service)"}},
		{rollback: {target: "deploy", path: "apps/\(alert.labels.service)"}, approval: "required", timeout: "2m"},
	]
}

flag_off: {
	title:    "Flag off"
	owner:    "@acme/team"
	severity: "high"
	match: labels: {alertname: "APIDown", service: "api-eu"}
	steps: [{flag: {target: "flags", key: "new-api", to: "off"}, approval: "required"}]
}
`
	head := mustValid(t, load(t, files))
	rep := Compare(base, head, TestSources(head))

	wantPB := PlaybookDelta{Added: []string{"flag_off"}, Removed: []string{"disk_full"},
		Renamed: []Rename{{From: "rollback_api", To: "api_rollback"}},
		Changed: []PlaybookEdit{{Playbook: "api_rollback", Was: "rollback_api", Fields: []ValueChange{{Path: "severity", Base: "high", Head: "critical"}}}}}
	if !reflect.DeepEqual(rep.Playbooks, wantPB) {
		t.Errorf("playbooks:\n got %+v\nwant %+v", rep.Playbooks, wantPB)
	}
	var policy []string
	for _, c := range rep.Policy {
		policy = append(policy, changeText(c))
	}
	wantPolicy := []string{
		`policy.owners."@acme/team".notify: +"page"`,
		`policy.paused: false → true`,
		`channels.page: (unset) → {"slack":{"host":"hooks.slack.com","webhook":{"secret":"PAGE"}}}`,
	}
	if !reflect.DeepEqual(policy, wantPolicy) {
		t.Errorf("policy:\n got %q\nwant %q", policy, wantPolicy)
	}

	var eu *AlertChange
	for i, c := range rep.Alerts {
		if c.Alert.Labels["service"] == "api-eu" {
			eu = &rep.Alerts[i]
		}
	}
	if eu == nil {
		t.Fatalf("the api-eu alert is not reported: %+v", rep.Alerts)
	}
	if !reflect.DeepEqual(eu.Added, []string{"flag_off"}) || len(eu.Removed) != 0 {
		t.Errorf("api-eu: added %v, removed %v; want [flag_off], [] (the renamed playbook is the same)", eu.Added, eu.Removed)
	}
	if want := []StepRef{{Playbook: "flag_off", List: ListSteps, Name: "flag"}}; !reflect.DeepEqual(eu.Approvals, want) {
		t.Errorf("api-eu approvals = %+v, want %+v", eu.Approvals, want)
	}
	if len(eu.Playbooks) != 1 || eu.Playbooks[0].Was != "rollback_api" {
		t.Fatalf("api-eu plan changes = %+v, want api_rollback (was rollback_api)", eu.Playbooks)
	}
	var steps []string
	for _, s := range eu.Playbooks[0].Steps {
		steps = append(steps, strings.TrimSpace(stepLabel(s)+" "+s.Change+" "+fieldsText(s.Fields)))
		if s.Name == "rollback" && !s.NewApproval {
			t.Errorf("rollback step: NewApproval not set")
		}
	}
	// The first step, unchanged, is now called notify-1 by firebreak:
	// that is no change.
	wantSteps := []string{
		"step 2 notify-2 added",
		`step 3 rollback changed approval: "auto" → "required"; timeout: (unset) → "2m"`,
	}
	if !reflect.DeepEqual(steps, wantSteps) {
		t.Errorf("steps:\n got %q\nwant %q", steps, wantSteps)
	}
	// 2 new approvals: flag_off's flag step and api_rollback's rollback.
	if rep.Summary.NewApprovals != 2 {
		t.Errorf("new approvals = %d, want 2", rep.Summary.NewApprovals)
	}
	if !strings.Contains(rep.Summary.Text, "2 new approvals") {
		t.Errorf("summary %q does not mention 2 new approvals", rep.Summary.Text)
	}
}

func TestCompareInvalidBase(t *testing.T) {
	files := baseFiles()
	files["playbooks/p.cue"] = "package playbooks\n\nbroken: {title: 1}\n"
	base := load(t, files)
	head := mustValid(t, load(t, baseFiles()))
	rep := Compare(base, head, TestSources(head))
	if rep.Base.Valid || len(rep.Base.Problems) == 0 || !rep.Changed {
		t.Fatalf("base valid %v with %d problems, changed %v; want an invalid base reported", rep.Base.Valid, len(rep.Base.Problems), rep.Changed)
	}
	if !strings.HasPrefix(rep.Summary.Text, "the base does not load") {
		t.Errorf("summary %q does not say the base does not load", rep.Summary.Text)
	}
	// Against a base where nothing matches, every alert that matches now
	// matches differently.
	if rep.Summary.MatchChanged != 2 {
		t.Errorf("match changed = %d, want 2", rep.Summary.MatchChanged)
	}
	rep = Compare(nil, head, TestSources(head))
	if rep.Base.Valid {
		t.Errorf("a nil base is valid")
	}
}

func TestDedupe(t *testing.T) {
	a := firing(map[string]string{"alertname": "APIDown", "service": "api-eu"})
	b := a
	b.Labels = map[string]string{"alertname": "APIDown", "service": "api-eu"}
	b.ReceivedAt = b.ReceivedAt.AddDate(1, 0, 0)
	c := firing(map[string]string{"alertname": "APIDown", "service": "api-eu"})
	c.Annotations = map[string]string{"summary": "other"}
	got := dedupe([]Source{
		{a, Origin{Kind: FromTest, Name: "t2"}},
		{c, Origin{Kind: FromTest, Name: "t1"}},
		{b, Origin{Kind: FromIncident, Name: "inc"}},
		{a, Origin{Kind: FromTest, Name: "t2", File: "other.cue"}},
	})
	if len(got) != 2 {
		t.Fatalf("%d alerts, want 2: %+v", len(got), got)
	}
	if want := []Origin{{Kind: FromIncident, Name: "inc"}, {Kind: FromTest, Name: "t2"}}; !reflect.DeepEqual(got[0].Origins, want) {
		t.Errorf("origins = %+v, want %+v", got[0].Origins, want)
	}
	if got[1].Annotations["summary"] != "other" {
		t.Errorf("second alert = %+v, want the one with an annotation", got[1])
	}
}

func TestIncidentSources(t *testing.T) {
	dir := t.TempDir()
	in := &incident.Incident{ID: "2026-11-21-x-00000001", Title: "x", Status: incident.Resolved, Playbook: "x",
		Alerts: []incident.AlertRef{{Fingerprint: "f", Status: "resolved", Labels: map[string]string{"alertname": "APIDown"}, Annotations: map[string]string{"a": "b"}}}}
	in.Timestamps.Detected = in.Timestamps.Detected.AddDate(2026, 10, 20)
	data, err := incident.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{
		"records/2026/11/x.md":      string(data),
		"records/2026/11/broken.md": "not a record",
		"records/2026/11/notes.txt": "ignored",
	})
	ins, bad := ReadIncidents(dir, "records")
	if len(ins) != 1 || len(bad) != 1 || !strings.HasPrefix(bad[0].Error(), "records/2026/11/broken.md: ") {
		t.Fatalf("read %d incidents, errors %v; want 1 and one error for broken.md", len(ins), bad)
	}
	src := IncidentSources(ins)
	want := []Source{{Alert: schema.Alert{Source: "generic", Status: "firing", Labels: map[string]string{"alertname": "APIDown"}, Annotations: map[string]string{"a": "b"}},
		Origin: Origin{Kind: FromIncident, Name: "2026-11-21-x-00000001"}}}
	if !reflect.DeepEqual(src, want) {
		t.Errorf("sources:\n got %+v\nwant %+v", src, want)
	}
	if ins, bad := ReadIncidents(dir, "missing"); len(ins) != 0 || len(bad) != 0 {
		t.Errorf("a missing directory: %d incidents, errors %v; want none", len(ins), bad)
	}
}

func TestCompareSteps(t *testing.T) {
	notify := func(name, text string) schema.Step {
		return schema.Step{Name: name, Action: "notify", Params: map[string]any{"channel": "oncall", "text": text}, Approval: "auto"}
	}
	rollback := func(name, path, approval string) schema.Step {
		return schema.Step{Name: name, Action: "rollback", Params: map[string]any{"target": "deploy", "path": path}, Approval: approval}
	}
	tests := []struct {
		name       string
		base, head []schema.Step
		want       []string
	}{
		{"same", []schema.Step{notify("notify", "a")}, []schema.Step{notify("notify", "a")}, nil},
		{"param", []schema.Step{notify("notify", "a"), rollback("rollback", "apps/a", "auto")}, []schema.Step{notify("notify", "a"), rollback("rollback", "apps/b", "auto")},
			[]string{`changed 2 rollback params.path: "apps/a" → "apps/b"`}},
		{"new approval", []schema.Step{rollback("rollback", "apps/a", "auto")}, []schema.Step{rollback("rollback", "apps/a", "required")},
			[]string{`changed 1 rollback approval: "auto" → "required" NEW`}},
		{"approval dropped", []schema.Step{rollback("rollback", "apps/a", "required")}, []schema.Step{rollback("rollback", "apps/a", "auto")},
			[]string{`changed 1 rollback approval: "required" → "auto"`}},
		{"added in front renumbers auto names",
			[]schema.Step{notify("notify", "a"), rollback("rollback", "apps/a", "auto")},
			[]schema.Step{notify("notify-1", "b"), notify("notify-2", "a"), rollback("rollback", "apps/a", "auto")},
			[]string{`added 1 notify-1`}},
		{"removed", []schema.Step{notify("notify", "a"), rollback("rollback", "apps/a", "required"), notify("tell", "c")},
			[]schema.Step{notify("notify", "a"), notify("tell", "c")},
			[]string{`removed 2 rollback`}},
		{"added with approval", []schema.Step{notify("notify", "a")}, []schema.Step{notify("notify", "a"), rollback("rollback", "apps/a", "required")},
			[]string{`added 2 rollback NEW`}},
		{"moved", []schema.Step{notify("tell", "a"), rollback("undo", "apps/a", "auto")}, []schema.Step{rollback("undo", "apps/a", "auto"), notify("tell", "a")},
			[]string{`moved 2 tell position: 1 → 2`}},
		{"renamed", []schema.Step{notify("tell", "a")}, []schema.Step{notify("announce", "a")},
			[]string{`changed 1 announce name: "tell" → "announce"`}},
		{"action changed", []schema.Step{notify("notify", "a")}, []schema.Step{rollback("rollback", "apps/a", "auto")},
			[]string{`removed 1 notify`, `added 1 rollback`}},
		{"params added and removed", []schema.Step{{Name: "s", Action: "scale", Params: map[string]any{"replicas": 3}, Approval: "auto"}},
			[]schema.Step{{Name: "s", Action: "scale", Params: map[string]any{"factor": 1.5}, Approval: "auto", ContinueOnError: true}},
			[]string{`changed 1 s params.factor: (unset) → 1.5; params.replicas: 3 → (unset); continue_on_error: false → true`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, c := range compareSteps(ListSteps, tc.base, tc.head) {
				s := c.Change + " " + strconv.Itoa(c.Index) + " " + c.Name
				if len(c.Fields) > 0 {
					s += " " + fieldsText(c.Fields)
				}
				if c.NewApproval {
					s += " NEW"
				}
				got = append(got, s)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestMarkdown checks the comment's frame and that alert-derived values
// cannot add markup, mentions or table cells.
func TestMarkdown(t *testing.T) {
	base := mustValid(t, load(t, baseFiles()))
	files := baseFiles()
	files["playbooks/p.cue"] = strings.Replace(playbooks, `path: "apps/\(alert.labels.service)"`, `path: "apps/v2/\(alert.labels.service)"`, 1)
	head := mustValid(t, load(t, files))
	hostile := firing(map[string]string{"alertname": "APIDown", "service": "api-<img src=x onerror=alert(1)>|@everyone [x](http://e.vil)"})
	sources := append(TestSources(head), Source{Alert: hostile, Origin: Origin{Kind: FromIncident, Name: "inc-1"}})
	rep := Compare(base, head, sources)
	rep.Base.Ref, rep.Base.Commit = "origin/main", "0123456789abcdef0123456789abcdef01234567"

	var b bytes.Buffer
	if err := rep.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	if !strings.HasPrefix(md, Marker+"\n") {
		t.Errorf("markdown does not start with the marker:\n%s", md)
	}
	for _, bad := range []string{"<img", "@everyone", "](http", "[x]"} {
		if strings.Contains(md, bad) {
			t.Errorf("markdown contains %q unescaped:\n%s", bad, md)
		}
	}
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "| ") && strings.Count(strings.ReplaceAll(l, `\|`, ""), "|") != 4 {
			t.Errorf("table row with other than 3 cells: %s", l)
		}
	}
	for _, want := range []string{
		"**1 step changed \\(2 alerts\\)**",
		"base origin/main \\(0123456789ab\\) against the working tree; replayed 4 alerts from 3 tests and 1 incident, 2 unchanged.",
		"`rollback_api`, 2 alerts:",
		"| APIDown\\{service=\"api-eu\"\\}<br><sub>test rolls\\_back</sub> | step 2 `rollback` | params.path: \"apps/api-eu\" → \"apps/v2/api-eu\" |",
		"<details><summary>2 alerts unchanged</summary>",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	var again bytes.Buffer
	rep2 := Compare(base, head, sources)
	rep2.Base = rep.Base
	if err := rep2.WriteMarkdown(&again); err != nil || again.String() != md {
		t.Errorf("markdown differs between two runs (err %v)", err)
	}

	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Summary != rep.Summary {
		t.Errorf("JSON does not read back (err %v): %s", err, js.String())
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), `      ~ step 2 rollback: params.path: "apps/api-eu" → "apps/v2/api-eu"`) {
		t.Errorf("text lacks the step change:\n%s", text.String())
	}
}

func TestMarkdownFoldsLongTables(t *testing.T) {
	for _, n := range []int{collapseRows, collapseRows + 1, tableMax + 5} {
		var rep Report
		rep.Base.Valid = true
		for i := range n {
			rep.Alerts = append(rep.Alerts, AlertChange{Alert: AlertID{Name: "A", Labels: map[string]string{"n": strconv.Itoa(i)}}, Head: []string{"p"}, Added: []string{"p"}})
		}
		rep.Summary.MatchChanged = n
		var b bytes.Buffer
		if err := rep.WriteMarkdown(&b); err != nil {
			t.Fatal(err)
		}
		md := b.String()
		folded := strings.Contains(md, fmt.Sprintf("<details><summary>%d alerts match differently</summary>\n\n| Alert |", n))
		if folded != (n > collapseRows) {
			t.Errorf("%d rows: folded %v, want %v:\n%s", n, folded, n > collapseRows, md)
		}
		rows := strings.Count(md, "\n| A\\{n=")
		cut := strings.Contains(md, "… and 5 more rows")
		if want := min(n, tableMax); rows != want || cut != (n > tableMax) {
			t.Errorf("%d rows: %d written, cut note %v; want %d, %v", n, rows, cut, want, n > tableMax)
		}
	}
}
