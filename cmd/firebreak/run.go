package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/actions/registry"
	"github.com/firebreak-dev/firebreak/engine/alert"
	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/schema"
)

type runOptions struct {
	alertFile string
	eventFile string
	eventName string
	dryRun    bool
	format    string
	engine    engineFlags
}

func newRunCmd(g *globalOptions) *cobra.Command {
	opts := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run (--alert FILE | --event FILE) [DIR] [--dry-run]",
		Short: "Handle alerts end to end: open, join or resolve incidents, run the steps, record",
		Long: `Run reads the alerts in FILE (as for plan) and handles each alert group a
playbook matches as an incident, recorded in the playbook repository DIR
(a git repository; every state change is one commit):

  a firing group with no open incident opens one and runs the playbook's
  steps in order through the sandboxed action library (rollback, scale and
  flag commit to the target repositories, notify posts, verify queries);
  each step is recorded before it starts and when it finishes;
  a firing group with an open incident joins it and runs nothing again;
  a group whose alerts all resolved resolves its incident and drafts the
  postmortem on the branch postmortem/<id>.

A new incident's steps are held back (recorded, not run) within the
playbook's cooldown after the group's last run, past
policy.limits.runs_per_hour runs of the playbook in the last hour. While
policy.paused is set, nothing but notify runs. Every step is checked again against firebreak.cue's policy with
its real values, has a timeout (its own, or policy.limits.step_timeout)
and the run a deadline (policy.limits.run_timeout). A step with
approval: "required" waits: see 'firebreak approve'. When a step fails,
the rest are skipped (unless continue_on_error) and on_failure runs.

With a github block in firebreak.cue (and its token set), the incident is
mirrored as an issue; what GitHub could not take yet stays owed in
.firebreak/outbox and is sent by the next run.

--event FILE reads a GitHub Actions event instead ($GITHUB_EVENT_PATH, its
kind from --event-name or $GITHUB_EVENT_NAME): a repository_dispatch whose
client_payload is an Alertmanager body or normalized alerts, or a
workflow_dispatch whose input "alert" is an alert document (or inputs
"alertname", "labels", "annotations", "status"). The record in the
repository is the lock: two workflow runs racing on the same alert make one
incident (a run whose push loses fetches, sees the incident and joins it).

--dry-run plans every step, changes nothing and records nothing.
Secrets named in firebreak.cue come from FIREBREAK_SECRET_<NAME> or
--secrets-dir. Progress goes to stderr, the results to stdout.
Exit status: 0 done (also when waiting for approval), 1 failed.`,
		Example: `  firebreak run --alert alert.json --dry-run
  FIREBREAK_SECRET_GITHUB_TOKEN=... firebreak run --alert am.json ./ops
  firebreak run --event "$GITHUB_EVENT_PATH"    # in a GitHub Actions job`,
		Args: maxOneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(opts.format, "text", "json"); err != nil {
				return err
			}
			var alerts []schema.Alert
			var err error
			switch {
			case opts.alertFile != "" && opts.eventFile != "":
				return usagef("give --alert FILE or --event FILE, not both")
			case opts.eventFile != "":
				alerts, err = readEvent(opts.eventFile, opts.eventName)
			case opts.alertFile != "":
				alerts, err = readAlerts(cmd.InOrStdin(), opts.alertFile)
			default:
				return usagef("--alert FILE (or --event FILE) is required")
			}
			if err != nil {
				return err
			}
			if opts.dryRun {
				return dryRun(cmd, g, args, opts, alerts)
			}
			e, err := openEngine(cmd, g, args, &opts.engine, true)
			if err != nil {
				return err
			}
			outcomes, handleErr := e.Handle(cmd.Context(), alerts)
			if e.GitHub != nil {
				ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
				if n, err := e.Flush(ctx); err != nil {
					e.Log.Warn("GitHub did not take everything; it stays owed in .firebreak/outbox", "sent", n, "error", err)
				}
				cancel()
			}
			reports := make([]runReport, 0, len(outcomes))
			for _, o := range outcomes {
				reports = append(reports, runReport{Incident: o.Incident, Playbook: o.Playbook, Group: o.Group, What: o.What, Reason: o.Reason, Result: o.Result})
			}
			if err := printRunReports(cmd.OutOrStdout(), opts.format, reports); err != nil {
				return err
			}
			if handleErr != nil {
				return handleErr
			}
			for _, rep := range reports {
				if rep.What == respond.Failed || rep.Result != nil && rep.Result.Status == run.RunFailed {
					return errSilent
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.alertFile, "alert", "", "alert file: normalized alert(s) or an Alertmanager webhook body (- for stdin)")
	cmd.Flags().StringVar(&opts.eventFile, "event", "", "a GitHub Actions event file ($GITHUB_EVENT_PATH): repository_dispatch or workflow_dispatch")
	cmd.Flags().StringVar(&opts.eventName, "event-name", "", "the event's kind (default $GITHUB_EVENT_NAME)")
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "plan every step, change nothing, record nothing")
	cmd.Flags().StringVar(&opts.format, "format", "text", "output format: text or json")
	opts.engine.register(cmd)
	return cmd
}

