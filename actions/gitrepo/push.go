package gitrepo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/storage/memory"
)

// push sends commit and the objects it adds to the remote branch, which
// must still be at old. It sends exactly those objects: go-git's own push
// walks everything reachable from the remote's refs to find what to leave
// out, which on a large repository costs more than the whole git CLI
// round trip. A push the remote turns down wraps ErrRejected.
func (r *Repo) push(ctx context.Context, old, commit plumbing.Hash, objs []plumbing.EncodedObject) (err error) {
	ep, err := transport.NewEndpoint(r.remote.URL)
	if err != nil {
		return r.fail("push", err)
	}
	cl, err := client.NewClient(ep)
	if err != nil {
		return r.fail("push", err)
	}
	sess, err := cl.NewReceivePackSession(ep, r.auth())
	if err != nil {
		return r.fail("push", err)
	}
	defer func() {
		if cerr := sess.Close(); cerr != nil && err == nil {
			err = r.fail("push", cerr)
		}
	}()
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return r.fail("push", err)
	}
	refs, err := adv.AllReferences()
	if err != nil {
		return r.fail("push", err)
	}
	name := plumbing.NewBranchReferenceName(r.remote.Branch)
	cur, ok := refs[name]
	switch {
	case !ok:
		return fmt.Errorf("push %s: %w on the remote (deleted meanwhile)", r.name, ErrBranchNotFound)
	case cur.Hash() != old:
		return fmt.Errorf("push %s: %w: the branch moved to %s", r.name, ErrRejected, short(cur.Hash()))
	}

	mem := memory.NewStorage()
	hashes := make([]plumbing.Hash, len(objs))
	for i, o := range objs {
		if _, err := mem.SetEncodedObject(o); err != nil {
			return fmt.Errorf("push %s: %w", r.name, err)
		}
		hashes[i] = o.Hash()
	}
	var pack bytes.Buffer
	useRefDeltas := !adv.Capabilities.Supports(capability.OFSDelta)
	if _, err := packfile.NewEncoder(&pack, mem, useRefDeltas).Encode(hashes, 0); err != nil {
		return fmt.Errorf("push %s: encode pack: %w", r.name, err)
	}

	req := packp.NewReferenceUpdateRequestFromCapabilities(adv.Capabilities)
	req.Commands = []*packp.Command{{Name: name, Old: old, New: commit}}
	req.Packfile = io.NopCloser(&pack)
	report, err := sess.ReceivePack(ctx, req)
	if report != nil {
		if report.UnpackStatus != "ok" {
			return &scrubbed{msg: fmt.Sprintf("push %s: the remote could not unpack: %s", r.name, r.scrub(report.UnpackStatus))}
		}
		for _, cs := range report.CommandStatuses {
			if cs.Status != "ok" {
				return fmt.Errorf("push %s: %w: %s", r.name, ErrRejected, r.scrub(cs.Status))
			}
		}
	}
	if err != nil {
		// Without a report, go-git says a refused update only in words.
		if msg := err.Error(); strings.Contains(msg, "non-fast-forward") || strings.Contains(msg, "command error on") {
			return fmt.Errorf("push %s: %w: %s", r.name, ErrRejected, r.scrub(msg))
		}
		return r.fail("push", err)
	}

	// The push landed: keep its objects and move the tracking branch, so
	// the next fetch asks for nothing when nobody else pushed.
	// Failing that, the next fetch brings them back.
	for _, o := range objs {
		if _, err := r.c.storage.SetEncodedObject(o); err != nil {
			r.store.log.Warn("git cache: keeping a pushed object", "remote", r.name, "err", err)
			return nil
		}
	}
	if err := r.c.storage.SetReference(plumbing.NewHashReference(r.branchRef(), commit)); err != nil {
		r.store.log.Warn("git cache: moving the tracking branch", "remote", r.name, "err", err)
	}
	return nil
}
