package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/engine/plan"
	"github.com/firebreak-dev/firebreak/engine/playtest"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/engine/scaffold"
	"github.com/firebreak-dev/firebreak/schema"
)

func newDemoCmd() *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run firebreak's loop on embedded defaults in a temporary directory",
		Long: `Demo needs no accounts and no network: it writes a playbook repository
(firebreak init) into a temporary directory, validates it, runs its tests,
and plans a sample crash-loop alert, printing each result and the commands
to look further. The directory is removed afterwards unless --keep.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			dir, err := os.MkdirTemp("", "firebreak-demo-")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(dir)
			}
			if _, err := scaffold.Write(dir, false); err != nil {
				return err
			}
			fmt.Fprintf(out, "1. playbook repository written to %s\n", dir)

			r, err := repo.Load(dir)
			if err != nil {
				return err
			}
			if !r.Valid() {
				printDiagnostics(errOut, "text", r.Diagnostics)
				return fmt.Errorf("the embedded repository does not validate")
			}
			fmt.Fprintf(out, "2. validate: %d playbooks, %d tests, no problems\n", len(r.Playbooks), len(r.Tests))

			p, err := plan.New(r)
			if err != nil {
				return err
			}
			passed, failed := 0, 0
			for _, res := range playtest.Run(p, r, nil) {
				if res.Passed {
					passed++
				} else {
					failed++
				}
			}
			fmt.Fprintf(out, "3. test: %d passed, %d failed\n", passed, failed)
			if failed > 0 {
				return errSilent
			}

			a := schema.Alert{Source: "alertmanager", Status: "firing", Annotations: map[string]string{},
				Labels: map[string]string{"alertname": "KubePodCrashLooping", "namespace": "shop", "deployment": "checkout-api", "env": "prod"}}
			fmt.Fprintln(out, "4. plan for a crash-looping checkout-api:")
			printPlans(out, []plan.Result{p.Plan(&a)})

			target := "DIR"
			if keep {
				target = dir
			}
			fmt.Fprintf(out, "\nLook further:\n  firebreak validate %[1]s\n  firebreak test %[1]s\n  firebreak plan --alert ALERT.json %[1]s   # a normalized alert or an Alertmanager webhook body\n", target)
			if !keep {
				fmt.Fprintln(out, "  firebreak demo --keep   # keep the repository to explore it")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary repository")
	return cmd
}
