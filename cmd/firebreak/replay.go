package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/engine/replay"
)

type replayOptions struct {
	base   string
	format string
}

func newReplayCmd(g *globalOptions) *cobra.Command {
	opts := &replayOptions{}
	cmd := &cobra.Command{
		Use:   "replay --base REF [DIR] [--format text|markdown|json]",
		Short: "Show what a change to the playbooks does to test and past alerts",
		Long: `Replay replays every playbook test's alert and the alerts of the incidents
recorded in the repository at DIR (default .) against its playbooks at REF
— a git revision: a branch, tag, commit, HEAD~1 or origin/main — and as
they are in the working tree, and reports what changed: alerts that now
match other playbooks, steps added, removed or changed (with new
approvals called out), playbooks added, removed or renamed, and changes
to policy, targets and channels in firebreak.cue.

REF is read from the git repository with no checkout. A base that does
not load is reported and counts as one where nothing matches; the working
tree must be valid.

--format markdown writes a pull-request comment that starts with
<!-- firebreak:replay -->, so that a workflow can find and update it.

Exit status 0 whether or not anything changed; 1 on errors (an invalid
working tree, an unknown REF); 2 on usage.`,
		Example: `  firebreak replay --base origin/main
  firebreak replay --base HEAD --format markdown ./ops > comment.md`,
		Args: maxOneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(opts.format, "text", "markdown", "json"); err != nil {
				return err
			}
			if opts.base == "" {
				return usagef("--base REF is required")
			}
			dir, err := g.dir(cmd, args)
			if err != nil {
				return err
			}
			_, head, err := loadPlannerRepo(cmd, dir)
			if err != nil {
				return err
			}
			base, rev, err := replay.LoadRevision(cmd.Context(), dir, opts.base)
			if err != nil {
				return err
			}
			sources := append(replay.TestSources(head), replay.TestSources(base)...)
			ins, bad := replay.ReadIncidents(head.Dir, head.Config.Paths.Incidents)
			for _, err := range bad {
				fmt.Fprintln(cmd.ErrOrStderr(), "skipped:", err)
			}
			sources = append(sources, replay.IncidentSources(ins)...)
			rep := replay.Compare(base, head, sources)
			rep.Base.Ref, rep.Base.Commit = rev.Ref, rev.Commit
			switch opts.format {
			case "json":
				return rep.WriteJSON(cmd.OutOrStdout())
			case "markdown":
				return rep.WriteMarkdown(cmd.OutOrStdout())
			}
			return rep.WriteText(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&opts.base, "base", "", "git revision whose playbooks to compare with (branch, tag, commit, HEAD~1, origin/main)")
	cmd.Flags().StringVar(&opts.format, "format", "text", "output format: text, markdown or json")
	return cmd
}
