package postmortem

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func draft(t *testing.T, in *incident.Incident, tmpl []byte, l Links) string {
	t.Helper()
	out, err := Draft(in, tmpl, l)
	if err != nil {
		t.Fatalf("Draft: %v", err)
	}
	return string(out)
}

func TestBuiltinGolden(t *testing.T) {
	got := draft(t, realistic(), nil, links)
	golden := filepath.Join("testdata", "resolved.md")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("Draft differs from %s (run go test -update to rewrite it):\n%s", golden, got)
	}
}

// TestBuiltinSections checks every section of the built-in template and
// every value of the record in it, so that the golden file cannot be
// rewritten into something wrong unnoticed.
func TestBuiltinSections(t *testing.T) {
	got := draft(t, realistic(), nil, links)
	sections := []string{
		"# Postmortem: Checkout pods crash-looping after a deploy\n",
		"\n## Summary\n",
		"\n## Impact\n",
		"\n## Response times\n",
		"\n## Timeline\n",
		"\n## Actions and outcomes\n",
		"\n## Root cause\n",
		"\n## What went well\n",
		"\n## What went badly\n",
		"\n## Follow-ups\n",
	}
	last := -1
	for _, s := range sections {
		i := strings.Index(got, s)
		if i < 0 || i < last {
			t.Errorf("section %q missing or out of order", strings.TrimSpace(s))
		}
		last = i
	}
	values := []string{
		"incident 2026-11-21-checkout-crashloop-327848e5 was resolved",
		"- **Incident:** [incidents/2026/11/2026-11-21-checkout-crashloop-327848e5.md](../incidents/2026/11/2026-11-21-checkout-crashloop-327848e5.md)\n",
		"- **Issue:** [#412](https://github.com/acme/ops/issues/412)\n",
		"- **Playbook:** checkout\\_crashloop at 9c1e2d3a4b5c\n",
		"- **Owner:** @\u2060acme/payments\n",
		"- **Severity:** critical\n",
		"- **Status:** resolved\n",
		"- **Group:** deployment=checkout-api, namespace=shop\n",
		"- **Duration:** 49m, from the first alert (2026-11-21 09:12:03 UTC) to resolution (2026-11-21 10:01:03 UTC)\n",
		"- **Alerts:** 3\n",
		"- **Services affected:** checkout, payments-gateway\n",
		"| 1m 12s | 3m 25s | 6m 5s | 49m |\n",
		"| 2026-11-21 09:12:03 UTC | alert\\_firing | KubePodCrashLooping firing for checkout-api-7d9f8-x2x4k |\n",
		"| 2026-11-21 09:13:15 UTC | opened | Incident opened by playbook checkout\\_crashloop |\n",
		"| 2026-11-21 09:16:40 UTC | acknowledged | Acknowledged by octocat |\n",
		"| 2026-11-21 09:19:20 UTC | mitigated | verify held: no unavailable checkout replicas |\n",
		"| 2026-11-21 10:01:03 UTC | resolved | All alerts resolved |\n",
		"| notify | notify | oncall | succeeded | posted to slack channel oncall |  |\n",
		"| rollback | rollback | shop-deploy | succeeded | reverted 4be1c0a in apps/checkout-api | [e83c5163316f](https://github.com/acme/deploy/commit/e83c5163316f89bfbde7d9ab23ca2e25604af290) |\n",
		"| verify | verify | prom | failed | error: query did not hold for 5m |  |\n",
		"| flag | flag | shop-flags | succeeded | new-checkout defaultVariant on → off; approved by octocat at 2026-11-21 09:19:21 UTC | [0d9a5c7e1f2b](https://github.com/acme/deploy/commit/0d9a5c7e1f2b3a4c5d6e7f8091a2b3c4d5e6f708) |\n",
		"## Root cause\n\n<!--",
		"## What went well\n\n<!--",
		"## What went badly\n\n<!--",
		"## Follow-ups\n\n- [ ] <!--",
	}
	for _, v := range values {
		if !strings.Contains(got, v) {
			t.Errorf("draft lacks %q", v)
		}
	}
	if !strings.HasSuffix(got, "-->\n") {
		t.Errorf("draft does not end with the follow-ups' checklist and a newline")
	}
}

func TestBuiltinSparse(t *testing.T) {
	in := &incident.Incident{ID: "2026-11-21-disk-full-0badc0de", Status: incident.Resolved, Group: map[string]string{"service": "billing"}}
	in.Timestamps.Opened = at("2026-11-21T09:00:00Z")
	in.Timestamps.Resolved = at("2026-11-21T08:00:00Z") // skewed: before opened, and no detected
	got := draft(t, in, nil, Links{})
	for _, v := range []string{
		"# Postmortem: 2026-11-21-disk-full-0badc0de\n",
		"- **Incident:** [incidents/2026/11/2026-11-21-disk-full-0badc0de.md](../incidents/2026/11/2026-11-21-disk-full-0badc0de.md)\n",
		"- **Issue:** —\n",
		"- **Playbook:** —\n",
		"- **Owner:** —\n",
		"- **Group:** service=billing\n",
		"- **Duration:** —, from the first alert (—) to resolution (2026-11-21 08:00:00 UTC)\n",
		"- **Alerts:** 0\n",
		"- **Services affected:** billing\n",
		"| — | — | — | — |\n",
		"## Timeline\n\nNothing recorded.\n\n## Actions and outcomes\n\nNo steps ran.\n\n## Root cause\n",
	} {
		if !strings.Contains(got, v) {
			t.Errorf("draft lacks %q:\n%s", v, got)
		}
	}

	in.Group = nil
	if got := draft(t, in, nil, Links{}); !strings.Contains(got, "- **Services affected:** not recorded (no alert has a service label)\n") {
		t.Errorf("draft without services:\n%s", got)
	}
}

