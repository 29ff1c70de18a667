package gitrepo

import (
	"container/heap"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxWalk bounds how many commits one history query visits, so a path
// untouched for a very long history costs a bounded time.
const maxWalk = 20000

// Commit is one commit of a remote branch.
type Commit struct {
	Hash    string
	Parents []string
	// Author is "Name <email>".
	Author  string
	When    time.Time
	Message string
}

// Subject returns the first line of the message.
func (c Commit) Subject() string {
	s, _, _ := strings.Cut(c.Message, "\n")
	return s
}

// Trailer returns the value of the last "Key: value" line of the
// message's final paragraph with the given key, or "".
func (c Commit) Trailer(key string) string {
	msg := strings.TrimRight(c.Message, "\n")
	if i := strings.LastIndex(msg, "\n\n"); i >= 0 {
		msg = msg[i+2:]
	} else {
		return ""
	}
	var v string
	for _, line := range strings.Split(msg, "\n") {
		k, val, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), key) {
			v = strings.TrimSpace(val)
		}
	}
	return v
}

func toCommit(c *object.Commit) Commit {
	parents := make([]string, len(c.ParentHashes))
	for i, p := range c.ParentHashes {
		parents[i] = p.String()
	}
	return Commit{
		Hash:    c.Hash.String(),
		Parents: parents,
		Author:  c.Author.Name + " <" + c.Author.Email + ">",
		When:    c.Author.When,
		Message: c.Message,
	}
}

// Commits returns up to limit commits that touched path (a file or a
// directory) in the history of the transaction's head, newest first
// (limit < 1: all). It simplifies history as git log does: a merge that
// kept path as one of its parents had it is not listed, and only that
// parent is followed.
func (tx *Tx) Commits(path string, limit int) ([]Commit, error) {
	p, err := CleanPath(path)
	if err != nil {
		return nil, err
	}
	var out []Commit
	seen := map[plumbing.Hash]bool{tx.head.Hash: true}
	q := &commitQueue{tx.head}
	for visited := 0; q.Len() > 0 && visited < maxWalk; visited++ {
		c := heap.Pop(q).(*object.Commit)
		e, _, err := tx.objs.entryAt(c.TreeHash, p)
		if err != nil {
			return nil, err
		}
		var follow []*object.Commit
		var parents []*object.Commit
		for _, ph := range c.ParentHashes {
			pc, err := object.GetCommit(tx.objs.st, ph)
			if err != nil {
				continue // beyond what the cache holds
			}
			parents = append(parents, pc)
			pe, _, err := tx.objs.entryAt(pc.TreeHash, p)
			if err != nil {
				return nil, err
			}
			if pe.Hash == e.Hash && pe.Mode == e.Mode {
				follow = []*object.Commit{pc}
				break
			}
		}
		touched := follow == nil && (len(parents) > 0 || !e.Hash.IsZero())
		if follow == nil {
			follow = parents
		}
		if touched {
			out = append(out, toCommit(c))
			if limit > 0 && len(out) == limit {
				break
			}
		}
		for _, pc := range follow {
			if !seen[pc.Hash] {
				seen[pc.Hash] = true
				heap.Push(q, pc)
			}
		}
	}
	return out, nil
}

// commitQueue orders commits newest first by committer date.
type commitQueue []*object.Commit

func (q commitQueue) Len() int { return len(q) }
func (q commitQueue) Less(i, j int) bool {
	if !q[i].Committer.When.Equal(q[j].Committer.When) {
		return q[i].Committer.When.After(q[j].Committer.When)
	}
	return q[i].Hash.String() < q[j].Hash.String()
}
func (q commitQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *commitQueue) Push(x any)   { *q = append(*q, x.(*object.Commit)) }
func (q *commitQueue) Pop() any {
	old := *q
	c := old[len(old)-1]
	*q = old[:len(old)-1]
	return c
}
