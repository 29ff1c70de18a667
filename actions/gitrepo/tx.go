package gitrepo

import (
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Tx is one attempt at a change, against one head of the remote branch.
// Reads see the transaction's own writes. Nothing reaches the cache or the
// remote until Update commits and pushes it; a Tx from View refuses writes.
// A Tx is valid only inside the function it was passed to.
type Tx struct {
	repo     *Repo
	objs     *objects
	head     *object.Commit
	root     *node
	message  string
	readOnly bool
	ancestry map[plumbing.Hash]bool
}

// node is one entry of the tree being edited. A directory's kids are
// loaded from its tree on first use; dirty marks a directory whose tree
// must be built again.
type node struct {
	mode  filemode.FileMode
	hash  plumbing.Hash
	kids  map[string]*node
	dirty bool
}

func (r *Repo) newTx(head *object.Commit) *Tx {
	return &Tx{
		repo:     r,
		objs:     &objects{st: r.c.storage, mem: map[plumbing.Hash]plumbing.EncodedObject{}, trees: map[plumbing.Hash]*object.Tree{}},
		head:     head,
		root:     &node{mode: filemode.Dir, hash: head.TreeHash},
		ancestry: map[plumbing.Hash]bool{head.Hash: true},
	}
}

// Head returns the commit the transaction started from.
func (tx *Tx) Head() string { return tx.head.Hash.String() }

// SetMessage replaces the commit message Update was given, for a change
// that only knows what to say once it has looked.
func (tx *Tx) SetMessage(msg string) { tx.message = msg }

// ReadFile returns the content of the file at path. A missing file gives an
// error wrapping fs.ErrNotExist.
func (tx *Tx) ReadFile(path string) ([]byte, error) {
	p, err := CleanPath(path)
	if err != nil {
		return nil, err
	}
	n, err := tx.lookup(p)
	if err != nil {
		return nil, err
	}
	switch {
	case n == nil:
		return nil, fmt.Errorf("read %s: %w", p, fs.ErrNotExist)
	case n.mode == filemode.Dir:
		return nil, fmt.Errorf("read %s: is a directory", p)
	case n.mode == filemode.Submodule:
		return nil, fmt.Errorf("read %s: is a submodule", p)
	}
	return tx.objs.blob(n.hash)
}

// WriteFile sets the content of the file at path, creating it and its
// directories when absent. An executable file stays executable.
func (tx *Tx) WriteFile(path string, data []byte) error {
	p, err := tx.writable(path)
	if err != nil {
		return err
	}
	h := tx.objs.putBlob(data)
	mode := filemode.Regular
	old, err := tx.lookup(p)
	switch {
	case err != nil:
		return err
	case old != nil && old.mode == filemode.Dir:
		return fmt.Errorf("write %s: is a directory", p)
	case old != nil && old.mode == filemode.Executable:
		mode = filemode.Executable
	}
	return tx.set(p, &node{mode: mode, hash: h})
}

// Delete removes the file or directory at path; a missing path is no
// error.
func (tx *Tx) Delete(path string) error {
	p, err := tx.writable(path)
	if err != nil {
		return err
	}
	return tx.set(p, nil)
}

// Files returns the files at or under path, sorted; none when absent.
func (tx *Tx) Files(path string) ([]string, error) {
	p, err := CleanPath(path)
	if err != nil {
		return nil, err
	}
	n, err := tx.lookup(p)
	if err != nil || n == nil {
		return nil, err
	}
	var out []string
	err = tx.list(p, n, &out)
	sort.Strings(out)
	return out, err
}

func (tx *Tx) list(p string, n *node, out *[]string) error {
	if n.mode != filemode.Dir {
		*out = append(*out, p)
		return nil
	}
	if err := tx.load(n); err != nil {
		return err
	}
	for name, k := range n.kids {
		if err := tx.list(p+"/"+name, k, out); err != nil {
			return err
		}
	}
	return nil
}

// Resolve returns the full hash of rev (a hash, possibly abbreviated, or an
// expression like HEAD~2), which must be in the history of the branch.
func (tx *Tx) Resolve(rev string) (string, error) {
	c, err := tx.resolve(rev)
	if err != nil {
		return "", err
	}
	return c.Hash.String(), nil
}

func (tx *Tx) resolve(rev string) (*object.Commit, error) {
	unknown := func(why string) error { return fmt.Errorf("revision %q: %w (%s)", rev, ErrUnknownRevision, why) }
	var h plumbing.Hash
	if len(rev) == 40 && plumbing.IsHash(rev) {
		h = plumbing.NewHash(rev)
	} else {
		if rev == "" || strings.HasPrefix(rev, "-") {
			return nil, unknown("empty")
		}
		hp, err := tx.repo.c.repo.ResolveRevision(plumbing.Revision(rev))
		if err != nil {
			return nil, unknown("not found")
		}
		h = *hp
	}
	c, err := object.GetCommit(tx.objs.st, h)
	if err != nil {
		return nil, unknown("not a commit of branch " + tx.repo.remote.Branch)
	}
	in, ok := tx.ancestry[h]
	if !ok {
		in, err = c.IsAncestor(tx.head)
		if err != nil {
			return nil, fmt.Errorf("revision %q: %w", rev, err)
		}
		tx.ancestry[h] = in
	}
	if !in {
		return nil, unknown("not in the history of branch " + tx.repo.remote.Branch)
	}
	return c, nil
}

// FileAt returns the content of the file at path in revision rev. A file
// missing there gives an error wrapping fs.ErrNotExist.
func (tx *Tx) FileAt(rev, path string) ([]byte, error) {
	p, err := CleanPath(path)
	if err != nil {
		return nil, err
	}
	c, err := tx.resolve(rev)
	if err != nil {
		return nil, err
	}
	e, ok, err := tx.objs.entryAt(c.TreeHash, p)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, fmt.Errorf("read %s at %s: %w", p, short(c.Hash), fs.ErrNotExist)
	case e.Mode == filemode.Dir:
		return nil, fmt.Errorf("read %s at %s: is a directory", p, short(c.Hash))
	}
	return tx.objs.blob(e.Hash)
}

