package match

import (
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/literal"
	"github.com/firebreak-dev/firebreak/schema"
)

var (
	genLabels  = []string{"alertname", "deployment", "namespace", "severity", "team"}
	genAnnots  = []string{"summary", "runbook"}
	genValues  = []string{"HighLatency", "DiskFull", "checkout-api", "checkout", "search", "prod", "staging", "", "critical", "a", "ab", "b", "日本", "x-1"}
	genRegexps = []string{"^checkout", "-api$", "a|b", "^$", ".", "^(prod|staging)$", "[0-9]", "(?i)HIGH", "^a+b?$", "日", `\d`, "^High"}
)

func q(s string) string { return literal.String.Quote(s) }

// genLeaf returns a random constraint of a shape Compile translates.
func genLeaf(r *rand.Rand) string {
	val := func() string { return q(genValues[r.Intn(len(genValues))]) }
	re := func() string { return q(genRegexps[r.Intn(len(genRegexps))]) }
	atom := func() string {
		switch r.Intn(6) {
		case 0:
			return val()
		case 1:
			return "=~" + re()
		case 2:
			return "!~" + re()
		case 3:
			return "!=" + val()
		case 4:
			return "string"
		default:
			return "_"
		}
	}
	switch r.Intn(8) {
	case 0, 1:
		return val()
	case 2:
		return atom()
	case 3, 4: // disjunction of literals, maybe with defaults
		n := 2 + r.Intn(2)
		alts := make([]string, n)
		for i := range alts {
			alts[i] = val()
			if r.Intn(4) == 0 {
				alts[i] = "*" + alts[i]
			}
		}
		return strings.Join(alts, " | ")
	case 5:
		return atom() + " & " + atom()
	case 6: // mixed disjunction
		d := ""
		if r.Intn(2) == 0 {
			d = "*"
		}
		return d + val() + " | (" + atom() + ")"
	default:
		return "(" + atom() + " | " + atom() + ") & " + atom()
	}
}

func genMarker(r *rand.Rand) string {
	switch r.Intn(6) {
	case 0, 1:
		return "?"
	case 2:
		return "!"
	}
	return ""
}

// fallbackShapes are constructs Compile leaves to CUE; raw only ones are
// those the schema makes unexportable.
var fallbackShapes = []struct {
	src     string
	rawOnly bool
}{
	{`labels: [=~"^dep"]: =~"^checkout"`, false},
	{`labels: severity: <"d"`, false},
	{`labels: {namespace: string, env: namespace}`, false},
	{`labels: {alertname: string, ...}`, false},
	{`labels: team: 1`, false},
	{`labels: deployment: strings.HasPrefix("check")`, false},
	{`labels: #Closed`, true},
	{`labels: {if labels.team != _|_ {severity: "critical"}}`, false},
	{`labels: {team: "a"} | {team: "b"}`, false},
	{`labels: canary?: "a" & "b"`, false},
	{`labels: deployment: =~"^checkout" | 1`, false},
	{`annotations: [string]: =~"p99"`, false},
	{`labels: team: {name: "x"}`, false},
	{`labels: alertname: len(labels.deployment) > 3`, false},
	{`_hidden: 1, labels: team: "a"`, false},
	{`let L = "prod", labels: namespace: L`, false},
	{`labels: {let S = "critical", severity: S}`, false},
	{`#Sev: "critical", labels: severity: #Sev`, false},
	{`_note?: "x", labels: severity: string`, false},
	{`_#def: {labels: team: string}, _#def`, false},
	{`labels: namespace: #Env`, false},
	{`labels: {deployment: string} | {namespace: "prod"}`, false},
}

