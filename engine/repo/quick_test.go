package repo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"github.com/rogpeppe/go-internal/txtar"
)

// loadBoth loads dir with validateQuick and parseDir, and with neither.
func loadBoth(t *testing.T, dir string) (quick, full *Repo) {
	t.Helper()
	var err error
	if quick, err = Load(dir); err != nil {
		t.Fatal(err)
	}
	noQuick, noParseDir = true, true
	defer func() { noQuick, noParseDir = false, false }()
	if full, err = Load(dir); err != nil {
		t.Fatal(err)
	}
	return quick, full
}

// summary is what a load says, in comparable form.
func summary(r *Repo) string {
	var b strings.Builder
	for _, d := range r.Diagnostics {
		fmt.Fprintf(&b, "diag %s\n", d)
	}
	for _, pb := range r.Playbooks {
		fmt.Fprintf(&b, "playbook %s %s:%d title=%q owner=%q severity=%q group_by=%q cooldown=%s match=%v\n",
			pb.Name, pb.File, pb.Line, pb.Title, pb.Owner, pb.Severity, pb.GroupBy, pb.Cooldown, pb.Match)
		// What the syntax of a match does not show: closedness.
		fmt.Fprintf(&b, "  match closed=%v", pb.Match.IsClosed())
		for _, f := range []string{"source", "status", "labels", "annotations", "startsAt", "other"} {
			fmt.Fprintf(&b, " %s=%v", f, pb.Match.Allows(cue.Str(f)))
		}
		fmt.Fprintf(&b, " labels closed=%v\n", pb.Match.LookupPath(cue.ParsePath("labels")).IsClosed())
	}
	if ix := r.Index(); ix != nil {
		compiled, fallback := ix.Stats()
		fmt.Fprintf(&b, "index %d compiled, %d fallback\n", compiled, fallback)
		for _, tc := range r.Tests {
			fmt.Fprintf(&b, "  %s matches %v\n", tc.Name, ix.Match(&tc.Alert))
		}
	}
	for _, tc := range r.Tests {
		fmt.Fprintf(&b, "test %s %s:%d %v\n", tc.Name, tc.File, tc.Line, tc.Playbooks)
	}
	return b.String()
}

// quickRepos are repositories whose playbooks read the alert only by
// copying its strings, with mistakes of each kind, so that validateQuick
// vouches for some playbooks and leaves others to playbook.
var quickRepos = map[string]map[string]string{
	// Files parseDir leaves to cue/load.
	"cue/load": {
		"firebreak.cue":              config,
		"playbooks/a.cue":            "package playbooks\n\nimport \"strings\"\n\na: {title: strings.ToUpper(\"a\"), owner: \"@acme/team\", severity: \"info\", match: labels: alertname: \"A\", steps: [{notify: {channel: \"oncall\", text: \"\\(alert.labels.x)\"}}]}\n",
		"playbooks/b_test.cue":       "package playbooks\n\nb: 1\n",
		"playbooks/c_tool.cue":       "package playbooks\n\nc: 1\n",
		"playbooks/d.cue":            "@if(never)\n\npackage playbooks\n\nd: 1\n",
		"playbooks/e.cue":            "package other\n\ne: 1\n",
		"playbooks/tests/t.cue":      "package tests\n\ntests: t: {alert: {labels: alertname: \"A\"}, expect: playbooks: [\"a\"]}\n",
		"playbooks/tests/u.cue":      "package tests\n\ntests: u: {alert: labels: alertname: \"B\", expect: playbooks: []}\n",
		"playbooks/tests/x_test.cue": "package tests\n\nx: 1\n",
	},
	"syntax error": {
		"firebreak.cue":   config,
		"playbooks/a.cue": "package playbooks\n\na: {title: \"a\"\n",
		"playbooks/b.cue": "package playbooks\n\nb: {title: \"b\", owner: \"@acme/team\", severity: \"info\", match: labels: alertname: \"B\", steps: [{notify: {channel: \"oncall\", text: \"b\"}}]}\n",
	},
	// A match that holds a string of the alert: two evaluations.
	"computed match": {
		"firebreak.cue": config,
		"playbooks/a.cue": `package playbooks

computed_match: {
	title: "t", owner: "@acme/team", severity: "high"
	match: labels: alertname: "\(alert.labels.name)"
	steps: [{notify: {channel: "oncall", text: "x"}}]
}
`,
	},
	"data and several declarations": {
		"firebreak.cue":    config,
		"playbooks/a.yaml": "disk_full:\n  title: Disk full\n  owner: \"@acme/team\"\n  severity: warning\n  match:\n    labels:\n      alertname: DiskFull\n  group_by: [instance]\n  steps:\n    - notify: {channel: oncall, text: disk full}\n",
		"playbooks/b.json": `{"api_down": {"title": "API down", "owner": "@acme/team", "severity": "high",
 "match": {"labels": {"alertname": "APIDown"}},
 "steps": [{"rollback": {"target": "deploy", "path": "apps/api"}}]}}`,
		"playbooks/c.cue": "package playbooks\n\nsplit: steps: [{notify: {channel: \"oncall\", text: \"\\(alert.labels.x)\"}}]\n",
		"playbooks/d.cue": "package playbooks\n\nsplit: {title: \"s\", owner: \"@acme/team\", severity: \"info\", match: labels: alertname: \"S\"}\n",
	},
	"computed": {
		"firebreak.cue": config,
		"playbooks/a.cue": `package playbooks

_common: {owner: "@acme/team", severity: "high"}
computed: _common & {
	title: "Down: \(alert.labels.service) (\(alert.status))"
	match: labels: alertname: "A"
	group_by: ["service"]
	cooldown: "5m"
	steps: [
		{name: "tell-\(alert.labels.service)", notify: {channel: "oncall", text: "\(alert.annotations.summary)"}},
		{name: "tell-\(alert.labels.other)", notify: {channel: "oncall", text: "x"}},
		{rollback: {target: "deploy", path: "apps/\(alert.labels.service)"}},
	]
	on_failure: [{notify: {channel: "oncall", text: "failed: \(alert.labels.service)"}}]
}
computed_target: _common & {
	title: "t"
	match: labels: alertname: "B"
	steps: [{rollback: {target: "\(alert.labels.repo)", path: "x"}}]
}
computed_owner: {
	title: "t", severity: "high", owner: "@acme/\(alert.labels.team)"
	match: labels: alertname: "C"
	steps: [{notify: {channel: "oncall", text: "x"}}]
}
computed_title_and_owner: {
	title: "\(alert.labels.x)", severity: "high", owner: "@acme/\(alert.labels.team)"
	match: labels: alertname: "C2"
	steps: [{notify: {channel: "oncall", text: "x"}}]
}
computed_meta: _common & {
	title: "t", cooldown: "\(alert.labels.n)m", group_by: ["\(alert.labels.g)"]
	match: labels: alertname: "C3"
	steps: [{notify: {channel: "oncall", text: "x"}}]
}
computed_severity: {
	title: "t", owner: "@acme/team", severity: "\(alert.labels.sev)"
	match: labels: alertname: "C4"
	steps: [{notify: {channel: "oncall", text: "x"}}]
}
computed_params: _common & {
	title: "t"
	match: labels: alertname: "C5"
	steps: [
		{scale: {target: "deploy", path: "a.yaml", resource: "Deployment/\(alert.labels.d)", replicas: 3}},
		{verify: {query: "up{job=\"\(alert.labels.job)\"}", datasource: "\(alert.labels.ds)", within: "1m"}},
		{notify: {channel: "\(alert.labels.ch)", text: "x"}},
	]
}
duplicate_names: _common & {
	title: "t"
	match: labels: alertname: "D"
	steps: [
		{name: "same", notify: {channel: "oncall", text: "x"}},
		{name: "same", notify: {channel: "oncall", text: "y"}},
	]
}
not_allowed: _common & {
	title: "t"
	match: {labels: alertname: "E", lables: {}}
	steps: [{notify: {channel: "page", text: "x"}}]
}
missing: _common & {
	match: labels: alertname: "F"
	steps: [{notify: {channel: "oncall"}}, {scale: {target: "deploy", path: "a.yaml"}}]
}
unbound: _common & {
	title: "t"
	match: labels: alertname: "G"
	cooldown: "soon"
	steps: [{verify: {query: "up", within: "1m"}}]
}
`,
	},
}

