package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cuelang.org/go/cue/format"

	"github.com/firebreak-dev/firebreak/schema"
)

// brokenSeverity is the schema error -broken puts into the first playbook:
// not one of #Severity.
const brokenSeverity = "urgent"

// config returns firebreak.cue: per team a deploy repository, a flag file
// and two channels, and a policy that allows exactly what the playbooks use.
func (c *corpus) config() string {
	var b strings.Builder
	b.WriteString("// firebreak.cue of a generated benchmark repository.\n\ntargets: {\n")
	for _, t := range teams {
		ns := t.namespace
		fmt.Fprintf(&b, "\t%q: git: {url: %q, branch: \"main\", token: secret: \"GITHUB_TOKEN\"}\n", ns+"-deploy", "https://git.example.com/acme/"+ns+"-deploy.git")
		fmt.Fprintf(&b, "\t%q: flagd: {repo: %q, file: %q}\n", ns+"-flags", ns+"-deploy", "flags/"+ns+".flagd.json")
	}
	b.WriteString("\tprom: prometheus: url: \"http://prometheus:9090\"\n")
	b.WriteString("\tstatus: http: url: \"https://status.example.com\"\n}\n\nchannels: {\n")
	var all []string
	for _, t := range teams {
		ns := t.namespace
		fmt.Fprintf(&b, "\t%q: slack: webhook: secret: %q\n", ns+"-oncall", "SLACK_"+strings.ToUpper(ns))
		fmt.Fprintf(&b, "\t%q: pagerduty: routing_key: secret: %q\n", ns+"-page", "PD_"+strings.ToUpper(ns))
		all = append(all, quote(ns+"-oncall"), quote(ns+"-page"))
	}
	b.WriteString("\tissue: github: {}\n\taudit: webhook: {url: \"https://hooks.example.com/firebreak\", hmac: secret: \"AUDIT_HMAC\"}\n}\n\n")
	b.WriteString("policy: {\n\tpaused: false\n\tlimits: {runs_per_hour: 6, step_timeout: \"5m\", run_timeout: \"30m\"}\n\towners: {\n")
	for _, t := range teams {
		ns := t.namespace
		fmt.Fprintf(&b, "\t\t%q: {\n", t.owner)
		fmt.Fprintf(&b, "\t\t\trollback: [%q]\n", ns+"-deploy")
		fmt.Fprintf(&b, "\t\t\tscale: {targets: [%q], max_replicas: 60, max_factor: 3}\n", ns+"-deploy")
		fmt.Fprintf(&b, "\t\t\tflag: {targets: [%q], keys: [\"*-v2\", \"*-kill-switch\"]}\n", ns+"-flags")
		fmt.Fprintf(&b, "\t\t\tnotify: [%q, %q, \"issue\", \"audit\"]\n", ns+"-oncall", ns+"-page")
		b.WriteString("\t\t\tverify: [\"prom\", \"status\"]\n\t\t\tapprovers: [\"@acme/sre\"]\n\t\t}\n")
	}
	fmt.Fprintf(&b, "\t\t%q: {\n\t\t\tnotify: [%s, \"issue\", \"audit\"]\n\t\t\tverify: [\"prom\", \"status\"]\n\t\t}\n", sreOwner, strings.Join(all, ", "))
	b.WriteString("\t}\n}\n\ngithub: {owner: \"acme\", repo: \"ops\", token: secret: \"GITHUB_TOKEN\", labels: [\"incident\", \"firebreak\"]}\n")
	return b.String()
}