// genMatch returns the body of a random match.
func genMatch(r *rand.Rand, withSchema bool) string {
	var parts []string
	if r.Intn(4) == 0 {
		parts = append(parts, "status"+genMarker(r)+": "+[]string{`"firing"`, `"resolved"`, `"firing" | "resolved"`, `string`, `!="resolved"`}[r.Intn(5)])
	}
	if r.Intn(6) == 0 {
		parts = append(parts, "source"+genMarker(r)+": "+[]string{`"grafana"`, `"alertmanager" | "generic"`, `=~"^g"`}[r.Intn(3)])
	}
	for _, f := range []string{"fingerprint", "generatorURL", "startsAt"} {
		if r.Intn(10) == 0 {
			parts = append(parts, f+genMarker(r)+": "+genLeaf(r))
		}
	}
	var labels []string
	for _, l := range genLabels {
		if r.Intn(3) == 0 {
			labels = append(labels, l+genMarker(r)+": "+genLeaf(r))
		}
	}
	if len(labels) > 0 {
		parts = append(parts, "labels: {"+strings.Join(labels, ", ")+"}")
	}
	if r.Intn(5) == 0 {
		a := genAnnots[r.Intn(len(genAnnots))]
		parts = append(parts, "annotations: "+a+genMarker(r)+": "+genLeaf(r))
	}
	if r.Intn(5) == 0 {
		for {
			s := fallbackShapes[r.Intn(len(fallbackShapes))]
			if !s.rawOnly || !withSchema {
				parts = append(parts, s.src)
				break
			}
		}
	}
	return strings.Join(parts, "\n")
}

func genAlert(r *rand.Rand) *schema.Alert {
	pick := func() string {
		if r.Intn(30) == 0 {
			return "x\xff\xfey" // Encode turns this into x\uFFFDy
		}
		return genValues[r.Intn(len(genValues))]
	}
	a := &schema.Alert{
		Source: []string{"alertmanager", "grafana", "generic", "other"}[r.Intn(4)],
		Status: []string{"firing", "firing", "resolved", ""}[r.Intn(4)],
		Labels: map[string]string{}, Annotations: map[string]string{},
	}
	for _, l := range genLabels {
		if r.Intn(5) < 3 {
			a.Labels[l] = pick()
		}
	}
	for _, l := range genAnnots {
		if r.Intn(2) == 0 {
			a.Annotations[l] = pick() + " p99"
		}
	}
	if r.Intn(3) == 0 {
		a.Fingerprint = pick()
	}
	if r.Intn(3) == 0 {
		a.GeneratorURL = "http://g/" + pick()
	}
	if r.Intn(8) == 0 {
		a.StartsAt = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	}
	return a
}

// genWithout returns a copy of a without one of the fields it has, so that
// a match the alert is an instance of for all but a required field meets
// an alert that lacks just that field.
func genWithout(r *rand.Rand, a *schema.Alert) *schema.Alert {
	b := *a
	b.Labels, b.Annotations = maps.Clone(a.Labels), maps.Clone(a.Annotations)
	var drop []func()
	for _, k := range slices.Sorted(maps.Keys(b.Labels)) {
		drop = append(drop, func() { delete(b.Labels, k) })
	}
	for _, k := range slices.Sorted(maps.Keys(b.Annotations)) {
		drop = append(drop, func() { delete(b.Annotations, k) })
	}
	if b.Fingerprint != "" {
		drop = append(drop, func() { b.Fingerprint = "" })
	}
	if b.GeneratorURL != "" {
		drop = append(drop, func() { b.GeneratorURL = "" })
	}
	if !b.StartsAt.IsZero() {
		drop = append(drop, func() { b.StartsAt = time.Time{} })
	}
	if len(drop) > 0 {
		drop[r.Intn(len(drop))]()
	}
	return &b
}

// genPrelude uses strings itself: an unused import is an error.
const genPrelude = "import \"strings\"\n_upper: strings.ToUpper(\"\")\n#Env: \"prod\" | \"staging\"\n#Closed: {alertname: \"HighLatency\"}\n"

func genFile(matches []string) string {
	var b strings.Builder
	b.WriteString(genPrelude + "pb: {\n")
	for i, m := range matches {
		fmt.Fprintf(&b, "p%03d: match: {\n%s\n}\n", i, m)
	}
	b.WriteString("}\n")
	return b.String()
}

// genValid returns n random matches that are not errors by themselves
// (the generator knows nothing of the schema), which Compile rejects.
func genValid(t *testing.T, r *rand.Rand, n int, withSchema bool) []string {
	var out []string
	for len(out) < n {
		batch := make([]string, n-len(out))
		for i := range batch {
			batch[i] = genMatch(r, withSchema)
		}
		for i, e := range load(t, cuecontext.New(), genFile(batch), withSchema) {
			if e.Match.Err() == nil {
				out = append(out, batch[i])
			}
		}
	}
	return out
}

