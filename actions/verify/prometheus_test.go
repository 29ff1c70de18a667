package verify_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions/verify"
	"github.com/firebreak-dev/firebreak/actions/verify/promtest"
)

// TestPrometheus runs verify against a real Prometheus: a query that
// holds passes, one that never holds fails once `within` passes naming
// the query and the last result, a step deadline shorter than `within`
// ends it first, and a malformed query fails at once.
func TestPrometheus(t *testing.T) {
	base := promtest.Start(t)
	env, _ := newEnv(t, base, "http://shop.invalid", false)

	t.Run("holds", func(t *testing.T) {
		for _, q := range []string{"vector(1) > 0", "firebreak_test_constant > 0"} {
			// The recorded series appears after the rule's first evaluation.
			out, err := verify.Action{}.Execute(t.Context(), env, request(map[string]any{"query": q, "datasource": "prom", "within": "30s", "every": "250ms"}))
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if !strings.Contains(out.Summary, fmt.Sprintf("query %q on prom held", q)) {
				t.Fatalf("outcome = %+v", out)
			}
		}
	})

	t.Run("never holds", func(t *testing.T) {
		for _, q := range []string{"vector(0) > 0", "firebreak_test_constant > 1"} {
			start := time.Now()
			_, err := verify.Action{}.Execute(t.Context(), env, request(map[string]any{"query": q, "datasource": "prom", "within": "2s", "every": "300ms"}))
			if !errors.Is(err, verify.ErrNotHeld) {
				t.Fatalf("%s: error = %v, want ErrNotHeld", q, err)
			}
			for _, want := range []string{fmt.Sprintf("query %q on prom", q), "within 2s", "last result: empty vector"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if d := time.Since(start); d < 2*time.Second {
				t.Errorf("failed after %s, before `within`", d)
			}
		}
	})

	t.Run("step deadline first", func(t *testing.T) {
		ctx, cancel := context.WithTimeoutCause(t.Context(), time.Second, errors.New("step timeout 1s"))
		defer cancel()
		_, err := verify.Action{}.Execute(ctx, env, request(map[string]any{"query": "vector(0) > 0", "datasource": "prom", "within": "10m", "every": "200ms"}))
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, verify.ErrNotHeld) || !strings.Contains(err.Error(), "step timeout 1s") {
			t.Fatalf("error = %v, want the step deadline", err)
		}
	})

	t.Run("malformed query", func(t *testing.T) {
		start := time.Now()
		_, err := verify.Action{}.Execute(t.Context(), env, request(map[string]any{"query": "vector(", "datasource": "prom", "within": "30s"}))
		if err == nil || errors.Is(err, verify.ErrNotHeld) || !strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), "bad_data") {
			t.Fatalf("error = %v, want Prometheus' 400 bad_data", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("took %s: a malformed query must not wait for `within`", d)
		}
	})
}