// Changed returns the files at or under path that differ between revisions
// from and to, sorted. An empty from stands for the empty tree.
func (tx *Tx) Changed(from, to, path string) ([]string, error) {
	p, err := CleanPath(path)
	if err != nil {
		return nil, err
	}
	var a, b plumbing.Hash
	var ma, mb filemode.FileMode
	for _, side := range []struct {
		rev  string
		hash *plumbing.Hash
		mode *filemode.FileMode
	}{{from, &a, &ma}, {to, &b, &mb}} {
		if side.rev == "" {
			continue
		}
		c, err := tx.resolve(side.rev)
		if err != nil {
			return nil, err
		}
		e, ok, err := tx.objs.entryAt(c.TreeHash, p)
		if err != nil {
			return nil, err
		}
		if ok {
			*side.hash, *side.mode = e.Hash, e.Mode
		}
	}
	changes, err := tx.objs.diffEntries(p, entry{a, ma}, entry{b, mb})
	if err != nil {
		return nil, err
	}
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.path
	}
	return out, nil
}

// Restore makes path (a file or a directory) exactly what it was in
// revision rev, modes included; a path absent there is deleted.
func (tx *Tx) Restore(rev, path string) error {
	p, err := tx.writable(path)
	if err != nil {
		return err
	}
	c, err := tx.resolve(rev)
	if err != nil {
		return err
	}
	e, ok, err := tx.objs.entryAt(c.TreeHash, p)
	if err != nil {
		return err
	}
	if !ok {
		return tx.set(p, nil)
	}
	return tx.set(p, &node{mode: e.Mode, hash: e.Hash})
}

// Diff returns the unified diff of the transaction's changes against its
// head; empty when nothing changed.
func (tx *Tx) Diff() (string, error) {
	b, err := tx.build()
	if err != nil {
		return "", err
	}
	changes, err := tx.objs.diffEntries("", entry{tx.head.TreeHash, filemode.Dir}, entry{b.tree, filemode.Dir})
	if err != nil {
		return "", err
	}
	return tx.objs.unified(changes)
}

func (tx *Tx) writable(path string) (string, error) {
	if tx.readOnly {
		return "", fmt.Errorf("write %s: read-only transaction", path)
	}
	return CleanPath(path)
}

