package postmortem

import (
	"fmt"
	"text/template"
	"time"
)

// funcs are the functions a template may call, as the package
// documentation lists them.
var funcs = template.FuncMap{
	"escape":   func(v any) string { return escape(fmt.Sprint(v), maxText) },
	"duration": func(d time.Duration) string { return humanDuration(d) },
	"clock":    clock,
	"commit":   shortCommit,
}