// TestQuickAgreesWithTwoEvaluations checks that validateQuick gives what
// the two evaluations it replaces give, diagnostics and playbooks alike,
// on the shipped library, on every repository of the testscript scripts,
// and on repositories with a mistake of each kind.
func TestQuickAgreesWithTwoEvaluations(t *testing.T) {
	dirs := map[string]string{"library": "../.."}
	scripts, _ := filepath.Glob("../../testdata/script/*.txtar")
	for _, s := range scripts {
		a, err := txtar.ParseFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range a.Files {
			prefix, ok := strings.CutSuffix(f.Name, "firebreak.cue")
			if !ok || strings.Contains(strings.TrimSuffix(prefix, "/"), "playbooks") {
				continue
			}
			files := map[string]string{}
			for _, g := range a.Files {
				if rest, ok := strings.CutPrefix(g.Name, prefix); ok {
					files[rest] = string(g.Data)
				}
			}
			dirs[filepath.Base(s)+":"+prefix] = writeFiles(t, files)
		}
	}
	for name, files := range quickRepos {
		dirs[name] = writeFiles(t, files)
	}
	quick := 0
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			before := quickVouched.Load()
			q, f := loadBoth(t, dir)
			if got, want := summary(q), summary(f); got != want {
				t.Errorf("one evaluation:\n%s\ntwo:\n%s", got, want)
			}
			t.Logf("%d of %d playbooks vouched for by one evaluation", quickVouched.Load()-before, len(q.Playbooks))
			quick += int(quickVouched.Load() - before)
		})
	}
	if quick < 15 {
		t.Errorf("one evaluation vouched for %d playbooks in all", quick)
	}
}

// TestQuickAgreesOnGenerated does the same on repositories written by
// bench/gen, valid and broken.
func TestQuickAgreesOnGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs bench/gen")
	}
	for _, args := range [][]string{{"-n", "300", "-files", "7"}, {"-n", "60", "-files", "3", "-broken"}} {
		tmp := t.TempDir()
		out := filepath.Join(tmp, "repo")
		cmd := exec.Command("go", append([]string{"run", "../../bench/gen", "-out", out, "-cue", filepath.Join(tmp, "cue")}, args...)...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bench/gen: %v\n%s", err, msg)
		}
		before := quickVouched.Load()
		q, f := loadBoth(t, out)
		if n := quickVouched.Load() - before; !slices.Contains(args, "-broken") && n != int64(len(q.Playbooks)) {
			t.Errorf("%v: one evaluation vouched for %d of %d playbooks", args, n, len(q.Playbooks))
		}
		if got, want := summary(q), summary(f); got != want {
			t.Errorf("%v: one evaluation:\n%s\ntwo:\n%s", args, got, want)
		}
		if len(q.Playbooks) == 0 {
			t.Errorf("%v: no playbooks", args)
		}
		_ = os.RemoveAll(tmp)
	}
}
