package main

import (
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/engine/playtest"
)

type testOptions struct {
	run    string
	format string
}

func newTestCmd(g *globalOptions) *cobra.Command {
	opts := &testOptions{}
	cmd := &cobra.Command{
		Use:   "test [DIR] [--run REGEX]",
		Short: "Run the playbook tests in playbooks/tests",
		Long: `Test runs the tests in playbooks/tests/*.cue of the repository at DIR
(default .). Each test gives an alert and what must happen:

  tests: crashloop_rolls_back: {
      alert: {labels: {alertname: "KubePodCrashLooping", deployment: "checkout-api"}}
      expect: {
          playbooks: ["checkout_crashloop"]   // exactly these match, in this order
          steps: [{notify: channel: "oncall"}, {rollback: path: "apps/checkout-api"}, ...]
      }
  }

expect.steps is a CUE constraint the plan of the first matched playbook
must unify with: a closed list ([a, b]) fixes the number of steps, "..."
leaves the rest open. The last line is "N passed, N failed"; exit 1 when a
test fails.`,
		Args: maxOneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(opts.format, "text", "json"); err != nil {
				return err
			}
			var filter *regexp.Regexp
			if opts.run != "" {
				re, err := regexp.Compile(opts.run)
				if err != nil {
					return usagef("--run: %v", err)
				}
				filter = re
			}
			dir, err := g.dir(cmd, args)
			if err != nil {
				return err
			}
			p, r, err := loadPlannerRepo(cmd, dir)
			if err != nil {
				return err
			}
			results := playtest.Run(p, r, filter)
			passed, failed := 0, 0
			for _, res := range results {
				if res.Passed {
					passed++
				} else {
					failed++
				}
			}
			out := cmd.OutOrStdout()
			if opts.format == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if results == nil {
					results = []playtest.Result{}
				}
				if err := enc.Encode(map[string]any{"passed": passed, "failed": failed, "tests": results}); err != nil {
					return err
				}
			} else {
				for _, res := range results {
					if res.Passed {
						fmt.Fprintf(out, "ok   %s\n", res.Name)
						continue
					}
					fmt.Fprintf(out, "FAIL %s (%s:%d)\n", res.Name, res.File, res.Line)
					for _, f := range res.Failures {
						fmt.Fprintf(out, "     %s\n", f)
					}
				}
				if len(r.Tests) == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "no tests in playbooks/tests")
				}
				fmt.Fprintf(out, "%d passed, %d failed\n", passed, failed)
			}
			if failed > 0 {
				return errSilent
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.run, "run", "", "run only tests whose name matches this regular expression")
	cmd.Flags().StringVar(&opts.format, "format", "text", "output format: text or json")
	return cmd
}