// lookup returns the node at a clean path, or nil when absent.
func (tx *Tx) lookup(p string) (*node, error) {
	n := tx.root
	for _, name := range strings.Split(p, "/") {
		if n.mode != filemode.Dir {
			return nil, nil
		}
		if err := tx.load(n); err != nil {
			return nil, err
		}
		if n = n.kids[name]; n == nil {
			return nil, nil
		}
	}
	return n, nil
}

// set puts leaf at a clean path, or removes the path when leaf is nil,
// marking every directory on the way dirty.
func (tx *Tx) set(p string, leaf *node) error {
	names := strings.Split(p, "/")
	n := tx.root
	for i, name := range names {
		if err := tx.load(n); err != nil {
			return err
		}
		n.dirty = true
		if i == len(names)-1 {
			if leaf == nil {
				delete(n.kids, name)
			} else {
				n.kids[name] = leaf
			}
			return nil
		}
		k := n.kids[name]
		switch {
		case k == nil && leaf == nil:
			return nil
		case k == nil:
			k = &node{mode: filemode.Dir, kids: map[string]*node{}}
			n.kids[name] = k
		case k.mode != filemode.Dir:
			return fmt.Errorf("write %s: %s is a file", p, strings.Join(names[:i+1], "/"))
		}
		n = k
	}
	return nil
}

func (tx *Tx) load(n *node) error {
	if n.kids != nil || n.mode != filemode.Dir {
		return nil
	}
	t, err := tx.objs.tree(n.hash)
	if err != nil {
		return err
	}
	n.kids = make(map[string]*node, len(t.Entries))
	for _, e := range t.Entries {
		n.kids[e.Name] = &node{mode: e.Mode, hash: e.Hash}
	}
	return nil
}

// built is the result of a transaction: its root tree and the objects it
// made that the remote lacks.
type built struct {
	tree    plumbing.Hash
	objects []plumbing.EncodedObject
}

// build encodes the trees of every dirty directory. It leaves the nodes
// as they are, so it may run again after more edits.
func (tx *Tx) build() (built, error) {
	var b built
	seen := map[plumbing.Hash]bool{}
	h, _, err := tx.buildNode(tx.root, true, &b, seen)
	b.tree = h
	return b, err
}

func (tx *Tx) buildNode(n *node, root bool, b *built, seen map[plumbing.Hash]bool) (plumbing.Hash, bool, error) {
	if !n.dirty {
		return n.hash, false, nil
	}
	t := &object.Tree{Entries: make([]object.TreeEntry, 0, len(n.kids))}
	for name, k := range n.kids {
		h := k.hash
		if k.mode == filemode.Dir {
			var empty bool
			var err error
			if h, empty, err = tx.buildNode(k, false, b, seen); err != nil {
				return plumbing.ZeroHash, false, err
			}
			if empty {
				continue
			}
		} else if o, ok := tx.objs.mem[h]; ok && !seen[h] {
			seen[h] = true
			b.objects = append(b.objects, o)
		}
		t.Entries = append(t.Entries, object.TreeEntry{Name: name, Mode: k.mode, Hash: h})
	}
	if len(t.Entries) == 0 && !root {
		return plumbing.ZeroHash, true, nil
	}
	sort.Sort(object.TreeEntrySorter(t.Entries))
	o := &plumbing.MemoryObject{}
	if err := t.Encode(o); err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("encode tree: %w", err)
	}
	h := o.Hash()
	tx.objs.mem[h] = o
	if !seen[h] {
		seen[h] = true
		b.objects = append(b.objects, o)
	}
	return h, false, nil
}

// commit encodes the commit of b on the transaction's head.
func (tx *Tx) commit(b built, sig object.Signature) (plumbing.Hash, []plumbing.EncodedObject, error) {
	msg := strings.TrimRight(tx.message, "\n") + "\n"
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: b.tree, ParentHashes: []plumbing.Hash{tx.head.Hash}}
	o := &plumbing.MemoryObject{}
	if err := c.Encode(o); err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("encode commit: %w", err)
	}
	return o.Hash(), append(slices.Clip(b.objects), o), nil
}

