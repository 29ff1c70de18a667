package render

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

// tricky are alert strings that probe the constraints a template checks
// and the way CUE copies strings: empty, paths the schema refuses,
// quotes, interpolation syntax, non-ASCII, invalid UTF-8.
var tricky = []string{
	"", "a", "checkout-api", "UPPER", "x y", "/etc/passwd", "a/../b", "..", "a/..", "./a",
	`a"b`, `\(alert)`, "%s%d", "ünïcødé", "\xff\xfe", "a\x00b", "line\nbreak",
	"Deployment/x", "5m", "https://example.com/x", strings.Repeat("long-", 40),
}

// agree checks that pb's template renders a exactly as CUE does: the same
// plan when the template renders it, and a CUE error when it refuses.
func agree(t *testing.T, rd *Renderer, pb *repo.Playbook, a *schema.Alert) {
	t.Helper()
	tm := rd.template(pb)
	if tm == nil {
		t.Fatalf("%s: no template", pb.Name)
	}
	want, werr := rd.RenderCUE(pb, a)
	got, ok := tm.instantiate(a)
	switch {
	case ok && werr != nil:
		t.Errorf("%s, alert %s: the template renders, CUE fails: %v", pb.Name, alertJSON(a), werr)
	case !ok && werr == nil:
		t.Errorf("%s, alert %s: the template refuses what CUE renders", pb.Name, alertJSON(a))
	case ok && !reflect.DeepEqual(got, want):
		t.Errorf("%s, alert %s: template and CUE differ:\n got %s\nwant %s", pb.Name, alertJSON(a), planJSON(got), planJSON(want))
	}
}

// variants returns a and copies of it with each field the template of pb
// reads set to each tricky string, and left out.
func variants(rd *Renderer, pb *repo.Playbook, a *schema.Alert, every int) []*schema.Alert {
	out := []*schema.Alert{a}
	tm := rd.template(pb)
	if tm == nil {
		return out
	}
	n := 0
	for _, f := range tm.fields {
		for i, s := range append(slices.Clone(tricky), "\x00absent") {
			n++
			if n%every != 0 && i != 0 {
				continue
			}
			v := cloneAlert(a)
			switch {
			case f.kind == labelField && s == "\x00absent":
				delete(v.Labels, f.name)
			case f.kind == labelField:
				v.Labels[f.name] = s
			case f.kind == annotationField && s == "\x00absent":
				delete(v.Annotations, f.name)
			case f.kind == annotationField:
				v.Annotations[f.name] = s
			case f.name == "status":
				v.Status = s
			case f.name == "source":
				v.Source = s
			case f.name == "fingerprint":
				v.Fingerprint = strings.TrimPrefix(s, "\x00absent")
			case f.name == "generatorURL":
				v.GeneratorURL = strings.TrimPrefix(s, "\x00absent")
			default:
				v.StartsAt = time.Date(2026, 1, 2, 3, 4, 5, len(s), time.UTC)
			}
			out = append(out, v)
		}
	}
	return out
}

func cloneAlert(a *schema.Alert) *schema.Alert {
	v := *a
	v.Labels = maps.Clone(a.Labels)
	v.Annotations = maps.Clone(a.Annotations)
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if v.Annotations == nil {
		v.Annotations = map[string]string{}
	}
	return &v
}

func alertJSON(a *schema.Alert) string {
	b, _ := json.Marshal(a)
	return string(b)
}

func planJSON(p *Plan) string {
	b, _ := json.Marshal(p)
	return string(b)
}

// TestLibraryTemplatesAreExact compiles every shipped playbook and checks
// its template against CUE on every test alert and variations of it.
func TestLibraryTemplatesAreExact(t *testing.T) {
	dir, _ := filepath.Abs("../..")
	r := loadValid(t, dir)
	rd := New(0)
	if err := rd.Warm(r.Playbooks); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*repo.Playbook{}
	for _, pb := range r.Playbooks {
		byName[pb.Name] = pb
		if !rd.Compiled(pb) {
			t.Errorf("shipped playbook %s does not compile to a template", pb.Name)
		}
	}
	n := 0
	for _, tc := range r.Tests {
		for _, name := range tc.Playbooks {
			pb := byName[name]
			for _, a := range variants(rd, pb, &tc.Alert, 1) {
				agree(t, rd, pb, a)
				n++
			}
		}
	}
	if n < 200 {
		t.Fatalf("only %d renders compared", n)
	}
}

