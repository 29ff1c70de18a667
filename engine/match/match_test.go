package match

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"github.com/firebreak-dev/firebreak/schema"
)

// load compiles src, a CUE file with playbooks under `pb` (in order) and
// whatever else they refer to, and returns their matches: as written, or
// unified with #Playbook as the loader sees them.
func load(t testing.TB, ctx *cue.Context, src string, withSchema bool) []Entry {
	t.Helper()
	// A match that conflicts in itself makes the file an error too, yet
	// it is a valid input to Compile: it matches nothing.
	v := ctx.CompileString(src, cue.Filename("pb.cue"))
	var playbook cue.Value
	if withSchema {
		defs, err := schema.Compile(ctx)
		if err != nil {
			t.Fatal(err)
		}
		playbook = defs.Playbook
	}
	it, err := v.LookupPath(cue.ParsePath("pb")).Fields()
	if err != nil {
		t.Fatalf("playbooks: %v\n%s", err, src)
	}
	var out []Entry
	for it.Next() {
		pb := it.Value()
		if withSchema {
			pb = playbook.Unify(pb)
		}
		out = append(out, Entry{Name: it.Selector().Unquoted(), Match: pb.LookupPath(cue.ParsePath("match"))})
	}
	return out
}

// instanceOf is the definition of a match, in m's own context.
func instanceOf(m cue.Value, a *schema.Alert) bool {
	return isInstance(m.Context().Encode(a.Data()), m)
}

// isInstance is the definition of a match, spelled out here rather than
// shared with the fallback: the alert av unified with the match validates
// as concrete and is av itself.
func isInstance(av, m cue.Value) bool {
	r := av.Unify(m)
	return r.Validate(cue.Concrete(true)) == nil && r.Equals(av)
}

// modes are the two ways a match reaches Compile.
var modes = []struct {
	name   string
	schema bool
}{{"raw", false}, {"schema", true}}

var (
	aCheckout = &schema.Alert{Source: "alertmanager", Status: "firing",
		Labels:      map[string]string{"alertname": "HighLatency", "deployment": "checkout-api", "namespace": "prod", "severity": "critical"},
		Annotations: map[string]string{"summary": "p99 above 2s"}}
	aResolved = &schema.Alert{Source: "alertmanager", Status: "resolved",
		Labels:      map[string]string{"alertname": "HighLatency", "deployment": "checkout-api", "namespace": "prod", "severity": "critical"},
		Annotations: map[string]string{"summary": "p99 above 2s"}}
	aNoDeploy = &schema.Alert{Source: "alertmanager", Status: "firing",
		Labels: map[string]string{"alertname": "HighLatency", "namespace": "staging"}}
	aDisk = &schema.Alert{Source: "grafana", Status: "firing", Fingerprint: "abc", GeneratorURL: "http://grafana/x",
		Labels: map[string]string{"alertname": "DiskFull", "deployment": "search"}}
	aBare    = &schema.Alert{Source: "generic", Status: "firing"}
	aStarted = &schema.Alert{Source: "alertmanager", Status: "firing", StartsAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Labels: map[string]string{"alertname": "HighLatency", "deployment": "checkout-api", "namespace": "prod", "severity": "critical"}}
)

var alerts = []struct {
	name string
	a    *schema.Alert
}{
	{"checkout", aCheckout}, {"resolved", aResolved}, {"nodeploy", aNoDeploy},
	{"disk", aDisk}, {"bare", aBare}, {"started", aStarted},
}