// objects reads through the transaction's own new objects to the cache.
type objects struct {
	st    storer.EncodedObjectStorer
	mem   map[plumbing.Hash]plumbing.EncodedObject
	trees map[plumbing.Hash]*object.Tree
}

func (o *objects) get(h plumbing.Hash) (plumbing.EncodedObject, error) {
	if obj, ok := o.mem[h]; ok {
		return obj, nil
	}
	obj, err := o.st.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", short(h), err)
	}
	return obj, nil
}

func (o *objects) tree(h plumbing.Hash) (*object.Tree, error) {
	if t, ok := o.trees[h]; ok {
		return t, nil
	}
	obj, err := o.get(h)
	if err != nil {
		return nil, err
	}
	t := &object.Tree{}
	if err := t.Decode(obj); err != nil {
		return nil, fmt.Errorf("tree %s: %w", short(h), err)
	}
	o.trees[h] = t
	return t, nil
}

func (o *objects) blob(h plumbing.Hash) ([]byte, error) {
	obj, err := o.get(h)
	if err != nil {
		return nil, err
	}
	if obj.Type() != plumbing.BlobObject {
		return nil, fmt.Errorf("object %s: not a file", short(h))
	}
	return readAll(obj)
}

func (o *objects) putBlob(data []byte) plumbing.Hash {
	obj := &plumbing.MemoryObject{}
	obj.SetType(plumbing.BlobObject)
	obj.Write(data) //nolint:errcheck // a MemoryObject's Write does not fail
	h := obj.Hash()
	o.mem[h] = obj
	return h
}

// entryAt finds the entry at a clean path in a tree.
func (o *objects) entryAt(tree plumbing.Hash, p string) (object.TreeEntry, bool, error) {
	e := object.TreeEntry{Mode: filemode.Dir, Hash: tree}
	for _, name := range strings.Split(p, "/") {
		if e.Mode != filemode.Dir {
			return object.TreeEntry{}, false, nil
		}
		t, err := o.tree(e.Hash)
		if err != nil {
			return object.TreeEntry{}, false, err
		}
		i := slices.IndexFunc(t.Entries, func(e object.TreeEntry) bool { return e.Name == name })
		if i < 0 {
			return object.TreeEntry{}, false, nil
		}
		e = t.Entries[i]
	}
	return e, true, nil
}

// entry is one side of a change; a zero hash means absent.
type entry struct {
	hash plumbing.Hash
	mode filemode.FileMode
}

type fileChange struct {
	path     string
	from, to entry
}

// diffEntries lists the files that differ between two entries at path
// (files or directories), descending only where hashes differ.
func (o *objects) diffEntries(path string, a, b entry) ([]fileChange, error) {
	var out []fileChange
	err := o.diff(path, a, b, &out)
	return out, err
}

func (o *objects) diff(p string, a, b entry, out *[]fileChange) error {
	if a == b {
		return nil
	}
	aDir := !a.hash.IsZero() && a.mode == filemode.Dir
	bDir := !b.hash.IsZero() && b.mode == filemode.Dir
	if !aDir && !bDir {
		*out = append(*out, fileChange{p, a, b})
		return nil
	}
	if aDir != bDir {
		// A file replaced by a directory or the other way round: the file
		// side goes or comes on its own.
		if aDir {
			if !b.hash.IsZero() {
				*out = append(*out, fileChange{p, entry{}, b})
			}
			return o.diff(p, a, entry{}, out)
		}
		if !a.hash.IsZero() {
			*out = append(*out, fileChange{p, a, entry{}})
		}
		return o.diff(p, entry{}, b, out)
	}
	kids := map[string][2]entry{}
	for i, side := range []entry{a, b} {
		if side.hash.IsZero() {
			continue
		}
		t, err := o.tree(side.hash)
		if err != nil {
			return err
		}
		for _, e := range t.Entries {
			k := kids[e.Name]
			k[i] = entry{e.Hash, e.Mode}
			kids[e.Name] = k
		}
	}
	names := make([]string, 0, len(kids))
	for name := range kids {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		child := name
		if p != "" {
			child = p + "/" + name
		}
		if err := o.diff(child, kids[name][0], kids[name][1], out); err != nil {
			return err
		}
	}
	return nil
}

func short(h plumbing.Hash) string { return h.String()[:12] }
