package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/engine/stats"
)

func newIncidentsCmd(g *globalOptions) *cobra.Command {
	var format string
	var f engineFlags
	cmd := &cobra.Command{
		Use:   "incidents [list | show ID] [DIR]",
		Short: "Read the incident log kept in the playbook repository",
		Long: `Incidents reads the incident records committed in the playbook repository
(incidents/YYYY/MM/<id>.md; paths.incidents in firebreak.cue moves them).

  firebreak incidents [list]   one line per incident, newest first
  firebreak incidents show ID  the whole record

--format json prints the records as JSON (SPEC section 3's fields).`,
		Example: `  firebreak incidents
  firebreak incidents show 2026-11-21-checkout-crashloop-3f2a1c9b --format json`,
		Args: cobra.MaximumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format, "text", "json"); err != nil {
				return err
			}
			verb := "list"
			if len(args) > 0 && (args[0] == "list" || args[0] == "show") {
				verb, args = args[0], args[1:]
			}
			var id string
			if verb == "show" {
				if len(args) == 0 {
					return usagef("incidents show needs an incident ID")
				}
				id, args = args[0], args[1:]
			}
			if len(args) > 1 {
				return usagef("too many arguments")
			}
			e, err := openEngine(cmd, g, args, &f, false)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if verb == "show" {
				in, err := e.Get(cmd.Context(), id)
				if err != nil {
					return err
				}
				if format == "json" {
					return writeJSON(w, in)
				}
				data, err := incident.Marshal(in)
				if err != nil {
					return err
				}
				_, err = w.Write(data)
				return err
			}
			ins, bad, err := e.List(cmd.Context())
			if err != nil {
				return err
			}
			for _, err := range bad {
				fmt.Fprintln(cmd.ErrOrStderr(), "skipped:", err)
			}
			if format == "json" {
				if ins == nil {
					ins = []*incident.Incident{}
				}
				return writeJSON(w, ins)
			}
			if len(ins) == 0 {
				fmt.Fprintln(w, "no incidents recorded")
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tSEVERITY\tOPENED\tSTEPS\tTITLE")
			for _, in := range ins {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.Status, in.Severity,
					in.Timestamps.Opened.Format(time.RFC3339), stepSummary(in), oneLineTitle(in.Title))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	f.register(cmd)
	return cmd
}

func stepSummary(in *incident.Incident) string {
	counts := map[string]int{}
	var order []string
	for _, s := range in.Steps {
		if counts[s.Status] == 0 {
			order = append(order, s.Status)
		}
		counts[s.Status]++
	}
	var parts []string
	for _, st := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// oneLineTitle keeps a hostile title from breaking the table.
func oneLineTitle(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 80 {
		s = string(r[:79]) + "…"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// localUser names the person at the terminal for the record.
func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

func newApproveCmd(g *globalOptions) *cobra.Command {
	var f engineFlags
	var deny bool
	var by string
	cmd := &cobra.Command{
		Use:   "approve ID [STEP] [DIR]",
		Short: "Approve (or --deny) a step waiting for approval, and run the incident on",
		Long: `Approve releases a step of an open incident that waits for approval
(approval: "required" in the playbook) and runs the incident's remaining
steps; --deny refuses it, and the run stops there. STEP may be left out
when exactly one step waits. Who decided (--by, default the local user) and
when go into the incident record.

On GitHub the same is done by commenting "/approve STEP" or "/deny STEP"
on the incident's issue (firebreak serve checks the commenter is allowed).`,
		Example: `  firebreak approve 2026-11-21-checkout-5xx-flag-off-1a2b3c4d
  firebreak approve 2026-11-21-checkout-5xx-flag-off-1a2b3c4d flag --deny`,
		Args: cobra.RangeArgs(1, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, step, rest := args[0], "", args[1:]
			if len(rest) > 0 && !looksLikeDir(rest[0]) {
				step, rest = rest[0], rest[1:]
			}
			if len(rest) > 1 {
				return usagef("too many arguments")
			}
			e, err := openEngine(cmd, g, rest, &f, true)
			if err != nil {
				return err
			}
			if by == "" {
				by = localUser()
			}
			res, err := e.Decide(cmd.Context(), respond.Decision{Incident: id, Step: step, Approve: !deny, By: by, Via: "firebreak approve"})
			flush(cmd, e)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "incident %s: run %s\n", id, res.Status)
			printStepResults(cmd.OutOrStdout(), "  ", res.Steps)
			return nil
		},
	}
	cmd.Flags().BoolVar(&deny, "deny", false, "refuse the step instead")
	cmd.Flags().StringVar(&by, "by", "", "who decides, for the record (default: the local user)")
	f.register(cmd)
	return cmd
}

func newResolveCmd(g *globalOptions) *cobra.Command {
	var f engineFlags
	var by string
	cmd := &cobra.Command{
		Use:   "resolve ID [DIR]",
		Short: "Resolve an open incident by hand and draft its postmortem",
		Long: `Resolve marks an open incident resolved (steps still pending or waiting
are recorded skipped), closes its GitHub issue, and drafts the postmortem
on the branch postmortem/<ID> with its pull request. Resolving a resolved
incident changes nothing.`,
		Example: `  firebreak resolve 2026-11-21-checkout-crashloop-3f2a1c9b`,
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine(cmd, g, args[1:], &f, false)
			if err != nil {
				return err
			}
			if by == "" {
				by = localUser()
			}
			err = e.Resolve(cmd.Context(), args[0], by)
			flush(cmd, e)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "incident %s: resolved; postmortem draft on branch postmortem/%s\n", args[0], args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&by, "by", "", "who resolves, for the record (default: the local user)")
	f.register(cmd)
	return cmd
}

func newPostmortemCmd(g *globalOptions) *cobra.Command {
	var f engineFlags
	cmd := &cobra.Command{
		Use:   "postmortem ID [DIR]",
		Short: "Draft an incident's postmortem on its branch and open the pull request",
		Long: `Postmortem writes postmortems/<ID>.md on the branch postmortem/<ID> from
postmortems/TEMPLATE.md when the repository has one (a Go text/template),
else from the built-in blameless template: summary, impact, timeline,
actions and outcomes with their commits, time to detect / acknowledge /
mitigate / recover, and empty sections for root cause, what went well, what
went badly and follow-ups. A draft already on the branch is left alone.
With GitHub configured, the pull request is opened with the owner as
reviewer and linked from the incident's issue.`,
		Example: `  firebreak postmortem 2026-11-21-checkout-crashloop-3f2a1c9b
  git show postmortem/2026-11-21-checkout-crashloop-3f2a1c9b:postmortems/2026-11-21-checkout-crashloop-3f2a1c9b.md`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine(cmd, g, args[1:], &f, false)
			if err != nil {
				return err
			}
			p, err := e.Postmortem(cmd.Context(), args[0])
			flush(cmd, e)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s on branch postmortem/%s\n", p, args[0])
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newStatsCmd(g *globalOptions) *cobra.Command {
	var f engineFlags
	var format string
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "stats [DIR] [--since DUR] [--format table|json|markdown]",
		Short: "Response figures over the incident log: MTTD, MTTA, time to mitigate, MTTR",
		Long: `Stats computes response figures over the incidents recorded in the playbook
repository.

` + stats.Definitions,
		Example: `  firebreak stats --since 720h
  firebreak stats --format markdown >> "$GITHUB_STEP_SUMMARY"`,
		Args: maxOneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format, "table", "json", "markdown"); err != nil {
				return err
			}
			if since < 0 {
				return usagef("--since %s: want a positive duration", since)
			}
			e, err := openEngine(cmd, g, args, &f, false)
			if err != nil {
				return err
			}
			ins, bad, err := e.List(cmd.Context())
			if err != nil {
				return err
			}
			for _, err := range bad {
				fmt.Fprintln(cmd.ErrOrStderr(), "skipped:", err)
			}
			r := stats.Compute(ins, time.Now().UTC(), since)
			switch format {
			case "json":
				return r.WriteJSON(cmd.OutOrStdout())
			case "markdown":
				return r.WriteMarkdown(cmd.OutOrStdout())
			}
			return r.WriteTable(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, json or markdown")
	cmd.Flags().DurationVar(&since, "since", 0, "only incidents opened within this long before now (e.g. 720h); all when 0")
	f.register(cmd)
	return cmd
}

// flush sends what GitHub is owed, bounded, after a command changed an
// incident; what does not get through stays owed.
func flush(cmd *cobra.Command, e *respond.Engine) {
	if e.GitHub == nil {
		return
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
	defer cancel()
	if n, err := e.Flush(ctx); err != nil {
		e.Log.Warn("GitHub did not take everything; it stays owed in .firebreak/outbox", "sent", n, "error", err)
	}
}

// looksLikeDir tells a DIR argument from a step name: step names are
// identifiers; a directory is ".", or has a slash, or exists.
func looksLikeDir(s string) bool {
	if s == "." || s == ".." || strings.ContainsRune(s, '/') {
		return true
	}
	st, err := os.Stat(s)
	return err == nil && st.IsDir()
}
