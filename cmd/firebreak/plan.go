package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/engine/alert"
	"github.com/firebreak-dev/firebreak/engine/plan"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/schema"
)

type planOptions struct {
	alertFile string
	format    string
}

func newPlanCmd(g *globalOptions) *cobra.Command {
	opts := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan --alert FILE [DIR]",
		Short: "Show which playbooks an alert matches and their concrete steps",
		Long: `Plan reads the alerts in FILE — one normalized alert, a JSON array of them,
or an Alertmanager webhook body — and prints, for each, the playbooks of
the repository at DIR (default .) it matches and their steps rendered for
that alert. Nothing is changed anywhere. FILE "-" reads standard input.

Exit status 0, also when nothing matches (plan says so); 1 when the alert
file or the repository is invalid.`,
		Example: `  firebreak plan --alert alert.json
  firebreak plan --alert am-webhook.json --format json ./ops`,
		Args: maxOneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			alerts, p, _, err := alertsAndPlanner(cmd, g, args, opts.alertFile, opts.format)
			if err != nil {
				return err
			}
			results := make([]plan.Result, len(alerts))
			for i := range alerts {
				results[i] = p.Plan(&alerts[i])
			}
			if opts.format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				for _, r := range results {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			printPlans(cmd.OutOrStdout(), results)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.alertFile, "alert", "", "alert file: normalized alert(s) or an Alertmanager webhook body (- for stdin)")
	cmd.Flags().StringVar(&opts.format, "format", "text", "output format: text or json")
	return cmd
}

// alertsAndPlanner checks the flags plan and run share, reads the alerts
// and loads the repository.
func alertsAndPlanner(cmd *cobra.Command, g *globalOptions, args []string, alertFile, format string) ([]schema.Alert, *plan.Planner, *repo.Repo, error) {
	if err := checkFormat(format, "text", "json"); err != nil {
		return nil, nil, nil, err
	}
	if alertFile == "" {
		return nil, nil, nil, usagef("--alert FILE is required")
	}
	alerts, err := readAlerts(cmd.InOrStdin(), alertFile)
	if err != nil {
		return nil, nil, nil, err
	}
	dir, err := g.dir(cmd, args)
	if err != nil {
		return nil, nil, nil, err
	}
	p, r, err := loadPlannerRepo(cmd, dir)
	return alerts, p, r, err
}

// readAlerts decodes an alert file and stamps receivedAt.
func readAlerts(stdin io.Reader, name string) ([]schema.Alert, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, 64<<20))
		name = "<stdin>"
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, err
	}
	in, err := alert.DecodeSource("auto", name, data)
	if err != nil {
		return nil, err
	}
	alerts := in.Alerts
	if in.Comment != nil || in.Push != nil || in.Ignored != "" {
		return nil, fmt.Errorf("%s: carries no alerts: %s", name, cmp.Or(in.Ignored, "a GitHub "+cmp.Or(in.Kind, "event")+" without alerts"))
	}
	now := time.Now().UTC()
	for i := range alerts {
		if alerts[i].ReceivedAt.IsZero() {
			alerts[i].ReceivedAt = now
		}
	}
	return alerts, nil
}

// loadPlannerRepo loads and validates the repository; an invalid one
// prints its diagnostics to stderr.
func loadPlannerRepo(cmd *cobra.Command, dir string) (*plan.Planner, *repo.Repo, error) {
	r, err := repo.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	if !r.Valid() {
		for _, d := range r.Diagnostics {
			fmt.Fprintln(cmd.ErrOrStderr(), d)
		}
		return nil, nil, fmt.Errorf("%s: %d problem(s) in the playbook repository", dir, len(r.Diagnostics))
	}
	p, err := plan.New(r)
	return p, r, err
}

func printPlans(w io.Writer, results []plan.Result) {
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "alert %s %s\n", r.Alert.Status, labelString(r.Alert.Labels))
		if len(r.Matches) == 0 {
			fmt.Fprintln(w, "  no playbook matches")
			continue
		}
		for _, m := range r.Matches {
			fmt.Fprintf(w, "  playbook %s (%s) group %s\n", m.Playbook, m.File, labelString(m.Group))
			if m.Error != "" {
				fmt.Fprintf(w, "    cannot render: %s\n", m.Error)
				continue
			}
			printSteps(w, "    ", m.Steps)
			if len(m.OnFailure) > 0 {
				fmt.Fprintln(w, "    on failure:")
				printSteps(w, "      ", m.OnFailure)
			}
		}
	}
}

func printSteps(w io.Writer, indent string, steps []schema.Step) {
	for i, s := range steps {
		extra := ""
		if s.Approval == "required" {
			extra += " [approval required]"
		}
		if s.Timeout != "" {
			extra += " [timeout " + s.Timeout + "]"
		}
		if s.ContinueOnError {
			extra += " [continue on error]"
		}
		fmt.Fprintf(w, "%s%d. %s: %s %s%s\n", indent, i+1, s.Name, s.Action, paramString(s.Params), extra)
	}
}

// labelString prints labels as {a="x", b="y"}, sorted.
func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func paramString(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v, _ := json.Marshal(m[k])
		parts[i] = k + "=" + string(v)
	}
	return strings.Join(parts, " ")
}
