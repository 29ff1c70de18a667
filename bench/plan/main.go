// Command plan measures firebreak's match and plan path on a generated
// repository (see bench/gen) against CUE unification, in one run:
//
//	go run ./bench/plan -repo DIR -alerts FILE
//
// It loads DIR with repo.Load, builds plan.New, checks that every alert of
// FILE matches the playbooks gen says it must, warms up, and then reports
//
//   - the latency of each Planner.Plan call over all alerts (p50, p90, p99,
//     max, mean), and of Planner.Matches alone;
//   - heap in use and RSS before and after -calls more Plan calls, heap in
//     use after each tenth of them, and the identifiers recorded as
//     unresolved in the syntax of the playbooks' units;
//   - the baseline: for -sample alerts, the time to unify the alert with
//     every playbook's match in CUE, which is the definition of a match,
//     and whether CUE's set of matches equals firebreak's.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"

	"github.com/firebreak-dev/firebreak/engine/match"
	"github.com/firebreak-dev/firebreak/engine/plan"
	"github.com/firebreak-dev/firebreak/engine/render"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

// Goals of the issue.
const (
	goalRatio    = 30.0             // CUE baseline per alert / firebreak Plan mean
	goalP99      = time.Millisecond // Plan latency
	goalHeapGrow = 20.0             // MB over -calls Plan calls
)

type benchAlert struct {
	Alert schema.Alert `json:"alert"`
	Want  []string     `json:"want"`
}

