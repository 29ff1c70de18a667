package repo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
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

const config = `
targets: deploy: git: url: "https://git.example.com/deploy.git"
channels: oncall: slack: webhook: secret: "SLACK"
policy: owners: "@acme/team": {rollback: ["deploy"], notify: ["oncall"]}
`

func TestLibraryIsValid(t *testing.T) {
	r, err := Load("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Diagnostics {
		t.Errorf("%s", d)
	}
	if len(r.Playbooks) < 8 || len(r.Tests) < 16 {
		t.Errorf("library has %d playbooks and %d tests, want at least 8 and 16", len(r.Playbooks), len(r.Tests))
	}
	if r.Config == nil || r.Config.Policy.Limits.RunsPerHour != 6 {
		t.Errorf("config not decoded: %+v", r.Config)
	}
}

// TestDataPlaybooks checks that YAML and JSON playbooks load through the
// same schema as CUE ones, in file order, with errors at their lines.
func TestDataPlaybooks(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"firebreak.cue": config,
		"playbooks/a.yaml": `disk_full:
  title: Disk full
  owner: "@acme/team"
  severity: warning
  match:
    labels:
      alertname: DiskFull
  group_by: [instance]
  steps:
    - notify: {channel: oncall, text: disk full}
`,
		"playbooks/b.json": `{"api_down": {"title": "API down", "owner": "@acme/team", "severity": "high",
 "match": {"labels": {"alertname": "APIDown"}},
 "steps": [{"rollback": {"target": "deploy", "path": "apps/api"}}]}}`,
		"playbooks/c.cue": `package playbooks
cue_one: {title: "c", owner: "@acme/team", severity: "info", match: labels: alertname: "C", steps: [{notify: {channel: "oncall", text: "c"}}]}
`,
	})
	r, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Diagnostics {
		t.Errorf("%s", d)
	}
	var names []string
	for _, pb := range r.Playbooks {
		names = append(names, pb.Name+"@"+pb.File)
	}
	if got, want := strings.Join(names, " "), "disk_full@playbooks/a.yaml api_down@playbooks/b.json cue_one@playbooks/c.cue"; got != want {
		t.Errorf("playbooks %q, want %q", got, want)
	}
	if r.Playbooks[0].GroupBy[0] != "instance" || r.Playbooks[0].Severity != "warning" {
		t.Errorf("yaml playbook decoded as %+v", r.Playbooks[0])
	}

	// A schema error in YAML is reported at its YAML line.
	bad := writeFiles(t, map[string]string{
		"firebreak.cue":    config,
		"playbooks/a.yaml": "p:\n  title: x\n  owner: \"@acme/team\"\n  severity: loud\n  match: {}\n  steps: [{notify: {channel: oncall, text: x}}]\n",
	})
	r, err = Load(bad)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Diagnostics) != 1 || !strings.HasPrefix(r.Diagnostics[0].String(), "playbooks/a.yaml:4:13: p.severity: \"loud\" is not one of") {
		t.Errorf("diagnostics %v", r.Diagnostics)
	}
}

func TestReservedAlert(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"firebreak.cue":    config,
		"playbooks/a.cue":  "package playbooks\nalert: labels: x: \"y\"\n",
		"playbooks/b.yaml": "not_a_map",
	})
	r, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range r.Diagnostics {
		got = append(got, d.String())
	}
	joined := strings.Join(got, "\n")
	if !strings.Contains(joined, "playbooks/a.cue:2:1: alert is declared by firebreak") {
		t.Errorf("want the reserved name reported, got:\n%s", joined)
	}
}

func TestMissingConfig(t *testing.T) {
	r, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Diagnostics) != 2 || r.Diagnostics[0].File != "firebreak.cue" || r.Diagnostics[1].File != "playbooks" {
		t.Errorf("diagnostics %v", r.Diagnostics)
	}
}

// TestParallelValidation loads enough playbooks to be validated on several
// goroutines, sharing definitions, hidden fields and an import across
// files, with errors in both halves: the result must be the same as one
// goroutine gives, and -race must stay quiet.
func TestParallelValidation(t *testing.T) {
	var a, b strings.Builder
	a.WriteString("package playbooks\n\nimport \"strings\"\n\n#Base: {owner: \"@acme/team\", severity: \"info\", ...}\n_text: strings.ToUpper(\"x\")\n")
	b.WriteString("package playbooks\n\n")
	for i := range 300 {
		w := &a
		if i >= 150 {
			w = &b
		}
		sev := ""
		if i == 7 || i == 290 {
			sev = `, severity: "loud"`
		}
		fmt.Fprintf(w, "p%03d: #Base & {title: \"p\"%s, match: labels: alertname: \"A%d\", steps: [{notify: {channel: \"oncall\", text: \"\\(_text) \\(alert.labels.x)\"}}]}\n", i, sev, i)
	}
	dir := writeFiles(t, map[string]string{"firebreak.cue": config, "playbooks/a.cue": a.String(), "playbooks/b.cue": b.String()})
	r, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range r.Diagnostics {
		got = append(got, d.String())
	}
	want := []string{
		`playbooks/a.cue:14:38: p007.severity: "loud" is not one of "info" | "critical" | "high" | "warning"`,
		`playbooks/b.cue:143:38: p290.severity: "loud" is not one of "info" | "critical" | "high" | "warning"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(r.Playbooks) != 298 || r.Playbooks[0].Name != "p000" || r.Playbooks[297].Name != "p299" {
		t.Errorf("got %d playbooks, first %s", len(r.Playbooks), r.Playbooks[0].Name)
	}
}

// TestPlaybookFile checks that a playbook's file and line are those of its
// first declaration, not of a pattern constraint elsewhere that applies to
// it.
func TestPlaybookFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"firebreak.cue":      config,
		"playbooks/defs.cue": "package playbooks\n\n_common: {owner: \"@acme/team\", severity: \"high\", cooldown: \"5m\"}\n\n[=~\"^svc_\"]: group_by: [\"service\"]\n",
		"playbooks/a.cue":    "package playbooks\n\nsvc_a: _common & {\n\ttitle: \"a\"\n\tmatch: labels: alertname: \"A\"\n\tsteps: [{notify: {channel: \"oncall\", text: \"x\"}}]\n}\n",
		"playbooks/b.cue":    "package playbooks\n\nsvc_a: description: \"declared again\"\n",
	})
	for _, quick := range []bool{true, false} {
		noQuick = !quick
		r, err := Load(dir)
		noQuick = false
		if err != nil {
			t.Fatal(err)
		}
		if !r.Valid() || len(r.Playbooks) != 1 {
			t.Fatalf("diagnostics %v, %d playbooks", r.Diagnostics, len(r.Playbooks))
		}
		if pb := r.Playbooks[0]; pb.File != "playbooks/a.cue" || pb.Line != 3 || len(pb.GroupBy) != 1 {
			t.Errorf("one evaluation %v: playbook at %s:%d, group_by %v; want playbooks/a.cue:3, [service]", quick, pb.File, pb.Line, pb.GroupBy)
		}
	}
}
