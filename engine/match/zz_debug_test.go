package match

import (
	"fmt"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/format"
)

func TestZZDebug(t *testing.T) {
	src := genPrelude + "x: strings.ToUpper(\"a\")\n" + `pb: p: match: {
labels: {namespace?: "" | "checkout", severity: "日本" & !="staging"}
labels: #Closed
}
`
	entries := load(t, cuecontext.New(), src, false)
	for _, e := range entries {
		n := e.Match.Syntax()
		b1, _ := format.Node(n)
		v := build(cuecontext.New(), n)
		v2 := cuecontext.New().CompileBytes(b1)
		fmt.Printf("orig=%v\nbuild=%v\nreparse=%v\n", e.Match.Validate(), v.Validate(), v2.Validate())
		a := aCheckout
		fmt.Println(unify(e.Match, a), unify(v, a), unify(v2, a))
		fmt.Println(v.Context().Encode(a.Data()).Unify(v).Validate(cue.Concrete(true)))
	}
}
