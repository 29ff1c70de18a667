package github

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/firebreak-dev/firebreak/actions"
)

// IssueLookup returns the issue number of an incident, 0 when it has none
// yet.
type IssueLookup func(ctx context.Context, incident string) (int, error)

// Commenter returns the actions.Commenter that notify's github channel
// uses: it posts on the issue lookup names, once per notify step. The key
// is the delivery id notify puts in its marker (<!-- firebreak:notify
// INCIDENT/STEP -->), so a step executed again finds its comment; a body
// without one is keyed by its text, so the same text to the same incident
// posts once. An incident without an issue yet gets a transient
// ErrNoIssue.
func (c *Client) Commenter(lookup IssueLookup) actions.Commenter {
	return &commenter{c: c, lookup: lookup}
}

type commenter struct {
	c      *Client
	lookup IssueLookup
}

var _ actions.Commenter = (*commenter)(nil)

func (a *commenter) Comment(ctx context.Context, incident, body string) error {
	op := "comment for incident " + incident
	n, err := a.lookup(ctx, incident)
	if err != nil {
		return a.c.fail(op, err)
	}
	if n <= 0 {
		return a.c.fail(op, ErrNoIssue)
	}
	key, text := commentKey(incident, body)
	return a.c.Comment(ctx, n, key, text)
}

const notifyMarker = "<!-- firebreak:notify "

// commentKey derives a comment's key from notify's delivery marker, which
// it removes from the text, or from the text itself.
func commentKey(incident, body string) (key, text string) {
	if i := strings.LastIndex(body, notifyMarker); i >= 0 {
		if id, rest, ok := strings.Cut(body[i+len(notifyMarker):], " -->"); ok && strings.TrimSpace(rest) == "" {
			text = strings.TrimRight(body[:i], " \t\r\n")
			if key = "notify/" + id; markerText.MatchString(key) {
				return key, text
			}
			return "notify/" + digest(id), text
		}
	}
	return "text/" + digest(incident+"\x00"+body), body
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}