// TestGeneratedTemplatesAreExact does the same on a repository written by
// bench/gen, for every alert it draws and variations of some.
func TestGeneratedTemplatesAreExact(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs bench/gen")
	}
	tmp := t.TempDir()
	out, alertsFile := filepath.Join(tmp, "repo"), filepath.Join(tmp, "alerts.json")
	cmd := exec.Command("go", "run", "../../bench/gen", "-n", "120", "-files", "6", "-nalerts", "600", "-out", out, "-cue", filepath.Join(tmp, "cue"), "-alerts", alertsFile)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bench/gen: %v\n%s", err, msg)
	}
	r := loadValid(t, out)
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var alerts []struct {
		Alert schema.Alert `json:"alert"`
		Want  []string     `json:"want"`
	}
	if err := json.Unmarshal(data, &alerts); err != nil {
		t.Fatal(err)
	}
	rd := New(0)
	if err := rd.Warm(r.Playbooks); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*repo.Playbook{}
	for _, pb := range r.Playbooks {
		byName[pb.Name] = pb
		if !rd.Compiled(pb) {
			t.Errorf("generated playbook %s does not compile to a template", pb.Name)
		}
	}
	n := 0
	for i, a := range alerts {
		names := a.Want
		if len(names) == 0 {
			// An alert that matches nothing is rendered anyway: the
			// template must refuse it exactly when CUE does.
			names = []string{r.Playbooks[i%len(r.Playbooks)].Name}
		}
		for _, name := range names {
			vs := []*schema.Alert{&a.Alert}
			if i%10 == 0 {
				vs = variants(rd, byName[name], &a.Alert, 7)
			}
			for _, v := range vs {
				agree(t, rd, byName[name], v)
				n++
			}
		}
	}
	t.Logf("%d renders compared", n)
}

