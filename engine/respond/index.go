package respond

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/ledger"
)

const indexVersion = 1

// index is what the engine must find without reading every incident file:
// the open incident of each alert group, and the recent runs that cooldown
// and policy.limits.runs_per_hour count. It is written in the same commit
// as the records it describes.
type index struct {
	Version int `json:"version"`
	// Open maps a group key (incident.GroupKey) to its open incident.
	Open map[string]openEntry `json:"open"`
	// Runs are the incidents opened recently, oldest first.
	Runs []runEntry `json:"runs"`
}

type openEntry struct {
	ID       string `json:"id"`
	Path     string `json:"path"`
	Playbook string `json:"playbook"`
	Issue    int    `json:"issue,omitempty"`
}

type runEntry struct {
	ID       string    `json:"id"`
	Playbook string    `json:"playbook"`
	GroupKey string    `json:"group_key"`
	Opened   time.Time `json:"opened"`
	// Ran is false for an incident whose steps were held back (cooldown,
	// runs_per_hour): it does not count against the limits.
	Ran bool `json:"ran"`
}

func (x *index) init() {
	if x.Open == nil {
		x.Open = map[string]openEntry{}
	}
	x.Version = indexVersion
}

// clone returns a copy of x that shares nothing x may change.
func (x *index) clone() *index {
	c := *x
	c.Open = maps.Clone(x.Open)
	c.Runs = slices.Clone(x.Runs)
	return &c
}

// prune drops runs older than keep before now.
func (x *index) prune(now time.Time, keep time.Duration) {
	i := 0
	for i < len(x.Runs) && now.Sub(x.Runs[i].Opened) > keep {
		i++
	}
	x.Runs = x.Runs[i:]
}

// lastRun returns the most recent run of group key that ran its steps.
func (x *index) lastRun(key string) (runEntry, bool) {
	for i := len(x.Runs) - 1; i >= 0; i-- {
		if r := x.Runs[i]; r.GroupKey == key && r.Ran {
			return r, true
		}
	}
	return runEntry{}, false
}

// runsSince counts playbook's runs that ran their steps after since.
func (x *index) runsSince(playbook string, since time.Time) int {
	n := 0
	for _, r := range x.Runs {
		if r.Playbook == playbook && r.Ran && r.Opened.After(since) {
			n++
		}
	}
	return n
}

// issueOf returns the open incident whose issue is number.
func (x *index) issueOf(number int) (openEntry, bool) {
	for _, e := range x.Open {
		if e.Issue == number && number > 0 {
			return e, true
		}
	}
	return openEntry{}, false
}

// rebuildIndex reads every incident file under dir. It runs once, when a
// repository has no index (or a broken one); records it cannot read are
// left out of it, not fatal: they are still there for people to fix.
func rebuildIndex(v ledger.View, dir string) (*index, error) {
	idx := &index{}
	idx.init()
	files, err := v.List(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range files {
		if !strings.HasSuffix(p, ".md") {
			continue
		}
		data, err := v.Read(p)
		if err != nil || len(data) > maxRecords {
			continue
		}
		in, err := incident.Unmarshal(data)
		if err != nil {
			continue
		}
		if in.Status != incident.Resolved {
			idx.Open[in.GroupKey] = openEntry{ID: in.ID, Path: p, Playbook: in.Playbook, Issue: in.Issue}
		}
		ran := false
		for _, s := range in.Steps {
			if s.Status != "skipped" || s.Error == "" || !strings.HasPrefix(s.Error, heldBack) {
				ran = true
			}
		}
		idx.Runs = append(idx.Runs, runEntry{ID: in.ID, Playbook: in.Playbook, GroupKey: in.GroupKey, Opened: in.Timestamps.Opened, Ran: ran})
	}
	sortRuns(idx.Runs)
	return idx, nil
}