func TestMatchShapes(t *testing.T) {
	// want lists the alerts (by name) that match the match as written;
	// every pair is also checked against CUE in both modes. A regular
	// field the alert lacks never matches, not even with a default: A & M
	// would have a field A has not.
	tests := []struct {
		name     string
		match    string
		compiled bool
		want     []string
	}{
		{"equality", `labels: alertname: "HighLatency"`, true, []string{"checkout", "resolved", "nodeploy", "started"}},
		{"regexp", `labels: deployment: =~"^checkout"`, true, []string{"checkout", "resolved", "started"}},
		{"not regexp", `labels: deployment: !~"^checkout"`, true, []string{"disk"}},
		{"not equal", `labels: deployment: !="search"`, true, []string{"checkout", "resolved", "started"}},
		{"disjunction", `labels: namespace: "prod" | "staging"`, true, []string{"checkout", "resolved", "nodeploy", "started"}},
		{"disjunction default", `labels: namespace: *"prod" | "staging"`, true, []string{"checkout", "resolved", "nodeploy", "started"}},
		{"two defaults", `labels: namespace: *"prod" | *"staging" | "dev"`, true, []string{"checkout", "resolved", "nodeploy", "started"}},
		{"mixed disjunction", `labels: deployment: "search" | =~"^checkout"`, true, []string{"checkout", "resolved", "disk", "started"}},
		{"default over regexp", `labels: canary: *"no" | =~"^y"`, true, nil},
		{"conjunction", `labels: deployment: =~"-api$" & !~"^search" & !="x"`, true, []string{"checkout", "resolved", "started"}},
		{"string", `labels: severity: string`, true, []string{"checkout", "resolved", "started"}},
		{"top", `labels: severity: _`, true, []string{"checkout", "resolved", "started"}},
		{"optional", `labels: namespace?: "prod"`, true, []string{"checkout", "resolved", "disk", "bare", "started"}},
		{"optional not equal", `labels: namespace?: !="prod"`, true, []string{"nodeploy", "disk", "bare"}},
		{"required", `labels: deployment!: "search"`, true, []string{"disk"}},
		{"status", `status: "firing"`, true, []string{"checkout", "nodeploy", "disk", "bare", "started"}},
		{"status and name", `status: "resolved", labels: alertname: "HighLatency"`, true, []string{"resolved"}},
		{"source", `source: "grafana"`, true, []string{"disk"}},
		{"fingerprint optional", `fingerprint?: "abc"`, true, []string{"checkout", "resolved", "nodeploy", "disk", "bare", "started"}},
		{"fingerprint exists", `fingerprint: string`, true, []string{"disk"}},
		{"generatorURL", `generatorURL: =~"^http://"`, true, []string{"disk"}},
		{"annotation", `annotations: summary: =~"p99"`, true, []string{"checkout", "resolved"}},
		{"alertname set", `labels: alertname: "HighLatency" | "DiskFull"`, true, []string{"checkout", "resolved", "nodeploy", "disk", "started"}},
		{"alertname default", `labels: alertname: *"HighLatency" | "DiskFull"`, true, []string{"checkout", "resolved", "nodeploy", "disk", "started"}},
		{"empty", `{}`, true, []string{"checkout", "resolved", "nodeploy", "disk", "bare", "started"}},
		{"definition", `labels: namespace: #Env`, true, []string{"checkout", "resolved", "nodeploy", "started"}},
		{"interpolation", `labels: alertname: "High\("Latency")"`, true, []string{"checkout", "resolved", "nodeploy", "started"}},
		{"quoted label", `labels: "alertname": "DiskFull"`, true, []string{"disk"}},
		{"optional alertname", `labels: alertname?: "DiskFull" | "Other"`, true, []string{"disk", "bare"}},
		{"alertname and optional", `labels: {alertname: "HighLatency", deployment?: =~"^checkout"}`, true, []string{"checkout", "resolved", "nodeploy", "started"}},
		{"optional hidden", `_note?: "x", labels: alertname: "DiskFull"`, false, []string{"disk"}},

		// Fallbacks.
		{"pattern", `labels: [=~"^dep"]: =~"^checkout"`, false, []string{"checkout", "resolved", "nodeploy", "bare", "started"}},
		{"reference", `labels: {namespace: string, env: namespace}`, false, nil},
		{"builtin", `labels: deployment: strings.HasPrefix("checkout")`, false, []string{"checkout", "resolved", "started"}},
		{"comparison", `labels: severity: <"d"`, false, []string{"checkout", "resolved", "started"}},
		{"ellipsis", `labels: {alertname: "DiskFull", ...}`, false, []string{"disk"}},
		{"optional conflict", `labels: canary?: "a" & "b"`, false, []string{"checkout", "resolved", "nodeploy", "disk", "bare", "started"}},
		{"number", `labels: severity: 1`, false, nil},
		{"len", `labels: alertname: len(labels.deployment) > 0`, false, nil},
		{"nested", `labels: deployment: {name: "x"}`, false, nil},
		{"struct disjunction", `labels: {alertname: "DiskFull"} | {deployment: "search"}`, false, []string{"disk"}},
		{"comprehension", `labels: {if labels.deployment != _|_ {severity: "critical"}}`, false, []string{"checkout", "resolved", "nodeploy", "bare", "started"}},

		// A let, hidden field or definition of the match's own is a field
		// A & M has and no alert has.
		{"let", `let N = "prod", labels: namespace: N`, false, nil},
		{"hidden", `_note: "x", labels: alertname: "DiskFull"`, true, nil},
		{"own definition", `#N: "prod", labels: namespace: #N`, true, nil},
		{"own closer", `_#def: {labels: alertname: "DiskFull"}, _#def`, true, nil},
		{"hidden in labels", `labels: {_note: "x", alertname: "DiskFull"}`, false, nil},
		{"let in labels", `labels: {let N = "prod", namespace: N}`, false, nil},
	}
	// The schema makes these matches errors by themselves.
	rawOnly := map[string]bool{"number": true, "nested": true}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			ctx := cuecontext.New()
			var src strings.Builder
			src.WriteString("import \"strings\"\n#Env: \"prod\" | \"staging\"\npb: {\n")
			// index maps the rows to their entries.
			index := map[int]int{}
			for i, tc := range tests {
				if rawOnly[tc.name] && mode.schema {
					continue
				}
				fmt.Fprintf(&src, "\tp%d: match: {%s}\n", i, tc.match)
				index[i] = len(index)
			}
			src.WriteString("}\n")
			entries := load(t, ctx, src.String(), mode.schema)
			ix, err := Compile(entries)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]int{}
			for _, al := range alerts {
				got[al.name] = ix.Match(al.a)
			}
			for row, tc := range tests {
				i, ok := index[row]
				if !ok {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					if compiled := ix.entries[i].fallback == nil; compiled != tc.compiled {
						t.Errorf("compiled = %v, want %v\nsyntax: %s", compiled, tc.compiled, show(entries[i].Match))
					}
					for _, al := range alerts {
						matched := slices.Contains(got[al.name], i)
						if def := instanceOf(entries[i].Match, al.a); matched != def {
							t.Errorf("alert %s: Match = %v, CUE = %v\nsyntax: %s", al.name, matched, def, show(entries[i].Match))
						}
						if mode.schema {
							continue
						}
						if want := slices.Contains(tc.want, al.name); matched != want {
							t.Errorf("alert %s: Match = %v, want %v", al.name, matched, want)
						}
					}
				})
			}
		})
	}
}

