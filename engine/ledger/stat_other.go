//go:build !linux

package ledger

import "io/fs"

// statOf returns what of the stat data git records is portable. git finds
// the rest differs, compares the content, and refreshes the entry.
func statOf(fi fs.FileInfo) statInfo { return statFallback(fi) }
