//go:build unix

package gitrepo

import (
	"os"
	"syscall"
)

// own takes the clone directory dir for this process: an exclusive flock
// on dir.lock, held while the returned file stays open. It reports false
// when another process holds it.
func own(dir string) (*os.File, bool) {
	f, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}