type options struct {
	repo, alerts string
	sample       int
	calls        int
	warmup       int
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

func run(args []string, stdout io.Writer) int {
	var o options
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.StringVar(&o.repo, "repo", "", "playbook repository written by bench/gen (required)")
	fs.StringVar(&o.alerts, "alerts", "", "alerts file written by bench/gen -alerts (required)")
	fs.IntVar(&o.sample, "sample", 200, "alerts for the CUE baseline")
	fs.IntVar(&o.calls, "calls", 100000, "Plan calls between the two heap readings")
	fs.IntVar(&o.warmup, "warmup", 4000, "Plan calls before any measurement")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.repo == "" || o.alerts == "" {
		fmt.Fprintln(os.Stderr, "plan: -repo and -alerts are required")
		return 2
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if err := bench(w, o); err != nil {
		w.Flush()
		fmt.Fprintln(os.Stderr, "plan:", err)
		return 1
	}
	return 0
}

func bench(w *bufio.Writer, o options) error {
	alerts, err := readAlerts(o.alerts)
	if err != nil {
		return err
	}
	out := func(format string, args ...any) {
		fmt.Fprintf(w, format, args...)
		w.Flush()
	}

	start := time.Now()
	r, err := repo.Load(o.repo)
	if err != nil {
		return err
	}
	if !r.Valid() {
		for _, d := range r.Diagnostics[:min(10, len(r.Diagnostics))] {
			fmt.Fprintln(os.Stderr, d)
		}
		return fmt.Errorf("%s: %d problem(s)", o.repo, len(r.Diagnostics))
	}
	loadTime := time.Since(start)
	p, err := plan.New(r)
	if err != nil {
		return err
	}
	compiled, fallback, err := indexStats(r)
	if err != nil {
		return err
	}
	matching := 0
	for _, a := range alerts {
		if len(a.Want) > 0 {
			matching++
		}
	}
	out("repository   %d playbooks, loaded in %s; match index: %d compiled to Go, %d left to CUE\n",
		len(r.Playbooks), round(loadTime), compiled, fallback)
	out("alerts       %d: %d (%.0f%%) match exactly one playbook, %d match none\n",
		len(alerts), matching, 100*float64(matching)/float64(len(alerts)), len(alerts)-matching)

	// Correctness over every alert, which also warms up the index.
	wrong := 0
	for _, a := range alerts {
		if got := p.Matches(&a.Alert); !slices.Equal(got, a.Want) {
			if wrong < 5 {
				out("  MISMATCH %s: firebreak %v, generator %v\n", a.Alert.Labels["alertname"], got, a.Want)
			}
			wrong++
		}
	}
	out("intended     firebreak matches what the generator intended for %d of %d alerts\n", len(alerts)-wrong, len(alerts))

	// Templates: Warm compiles every playbook's plan to Go, as a server
	// does at startup; the plans of the sample must equal CUE's.
	start = time.Now()
	if err := p.Warm(); err != nil {
		return err
	}
	compiledN := p.Compiled()
	out("templates    %d of %d playbooks compiled to Go in %s\n", compiledN, len(r.Playbooks), round(time.Since(start)))
	exact, compared := templatesExact(r, sampleOf(alerts, o.sample))
	out("             template plans equal to CUE's for %d of %d renders of the sample\n", exact, compared)

	// Warm-up: the renderer compiles playbooks on first use and again
	// after each of its context swaps (every render.DefaultMaxUses renders
	// per context), so a warm-up longer than two swaps shows nothing new.
	renderErrs := 0
	for i := range o.warmup {
		a := &alerts[i%len(alerts)]
		for _, m := range p.Plan(&a.Alert).Matches {
			if m.Error != "" {
				if renderErrs < 3 {
					out("  render error: %s: %s\n", m.Playbook, m.Error)
				}
				renderErrs++
			}
		}
	}
	out("warm-up      %d Plan calls, %d render errors\n\n", o.warmup, renderErrs)

	// Latency of Plan (match + render) and of Matches (match alone).
	planLat, planMatched, planNone := make([]time.Duration, len(alerts)), []time.Duration{}, []time.Duration{}
	for i, a := range alerts {
		t := time.Now()
		res := p.Plan(&a.Alert)
		d := time.Since(t)
		planLat[i] = d
		if len(res.Matches) > 0 {
			planMatched = append(planMatched, d)
		} else {
			planNone = append(planNone, d)
		}
	}
	matchLat := make([]time.Duration, len(alerts))
	for i, a := range alerts {
		t := time.Now()
		_ = p.Matches(&a.Alert)
		matchLat[i] = time.Since(t)
	}
	out("firebreak latency per alert (%d alerts, one at a time)\n", len(alerts))
	out("  %-26s %9s %9s %9s %9s %9s\n", "", "p50", "p90", "p99", "max", "mean")
	planStats := latencies(planLat)
	out("  %-26s %s\n", "Plan (match + render)", planStats)
	out("  %-26s %s\n", "  alerts with a match", latencies(planMatched))
	out("  %-26s %s\n", "  alerts without", latencies(planNone))
	matchStats := latencies(matchLat)
	out("  %-26s %s\n\n", "Matches (match only)", matchStats)

	// Heap over o.calls more Plan calls.
	// Heap in use is also read at every tenth of the calls: the renderer
	// swaps whole cue.Contexts, so two readings alone can fall on
	// different points of that cycle; the series shows whether it trends.
	unresolvedBefore := unresolved(r)
	before := memory()
	var series []string
	var tenths []float64
	var elapsed time.Duration
	step := max(o.calls/10, 1)
	for done := 0; done < o.calls; {
		n := min(step, o.calls-done)
		t := time.Now()
		for i := range n {
			_ = p.Plan(&alerts[(done+i)%len(alerts)].Alert)
		}
		elapsed += time.Since(t)
		done += n
		if done < o.calls {
			tenths = append(tenths, mb(memory().heapInuse))
		}
	}
	after := memory()
	tenths = append(tenths, mb(after.heapInuse))
	for _, x := range tenths {
		series = append(series, fmt.Sprintf("%.0f", x))
	}
	half := len(tenths) / 2
	trend := slices.Max(tenths[half:]) - slices.Max(tenths[:max(half, 1)])
	growth := float64(int64(after.heapInuse)-int64(before.heapInuse)) / (1 << 20)
	out("heap over %d Plan calls (%s, %s per call)\n", o.calls, round(elapsed), round(elapsed/time.Duration(max(o.calls, 1))))
	out("  %-8s heap in use %7.1f MB, heap alloc %7.1f MB, RSS %7.1f MB\n", "before", mb(before.heapInuse), mb(before.heapAlloc), mb(before.rss))
	out("  %-8s heap in use %7.1f MB, heap alloc %7.1f MB, RSS %7.1f MB (peak RSS %.1f MB)\n", "after", mb(after.heapInuse), mb(after.heapAlloc), mb(after.rss), mb(after.peakRSS))
	out("  growth   %+.1f MB heap in use, %+.1f MB RSS\n", growth, mb(after.rss)-mb(before.rss))
	out("  heap in use after each tenth of the calls (MB): %s\n", strings.Join(series, " "))
	out("  trend    %+.1f MB: highest reading of the second half minus that of the first\n", trend)
	out("  unit syntax: %d -> %d unresolved identifiers recorded in the playbooks' unit files\n\n", unresolvedBefore, unresolved(r))

	// Baseline: the definition of a match, alert by alert, with CUE.
	sample := sampleOf(alerts, o.sample)
	ctx := r.Playbooks[0].Match.Context()
	cueMatches := func(a *schema.Alert) []string {
		av := ctx.Encode(a.Data())
		var names []string
		for _, pb := range r.Playbooks {
			if av.Unify(pb.Match).Validate(cue.Concrete(true)) == nil {
				names = append(names, pb.Name)
			}
		}
		return names
	}
	for _, a := range sample[:min(3, len(sample))] {
		cueMatches(&a.Alert)
	}
	var cueTotal time.Duration
	equal, sampleMatching := 0, 0
	for _, a := range sample {
		t := time.Now()
		want := cueMatches(&a.Alert)
		cueTotal += time.Since(t)
		if len(want) > 0 {
			sampleMatching++
		}
		if got := p.Matches(&a.Alert); slices.Equal(got, want) {
			equal++
		} else {
			out("  DIFFERENT %s: firebreak %v, CUE %v\n", a.Alert.Labels["alertname"], got, want)
		}
	}
	cueMean := cueTotal / time.Duration(max(len(sample), 1))
	ratio := float64(cueMean) / float64(planStats.mean)
	out("baseline: CUE unification of each alert with all %d matches (%d alerts, %d with a match)\n", len(r.Playbooks), len(sample), sampleMatching)
	out("  CUE per alert          %s\n", round(cueMean))
	out("  firebreak Plan mean    %s   ratio %.0fx\n", round(planStats.mean), ratio)
	out("  firebreak Matches mean %s   ratio %.0fx\n", round(matchStats.mean), float64(cueMean)/float64(matchStats.mean))
	out("  same matches as CUE    %d of %d alerts\n\n", equal, len(sample))

	out("goal  match+plan ratio CUE/firebreak >= %.0fx: %.0fx %s\n", goalRatio, ratio, verdict(ratio >= goalRatio))
	out("goal  Plan p99 <= %s: %s %s\n", goalP99, round(planStats.p99), verdict(planStats.p99 <= goalP99))
	out("goal  heap growth over %d Plan calls <= %.0f MB: %+.1f MB %s\n", o.calls, goalHeapGrow, growth, verdict(growth <= goalHeapGrow))
	out("check heap trend over %d Plan calls <= %.0f MB: %+.1f MB %s\n", o.calls, goalHeapGrow, trend, verdict(trend <= goalHeapGrow))
	out("check same matches as CUE on the sample: %d of %d %s\n", equal, len(sample), verdict(equal == len(sample)))
	out("check template plans equal to CUE's on the sample: %d of %d %s\n", exact, compared, verdict(exact == compared))
	out("check generator's intended matches: %d of %d %s\n", len(alerts)-wrong, len(alerts), verdict(wrong == 0))
	return nil
}

func readAlerts(path string) ([]benchAlert, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var alerts []benchAlert
	if err := json.Unmarshal(data, &alerts); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(alerts) == 0 {
		return nil, fmt.Errorf("%s: no alerts", path)
	}
	for i := range alerts {
		if alerts[i].Want == nil {
			alerts[i].Want = []string{}
		}
	}
	return alerts, nil
}

// templatesExact renders every playbook each sampled alert matches, and
// every fifth playbook for the alerts that match none, once from its
// template and once with CUE alone, and counts the renders where both give
// the same plan, or both fail.
func templatesExact(r *repo.Repo, sample []benchAlert) (exact, compared int) {
	rd := render.New(0)
	byName := map[string]*repo.Playbook{}
	var pbs []*repo.Playbook
	for i, a := range sample {
		names := a.Want
		if len(names) == 0 {
			names = []string{r.Playbooks[(i*5)%len(r.Playbooks)].Name}
		}
		for _, n := range names {
			if byName[n] == nil {
				for _, pb := range r.Playbooks {
					if pb.Name == n {
						byName[n] = pb
						pbs = append(pbs, pb)
					}
				}
			}
		}
	}
	if err := rd.Warm(pbs); err != nil {
		return 0, 1
	}
	for i, a := range sample {
		names := a.Want
		if len(names) == 0 {
			names = []string{r.Playbooks[(i*5)%len(r.Playbooks)].Name}
		}
		for _, n := range names {
			pb := byName[n]
			compared++
			got, gerr := rd.Render(pb, &a.Alert)
			want, werr := rd.RenderCUE(pb, &a.Alert)
			if rd.Compiled(pb) && (gerr != nil) == (werr != nil) && reflect.DeepEqual(got, want) {
				exact++
			}
		}
	}
	return exact, compared
}

// indexStats compiles the repository's matches as plan.New does and says
// how many need CUE at match time.
func indexStats(r *repo.Repo) (compiled, fallback int, err error) {
	entries := make([]match.Entry, len(r.Playbooks))
	for i, pb := range r.Playbooks {
		entries[i] = match.Entry{Name: pb.Name, Match: pb.Match}
	}
	ix, err := match.Compile(entries)
	if err != nil {
		return 0, 0, err
	}
	compiled, fallback = ix.Stats()
	return compiled, fallback, nil
}

// unresolved counts the identifiers astutil.Resolve has recorded as
// unresolved in the syntax of the playbooks' units. Building a unit in a
// context resolves its files again; a count that grows with the Plan calls
// is syntax that grows with every render context.
func unresolved(r *repo.Repo) int {
	seen := map[*ast.File]bool{}
	n := 0
	for _, pb := range r.Playbooks {
		if pb.Unit == nil {
			continue
		}
		for _, f := range pb.Unit.Files {
			if !seen[f] {
				seen[f] = true
				n += len(f.Unresolved)
			}
		}
	}
	return n
}

// sampleOf takes n alerts spread evenly over alerts, so that the sample
// keeps the mix of matching and unmatched alerts.
func sampleOf(alerts []benchAlert, n int) []benchAlert {
	n = min(n, len(alerts))
	out := make([]benchAlert, 0, n)
	for i := range n {
		out = append(out, alerts[i*len(alerts)/max(n, 1)])
	}
	return out
}

type latencyStats struct {
	p50, p90, p99, max, mean time.Duration
}

func latencies(ds []time.Duration) latencyStats {
	if len(ds) == 0 {
		return latencyStats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var total time.Duration
	for _, d := range s {
		total += d
	}
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return latencyStats{p50: at(0.50), p90: at(0.90), p99: at(0.99), max: s[len(s)-1], mean: total / time.Duration(len(s))}
}

func (l latencyStats) String() string {
	return fmt.Sprintf("%9s %9s %9s %9s %9s", round(l.p50), round(l.p90), round(l.p99), round(l.max), round(l.mean))
}

type memStats struct {
	heapInuse, heapAlloc, rss, peakRSS uint64
}

// memory reads the heap after a collection, and the process's RSS.
func memory() memStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	rss, peak := procStatus("VmRSS:"), procStatus("VmHWM:")
	return memStats{heapInuse: m.HeapInuse, heapAlloc: m.HeapAlloc, rss: rss, peakRSS: peak}
}

// procStatus reads a kB field of /proc/self/status, in bytes; 0 where
// there is no such file.
func procStatus(field string) uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// round shortens a duration to about three significant digits.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(10 * time.Nanosecond)
	}
	return d
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}
