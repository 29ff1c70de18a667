package respond_test

import (
	"context"
	"testing"

	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/schema"
)

// TestIndexOfAnotherWriter: an engine keeps the index of its own last
// commit; after another process committed, it reads the index afresh, so
// an alert of the group the other opened joins that incident.
func TestIndexOfAnotherWriter(t *testing.T) {
	w := newWorld(t, false)
	a, b := w.engine(), w.engine() // two ledgers, as two processes
	handle := func(e *respond.Engine, svc, fp string) string {
		t.Helper()
		out, err := e.Handle(context.Background(), []schema.Alert{alertOf("Chatty", svc, "firing", fp, w.clock.Now())})
		if err != nil || len(out) != 1 {
			t.Fatalf("%s/%s: %v %+v", svc, fp, err, out)
		}
		return out[0].What
	}
	steps := []struct {
		e        *respond.Engine
		svc, fp  string
		want     string
		engineOf string
	}{
		{a, "x", "fp-x1", respond.Opened, "a"},
		{a, "x", "fp-x2", respond.Joined, "a"}, // from a's own index, kept
		{b, "y", "fp-y1", respond.Opened, "b"},
		{a, "y", "fp-y2", respond.Joined, "a"}, // b's incident, in the index b wrote
		{a, "x", "fp-x3", respond.Joined, "a"},
		{b, "x", "fp-x4", respond.Joined, "b"},
	}
	for _, s := range steps {
		if got := handle(s.e, s.svc, s.fp); got != s.want {
			t.Errorf("engine %s, %s/%s: %s, want %s", s.engineOf, s.svc, s.fp, got, s.want)
		}
	}
	if files := w.incidentFiles(); len(files) != 2 {
		t.Errorf("%d incident files, want 2: %v", len(files), files)
	}
}
