package respond

import "time"

// SetRefreshEvery sets how often an idle Recorder looks for other writers'
// commits, for a test; it returns the undo.
func SetRefreshEvery(d time.Duration) (undo func()) {
	old := refreshEvery
	refreshEvery = d
	return func() { refreshEvery = old }
}
