package main

import "github.com/spf13/cobra"

func newTestCmd() *cobra.Command { return &cobra.Command{Use: "test"} }
func newPlanCmd() *cobra.Command { return &cobra.Command{Use: "plan"} }
func newInitCmd() *cobra.Command { return &cobra.Command{Use: "init"} }
