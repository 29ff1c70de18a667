package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/gitrepo"
	"github.com/firebreak-dev/firebreak/actions/registry"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/actions/webclient"
	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/schema"
)

type runOptions struct {
	alertFile  string
	dryRun     bool
	format     string
	secretsDir string
	cacheDir   string
}

func newRunCmd(g *globalOptions) *cobra.Command {
	opts := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run --alert FILE [DIR] [--dry-run]",
		Short: "Handle alerts end to end: match, plan and run the steps",
		Long: `Run reads the alerts in FILE (as for plan) and, for every playbook each one
matches, runs the rendered steps in order through the sandboxed action
library: rollback, scale and flag commit to the target Git repositories,
notify posts to the channels, verify queries Prometheus or a URL.

Every step is checked again against firebreak.cue's policy with its real
values, has a timeout (its own, or policy.limits.step_timeout) and the run
a deadline (policy.limits.run_timeout). A step with approval: "required"
stops the run and reports that it waits. When a step fails, the rest are
skipped (unless continue_on_error) and on_failure runs. With policy.paused
only notify runs. --dry-run plans every step and changes nothing.

Secrets named in firebreak.cue come from FIREBREAK_SECRET_<NAME> or
--secrets-dir. Progress goes to stderr, the results to stdout.
Exit status: 0 done (also when waiting for approval), 1 failed.`,
		Example: `  firebreak run --alert alert.json --dry-run
  FIREBREAK_SECRET_GITHUB_TOKEN=... firebreak run --alert am.json ./ops`,
		Args: maxOneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			alerts, p, r, err := alertsAndPlanner(cmd, g, args, opts.alertFile, opts.format)
			if err != nil {
				return err
			}
			sec := secrets.New(opts.secretsDir)
			log := slog.New(secrets.Handler(slog.NewTextHandler(cmd.ErrOrStderr(), nil), sec))
			cacheDir := opts.cacheDir
			if cacheDir == "" {
				if base, err := os.UserCacheDir(); err == nil {
					cacheDir = filepath.Join(base, "firebreak")
				} else {
					cacheDir = filepath.Join(os.TempDir(), "firebreak-cache")
				}
			}
			env := &actions.Env{
				Config:  r.Config,
				Secrets: sec,
				HTTP:    webclient.New(webclient.Options{AllowedHosts: webclient.AllowedHosts(r.Config), Redact: sec.Redact, Log: log}),
				Git:     gitrepo.NewStore(cacheDir, log),
				Log:     log,
			}
			runner := &run.Runner{Env: env, Actions: registry.Actions, DryRun: opts.dryRun, Log: log}

			var reports []runReport
			for i := range alerts {
				res := p.Plan(&alerts[i])
				if len(res.Matches) == 0 {
					log.Info("no playbook matches", "labels", labelString(alerts[i].Labels))
				}
				for _, m := range res.Matches {
					rep := runReport{Playbook: m.Playbook, Group: m.Group}
					rep.Incident = incidentID(m.Playbook, m.Group, &alerts[i])
					if m.Error != "" {
						rep.Result = &run.Result{Status: run.RunFailed}
						rep.Error = m.Error
						log.Error("cannot render playbook", "playbook", m.Playbook, "error", m.Error)
						reports = append(reports, rep)
						continue
					}
					if alerts[i].Status != "firing" {
						log.Info("alert resolved: nothing to run", "playbook", m.Playbook)
						continue
					}
					owner := ""
					for _, pb := range r.Playbooks {
						if pb.Name == m.Playbook {
							owner = pb.Owner
						}
					}
					log.Info("running playbook", "playbook", m.Playbook, "incident", rep.Incident, "dry_run", opts.dryRun)
					rep.Result = runner.Run(cmd.Context(), &run.Request{
						Incident: rep.Incident, Playbook: m.Playbook, Owner: owner,
						Steps: m.Steps, OnFailure: m.OnFailure,
					})
					reports = append(reports, rep)
				}
			}
			if err := printRunReports(cmd.OutOrStdout(), opts.format, reports); err != nil {
				return err
			}
			for _, rep := range reports {
				if rep.Result.Status == run.RunFailed {
					return errSilent
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.alertFile, "alert", "", "alert file: normalized alert(s) or an Alertmanager webhook body (- for stdin)")
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "plan every step, change nothing")
	cmd.Flags().StringVar(&opts.format, "format", "text", "output format: text or json")
	cmd.Flags().StringVar(&opts.secretsDir, "secrets-dir", "", "directory of secret files named after the secrets (after FIREBREAK_SECRET_*)")
	cmd.Flags().StringVar(&opts.cacheDir, "cache-dir", "", "where clones of target repositories are cached (default: the user cache dir)")
	return cmd
}

type runReport struct {
	Incident string            `json:"incident"`
	Playbook string            `json:"playbook"`
	Group    map[string]string `json:"group"`
	Error    string            `json:"error,omitempty"`
	Result   *run.Result       `json:"result"`
}

// incidentID names the incident of one alert group: stable for the same
// playbook, group and alert start, so a re-run of the same alert finds the
// work it already did (the actions are idempotent by incident).
func incidentID(playbook string, group map[string]string, a *schema.Alert) string {
	keys := make([]string, 0, len(group))
	for k := range group {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", playbook)
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\x00", k, group[k])
	}
	start := a.StartsAt
	if start.IsZero() {
		start = a.ReceivedAt
	}
	fmt.Fprintf(h, "%d", start.Unix())
	return start.UTC().Format("20060102") + "-" + hex.EncodeToString(h.Sum(nil))[:8]
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
		fmt.Fprintf(w, "incident %s: playbook %s %s: %s\n", rep.Incident, rep.Playbook, labelString(rep.Group), rep.Result.Status)
		if rep.Error != "" {
			fmt.Fprintf(w, "  %s\n", rep.Error)
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