// TestSchemaClosesMatch pins down a consequence of #Playbook.match being
// closed: it does not declare startsAt, endsAt or receivedAt, so an alert
// that carries any of them matches no playbook.
func TestSchemaClosesMatch(t *testing.T) {
	ctx := cuecontext.New()
	entries := load(t, ctx, `pb: p: match: labels: alertname: "HighLatency"`, true)
	ix, err := Compile(entries)
	if err != nil {
		t.Fatal(err)
	}
	if got := ix.Match(aCheckout); !slices.Equal(got, []int{0}) {
		t.Errorf("Match(checkout) = %v, want [0]", got)
	}
	if got := ix.Match(aStarted); len(got) != 0 || instanceOf(entries[0].Match, aStarted) {
		t.Errorf("Match(started) = %v, CUE = %v; want no match from either", got, instanceOf(entries[0].Match, aStarted))
	}
}

// TestCompileRejectsInvalidMatch covers matches that are errors by
// themselves; a loader rejects such playbooks before it builds an index.
func TestCompileRejectsInvalidMatch(t *testing.T) {
	tests := []struct {
		name   string
		match  string
		schema bool
	}{
		{"conflict", `labels: alertname: "A" & "B"`, false},
		{"not a string", `labels: severity: 1`, true},
		{"not in schema", `startsAt: "x"`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "pb: {\n\tok: match: labels: alertname: \"x\"\n\tbad: match: {" + tc.match + "}\n}\n"
			entries := load(t, cuecontext.New(), src, tc.schema)
			ix, err := Compile(entries)
			if ix != nil || err == nil || !strings.Contains(err.Error(), "playbook bad: invalid match") {
				t.Fatalf("Compile = %v, %v; want an invalid match error", ix, err)
			}
			if pos := cueerrors.Errors(err)[0].Position(); pos.Filename() != "pb.cue" || pos.Line() != 3 {
				t.Errorf("error at %v, want pb.cue:3", pos)
			}
		})
	}
}

