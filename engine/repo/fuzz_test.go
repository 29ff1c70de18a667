package repo

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzLoad feeds arbitrary playbook and config files to the loader: it
// must never panic, and every problem must come back as a one-line
// diagnostic in a user file, never the schema.
func FuzzLoad(f *testing.F) {
	f.Add(config, "package playbooks\np: {title: \"x\", owner: \"@acme/team\", severity: \"info\", match: labels: alertname: \"A\", steps: [{notify: {channel: \"oncall\", text: \"\\(alert.labels.x)\"}}]}\n", "p:\n  title: y\n")
	f.Add("targets: 1", "package playbooks\np: match: labels: a: =~\"(\"", "[1, 2")
	f.Add("", "package other\n", "{}")
	f.Add(config, "package playbooks\nimport \"strings\"\n#D: {x: strings.ToUpper(alert.labels.a)}\np: #D & {steps: [{}, {scale: {factor: -1}}]}", "- a\n- b\n")
	f.Add(config, "package playbooks\nalert: 1\n[string]: title: \"t\"\nlet x = p\np: {x}", "a: !!binary AAAA")
	f.Fuzz(func(t *testing.T, cfg, cue, yaml string) {
		dir := writeFiles(t, map[string]string{
			"firebreak.cue":         cfg,
			"playbooks/p.cue":       cue,
			"playbooks/q.yaml":      yaml,
			"playbooks/tests/t.cue": "package tests\ntests: t: {alert: labels: alertname: \"A\", expect: playbooks: []}\n",
		})
		r, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range r.Diagnostics {
			s := d.String()
			if strings.Contains(s, "\n") {
				t.Errorf("diagnostic spans lines: %q", s)
			}
			if strings.HasPrefix(d.File, "schema/") || d.File == "" {
				t.Errorf("diagnostic not in a user file: %q", s)
			}
			if !utf8.ValidString(d.Message) && utf8.ValidString(cfg+cue+yaml) {
				t.Errorf("diagnostic is not UTF-8: %q", s)
			}
		}
		if r.Valid() {
			for _, pb := range r.Playbooks {
				if pb.Unit == nil || pb.Owner == "" {
					t.Errorf("valid playbook %s lacks owner or unit", pb.Name)
				}
			}
		}
	})
}
