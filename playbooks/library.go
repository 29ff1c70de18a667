// Package playbooks embeds firebreak's shipped playbook library: the
// playbooks and tests in this directory, which CI validates and tests as a
// user's repository (with firebreak.cue at the repository root).
package playbooks

import "embed"

// Files holds the library's *.cue playbooks and tests/*.cue tests.
//
//go:embed *.cue tests/*.cue
var Files embed.FS