// readEvent decodes a GitHub Actions event file into its alerts.
func readEvent(name, kind string) ([]schema.Alert, error) {
	if kind == "" {
		kind = os.Getenv("GITHUB_EVENT_NAME")
	}
	if kind == "" {
		return nil, usagef("--event %s: the event's kind is unknown: set --event-name or GITHUB_EVENT_NAME", name)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	in, err := alert.DecodeGitHub(kind, name, data)
	if err != nil {
		return nil, err
	}
	if len(in.Alerts) == 0 {
		return nil, fmt.Errorf("%s: a %s event carries no alerts: %s", name, kind, cmp.Or(in.Ignored, "nothing to run"))
	}
	now := time.Now().UTC()
	for i := range in.Alerts {
		if in.Alerts[i].ReceivedAt.IsZero() {
			in.Alerts[i].ReceivedAt = now
		}
	}
	return in.Alerts, nil
}

// dryRun plans every step of every match through the actions' Plan: what
// would change, with nothing changed and no incident recorded.
func dryRun(cmd *cobra.Command, g *globalOptions, args []string, opts *runOptions, alerts []schema.Alert) error {
	dir, err := g.dir(cmd, args)
	if err != nil {
		return err
	}
	p, r, err := loadPlannerRepo(cmd, dir)
	if err != nil {
		return err
	}
	w := newWiring(cmd, &opts.engine)
	log := w.log
	runner := &run.Runner{Env: w.env(r.Config), Actions: registry.Actions, DryRun: true, Log: log}
	var reports []runReport
	for i := range alerts {
		res := p.Plan(&alerts[i])
		if len(res.Matches) == 0 {
			log.Info("no playbook matches", "labels", labelString(alerts[i].Labels))
		}
		for _, m := range res.Matches {
			if alerts[i].Status != "firing" {
				continue
			}
			rep := runReport{Playbook: m.Playbook, Group: m.Group, What: "planned"}
			if m.Error != "" {
				rep.Result, rep.Reason = &run.Result{Status: run.RunFailed}, m.Error
				reports = append(reports, rep)
				continue
			}
			owner := ""
			for _, pb := range r.Playbooks {
				if pb.Name == m.Playbook {
					owner = pb.Owner
				}
			}
			rep.Result = runner.Run(cmd.Context(), &run.Request{Playbook: m.Playbook, Owner: owner, Steps: m.Steps, OnFailure: m.OnFailure})
			reports = append(reports, rep)
		}
	}
	return printRunReports(cmd.OutOrStdout(), opts.format, reports)
}

type runReport struct {
	Incident string            `json:"incident,omitempty"`
	Playbook string            `json:"playbook"`
	Group    map[string]string `json:"group"`
	// What became of the group: opened, joined, resumed, held, resolved,
	// ignored, failed; planned for a dry run.
	What   string      `json:"what"`
	Reason string      `json:"reason,omitempty"`
	Result *run.Result `json:"result,omitempty"`
}

func printRunReports(w io.Writer, format string, reports []runReport) error {
	if format == "json" {
		if reports == nil {
			reports = []runReport{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	for _, rep := range reports {
		status := rep.What
		if rep.Result != nil && rep.What != "planned" {
			status += ", run " + rep.Result.Status
		} else if rep.Result != nil {
			status = rep.Result.Status
		}
		name := "incident " + rep.Incident
		if rep.Incident == "" {
			name = "dry run"
		}
		fmt.Fprintf(w, "%s: playbook %s %s: %s\n", name, rep.Playbook, labelString(rep.Group), status)
		if rep.Reason != "" {
			fmt.Fprintf(w, "  %s\n", rep.Reason)
		}
		if rep.Result == nil {
			continue
		}
		printStepResults(w, "  ", rep.Result.Steps)
		if len(rep.Result.OnFailure) > 0 {
			fmt.Fprintln(w, "  on failure:")
			printStepResults(w, "    ", rep.Result.OnFailure)
		}
	}
	return nil
}

func printStepResults(w io.Writer, indent string, steps []run.StepResult) {
	for _, s := range steps {
		line := fmt.Sprintf("%s%-9s %s (%s", indent, s.Status, s.Name, s.Action)
		if s.Target != "" {
			line += " " + s.Target
		}
		line += ")"
		if s.Outcome != nil && s.Outcome.Summary != "" {
			line += ": " + s.Outcome.Summary
		}
		if s.Outcome != nil && s.Outcome.Commit != "" && !strings.Contains(line, short(s.Outcome.Commit)) {
			line += " [commit " + short(s.Outcome.Commit) + "]"
		}
		if s.Error != "" {
			line += ": " + s.Error
		}
		if s.Status == run.Waiting {
			line += ": waiting for approval"
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
