package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs README's "main job" and checks what it left behind with
// the git CLI: the config repository has the rollback, scale and flag
// commits, the playbook repository the resolved incident and, on its own
// branch, the postmortem.
func TestDemo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := execute(t.Context(), []string{"demo"}, &stdout, &stderr); code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	m := regexp.MustCompile(`git -C (\S+)/shop-deploy log`).FindStringSubmatch(out)
	id := regexp.MustCompile(`incident (\S+) opened`).FindStringSubmatch(out)
	if m == nil || id == nil {
		t.Fatalf("demo output names no directory or incident:\n%s", out)
	}
	root := m[1]
	t.Cleanup(func() { os.RemoveAll(root) })

	clone, ops := filepath.Join(root, "shop-deploy"), filepath.Join(root, "ops")
	subjects := gitOut(t, clone, "log", "--format=%s")
	for _, want := range []string{"Revert", "scale", "flag"} {
		if !strings.Contains(strings.ToLower(subjects), strings.ToLower(want)) {
			t.Errorf("config repository lacks a %s commit:\n%s", want, subjects)
		}
	}
	if n := strings.Count(gitOut(t, clone, "log", "--format=%B"), "Firebreak-Incident: "+id[1]); n != 3 {
		t.Errorf("%d commits carry the incident's trailer, want 3", n)
	}
	if got := gitOut(t, clone, "show", "HEAD:apps/checkout-api/deployment.yaml"); !strings.Contains(got, ":v1") {
		t.Errorf("checkout-api not rolled back: %q", got)
	}
	if got := gitOut(t, clone, "show", "HEAD:apps/checkout-worker/deployment.yaml"); !strings.Contains(got, "replicas: 6 #") {
		t.Errorf("workers not scaled:\n%s", got)
	}
	if got := gitOut(t, clone, "show", "HEAD:flags/shop.flagd.json"); !strings.Contains(got, `"defaultVariant": "off"`) {
		t.Errorf("flag not off:\n%s", got)
	}
	record := gitOut(t, ops, "show", "HEAD:incidents/"+id[1][:4]+"/"+id[1][5:7]+"/"+id[1]+".md")
	if !strings.Contains(record, "status: resolved") {
		t.Errorf("incident record:\n%s", record)
	}
	if pm := gitOut(t, ops, "show", "postmortem/"+id[1]+":postmortems/"+id[1]+".md"); !strings.Contains(pm, "## Root cause") && !strings.Contains(pm, "Root cause") {
		t.Errorf("postmortem:\n%s", pm)
	}
	if st := gitOut(t, ops, "status", "--porcelain"); st != "" {
		t.Errorf("playbook repository left dirty:\n%s", st)
	}
}
