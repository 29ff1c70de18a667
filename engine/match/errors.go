package match

import (
	"fmt"

	"cuelang.org/go/cue/token"
)

// RegexpError reports a regular expression in a playbook's match that does
// not compile. It implements cuelang.org/go/cue/errors.Error so callers
// report it like any other CUE error, with errors.Errors and
// InputPositions.
type RegexpError struct {
	// Playbook is the Entry.Name of the playbook.
	Playbook string
	// Pos is the position of the field that holds the regexp, or of the
	// match when the field cannot be told.
	Pos token.Pos
	// Regexp is the pattern as CUE sees it, after unquoting.
	Regexp string
	// Message is the regexp package's complaint.
	Message string
}

// Error returns the message without the position, as CUE errors do.
func (e *RegexpError) Error() string {
	return fmt.Sprintf("playbook %s: invalid regexp %q: %s", e.Playbook, e.Regexp, e.Message)
}

// Position returns Pos.
func (e *RegexpError) Position() token.Pos { return e.Pos }

// InputPositions returns Pos, the only position that contributed.
func (e *RegexpError) InputPositions() []token.Pos {
	if !e.Pos.IsValid() {
		return nil
	}
	return []token.Pos{e.Pos}
}

// Path returns nil: the playbook is named in the message instead.
func (e *RegexpError) Path() []string { return nil }

// Msg returns the message format and its arguments.
func (e *RegexpError) Msg() (string, []any) {
	return "playbook %s: invalid regexp %q: %s", []any{e.Playbook, e.Regexp, e.Message}
}
