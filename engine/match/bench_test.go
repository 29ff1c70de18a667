package match

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"github.com/firebreak-dev/firebreak/schema"
)

// realisticFile is n playbooks of the shapes a team writes: one alertname
// each, a few label constraints, some regexps, a few alertname regexps and
// about 2% that need CUE.
func realisticFile(n int) string {
	var b strings.Builder
	b.WriteString("pb: {\n")
	for i := range n {
		name := fmt.Sprintf("Svc%04dDown", i)
		var m string
		switch {
		case i%50 == 49:
			m = fmt.Sprintf(`labels: {alertname: %q, [=~"^k8s_"]: =~"^prod"}`, name)
		case i%50 == 24:
			m = fmt.Sprintf(`labels: {alertname: %q, severity: <"d"}`, name)
		case i%200 == 7:
			m = fmt.Sprintf(`labels: {alertname: =~"^Svc%02d", severity: "critical"}`, i/100)
		case i%4 == 0:
			m = fmt.Sprintf(`labels: {alertname: %q, severity: "critical" | "high"}`, name)
		case i%4 == 1:
			m = fmt.Sprintf(`status: "firing", labels: {alertname: %q, deployment: =~"^checkout-"}`, name)
		case i%4 == 2:
			m = fmt.Sprintf(`labels: {alertname: %q, namespace: "prod" | "staging", team?: "payments"}`, name)
		default:
			m = fmt.Sprintf(`labels: {alertname: %q, service: !~"^test-"}, annotations: summary?: string`, name)
		}
		fmt.Fprintf(&b, "\tp%04d: match: {%s}\n", i, m)
	}
	b.WriteString("}\n")
	return b.String()
}

func realisticAlerts(n, playbooks int) []*schema.Alert {
	r := rand.New(rand.NewSource(1))
	out := make([]*schema.Alert, n)
	for i := range out {
		out[i] = &schema.Alert{
			Source: "alertmanager",
			Status: []string{"firing", "firing", "firing", "resolved"}[r.Intn(4)],
			Labels: map[string]string{
				"alertname":  fmt.Sprintf("Svc%04dDown", r.Intn(playbooks+playbooks/10)),
				"severity":   []string{"critical", "high", "warning"}[r.Intn(3)],
				"namespace":  []string{"prod", "staging", "dev"}[r.Intn(3)],
				"deployment": []string{"checkout-api", "search", "payments"}[r.Intn(3)],
				"service":    []string{"api", "test-api"}[r.Intn(2)],
				"k8s_ns":     []string{"prod-eu", "dev"}[r.Intn(2)],
				"instance":   fmt.Sprintf("10.0.%d.%d:9090", r.Intn(256), r.Intn(256)),
			},
			Annotations: map[string]string{"summary": "service down"},
		}
	}
	return out
}

func realistic(b *testing.B) ([]Entry, []*schema.Alert) {
	entries := load(b, cuecontext.New(), realisticFile(1000), true)
	return entries, realisticAlerts(1000, 1000)
}

// BenchmarkMatch1000 matches one alert against 1,000 playbooks; p99-ns is
// over the calls of the run (use -benchtime=10000x for 10,000 calls).
func BenchmarkMatch1000(b *testing.B) {
	entries, alerts := realistic(b)
	ix, err := Compile(entries)
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		start := time.Now()
		ix.Match(alerts[i%len(alerts)])
		lat = append(lat, time.Since(start))
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	_, fallback := ix.Stats()
	b.ReportMetric(float64(fallback), "fallbacks")
}

// BenchmarkCUEUnifyAll1000 is the definition applied naively: the alert
// unified with every one of the 1,000 matches.
func BenchmarkCUEUnifyAll1000(b *testing.B) {
	entries, alerts := realistic(b)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		a := alerts[i%len(alerts)]
		i++
		av := entries[0].Match.Context().Encode(a.Data())
		for _, e := range entries {
			r := av.Unify(e.Match)
			_ = r.Validate(cue.Concrete(true)) == nil && r.Equals(av)
		}
	}
}

func BenchmarkCompile1000(b *testing.B) {
	entries, _ := realistic(b)
	for b.Loop() {
		if _, err := Compile(entries); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRealisticAgreesWithCUE checks the benchmark's index against CUE, so
// that the numbers measure a correct matcher.
func TestRealisticAgreesWithCUE(t *testing.T) {
	n := 1000
	if testing.Short() || raceEnabled {
		n = 200
	}
	entries := load(t, cuecontext.New(), realisticFile(n), true)
	ix, err := Compile(entries)
	if err != nil {
		t.Fatal(err)
	}
	compiled, fallback := ix.Stats()
	if want := n / 50 * 2; fallback != want || compiled != n-want {
		t.Errorf("Stats = %d, %d; want %d, %d", compiled, fallback, n-want, want)
	}
	for _, a := range realisticAlerts(20, n) {
		var want []int
		for i, e := range entries {
			if instanceOf(e.Match, a) {
				want = append(want, i)
			}
		}
		if got := ix.Match(a); !slices.Equal(got, want) {
			t.Errorf("alert %v: Match = %v, CUE = %v", a.Labels, got, want)
		}
	}
}
