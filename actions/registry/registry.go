// Package registry lists every action kind firebreak can run. A step whose
// action is not here is refused by the runner, whatever the playbook says.
package registry

import (
	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/flag"
	"github.com/firebreak-dev/firebreak/actions/notify"
	"github.com/firebreak-dev/firebreak/actions/rollback"
	"github.com/firebreak-dev/firebreak/actions/scale"
	"github.com/firebreak-dev/firebreak/actions/verify"
)

// Actions maps each action key of a step to its implementation.
var Actions = map[string]actions.Action{
	"notify":   notify.Action{},
	"rollback": rollback.Action{},
	"scale":    scale.Action{},
	"flag":     flag.Action{},
	"verify":   verify.Action{},
}