// TestMatchProperty compares Index.Match with the definition on every
// pair of random matches and random alerts. Alerts come in pairs, the
// second without one of the first's fields: every match the first is an
// instance of and the second is not is a case of a required field that an
// alert lacks.
func TestMatchProperty(t *testing.T) {
	// The reference side is one CUE unification per pair, about 0.25 ms of
	// CPU each, and several times that under the race detector.
	nMatches, nAlerts := 120, 500
	switch {
	case raceEnabled && testing.Short():
		nMatches, nAlerts = 40, 100
	case raceEnabled, testing.Short():
		nMatches, nAlerts = 60, 200
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(20250101))
			matches := genValid(t, r, nMatches, mode.schema)
			alerts := make([]*schema.Alert, nAlerts)
			for i := 0; i < len(alerts); i += 2 {
				alerts[i] = genAlert(r)
				alerts[i+1] = genWithout(r, alerts[i])
			}
			src := genFile(matches)
			ix, err := Compile(load(t, cuecontext.New(), src, mode.schema))
			if err != nil {
				t.Fatal(err)
			}
			compiled, fallback := ix.Stats()
			t.Logf("%d compiled, %d fallback", compiled, fallback)
			if compiled < nMatches/2 || fallback == 0 {
				t.Errorf("Stats = %d, %d: the generator no longer covers both paths", compiled, fallback)
			}

			// The reference side uses a fresh context per chunk of alerts
			// (an even number, to keep pairs together): one context for all
			// of them would grow by gigabytes.
			const chunk = 50
			var mu sync.Mutex
			failures, hits, lost := 0, 0, 0
			var wg sync.WaitGroup
			sem := make(chan struct{}, runtime.GOMAXPROCS(0))
			for start := 0; start < len(alerts); start += chunk {
				part := alerts[start:min(start+chunk, len(alerts))]
				wg.Go(func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					entries := load(t, cuecontext.New(), src, mode.schema)
					var prev []int
					for j, a := range part {
						got := ix.Match(a)
						av := entries[0].Match.Context().Encode(a.Data())
						var want []int
						for i, e := range entries {
							if isInstance(av, e.Match) {
								want = append(want, i)
							}
						}
						mu.Lock()
						hits += len(want)
						if j%2 == 1 {
							for _, k := range prev {
								if !slices.Contains(want, k) {
									lost++
								}
							}
						}
						prev = want
						if slices.Equal(got, want) {
							mu.Unlock()
							continue
						}
						failures++
						if failures <= 10 {
							t.Errorf("alert %+v:\n%s", *a, diff(matches, got, want))
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			t.Logf("%d matching pairs of %d; %d lost by dropping a field", hits, nMatches*nAlerts, lost)
			if hits < nMatches*nAlerts/50 || lost < nMatches*nAlerts/1000 {
				t.Errorf("the generator no longer covers matches and absent fields")
			}
		})
	}
}

func diff(matches []string, got, want []int) string {
	var b strings.Builder
	for i, m := range matches {
		g, w := slices.Contains(got, i), slices.Contains(want, i)
		if g != w {
			fmt.Fprintf(&b, "  p%03d Match=%v CUE=%v:\n    %s\n", i, g, w, strings.ReplaceAll(m, "\n", "\n    "))
		}
	}
	return b.String()
}

// FuzzMatch builds a match from fuzzed regexp text and values and checks
// Compile and Match against the definition, on alerts that have the
// constrained label and alerts that lack it. An invalid regexp must come
// back as a *RegexpError, never as a panic.
func FuzzMatch(f *testing.F) {
	f.Add("^checkout", "checkout-api", "search", "checkout-web", uint8(0))
	f.Add("(", "a", "b", "a", uint8(1))
	f.Add("a|b", "", "x", "", uint8(2))
	f.Add(`^\d+$`, "12", "x", "x\xff", uint8(3))
	f.Add("[[:alpha:]]", "日本", "b", "日本", uint8(4))
	f.Add("(?i)^X", "x", "X", "xX", uint8(5))
	f.Add("x{2,1}", "a", "b", "c", uint8(6))
	f.Add(".*", "\"", "\\", "\n", uint8(7))
	f.Add("^a", "a", "b", "ab", uint8(8))
	f.Add("b", "a", "b", "", uint8(9))
	f.Add("^$", "", "x", "", uint8(10))
	f.Add("^H", "HighLatency", "DiskFull", "x", uint8(11))
	f.Add("(", "HighLatency", "DiskFull", "x", uint8(12))
	f.Add("^D", "a", "DiskFull", "DiskFull", uint8(13))
	f.Add(".", "a", "", "b", uint8(14))
	f.Add("^checkout", "checkout", "search", "checkout", uint8(15))
	f.Add("^checkout", "checkout-api", "search", "checkout-web", uint8(16))
	f.Add("(", "a", "b", "a", uint8(17))
	f.Add("a|b", "x", "", "a", uint8(18))
	f.Add("^a", "ab", "b", "ab", uint8(19))
	f.Add("-api$", "search", "x", "checkout-api", uint8(20))
	f.Add("^$", "", "", "", uint8(21))
	f.Add("[a-", "a", "b", "a", uint8(22))
	f.Add("b", "a", "b", "", uint8(23))
	f.Add("^a", "a", "a", "b", uint8(24))
	f.Add("^y", "x", "y", "z", uint8(25))
	f.Add("", "a", "b", "b", uint8(26))
	f.Add("^x", "x", "y", "x", uint8(27))
	f.Add("^H", "HighLatency", "HighLatency", "", uint8(28))
	f.Add("^H", "a", "b", "", uint8(29))
	f.Add("", "a", "b", "c", uint8(30))
	f.Add("^a", "a", "b", "c", uint8(31))
	f.Add("(", "s", "x", "s", uint8(15)) // CUE itself fails on the bad pattern
	f.Add("(", "s", "x", "s", uint8(31))
	f.Fuzz(func(t *testing.T, re, v1, v2, val string, shape uint8) {
		if !utf8.ValidString(re) || !utf8.ValidString(v1) || !utf8.ValidString(v2) {
			t.Skip("CUE source is UTF-8")
		}
		// Shapes that leave re out of the match do not check it either.
		leaves := []struct {
			src    string
			usesRe bool
		}{
			{"k: =~" + q(re), true},
			{"k: !~" + q(re), true},
			{"k: " + q(v1) + " | *" + q(v2), false},
			{"k: =~" + q(re) + " & !=" + q(v1), true},
			{"k: " + q(v1) + " | =~" + q(re), true},
			{"k?: =~" + q(re), true},
			{"[=~" + q(re) + "]: " + q(v1), true}, // fallback
			{"k!: !~" + q(re) + " & string", true},
			{"k: " + q(v1), false},
			{"k?: *" + q(v1) + " | =~" + q(re), true},
			{"k!: " + q(v1) + " | " + q(v2), false},
			{"k: _, alertname: =~" + q(re), true},
			{"alertname: " + q(v1) + " | *" + q(v2), false},
			{"alertname?: " + q(v2) + ", k: !=" + q(v1), false},
			{"k: *" + q(v1) + " | string", false},
			{"k: " + q(v1) + ", [=~" + q(re) + "]: _", true}, // fallback
		}
		leaf := leaves[shape%16]
		withSchema := shape&16 != 0
		src := "pb: {\n\tp: match: labels: {" + leaf.src + "}\n\to: match: labels: alertname: " + q(v2) + "\n}\n"
		entries := load(t, cuecontext.New(), src, withSchema)
		ix, err := Compile(entries)
		if _, reErr := regexp.Compile(re); reErr != nil && leaf.usesRe {
			var rerr *RegexpError
			if err == nil || !errors.As(cueerrors.Errors(err)[0], &rerr) || rerr.Regexp != re {
				t.Fatalf("Compile(%s) = %v, want a RegexpError for %q", leaf.src, err, re)
			}
			return
		}
		if err != nil {
			t.Fatalf("Compile(%s): %v", leaf.src, err)
		}
		// Half the label sets lack k, and some lack alertname.
		for _, labels := range []map[string]string{
			{}, {"k": val}, {"k": v1}, {"k": v2}, {"k": val, "alertname": v2},
			{"alertname": v1}, {"alertname": v2}, {"alertname": val, "k": v1},
			{v1: val}, {val: v1},
		} {
			a := &schema.Alert{Source: "generic", Status: "firing", Labels: labels}
			got := ix.Match(a)
			var want []int
			for i, e := range entries {
				if instanceOf(e.Match, a) {
					want = append(want, i)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("match %s, labels %q: Match = %v, CUE = %v", leaf.src, labels, got, want)
			}
		}
	})
}
