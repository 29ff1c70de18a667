package match

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"github.com/firebreak-dev/firebreak/schema"
)

// TestDefinition pins down, against CUE itself, what the definition says
// for each shape of field constraint, each kind of field and each state of
// the alert's field: a regular or required field the alert lacks never
// matches, an optional one constrains the field only when the alert has
// it. Index.Match must say the same, from compiled predicates only.
func TestDefinition(t *testing.T) {
	constraints := []struct {
		src   string
		holds func(string) bool
		// fills says whether the constraint alone is concrete, by value or
		// default: then an absent regular field leaves A & M valid, and only
		// Equals tells that the match added the field.
		fills bool
	}{
		{`"prod"`, func(s string) bool { return s == "prod" }, true},
		{`=~"^pr"`, func(s string) bool { return strings.HasPrefix(s, "pr") }, false},
		{`!="prod"`, func(s string) bool { return s != "prod" }, false},
		{`!~"^pr"`, func(s string) bool { return !strings.HasPrefix(s, "pr") }, false},
		{`string`, func(string) bool { return true }, false},
		{`_`, func(string) bool { return true }, false},
		{`"prod" | "staging"`, func(s string) bool { return s == "prod" || s == "staging" }, false},
		{`*"prod" | "staging"`, func(s string) bool { return s == "prod" || s == "staging" }, true},
		{`*"prod" | string`, func(string) bool { return true }, true},
		{`*"prod" | =~"^st"`, func(s string) bool { return s == "prod" || strings.HasPrefix(s, "st") }, true},
		{`=~"^pr" & !="prod"`, func(s string) bool { return strings.HasPrefix(s, "pr") && s != "prod" }, false},
	}
	markers := []struct {
		name, src string
	}{{"regular", ""}, {"required", "!"}, {"optional", "?"}}
	// Each field is tried in each state, the others absent.
	fields := []struct {
		match string // with %s for the marker and %s for the constraint
		set   func(a *schema.Alert, s string)
	}{
		{"labels: namespace%s: %s", func(a *schema.Alert, s string) { a.Labels["namespace"] = s }},
		{"annotations: summary%s: %s", func(a *schema.Alert, s string) { a.Annotations["summary"] = s }},
		{"generatorURL%s: %s", func(a *schema.Alert, s string) { a.GeneratorURL = s }},
	}
	values := []string{"", "prod", "staging", "preview"} // "" is absent

	type row struct {
		name  string
		match string
		field int
		want  func(v string) bool
		fills bool
	}
	var rows []row
	for fi, f := range fields {
		for _, mk := range markers {
			for _, c := range constraints {
				rows = append(rows, row{
					name:  fmt.Sprintf(f.match, mk.src, c.src),
					match: fmt.Sprintf(f.match, mk.src, c.src),
					field: fi,
					want: func(v string) bool {
						if v == "" {
							return mk.src == "?"
						}
						return c.holds(v)
					},
					fills: c.fills && mk.src == "",
				})
			}
		}
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			ctx := cuecontext.New()
			var src strings.Builder
			src.WriteString("pb: {\n")
			for i, r := range rows {
				fmt.Fprintf(&src, "\tp%03d: match: {%s}\n", i, r.match)
			}
			src.WriteString("}\n")
			entries := load(t, ctx, src.String(), mode.schema)
			ix, err := Compile(entries)
			if err != nil {
				t.Fatal(err)
			}
			if compiled, fallback := ix.Stats(); fallback != 0 {
				t.Errorf("Stats = %d, %d; want every shape compiled", compiled, fallback)
			}
			for fi, f := range fields {
				for _, v := range values {
					a := &schema.Alert{Source: "generic", Status: "firing",
						Labels: map[string]string{"alertname": "X"}, Annotations: map[string]string{}}
					if v != "" {
						f.set(a, v)
					}
					av := ctx.Encode(a.Data())
					matched := ix.Match(a)
					for i, r := range rows {
						rv := v
						if r.field != fi {
							rv = ""
						}
						res := av.Unify(entries[i].Match)
						valid := res.Validate(cue.Concrete(true)) == nil
						def := valid && res.Equals(av)
						if want := r.want(rv); def != want {
							t.Errorf("%s, value %q: CUE says %v, the rule %v", r.name, rv, def, want)
						}
						// What Equals adds to the old definition: a field the
						// match fills in leaves A & M valid.
						if rv == "" && r.fills && !valid {
							t.Errorf("%s, absent: A & M does not validate; the row no longer shows why Equals is needed", r.name)
						}
						if got := slices.Contains(matched, i); got != def {
							t.Errorf("%s, value %q: Match = %v, CUE = %v", r.name, rv, got, def)
						}
					}
				}
			}
		})
	}
}