// TestCompileRejectsLossyFallback covers a match whose exported syntax
// means something else: with the schema, labels closed by a definition are
// exported as a plain struct, which would let every label through.
func TestCompileRejectsLossyFallback(t *testing.T) {
	src := "#Labels: {alertname: \"HighLatency\"}\npb: p: match: labels: #Labels\n"
	t.Run("raw", func(t *testing.T) {
		entries := load(t, cuecontext.New(), src, false)
		ix, err := Compile(entries)
		if err != nil {
			t.Fatal(err)
		}
		for _, al := range alerts {
			if got, def := len(ix.Match(al.a)) == 1, instanceOf(entries[0].Match, al.a); got != def {
				t.Errorf("alert %s: Match = %v, CUE = %v", al.name, got, def)
			}
		}
	})
	t.Run("schema", func(t *testing.T) {
		entries := load(t, cuecontext.New(), src, true)
		if instanceOf(entries[0].Match, aCheckout) {
			t.Fatal("CUE matches checkout; the test no longer covers a closed label set")
		}
		ix, err := Compile(entries)
		if ix != nil || err == nil || !strings.Contains(err.Error(), "playbook p: match does not rebuild") {
			t.Fatalf("Compile = %v, %v; want a rebuild error", ix, err)
		}
	})
}

func TestCompileRegexpErrors(t *testing.T) {
	tests := []struct {
		name  string
		match string
		want  []string // Regexp of each error
		line  int
	}{
		{"compiled field", `labels: deployment: =~"("`, []string{"("}, 3},
		{"negated", `labels: deployment: !~"[a-"`, []string{"[a-"}, 3},
		{"in disjunction", `labels: deployment: "x" | =~"a**"`, []string{"a**"}, 3},
		{"two", `labels: {a: =~"(", b: !~"x{2,1}"}`, []string{"(", "x{2,1}"}, 3},
		{"in fallback", `labels: {[=~"^x"]: "a", a: =~"+"}`, []string{"+"}, 3},
		{"in pattern", `labels: [=~"("]: "a"`, []string{"("}, 0},
	}
	for _, mode := range modes {
		for _, tc := range tests {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				src := "pb: {\n\tok: match: labels: alertname: \"x\"\n\tbad: match: {" + tc.match + "}\n}\n"
				entries := load(t, cuecontext.New(), src, mode.schema)
				ix, err := Compile(entries)
				if ix != nil || err == nil {
					t.Fatalf("Compile = %v, %v; want an error", ix, err)
				}
				var got []string
				for _, e := range cueerrors.Errors(err) {
					var re *RegexpError
					if !errors.As(e, &re) {
						t.Fatalf("error %T %v is not a *RegexpError", e, e)
					}
					if re.Playbook != "bad" || re.Message == "" {
						t.Errorf("error %+v: want playbook bad and a message", re)
					}
					if tc.line > 0 && (re.Pos.Filename() != "pb.cue" || re.Pos.Line() != tc.line) {
						t.Errorf("error %q at %v, want pb.cue:%d", re.Regexp, re.Pos, tc.line)
					}
					got = append(got, re.Regexp)
				}
				slices.Sort(got)
				if !slices.Equal(got, tc.want) {
					t.Errorf("regexps = %q, want %q", got, tc.want)
				}
			})
		}
	}
}

func TestMatchConcurrent(t *testing.T) {
	ctx := cuecontext.New()
	entries := load(t, ctx, `pb: {
	a: match: labels: alertname: "HighLatency"
	b: match: labels: [=~"^dep"]: =~"^checkout"
	c: match: labels: {namespace: string, env: namespace}
	d: match: status: "firing"
}`, true)
	ix, err := Compile(entries)
	if err != nil {
		t.Fatal(err)
	}
	ix.fb.limit = 7 // rotate while other goroutines evaluate
	want := map[*schema.Alert][]int{}
	for _, al := range alerts {
		want[al.a] = ix.Match(al.a)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				a := alerts[(g+i)%len(alerts)].a
				if got := ix.Match(a); !slices.Equal(got, want[a]) {
					t.Errorf("Match = %v, want %v", got, want[a])
					return
				}
			}
		})
	}
	wg.Wait()
}

func show(v cue.Value) string {
	return fmt.Sprint(v.Syntax())
}
