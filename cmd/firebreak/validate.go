package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/engine/repo"
)

type validateOptions struct {
	format string
}

func newValidateCmd(g *globalOptions) *cobra.Command {
	opts := &validateOptions{}
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check playbooks and firebreak.cue against the schema and the policy",
		Long: `Validate checks every playbook, test and firebreak.cue in the repository
at DIR (default .) against firebreak's schema and the repository's policy:
undeclared targets and channels, owners without a policy, actions, targets,
flag keys and bounds the owner may not use, invalid regular expressions.

Every problem is printed, one per line, as path:line:col: message with the
path relative to DIR. Exit status: 0 valid, 1 invalid, 2 usage.`,
		Example: `  firebreak validate
  firebreak validate ./ops --format github   # annotations in GitHub Actions`,
		Args: maxOneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(opts.format, "text", "json", "github"); err != nil {
				return err
			}
			dir, err := g.dir(cmd, args)
			if err != nil {
				return err
			}
			r, err := repo.Load(dir)
			if err != nil {
				return err
			}
			if err := printDiagnostics(cmd.OutOrStdout(), opts.format, r.Diagnostics); err != nil {
				return err
			}
			if !r.Valid() {
				if opts.format == "text" {
					fmt.Fprintf(cmd.ErrOrStderr(), "%d problem(s)\n", len(r.Diagnostics))
				}
				return errSilent
			}
			if opts.format == "text" {
				fmt.Fprintf(cmd.ErrOrStderr(), "ok: %d playbooks, %d tests\n", len(r.Playbooks), len(r.Tests))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "text", "output format: text, json or github")
	return cmd
}

func printDiagnostics(w io.Writer, format string, ds []repo.Diagnostic) error {
	switch format {
	case "json":
		if ds == nil {
			ds = []repo.Diagnostic{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"valid": len(ds) == 0, "errors": ds})
	case "github":
		for _, d := range ds {
			fmt.Fprintf(w, "::error file=%s,line=%d,col=%d::%s\n", ghEscapeProp(d.File), d.Line, d.Col, ghEscapeData(d.Message))
		}
	default:
		for _, d := range ds {
			fmt.Fprintln(w, d)
		}
	}
	return nil
}

// GitHub workflow commands need %, CR, LF escaped in data and also : and ,
// in properties.
func ghEscapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func ghEscapeProp(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