func TestBuiltinLong(t *testing.T) {
	in := realistic()
	in.Alerts = nil
	for i := range 25 {
		in.Alerts = append(in.Alerts, incident.AlertRef{Labels: map[string]string{"service": fmt.Sprintf("svc-%02d", i)}})
	}
	in.Timeline, in.Steps = nil, nil
	for i := range 503 {
		in.Record(incident.Event{At: at("2026-11-21T09:13:15Z"), Kind: incident.EventNote, Text: fmt.Sprintf("note %d", i)})
	}
	for i := range 501 {
		in.Steps = append(in.Steps, incident.Step{Name: fmt.Sprintf("s%d", i), Status: "succeeded"})
	}
	got := draft(t, in, nil, links)
	for _, v := range []string{
		"- **Alerts:** 25\n",
		"svc-18, svc-19 and 5 more\n",
		"| 2026-11-21 09:13:15 UTC | note | note 499 |\n| | | 3 more events in the incident file |\n\n## Actions",
		"| s499 |  |  | succeeded |  |  |\n| | | | | 1 more steps in the incident file | |\n\n## Root cause",
	} {
		if !strings.Contains(got, v) {
			t.Errorf("draft lacks %q", v)
		}
	}
	if strings.Contains(got, "svc-20") || strings.Contains(got, "note 500") || strings.Contains(got, "| s500 ") {
		t.Errorf("draft goes past its bounds")
	}
}

func TestLinks(t *testing.T) {
	tests := []struct {
		name  string
		links Links
		want  []string
		not   []string
	}{
		{"none", Links{}, []string{"- **Issue:** #412\n", "| e83c5163316f |"}, []string{"](http"}},
		{"own incident file", Links{IncidentFile: "ops/incidents/2026/11/x.md"}, []string{"[ops/incidents/2026/11/x.md](../ops/incidents/2026/11/x.md)"}, nil},
		{"incident file escaping the repository", Links{IncidentFile: "../../etc/passwd"}, []string{"- **Incident:** ../../etc/passwd\n"}, []string{"](../../"}},
		{"incident file with a parenthesis", Links{IncidentFile: "a/b).md"}, []string{"- **Incident:** a/b\\).md\n"}, nil},
		{"javascript issue", Links{IssueURL: "javascript:alert(1)"}, []string{"- **Issue:** #412\n"}, []string{"javascript"}},
		{"issue breaking the link", Links{IssueURL: "https://x.example/a) [b](https://evil.example"}, []string{"- **Issue:** #412\n"}, []string{"evil"}},
		{"repository breaking the link", Links{RepoURL: "https://x.example/a)"}, []string{"| e83c5163316f |"}, []string{"x.example"}},
		{"repository with a slash", Links{RepoURL: "https://github.com/acme/deploy/"}, []string{"(https://github.com/acme/deploy/commit/e83c5163316f89bfbde7d9ab23ca2e25604af290)"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := draft(t, realistic(), nil, tc.links)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("draft lacks %q", w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("draft holds %q", n)
				}
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	in := realistic()
	for i := range 50 {
		in.Group[fmt.Sprintf("label-%d", i)] = "v"
		in.Alerts[0].Labels["service"] = "a"
	}
	first := draft(t, in, nil, links)
	for range 20 {
		if again := draft(t, in, nil, links); again != first {
			t.Fatalf("Draft gave different bytes for the same record")
		}
	}
	custom := []byte("{{range $k, $v := .Raw.Group}}{{escape $k}}={{escape $v}} {{end}}")
	one := draft(t, in, custom, links)
	for range 20 {
		if again := draft(t, in, custom, links); again != one {
			t.Fatalf("Draft with a custom template gave different bytes for the same record")
		}
	}
}

func TestDraftDoesNotModify(t *testing.T) {
	// SetAlert adds an alert without a fingerprint, and keeps Detected the
	// earliest start.
	record := func() *incident.Incident {
		in := realistic()
		in.Title = "bad \xff"
		in.Alerts[0].Fingerprint = ""
		in.Alerts[0].StartsAt = in.Timestamps.Detected.Add(-time.Hour)
		return in
	}
	in, want := record(), record()
	draft(t, in, nil, links)
	draft(t, in, []byte("{{.Raw.SetAlert (index .Raw.Alerts 0)}} {{len .Raw.Alerts}}"), links)
	if !reflect.DeepEqual(in, want) {
		t.Errorf("Draft modified the record")
	}
}

func TestNames(t *testing.T) {
	if f, err := File("2026-11-21-x-1a2b3c4d"); f != "postmortems/2026-11-21-x-1a2b3c4d.md" || err != nil {
		t.Errorf("File = %q, %v", f, err)
	}
	if b, err := Branch("2026-11-21-x-1a2b3c4d"); b != "postmortem/2026-11-21-x-1a2b3c4d" || err != nil {
		t.Errorf("Branch = %q, %v", b, err)
	}
	for _, id := range []string{"", "../x", "a/b", "X", "a\n"} {
		if f, err := File(id); err == nil {
			t.Errorf("File(%q) = %q", id, f)
		}
		if b, err := Branch(id); err == nil {
			t.Errorf("Branch(%q) = %q", id, b)
		}
	}
	if _, err := Draft(nil, nil, Links{}); err == nil {
		t.Errorf("Draft(nil) succeeded")
	}
}
