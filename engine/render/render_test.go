package render

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/load"

	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

// crossRefs is a playbook package whose playbooks lean on everything a
// unit must carry: definitions and hidden fields in other files, a let
// clause, an import, a pattern constraint, a playbook built on another.
var crossRefs = map[string]string{
	"firebreak.cue": `
targets: deploy: git: url: "https://git.example.com/deploy.git"
channels: oncall: slack: webhook: secret: "SLACK"
policy: owners: "@acme/team": {rollback: ["deploy"], notify: ["oncall"]}
`,
	"playbooks/defs.cue": `package playbooks

import "strings"

#Notify: {
	_who: string
	notify: {channel: "oncall", text: "\(strings.ToUpper(_who)) \(alert.labels.service)"}
	...
}
_common: {owner: "@acme/team", severity: "high", cooldown: "5m"}
let prefix = "apps"

[=~"^svc_"]: group_by: ["service"]
_path: "\(prefix)/\(alert.labels.service)"
`,
	"playbooks/a.cue": `package playbooks

svc_rollback: _common & {
	title: "Roll back \(alert.labels.service)"
	match: labels: {alertname: "Down", service: =~"^api"}
	steps: [
		#Notify & {_who: "oncall"},
		{rollback: {target: "deploy", path: _path}},
	]
}
`,
	"playbooks/b.cue": `package playbooks

import "strings"

svc_again: svc_rollback & {
	steps: [_, {rollback: to: strings.Repeat("a", 3)}]
}
unrelated: _common & {
	title: "Unrelated"
	match: labels: alertname: "Other"
	steps: [{notify: {channel: "oncall", text: "x"}}]
}
`,
}

func writeRepo(t *testing.T, files map[string]string) string {
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

func loadValid(t *testing.T, dir string) *repo.Repo {
	t.Helper()
	r, err := repo.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Diagnostics {
		t.Errorf("diagnostic: %s", d)
	}
	if t.Failed() {
		t.FailNow()
	}
	return r
}

// wholePackage renders a playbook the slow, obviously right way: the
// whole package with alert filled in.
func wholePackage(t *testing.T, dir, name string, a *schema.Alert) []schema.Step {
	t.Helper()
	ctx := cuecontext.New()
	defs, err := schema.Compile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &load.Config{Dir: dir, Package: "playbooks", Overlay: map[string]load.Source{
		filepath.Join(dir, "playbooks", "zz_alert.cue"): load.FromString("package playbooks\nalert: _\n"),
	}}
	pkg := ctx.BuildInstance(load.Instances([]string{"./playbooks"}, cfg)[0])
	if err := pkg.Err(); err != nil {
		t.Fatal(err)
	}
	v := pkg.FillPath(cue.ParsePath("alert"), ctx.Encode(a.Data())).LookupPath(cue.MakePath(cue.Str(name), cue.Str("steps")))
	g := &generation{ctx: ctx, defs: defs}
	steps, err := g.steps(v)
	if err != nil {
		t.Fatal(err)
	}
	nameSteps(steps, nil)
	return steps
}

func TestUnitRendersLikeWholePackage(t *testing.T) {
	dir := writeRepo(t, crossRefs)
	r := loadValid(t, dir)
	a := &schema.Alert{Source: "generic", Status: "firing", Labels: map[string]string{"alertname": "Down", "service": "api-gw"}, Annotations: map[string]string{}}
	rd := New(0)
	for _, pb := range r.Playbooks {
		t.Run(pb.Name, func(t *testing.T) {
			got, err := rd.Render(pb, a)
			if err != nil {
				t.Fatal(err)
			}
			want := wholePackage(t, dir, pb.Name, a)
			if g, w := mustJSON(t, got.Steps), mustJSON(t, want); g != w {
				t.Errorf("unit render differs from whole package:\n got %s\nwant %s", g, w)
			}
		})
	}
	if n := len(r.Playbooks); n != 3 {
		t.Fatalf("want 3 playbooks, got %d", n)
	}
	// The unit of svc_again carries svc_rollback; unrelated's does not.
	for _, pb := range r.Playbooks {
		files := map[string]bool{}
		for _, f := range pb.Unit.Files {
			files[filepath.Base(f.Filename)] = true
		}
		if pb.Name == "unrelated" && files["a.cue"] {
			t.Errorf("unit of unrelated includes a.cue, which it does not reference")
		}
		if pb.Name == "svc_again" && !files["a.cue"] {
			t.Errorf("unit of svc_again lacks a.cue, where svc_rollback lives")
		}
	}
}

// TestLibraryUnitsRenderLikeWholePackage checks every shipped playbook
// against every test alert that matches it.
func TestLibraryUnitsRenderLikeWholePackage(t *testing.T) {
	dir, _ := filepath.Abs("../..")
	r := loadValid(t, dir)
	rd := New(0)
	byName := map[string]*repo.Playbook{}
	for _, pb := range r.Playbooks {
		byName[pb.Name] = pb
	}
	n := 0
	for _, tc := range r.Tests {
		for _, name := range tc.Playbooks {
			got, err := rd.Render(byName[name], &tc.Alert)
			if err != nil {
				t.Fatalf("%s/%s: %v", tc.Name, name, err)
			}
			if g, w := mustJSON(t, got.Steps), mustJSON(t, wholePackage(t, dir, name, &tc.Alert)); g != w {
				t.Errorf("%s/%s: unit render differs:\n got %s\nwant %s", tc.Name, name, g, w)
			}
			n++
		}
	}
	if n < 8 {
		t.Fatalf("only %d renders compared; the library tests should match every playbook", n)
	}
}

func TestRenderErrors(t *testing.T) {
	dir := writeRepo(t, crossRefs)
	r := loadValid(t, dir)
	// No service label: the interpolation cannot be rendered.
	a := &schema.Alert{Source: "generic", Status: "firing", Labels: map[string]string{"alertname": "Down"}, Annotations: map[string]string{}}
	_, err := New(0).Render(r.Playbooks[0], a)
	if err == nil {
		t.Fatal("rendering without the service label succeeded")
	}
	want := `playbook svc_rollback: `
	if got := err.Error(); len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("error %q does not name the playbook", got)
	}
}

