package match

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"testing"

	"cuelang.org/go/cue/cuecontext"
)

// fallbackFile has playbooks that all need CUE and all pass the prefilter
// for aCheckout, so every Match evaluates each of them.
const fallbackFile = `pb: {
	a: match: labels: [=~"^dep"]: =~"^checkout"
	b: match: labels: {namespace: string, env: namespace}
	c: match: labels: severity: <"d"
	d: match: labels: {alertname: "HighLatency", ...}
	e: match: labels: alertname: "HighLatency"
}`

func TestFallbackRotates(t *testing.T) {
	entries := load(t, cuecontext.New(), fallbackFile, true)
	ix, err := Compile(entries)
	if err != nil {
		t.Fatal(err)
	}
	if compiled, fallback := ix.Stats(); compiled != 1 || fallback != 4 {
		t.Fatalf("Stats = %d, %d; want 1, 4", compiled, fallback)
	}
	const limit = 10
	ix.fb.limit = limit
	for i := range 100 {
		al := alerts[i%len(alerts)]
		var want []int
		for k, e := range entries {
			if instanceOf(e.Match, al.a) {
				want = append(want, k)
			}
		}
		if got := ix.Match(al.a); !slices.Equal(got, want) {
			t.Fatalf("call %d, alert %s: Match = %v, CUE = %v", i, al.name, got, want)
		}
		// A context serves one alert past the limit at most.
		if ix.fb.uses > limit+4 {
			t.Fatalf("call %d: %d uses of one context, limit %d", i, ix.fb.uses, limit)
		}
	}
	if ix.fb.rotations < 20 {
		t.Errorf("%d contexts for 100 alerts at 10 uses each; want rotation every 3 alerts or so", ix.fb.rotations)
	}
}

// TestFallbackHeapFlat runs 20,000 CUE evaluations through the fallback
// and checks that the live heap does not follow them. (With CUE v0.17.1 a
// context used only for Encode, Unify and Validate barely grows either;
// what does grow is CUE's process-wide table of label names, which no
// rotation frees, so the alerts here keep to a fixed set of label names.)
func TestFallbackHeapFlat(t *testing.T) {
	if testing.Short() || raceEnabled {
		// The race detector keeps its own account of memory, and makes
		// each evaluation several times slower.
		t.Skip("20,000 CUE evaluations")
	}
	ix, err := Compile(load(t, cuecontext.New(), fallbackFile, true))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	run := func(calls int) uint64 {
		for range calls {
			a := *aCheckout
			a.Labels = maps.Clone(a.Labels)
			a.Labels["instance"] = fmt.Sprintf("10.0.%d.%d:9090", n/256%256, n%256)
			n++
			ix.Match(&a)
		}
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := run(500) // 2,000 evaluations: past the first rotations
	after := run(5000) // 20,000 more
	const mib = 1 << 20
	t.Logf("heap %.1f MiB before, %.1f MiB after; %d contexts", float64(before)/mib, float64(after)/mib, ix.fb.rotations)
	if after > before+4*mib {
		t.Errorf("heap grew from %.1f MiB to %.1f MiB over 20,000 evaluations; want it flat", float64(before)/mib, float64(after)/mib)
	}
	if want := 22000 / rotateAfter; ix.fb.rotations < want {
		t.Errorf("%d contexts for 22,000 evaluations; want at least %d", ix.fb.rotations, want)
	}
}
