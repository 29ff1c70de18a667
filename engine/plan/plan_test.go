package plan

import (
	"reflect"
	"testing"

	"github.com/firebreak-dev/firebreak/engine/repo"
)

// TestPlansFromTemplatesEqualCUE plans every test alert of the shipped
// library with CUE alone, and again after Warm, from templates: the
// results must be the same.
func TestPlansFromTemplatesEqualCUE(t *testing.T) {
	r, err := repo.Load("../..")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Valid() {
		t.Fatal(r.Diagnostics)
	}
	cold, err := New(r)
	if err != nil {
		t.Fatal(err)
	}
	cold.cueOnly = true
	var before []Result
	for _, tc := range r.Tests {
		before = append(before, cold.Plan(&tc.Alert))
	}
	warm, err := New(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := warm.Warm(); err != nil {
		t.Fatal(err)
	}
	if n := warm.Compiled(); n != len(r.Playbooks) {
		t.Errorf("%d of %d playbooks compiled to templates", n, len(r.Playbooks))
	}
	matched := 0
	for i, tc := range r.Tests {
		after := warm.Plan(&tc.Alert)
		if !reflect.DeepEqual(after, before[i]) {
			t.Errorf("%s: plan from templates\n%+v\nwith CUE\n%+v", tc.Name, after, before[i])
		}
		matched += len(after.Matches)
	}
	if matched < 8 {
		t.Errorf("only %d matches planned", matched)
	}
	for _, pb := range warm.playbooks {
		if pb.Match.Exists() {
			t.Errorf("planner keeps %s's match value, and with it the load context", pb.Name)
		}
	}
}
