//go:build !linux

package serve

import "os"

func fdatasync(f *os.File) error { return f.Sync() }
