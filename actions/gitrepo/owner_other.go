//go:build !unix

package gitrepo

import "os"

// own cannot lock here: every process clones privately.
func own(string) (*os.File, bool) { return nil, false }