func TestNameSteps(t *testing.T) {
	steps := []schema.Step{{Action: "notify"}, {Action: "rollback"}, {Action: "notify", Name: "tell"}, {Action: "notify"}}
	onFailure := []schema.Step{{Action: "notify"}}
	nameSteps(steps, onFailure)
	var got []string
	for _, s := range append(steps, onFailure...) {
		got = append(got, s.Name)
	}
	want := []string{"notify-1", "rollback", "tell", "notify-3", "on_failure-notify"}
	if mustJSON(t, got) != mustJSON(t, want) {
		t.Errorf("names %v, want %v", got, want)
	}
}

// TestGenerationsRotate checks the memory bound: a renderer drops its
// cue.Context after maxUses renders with CUE, so that however CUE's memory
// behaves inside a context, a server that plans for months stays bounded.
// (With CUE v0.17.1 and this render pattern the heap was measured flat even
// without rotation; the bench checks 100,000 plans.) Renders from
// templates use no context at all (TestTemplatesSkipCUE), so this one
// renders with CUE throughout.
func TestGenerationsRotate(t *testing.T) {
	dir := writeRepo(t, crossRefs)
	r := loadValid(t, dir)
	rd := New(50)
	a := &schema.Alert{Source: "generic", Status: "firing", Labels: map[string]string{"alertname": "Down", "service": "api"}, Annotations: map[string]string{}}
	pool := int64(cap(rd.pool))
	for i := range 1000 {
		a.Labels["service"] = fmt.Sprintf("api-%d", i)
		got, err := rd.RenderCUE(r.Playbooks[0], a)
		if err != nil {
			t.Fatal(err)
		}
		if want := "apps/api-" + fmt.Sprint(i); got.Steps[1].Params["path"] != want {
			t.Fatalf("render %d: path %v, want %s", i, got.Steps[1].Params["path"], want)
		}
	}
	// Renders go to pooled generations; each serves at most 50.
	if got, min := rd.built.Load(), int64(1000/50); got < min || got > min+pool {
		t.Errorf("built %d generations for 1,000 renders at 50 each, want %d..%d", got, min, min+pool)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConcurrentRenders renders from several goroutines, as a server
// does, with CUE and through Render (from templates once they are
// compiled in the background); with -race it proves units are not written
// to while shared, and the unit templates are not touched by the contexts
// that compile them.
func TestConcurrentRenders(t *testing.T) {
	dir := writeRepo(t, crossRefs)
	r := loadValid(t, dir)
	rd := New(20)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			a := &schema.Alert{Source: "generic", Status: "firing", Labels: map[string]string{"alertname": "Down"}, Annotations: map[string]string{}}
			for i := range 100 {
				a.Labels["service"] = fmt.Sprintf("api-%d-%d", g, i)
				if _, err := rd.Render(r.Playbooks[i%2], a); err != nil {
					t.Error(err)
					return
				}
				if _, err := rd.RenderCUE(r.Playbooks[i%2], a); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, pb := range r.Playbooks {
		for _, f := range pb.Unit.Files {
			if n := len(f.Unresolved); n > 0 {
				t.Errorf("unit file %s of %s has %d unresolved identifiers after many compiles: builds resolve the template", f.Filename, pb.Name, n)
			}
		}
	}
}
