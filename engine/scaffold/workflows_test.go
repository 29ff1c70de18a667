package scaffold

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/firebreak-dev/firebreak/engine/alert"
)

// actionRef is how the workflows init writes use firebreak's composite
// action (action.yml at the repository root): its major-version tag, which
// each v1.x.y release moves.
const actionRef = "firebreak-dev/firebreak@v1"

// workflowFiles are the GitHub workflows init writes.
var workflowFiles = []string{
	".github/workflows/firebreak-pr.yml",
	".github/workflows/firebreak-respond.yml",
	".github/workflows/firebreak-stats.yml",
}

type workflow struct {
	Name        string
	On          map[string]yaml.Node
	Permissions map[string]string
	Concurrency struct {
		Group            string
		CancelInProgress bool `yaml:"cancel-in-progress"`
	}
	Jobs map[string]struct {
		RunsOn         string `yaml:"runs-on"`
		TimeoutMinutes int    `yaml:"timeout-minutes"`
		Steps          []step
	}
}

type step struct {
	ID, Name, Uses, Run, If string
	With                    map[string]string
	Env                     map[string]string
}

// steps returns the steps of the workflow's only job.
func (w *workflow) steps(t *testing.T) []step {
	t.Helper()
	if len(w.Jobs) != 1 {
		t.Fatalf("%s: %d jobs, want 1", w.Name, len(w.Jobs))
	}
	for _, j := range w.Jobs {
		if j.RunsOn == "" || j.TimeoutMinutes == 0 {
			t.Errorf("%s: want runs-on and timeout-minutes on the job", w.Name)
		}
		return j.Steps
	}
	return nil
}

// commands returns the commands the workflow gives firebreak's action, and
// checks every use of it: the ref and inputs action.yml has.
func (w *workflow) commands(t *testing.T, inputs map[string]bool) []string {
	t.Helper()
	var cmds []string
	for _, s := range w.steps(t) {
		if !strings.HasPrefix(s.Uses, "firebreak-dev/") {
			continue
		}
		if s.Uses != actionRef {
			t.Errorf("%s: uses %s, want %s", w.Name, s.Uses, actionRef)
		}
		for k := range s.With {
			if !inputs[k] {
				t.Errorf("%s: with %s: action.yml has no input %s", w.Name, k, k)
			}
		}
		cmds = append(cmds, s.With["command"])
	}
	return cmds
}

func loadWorkflow(t *testing.T, data []byte) *workflow {
	t.Helper()
	var w workflow
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&w); err != nil {
		t.Fatal(err)
	}
	return &w
}

// templateWorkflows returns the workflows init writes, by base name.
func templateWorkflows(t *testing.T) map[string]*workflow {
	t.Helper()
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	ws := map[string]*workflow{}
	for _, p := range workflowFiles {
		data, ok := files[p]
		if !ok {
			t.Fatalf("the scaffold has no %s", p)
		}
		ws[filepath.Base(p)] = loadWorkflow(t, data)
	}
	return ws
}

// action is what the tests read of action.yml.
type action struct {
	Name, Author, Description string
	Inputs                    map[string]struct {
		Description string
		Required    bool
		Default     *string
	}
	Outputs map[string]struct{ Description, Value string }
	Runs    struct {
		Using string
		Steps []struct {
			ID, Name, Uses, Run, Shell, If string
			WorkingDirectory               string `yaml:"working-directory"`
			With                           map[string]string
			Env                            map[string]string
		}
	}
	Branding map[string]string
}