// playbookFile returns the CUE of one file of playbooks.
func (c *corpus) playbookFile(file string, broken bool) string {
	var b strings.Builder
	b.WriteString("package playbooks\n")
	for _, pb := range c.byFile[file] {
		severity := pb.symptom.severity
		if broken && pb == c.playbooks[0] {
			severity = brokenSeverity
		}
		fmt.Fprintf(&b, "\n// %s: %s in %s.\n%s: {\n", pb.name, pb.alertname, pb.team.namespace, pb.name)
		fmt.Fprintf(&b, "\ttitle: %q\n", fmt.Sprintf("%s on %s", pb.symptom.name, pb.service))
		fmt.Fprintf(&b, "\tdescription: %q\n", fmt.Sprintf("Generated playbook for %s alerts of %s/%s.", pb.alertname, pb.team.namespace, pb.service))
		fmt.Fprintf(&b, "\towner: %q\n\tseverity: %q\n", pb.owner, severity)
		fmt.Fprintf(&b, "\trunbook: %q\n\n", "https://runbooks.example.com/"+pb.team.namespace+"/"+pb.name)
		b.WriteString("\tmatch: {\n")
		var labels []constraint
		for _, m := range pb.match {
			if m.top == "labels" {
				labels = append(labels, m)
				continue
			}
			fmt.Fprintf(&b, "\t\t%s: %s\n", m.top, m.expr)
		}
		b.WriteString("\t\tlabels: {\n")
		for _, m := range labels {
			fmt.Fprintf(&b, "\t\t\t%s: %s\n", m.field, m.expr)
		}
		b.WriteString("\t\t}\n\t}\n")
		fmt.Fprintf(&b, "\tgroup_by: [\"namespace\", %q]\n\tcooldown: \"30m\"\n\n", pb.symptom.label)
		fmt.Fprintf(&b, "\tsteps: [\n%s,\n\t]\n", strings.Join(pb.steps, ",\n"))
		fmt.Fprintf(&b, "\ton_failure: [\n%s,\n\t]\n}\n", strings.Join(pb.onFailure, ",\n"))
	}
	return b.String()
}

// testFile returns the tests of one playbook file: for its first playbook,
// an alert that matches it and one that matches nothing.
func (c *corpus) testFile(file string, g *alertGen) (string, error) {
	pb := c.byFile[file][0]
	var b strings.Builder
	b.WriteString("package tests\n")
	for _, t := range []struct {
		suffix string
		alert  schema.Alert
		want   []string
	}{
		{"matches", g.matching(pb), []string{pb.name}},
		{"ignores_other", g.violating(pb), []string{}},
	} {
		// Tests give alerts as alert sources send them: times are set by
		// the receiver, so only the fields a test needs are kept.
		a := t.alert
		data, err := json.Marshal(map[string]any{"source": a.Source, "status": a.Status, "labels": a.Labels, "annotations": a.Annotations})
		if err != nil {
			return "", err
		}
		want, _ := json.Marshal(t.want)
		fmt.Fprintf(&b, "\ntests: %s_%s: {\n\talert: %s\n\texpect: playbooks: %s\n}\n", pb.name, t.suffix, data, want)
	}
	return b.String(), nil
}

// schemaIn returns firebreak's schema as one file of package pkg, followed
// by extra: the constraints that make `cue vet` check what firebreak does.
func schemaIn(pkg, extra string) string {
	src := schema.Source()
	src = "package " + pkg + strings.TrimPrefix(src, "package schema")
	return "// Firebreak's schema (firebreak schema), in this package for cue vet.\n" + src + "\n" + extra
}

// Constraints of the cue vet side, one per package.
const (
	cuePlaybooks = `// Every regular field but alert is a playbook; alert is the triggering
// alert, which firebreak declares the same way.
alert:         #Alert
[!="alert"]:   #Playbook
`
	cueTests  = "tests: [string]: #Test\n"
	cueConfig = "// The package is firebreak.cue.\n#Config\n"
)

// repoFiles returns both sides' files, by path relative to their root.
func (c *corpus) repoFiles(g *alertGen, broken bool) (fb, cue map[string]string, err error) {
	fb, cue = map[string]string{}, map[string]string{}
	cfg := c.config()
	fb["firebreak.cue"] = cfg
	cue["config/firebreak.cue"] = "package config\n\n" + cfg
	cue["config/zz_schema.cue"] = schemaIn("config", cueConfig)
	cue["playbooks/zz_schema.cue"] = schemaIn("playbooks", cuePlaybooks)
	cue["playbooks/tests/zz_schema.cue"] = schemaIn("tests", cueTests)
	for _, f := range c.files {
		src := c.playbookFile(f, broken)
		fb["playbooks/"+f] = src
		cue["playbooks/"+f] = src
		tests, err := c.testFile(f, g)
		if err != nil {
			return nil, nil, err
		}
		fb["playbooks/tests/"+f] = tests
		cue["playbooks/tests/"+f] = tests
	}
	for _, m := range []map[string]string{fb, cue} {
		for name, src := range m {
			out, err := format.Source([]byte(src))
			if err != nil {
				return nil, nil, fmt.Errorf("format %s: %w", name, err)
			}
			m[name] = string(out)
		}
	}
	return fb, cue, nil
}

// writeTree writes files under dir, which must not exist or be empty.
func writeTree(dir string, files map[string]string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty", dir)
	}
	for name, src := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			return err
		}
	}
	return nil
}
