package registry

import (
	"slices"
	"testing"

	"github.com/firebreak-dev/firebreak/schema"
)

// TestEverySchemaActionIsRegistered keeps the schema's action keys and the
// registry in step: a key the schema accepts but nothing runs would be
// refused at run time after passing validation.
func TestEverySchemaActionIsRegistered(t *testing.T) {
	for _, a := range schema.Actions {
		if Actions[a] == nil {
			t.Errorf("schema action %q has no implementation", a)
		}
	}
	for a := range Actions {
		if !slices.Contains(schema.Actions, a) {
			t.Errorf("registered action %q is not in the schema", a)
		}
	}
}