func loadAction(t *testing.T) (*action, []byte) {
	t.Helper()
	data, err := os.ReadFile("../../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	var a action
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	return &a, data
}

func TestWriteWorkflows(t *testing.T) {
	dir := t.TempDir()
	paths, err := Write(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	var written []string
	for _, p := range paths {
		if strings.HasPrefix(p, ".github/") {
			written = append(written, p)
		}
	}
	if !slices.Equal(written, workflowFiles) {
		t.Errorf("workflows written: %q, want %q", written, workflowFiles)
	}
	for _, p := range workflowFiles {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, files[p]) || len(got) == 0 {
			t.Errorf("%s: written %d bytes, not the template's %d", p, len(got), len(files[p]))
		}
	}
	// Nothing written over a repository that has any of them.
	os.Remove(filepath.Join(dir, "firebreak.cue"))
	if _, err := Write(dir, false); err == nil || !strings.Contains(err.Error(), "firebreak-pr.yml already exists") {
		t.Errorf("Write over workflows: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "firebreak.cue")); err == nil {
		t.Error("a refused Write wrote firebreak.cue")
	}
}

// TestAction checks action.yml, which actionlint does not lint (it reads it
// only where a workflow uses it as ./).
func TestAction(t *testing.T) {
	a, data := loadAction(t)
	if a.Name != "firebreak" || a.Description == "" {
		t.Errorf("name %q, description %q: want firebreak and a description", a.Name, a.Description)
	}
	if a.Runs.Using != "composite" || len(a.Runs.Steps) == 0 {
		t.Fatalf("runs.using %q with %d steps: want a composite action", a.Runs.Using, len(a.Runs.Steps))
	}
	for _, in := range []string{"command", "working-directory"} {
		if i, ok := a.Inputs[in]; !ok || i.Required || i.Default == nil || i.Description == "" {
			t.Errorf("input %s: want it optional, with a default and a description", in)
		}
	}
	for _, out := range []string{"exit-code", "output-file", "path"} {
		if o, ok := a.Outputs[out]; !ok || o.Value == "" || o.Description == "" {
			t.Errorf("output %s: want a value and a description", out)
		}
	}
	ids := map[string]bool{}
	for _, s := range a.Runs.Steps {
		if (s.Run == "") == (s.Uses == "") {
			t.Errorf("step %q: want run or uses", s.Name)
		}
		if s.Run != "" && s.Shell != "bash" {
			t.Errorf("step %q: a composite run step needs shell (bash)", s.Name)
		}
		// Inputs reach scripts through env, never ${{ }} in the script.
		if strings.Contains(s.Run, "${{") {
			t.Errorf("step %q: an expression in run: pass it in env", s.Name)
		}
		for _, m := range regexp.MustCompile(`steps\.([\w-]+)\.outputs`).FindAllStringSubmatch(s.If+fmtMap(s.With)+fmtMap(s.Env), -1) {
			if !ids[m[1]] {
				t.Errorf("step %q reads steps.%s, which is not an earlier step", s.Name, m[1])
			}
		}
		if s.ID != "" {
			ids[s.ID] = true
		}
	}
	for _, m := range regexp.MustCompile(`inputs\.([\w-]+)`).FindAllSubmatch(data, -1) {
		if _, ok := a.Inputs[string(m[1])]; !ok {
			t.Errorf("action.yml reads inputs.%s, which it does not declare", m[1])
		}
	}
	for name, o := range a.Outputs {
		m := regexp.MustCompile(`steps\.([\w-]+)\.outputs`).FindStringSubmatch(o.Value)
		if m == nil || !ids[m[1]] {
			t.Errorf("output %s: %s names no step", name, o.Value)
		}
	}
}

func fmtMap(m map[string]string) string {
	var b strings.Builder
	for k, v := range m {
		b.WriteString(k + "=" + v + "\n")
	}
	return b.String()
}

func actionInputs(t *testing.T) map[string]bool {
	a, _ := loadAction(t)
	in := map[string]bool{}
	for k := range a.Inputs {
		in[k] = true
	}
	return in
}

func TestPRWorkflow(t *testing.T) {
	w := templateWorkflows(t)["firebreak-pr.yml"]
	if keys := nodeKeys(w.On); !slices.Equal(keys, []string{"pull_request"}) {
		t.Errorf("on: %q, want pull_request only", keys)
	}
	var on struct{ Paths []string }
	if n := w.On["pull_request"]; n.Decode(&on) != nil || !slices.Contains(on.Paths, "firebreak.cue") || !slices.Contains(on.Paths, "playbooks/**") {
		t.Errorf("on.pull_request.paths %q: want firebreak.cue and playbooks/**", on.Paths)
	}
	if want := map[string]string{"contents": "read", "pull-requests": "write"}; !reflect.DeepEqual(w.Permissions, want) {
		t.Errorf("permissions %v, want %v", w.Permissions, want)
	}
	if !w.Concurrency.CancelInProgress || !strings.Contains(w.Concurrency.Group, "github.event.pull_request.number") {
		t.Errorf("concurrency %+v: want one run per pull request", w.Concurrency)
	}
	want := []string{"validate --format github", "test", "replay --base origin/${{ github.base_ref }} --format markdown"}
	if got := w.commands(t, actionInputs(t)); !slices.Equal(got, want) {
		t.Errorf("commands %q, want %q", got, want)
	}
	steps := w.steps(t)
	if steps[0].Uses != "actions/checkout@v4" || steps[0].With["fetch-depth"] != "0" {
		t.Errorf("first step %+v: want a checkout with the whole history (fetch-depth: 0)", steps[0])
	}
	var comment *step
	for i := range steps {
		if strings.Contains(steps[i].Run, "gh api") {
			comment = &steps[i]
		}
	}
	if comment == nil {
		t.Fatal("no step posts the replay comment")
	}
	for _, s := range []string{"<!-- firebreak:replay -->", "--method PATCH", "--method POST", "startswith($marker)"} {
		if !strings.Contains(comment.Run, s) {
			t.Errorf("the comment step does not have %q: one comment, found by its marker and updated", s)
		}
	}
	if !strings.Contains(comment.If, "head.repo.full_name == github.repository") {
		t.Errorf("the comment step runs for forks, whose token is read-only: if: %s", comment.If)
	}
}

func TestRespondWorkflow(t *testing.T) {
	w := templateWorkflows(t)["firebreak-respond.yml"]
	if keys := nodeKeys(w.On); !slices.Equal(keys, []string{"repository_dispatch", "workflow_dispatch"}) {
		t.Errorf("on: %q", keys)
	}
	var rd struct{ Types []string }
	if n := w.On["repository_dispatch"]; n.Decode(&rd) != nil || !slices.Equal(rd.Types, []string{"alert"}) {
		t.Errorf("repository_dispatch types %q, want [alert]", rd.Types)
	}
	var wd struct {
		Inputs map[string]struct {
			Type    string
			Options []string
			Default string
		}
	}
	if n := w.On["workflow_dispatch"]; n.Decode(&wd) != nil {
		t.Fatal("workflow_dispatch")
	}
	var names []string
	for k := range wd.Inputs {
		names = append(names, k)
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{"alertname", "annotations", "labels", "status"}) {
		t.Errorf("workflow_dispatch inputs %q", names)
	}
	// The event GitHub writes for those inputs is one firebreak run --event
	// reads, with each status the form offers.
	for _, status := range wd.Inputs["status"].Options {
		event, _ := json.Marshal(map[string]any{
			"inputs":     map[string]string{"alertname": "KubePodCrashLooping", "labels": "namespace=shop, deployment=checkout-api", "annotations": `summary="crash-looping"`, "status": status},
			"ref":        "refs/heads/main",
			"workflow":   ".github/workflows/firebreak-respond.yml",
			"repository": map[string]string{"full_name": "acme/ops"},
		})
		in, err := alert.DecodeGitHub("workflow_dispatch", "event.json", event)
		if err != nil {
			t.Fatalf("status %s: %v", status, err)
		}
		if len(in.Alerts) != 1 || in.Alerts[0].Status != status || in.Alerts[0].Labels["deployment"] != "checkout-api" || in.Alerts[0].Annotations["summary"] != "crash-looping" {
			t.Errorf("status %s: decoded %+v", status, in.Alerts)
		}
	}
	if want := map[string]string{"contents": "write", "issues": "write", "pull-requests": "write"}; !reflect.DeepEqual(w.Permissions, want) {
		t.Errorf("permissions %v, want %v", w.Permissions, want)
	}
	if w.Concurrency.Group == "" || w.Concurrency.CancelInProgress {
		t.Errorf("concurrency %+v: want a group whose runs queue, none cancelled in progress", w.Concurrency)
	}
	cmds := w.commands(t, actionInputs(t))
	if len(cmds) != 1 || !strings.HasPrefix(cmds[0], "run --event ${{ github.event_path }} ") || !strings.Contains(cmds[0], "--repo ") {
		t.Fatalf("commands %q: want run --event ... --repo", cmds)
	}
	// Every secret firebreak.cue names reaches firebreak.
	files, _ := Files()
	var env map[string]string
	for _, s := range w.steps(t) {
		if strings.HasPrefix(s.Uses, "firebreak-dev/") {
			env = s.Env
		}
	}
	for _, m := range regexp.MustCompile(`secret:\s*"(\w+)"`).FindAllSubmatch(files["firebreak.cue"], -1) {
		name := "FIREBREAK_SECRET_" + string(m[1])
		if want := "${{ secrets." + string(m[1]) + " }}"; env[name] != want {
			t.Errorf("env %s = %q, want %q", name, env[name], want)
		}
	}
}

func TestStatsWorkflow(t *testing.T) {
	w := templateWorkflows(t)["firebreak-stats.yml"]
	if keys := nodeKeys(w.On); !slices.Equal(keys, []string{"schedule", "workflow_dispatch"}) {
		t.Errorf("on: %q", keys)
	}
	if want := map[string]string{"contents": "read"}; !reflect.DeepEqual(w.Permissions, want) {
		t.Errorf("permissions %v, want %v", w.Permissions, want)
	}
	if cmds := w.commands(t, actionInputs(t)); !slices.Equal(cmds, []string{""}) {
		t.Errorf("action commands %q: want it once, to install", cmds)
	}
	found := false
	for _, s := range w.steps(t) {
		found = found || strings.Contains(s.Run, `firebreak stats --since 720h --format markdown >>"$GITHUB_STEP_SUMMARY"`)
	}
	if !found {
		t.Error("no step writes firebreak stats into the job summary")
	}
}

// TestProjectPRWorkflow: this repository runs the pull-request workflow
// init writes on its own playbooks, with its own action (uses: ./).
func TestProjectPRWorkflow(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	local, err := os.ReadFile("../../.github/workflows/firebreak-pr.yml")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl, proj map[string]any
	if err := yaml.Unmarshal(files[".github/workflows/firebreak-pr.yml"], &tmpl); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(local, &proj); err != nil {
		t.Fatal(err)
	}
	uses := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["uses"] == "./" {
				v["uses"] = actionRef
				uses++
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(proj["jobs"])
	if uses == 0 {
		t.Error("the project's firebreak-pr.yml does not use its own action (uses: ./)")
	}
	for _, k := range []string{"name", "permissions", "concurrency", "jobs"} {
		if !reflect.DeepEqual(tmpl[k], proj[k]) {
			t.Errorf("%s differs between .github/workflows/firebreak-pr.yml and the template", k)
		}
	}
}

func nodeKeys(m map[string]yaml.Node) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
