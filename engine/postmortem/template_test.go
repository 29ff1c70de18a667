package postmortem

import (
	"strings"
	"testing"
)

func TestCustomTemplate(t *testing.T) {
	in := realistic()
	in.Title = "Checkout <b>down</b>\n# again"
	tmpl := `# {{.Title}} ({{.ID}})

Owner {{.Owner}}, severity {{.Severity}}, recovered in {{.TimeToRecover}} = {{duration .Durations.Recover}}.
Opened {{clock .Raw.Timestamps.Opened}}; raw title escaped: {{escape .Raw.Title}}; status {{escape .Raw.Status}}.
Services: {{range .Impact.Services}}{{.}} {{end}}
{{range .Steps}}- {{.Name}} {{.Status}} {{.Commit}} {{commit .Name}}
{{end}}{{with index .Raw.Group "namespace"}}Namespace {{escape .}}{{end}}
Issue {{.Issue}} at {{.Links.IssueURL}}, playbooks at {{commit .Raw.PlaybooksCommit}}.
`
	got := draft(t, in, []byte(tmpl), links)
	want := `# Checkout &lt;b&gt;down&lt;/b&gt; \# again (2026-11-21-checkout-crashloop-327848e5)

Owner @` + "\u2060" + `acme/payments, severity critical, recovered in 49m = 49m.
Opened 2026-11-21 09:13:15 UTC; raw title escaped: Checkout &lt;b&gt;down&lt;/b&gt; \# again; status resolved.
Services: checkout payments-gateway 
- notify succeeded  notify
- rollback succeeded [e83c5163316f](https://github.com/acme/deploy/commit/e83c5163316f89bfbde7d9ab23ca2e25604af290) rollback
- verify failed  verify
- flag succeeded [0d9a5c7e1f2b](https://github.com/acme/deploy/commit/0d9a5c7e1f2b3a4c5d6e7f8091a2b3c4d5e6f708) flag
Namespace shop
Issue [#412](https://github.com/acme/ops/issues/412) at https://github.com/acme/ops/issues/412, playbooks at 9c1e2d3a4b5c.
`
	if got != want {
		t.Errorf("custom template:\n%s\nwant:\n%s", got, want)
	}
}

func TestBadTemplate(t *testing.T) {
	tests := []struct {
		name, tmpl, want string
	}{
		{"unclosed action", "# {{.Title}}\n\n{{.Owner\n", "postmortems/TEMPLATE.md:4: unclosed action started at postmortems/TEMPLATE.md:3"},
		{"unknown function", "# x\n{{nope .Title}}", `postmortems/TEMPLATE.md:2: function "nope" not defined`},
		{"unknown field", "# x\n\n  {{.Nope}}", `postmortems/TEMPLATE.md:3:4: at <.Nope>: can't evaluate field Nope in type postmortem.Data`},
		{"unclosed range", "{{range .Steps}}\n- x\n", "postmortems/TEMPLATE.md:3: unexpected EOF"},
		{"wrong argument", "ok\n{{duration .Title}}", `postmortems/TEMPLATE.md:2:11: at <.Title>: wrong type for value; expected time.Duration; got string`},
		{"failing call", "{{index .Steps 99}}", `postmortems/TEMPLATE.md:1:2: at <index .Steps 99>: error calling index: index out of range: 99`},
		{"nothing written", "  {{/* nothing */}}\n\n", "postmortems/TEMPLATE.md: the template writes nothing"},
		{"empty", "", "postmortems/TEMPLATE.md: the template writes nothing"},
		{"too long", "{{range 100000}}" + strings.Repeat("0123456789", 100) + "{{end}}", "postmortems/TEMPLATE.md: the draft is over 8388608 bytes"},
		{"error naming a hostile template", "{{template \"x\nline\"}}", "postmortems/TEMPLATE.md:1: unterminated quoted string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Draft(realistic(), []byte(tc.tmpl), links)
			if err == nil {
				t.Fatalf("Draft succeeded:\n%.200s", out)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("error:\n got %s\nwant %s", got, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is more than one line")
			}
		})
	}
}