// TestTemplateRefusals checks units that do more with the alert than
// copying its strings: each must be left to CUE, or, where the compiler
// can see it is harmless, render exactly as CUE does.
func TestTemplateRefusals(t *testing.T) {
	step := func(s string) string { return "[{notify: {channel: \"oncall\", text: " + s + "}}]" }
	cases := []struct {
		name    string
		src     string
		compile bool // whether it must compile
	}{
		{"plain", `steps: ` + step(`"down: \(alert.labels.service)"`), true},
		{"hidden copy", `_t: "down: \(alert.labels.service)", steps: ` + step(`_t`), true},
		{"existence test", `_t: "\(alert.labels.service)", steps: ` + step(`"\(_t != _|_)"`), false},
		{"function of the alert", `steps: ` + step(`strings.ToUpper(alert.labels.service)`), false},
		{"function of a copy", `_t: "\(alert.labels.service)", steps: ` + step(`strings.ToUpper(_t)`), false},
		{"comparison", `_t: "\(alert.labels.service)", steps: ` + step(`[if _t == "api" {"api!"}, "other"][0]`), false},
		{"default met by the alert", `steps: [{notify: {channel: "oncall", text: *"x" | =~"^\(alert.labels.service)"}}]`, false},
		{"label from the alert", `steps: [{notify: {channel: "oncall", text: "x", "\(alert.labels.service)": "y"}}]`, false},
		{"whole labels", `_l: alert.labels, steps: ` + step(`"\(_l.service)"`), false},
		{"index", `steps: ` + step(`"\(alert.labels["service"])"`), true},
		// The probe alert does not satisfy the playbook's own constraint,
		// so the template cannot be checked against CUE.
		{"constraint the probe fails", `steps: ` + step(`"\(alert.labels.service)" & =~"^api"`), false},
		{"constraint", `steps: ` + step(`"\(alert.labels.service)" & =~"^probe|^api"`), true},
		{"two interpolations", `steps: ` + step(`"\(alert.labels.service)" & "\(alert.labels.env)"`), false},
		{"status and annotations", `steps: ` + step(`"\(alert.status): \(alert.annotations["summary"])"`), true},
		{"concatenation", `steps: ` + step(`"a" + "\(alert.labels.service)"`), false},
		{"name from the alert", `steps: [{name: "n-\(alert.labels.service)", notify: {channel: "oncall", text: "x"}}]`, true},
		{"validator on a list of the alert's strings", `_l: ["\(alert.labels.service)", "\(alert.labels.env)"] & list.UniqueItems(), steps: ` + step(`"\(_l[0])"`), false},
		{"validator through a definition", `#U: list.UniqueItems(), steps: [{name: "a-\(alert.labels.service)", notify: {channel: "oncall", text: "x"}}, {name: "a-\(alert.labels.env)", notify: {channel: "oncall", text: "y"}}] & #U`, false},
		{"validator selected from a definition", `#S: {u: list.UniqueItems()}, steps: [{name: "a-\(alert.labels.service)", notify: {channel: "oncall", text: "x"}}, {name: "a-\(alert.labels.env)", notify: {channel: "oncall", text: "y"}}] & #S.u`, false},
		{"validator selected from a copy", `#S: {u: list.UniqueItems()}, _c: #S, steps: [{name: "a-\(alert.labels.service)", notify: {channel: "oncall", text: "x"}}, {name: "a-\(alert.labels.env)", notify: {channel: "oncall", text: "y"}}] & _c.u`, false},
		{"function of constants", `steps: [{name: strings.ToLower("N"), notify: {channel: "oncall", text: "\(alert.labels.service)"}}]`, true},
	}
	alerts := []*schema.Alert{
		{Source: "generic", Status: "firing", Labels: map[string]string{"alertname": "A", "service": "api", "env": "prod"}, Annotations: map[string]string{"summary": "s"}},
		{Source: "generic", Status: "firing", Labels: map[string]string{"alertname": "A", "service": "api", "env": "api"}, Annotations: map[string]string{}},
		{Source: "generic", Status: "", Labels: map[string]string{"alertname": "A", "service": "web"}, Annotations: map[string]string{"summary": ""}},
	}
	for _, s := range tricky {
		alerts = append(alerts, &schema.Alert{Source: "generic", Status: s, Labels: map[string]string{"service": s, "env": s}, Annotations: map[string]string{"summary": s}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeRepo(t, map[string]string{
				"firebreak.cue":   crossRefs["firebreak.cue"],
				"playbooks/p.cue": fmt.Sprintf("package playbooks\n\nimport (\n\t\"list\"\n\t\"strings\"\n)\n\n_s: strings.ToUpper(\"x\")\n_n: len(list.Concat([[1], [2]]))\np: {\n\ttitle: \"p\", owner: \"@acme/team\", severity: \"high\"\n\tmatch: labels: alertname: \"A\"\n\t%s\n}\n", tc.src),
			})
			r, err := repo.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Valid() {
				t.Skipf("not a valid repository: %v", r.Diagnostics)
			}
			rd := New(0)
			if err := rd.Warm(r.Playbooks); err != nil {
				t.Fatal(err)
			}
			pb := r.Playbooks[0]
			if got := rd.Compiled(pb); got != tc.compile {
				t.Fatalf("compiled %v, want %v", got, tc.compile)
			}
			if !tc.compile {
				return
			}
			for _, a := range alerts {
				agree(t, rd, pb, a)
			}
		})
	}
}

// TestTemplatesSkipCUE checks that renders from templates build no
// cue.Context, and that a playbook rendered once is compiled in the
// background.
func TestTemplatesSkipCUE(t *testing.T) {
	dir, _ := filepath.Abs("../..")
	r := loadValid(t, dir)
	var alerts []*schema.Alert
	var pbs []*repo.Playbook
	for _, tc := range r.Tests {
		for _, name := range tc.Playbooks {
			for _, pb := range r.Playbooks {
				if pb.Name == name {
					pbs = append(pbs, pb)
					alerts = append(alerts, &tc.Alert)
				}
			}
		}
	}
	rd := New(0)
	if _, err := rd.Render(pbs[0], alerts[0]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !rd.Compiled(pbs[0]) {
		if time.Now().After(deadline) {
			t.Fatal("the playbook rendered first was not compiled in the background")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := rd.Warm(r.Playbooks); err != nil {
		t.Fatal(err)
	}
	built := rd.built.Load()
	for i := range 200 {
		if _, err := rd.Render(pbs[i%len(pbs)], alerts[i%len(alerts)]); err != nil {
			t.Fatal(err)
		}
	}
	if got := rd.built.Load(); got != built {
		t.Errorf("renders from templates built %d cue.Contexts", got-built)
	}
}
