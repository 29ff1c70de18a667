package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"firebreak": func() { os.Exit(Main()) },
	})
}

// TestScripts runs testdata/script/*.txtar: every command, its output and
// its errors with their positions.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "../../testdata/script",
		Setup: func(env *testscript.Env) error {
			// The repository root is also the shipped playbook library.
			root, err := filepath.Abs("../..")
			env.Setenv("LIBRARY", root)
			return err
		},
	})
}
