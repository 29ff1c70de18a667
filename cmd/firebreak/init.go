package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/engine/scaffold"
)

func newInitCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Create a playbook repository",
		Long: `Init writes a working playbook repository into DIR (default .):
firebreak.cue with targets, channels and a policy, two playbooks from the
shipped library with their tests, and three GitHub workflows:

  .github/workflows/firebreak-pr.yml       on pull requests: validate (as
      annotations), test, and replay the change against the base branch in
      one pull-request comment, updated on every push
  .github/workflows/firebreak-respond.yml  on repository_dispatch (an
      Alertmanager body) or a manual run: firebreak run --event
  .github/workflows/firebreak-stats.yml    nightly: firebreak stats into the
      job summary

It refuses to overwrite files unless --force.`,
		Example: `  firebreak init ops && cd ops && firebreak validate && firebreak test`,
		Args:    maxOneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := dirArg(args)
			paths, err := scaffold.Write(dir, force)
			if err != nil {
				return err
			}
			for _, p := range paths {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "next: cd %s && firebreak validate && firebreak test\n", dir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	return cmd
}
