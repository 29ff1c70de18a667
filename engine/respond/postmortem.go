package respond

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/ledger"
	"github.com/firebreak-dev/firebreak/engine/postmortem"
)

// Postmortem drafts incident id's postmortem, postmortems/<id>.md, from
// postmortems/TEMPLATE.md when the repository has one, commits it on the
// branch postmortem/<id> and owes GitHub its pull request. It returns the
// draft's path. A draft already on the branch is left as it is: people
// may have started writing in it.
func (e *Engine) Postmortem(ctx context.Context, id string) (string, error) {
	in, err := e.Get(ctx, id)
	if err != nil {
		return "", err
	}
	dir := e.Repo.Config.Paths.Postmortems
	tmplPath := path.Join(dir, "TEMPLATE.md")
	tmpl, err := e.Ledger.Read(ctx, tmplPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	draft, err := postmortem.Draft(in, tmpl, postmortem.Links{IncidentFile: incident.Path(e.dir(), in)})
	if err != nil {
		return "", err
	}
	p := path.Join(dir, id+".md")
	branch := postmortemBranch(id)
	if _, _, err := e.Ledger.UpdateBranch(ctx, branch, "", func(v ledger.View) (string, map[string][]byte, error) {
		if _, err := v.Read(p); err == nil {
			return "", nil, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", nil, err
		}
		return fmt.Sprintf("postmortem %s: draft", id), map[string][]byte{p: draft}, nil
	}); err != nil {
		return "", err
	}
	_, err = e.change(ctx, func(t *tx) error {
		in, rp, err := t.byID(id)
		if err != nil {
			return err
		}
		for _, ev := range in.Timeline {
			if ev.Kind == incident.EventPostmortem {
				return nil
			}
		}
		in.Record(incident.Event{At: e.now(), Kind: incident.EventPostmortem, Text: "postmortem draft " + p + " on branch " + branch})
		t.put(rp, in)
		t.note("incident %s: postmortem drafted on %s", id, branch)
		if e.GitHub != nil {
			return t.owe(id, keyPR)
		}
		return nil
	})
	return p, err
}
