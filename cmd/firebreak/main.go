// Command firebreak is a GitOps playbooks-as-code engine for incident
// response. See README.md and `firebreak --help`.
package main

import "os"

func main() { os.Exit(Main()) }
