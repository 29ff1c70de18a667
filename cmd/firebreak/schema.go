package main

import (
	"encoding/json"
	"fmt"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/format"
	"cuelang.org/go/encoding/jsonschema"
	"github.com/spf13/cobra"

	"github.com/firebreak-dev/firebreak/schema"
)

func newSchemaCmd() *cobra.Command {
	var asJSONSchema bool
	cmd := &cobra.Command{
		Use:   "schema [--jsonschema]",
		Short: "Print the playbook schema (CUE, or JSON Schema for YAML editors)",
		Long: `Schema prints firebreak's CUE schema: #Playbook, #Step and the action
parameters, #Alert, #Test and #Config for firebreak.cue.

With --jsonschema it prints a JSON Schema for a YAML or JSON playbook file
(an object of playbooks by name), for editors such as VS Code's YAML
extension:  # yaml-language-server: $schema=playbooks.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !asJSONSchema {
				fmt.Fprint(cmd.OutOrStdout(), schema.Source())
				return nil
			}
			ctx := cuecontext.New()
			defs, err := schema.Compile(ctx)
			if err != nil {
				return err
			}
			file := ctx.CompileString("[string]: _").FillPath(cue.MakePath(cue.AnyString), defs.Playbook)
			expr, err := jsonschema.Generate(file, nil)
			if err != nil {
				return fmt.Errorf("generate JSON Schema: %w", err)
			}
			src, err := format.Node(expr)
			if err != nil {
				return err
			}
			// Generate returns CUE syntax of JSON data; print it as JSON.
			v := ctx.CompileBytes(src)
			data, err := v.MarshalJSON()
			if err != nil {
				return fmt.Errorf("generate JSON Schema: %w", err)
			}
			var pretty any
			_ = json.Unmarshal(data, &pretty)
			out, _ := json.MarshalIndent(pretty, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSONSchema, "jsonschema", false, "print JSON Schema instead of CUE")
	return cmd
}
