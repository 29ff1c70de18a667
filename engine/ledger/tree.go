package ledger

import (
	"bufio"
	"compress/zlib"
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// objectStore reads and writes the objects of a local repository through
// go-git's storage, and keeps decoded trees: they never change.
type objectStore struct {
	dir   string
	st    *filesystem.Storage
	trees map[plumbing.Hash][]object.TreeEntry
	// pending are the objects put since the last flush, which writes them
	// all at once.
	pending []pendingObject
}

type pendingObject struct {
	typ     plumbing.ObjectType
	content []byte
	hash    plumbing.Hash
}

// maxTrees bounds the decoded trees an objectStore keeps.
const maxTrees = 1024

func openObjects(commonDir string) *objectStore {
	o := &objectStore{dir: commonDir}
	o.reopen()
	return o
}

// reopen starts over with a fresh storage. Other processes (git gc, git
// repack) may replace the packs a storage has indexed.
func (o *objectStore) reopen() {
	if o.st != nil {
		o.st.Close()
	}
	// Not ExclusiveAccess: other processes add objects all the time.
	o.st = filesystem.NewStorageWithOptions(osfs.New(o.dir), cache.NewObjectLRU(16*cache.MiByte),
		filesystem.Options{KeepDescriptors: true})
}

func (o *objectStore) close() error { return o.st.Close() }

func (o *objectStore) get(h plumbing.Hash) (plumbing.EncodedObject, error) {
	obj, err := o.st.EncodedObject(plumbing.AnyObject, h)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		o.reopen()
		obj, err = o.st.EncodedObject(plumbing.AnyObject, h)
	}
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", h, err)
	}
	return obj, nil
}

func (o *objectStore) commit(h plumbing.Hash) (*object.Commit, error) {
	obj, err := o.get(h)
	if err != nil {
		return nil, err
	}
	c := &object.Commit{}
	if err := c.Decode(obj); err != nil {
		return nil, fmt.Errorf("commit %s: %w", h, err)
	}
	return c, nil
}

// tree returns the entries of tree h. The slice is shared: callers copy it
// before changing it.
func (o *objectStore) tree(h plumbing.Hash) ([]object.TreeEntry, error) {
	if es, ok := o.trees[h]; ok {
		return es, nil
	}
	obj, err := o.get(h)
	if err != nil {
		return nil, err
	}
	t := &object.Tree{}
	if err := t.Decode(obj); err != nil {
		return nil, fmt.Errorf("tree %s: %w", h, err)
	}
	if o.trees == nil || len(o.trees) >= maxTrees {
		o.trees = make(map[plumbing.Hash][]object.TreeEntry)
	}
	o.trees[h] = t.Entries
	return t.Entries, nil
}

func (o *objectStore) blob(h plumbing.Hash) ([]byte, error) {
	obj, err := o.get(h)
	if err != nil {
		return nil, err
	}
	if obj.Type() != plumbing.BlobObject {
		return nil, fmt.Errorf("object %s: not a file", h)
	}
	rd, err := obj.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

// put adds an object to those the next flush writes, and returns its
// name. Nothing reads it back before then: a write only reads the trees it
// builds on, which exist.
func (o *objectStore) put(typ plumbing.ObjectType, content []byte) (plumbing.Hash, error) {
	h := hashObject(objectHeader(typ, len(content)), content)
	o.pending = append(o.pending, pendingObject{typ, content, h})
	return h, nil
}

// discard forgets the objects put since the last flush.
func (o *objectStore) discard() { o.pending = nil }

// packMin is how many objects a flush needs to write them as one pack
// rather than as loose objects. A loose object is a file of its own, and
// creating a file is what a loose object costs: on the 2-core VM about a
// millisecond of CPU each, spread over 256 directories, so a storm's
// commit of 2,000 incident records was 4,000 files and seconds of CPU.
// A pack is two files. Small writes (one incident's update is about five
// objects) stay loose, as git keeps small fetches loose (its
// transfer.unpackLimit is 100): only a storm's commits make packs, which
// git gc folds together.
const packMin = 100

// flush writes the pending objects. Objects that are there already are
// written again, harmlessly: the content is the same.
func (o *objectStore) flush() error {
	objs := o.pending
	o.pending = nil
	if len(objs) >= packMin {
		return o.writePack(objs)
	}
	for _, p := range objs {
		if err := o.writeLoose(p); err != nil {
			return err
		}
	}
	return nil
}

// writeLoose writes an object as a loose object, the way git does with
// its default core.looseCompression (zlib level 1): into a temporary file
// next to its place, renamed there.
func (o *objectStore) writeLoose(p pendingObject) error {
	hex := p.hash.String()
	dir := filepath.Join(o.dir, "objects", hex[:2])
	var suffix [6]byte
	rand.Read(suffix[:])
	tmp := filepath.Join(dir, "tmp_obj_"+fmt.Sprintf("%x", suffix))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o777); err == nil {
			f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
		}
	}
	if err != nil {
		return fmt.Errorf("write object %s: %w", hex, err)
	}
	zw := zlibWriters.Get().(*zlib.Writer)
	zw.Reset(f)
	zw.Write(objectHeader(p.typ, len(p.content)))
	zw.Write(p.content)
	err = zw.Close()
	zlibWriters.Put(zw)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, hex[2:]))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write object %s: %w", hex, err)
	}
	return nil
}

// writePack writes objs as one pack, without deltas, through go-git's
// pack writer, which indexes it as it is written and moves the pack and
// its index into objects/pack when both are whole.
func (o *objectStore) writePack(objs []pendingObject) error {
	mem := memory.NewStorage()
	hashes := make([]plumbing.Hash, 0, len(objs))
	for _, p := range objs {
		if mem.HasEncodedObject(p.hash) == nil {
			continue // put twice: a pack names each object once
		}
		obj := &plumbing.MemoryObject{}
		obj.SetType(p.typ)
		obj.Write(p.content) // a MemoryObject's Write does not fail
		if _, err := mem.SetEncodedObject(obj); err != nil {
			return fmt.Errorf("write pack: %w", err)
		}
		hashes = append(hashes, p.hash)
	}
	pw, err := o.st.PackfileWriter()
	if err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	// The pack writer wakes its indexer on every write: hand it large ones.
	bw := bufio.NewWriterSize(pw, 64<<10)
	_, err = packfile.NewEncoder(bw, mem, false).Encode(hashes, 0)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := pw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write pack of %d objects: %w", len(hashes), err)
	}
	return nil
}

func objectHeader(typ plumbing.ObjectType, size int) []byte {
	return fmt.Appendf(nil, "%s %d\x00", typ, size)
}

// zlibWriters are reused: a new one allocates about a megabyte of
// compressor state, and a commit of a storm's 2,000 records made 2.2 GB of
// garbage out of them, the GC's work in the middle of the storm.
var zlibWriters = sync.Pool{New: func() any {
	zw, _ := zlib.NewWriterLevel(nil, zlib.BestSpeed)
	return zw
}}

// hashObject returns the name of the object with header hdr and content.
// It is plain SHA-1, as the objects this package hashes are its own or a
// file it is about to compare, never objects received from elsewhere.
func hashObject(hdr, content []byte) plumbing.Hash {
	d := sha1.New()
	d.Write(hdr)
	d.Write(content)
	var h plumbing.Hash
	d.Sum(h[:0])
	return h
}

// blobHash returns the name data has as a blob.
func blobHash(data []byte) plumbing.Hash {
	return hashObject(objectHeader(plumbing.BlobObject, len(data)), data)
}

// encodeTree returns the content of a tree object with entries, which are
// in git's order.
func encodeTree(entries []object.TreeEntry) []byte {
	n := 0
	for _, e := range entries {
		n += len(e.Name) + 28
	}
	out := make([]byte, 0, n)
	for _, e := range entries {
		out = strconv.AppendUint(out, uint64(e.Mode), 8)
		out = append(out, ' ')
		out = append(out, e.Name...)
		out = append(out, 0)
		out = append(out, e.Hash[:]...)
	}
	return out
}

// entryAt finds the entry at a clean path under tree root.
func (o *objectStore) entryAt(root plumbing.Hash, p string) (object.TreeEntry, bool, error) {
	e := object.TreeEntry{Mode: filemode.Dir, Hash: root}
	if root.IsZero() {
		return e, false, nil
	}
	for _, name := range strings.Split(p, "/") {
		if e.Mode != filemode.Dir {
			return object.TreeEntry{}, false, nil
		}
		es, err := o.tree(e.Hash)
		if err != nil {
			return object.TreeEntry{}, false, err
		}
		i := find(es, name)
		if i < 0 {
			return object.TreeEntry{}, false, nil
		}
		e = es[i]
	}
	return e, true, nil
}

// files appends the files at or under entry e, named p, to out.
func (o *objectStore) files(p string, e object.TreeEntry, out *[]string) error {
	if e.Mode != filemode.Dir {
		*out = append(*out, p)
		return nil
	}
	es, err := o.tree(e.Hash)
	if err != nil {
		return err
	}
	for _, k := range es {
		if err := o.files(p+"/"+k.Name, k, out); err != nil {
			return err
		}
	}
	return nil
}

// editor changes a tree along a few paths. Only the directories on those
// paths are read and written again; every other subtree keeps its hash.
type editor struct {
	objs *objectStore
	root *tnode
}

// tnode is a directory being edited. entries is shared with the tree cache
// until owned.
type tnode struct {
	hash    plumbing.Hash
	entries []object.TreeEntry
	owned   bool
	kids    map[string]*tnode
	dirty   bool
}

func newEditor(objs *objectStore, root plumbing.Hash) (*editor, error) {
	n, err := loadNode(objs, root)
	if err != nil {
		return nil, err
	}
	return &editor{objs: objs, root: n}, nil
}

func loadNode(objs *objectStore, h plumbing.Hash) (*tnode, error) {
	n := &tnode{hash: h}
	if h.IsZero() {
		n.owned = true
		return n, nil
	}
	es, err := objs.tree(h)
	if err != nil {
		return nil, err
	}
	n.entries = es
	return n, nil
}

// set puts entry at a clean path, or removes the file there when entry is
// nil, creating and pruning directories on the way.
func (e *editor) set(p string, entry *object.TreeEntry) error {
	names := strings.Split(p, "/")
	n := e.root
	var walked []*tnode
	for i, name := range names[:len(names)-1] {
		k := n.kids[name]
		if k == nil {
			j := find(n.entries, name)
			switch {
			case j < 0 && entry == nil:
				return nil // removing what is not there
			case j < 0:
				k = &tnode{owned: true}
			case n.entries[j].Mode != filemode.Dir:
				return fmt.Errorf("write %s: %s is a file", p, strings.Join(names[:i+1], "/"))
			default:
				var err error
				if k, err = loadNode(e.objs, n.entries[j].Hash); err != nil {
					return err
				}
			}
			if n.kids == nil {
				n.kids = map[string]*tnode{}
			}
			n.kids[name] = k
		}
		walked = append(walked, n)
		n = k
	}
	name := names[len(names)-1]
	j := find(n.entries, name)
	if j >= 0 && n.entries[j].Mode == filemode.Dir || n.kids[name] != nil {
		return fmt.Errorf("write %s: is a directory", p)
	}
	if entry == nil && j < 0 {
		return nil
	}
	n.own()
	switch {
	case entry == nil:
		n.entries = slices.Delete(n.entries, j, j+1)
	case j >= 0:
		n.entries[j] = *entry
	default:
		at := sort.Search(len(n.entries), func(i int) bool { return compareEntry(n.entries[i], *entry) >= 0 })
		n.entries = slices.Insert(n.entries, at, *entry)
	}
	n.dirty = true
	for _, w := range walked {
		w.dirty = true
	}
	return nil
}

func (n *tnode) own() {
	if !n.owned {
		n.entries = slices.Clone(n.entries)
		n.owned = true
	}
}

// build writes the trees of every changed directory and returns the root
// tree.
func (e *editor) build() (plumbing.Hash, error) {
	h, _, err := e.buildNode(e.root, true)
	return h, err
}

func (e *editor) buildNode(n *tnode, root bool) (plumbing.Hash, bool, error) {
	if !n.dirty {
		return n.hash, len(n.entries) == 0, nil
	}
	for name, k := range n.kids {
		if !k.dirty {
			continue
		}
		h, empty, err := e.buildNode(k, false)
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		n.own()
		j := find(n.entries, name)
		switch {
		case empty && j >= 0:
			n.entries = slices.Delete(n.entries, j, j+1)
		case empty:
		case j >= 0:
			n.entries[j].Hash = h
		default:
			ent := object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
			at := sort.Search(len(n.entries), func(i int) bool { return compareEntry(n.entries[i], ent) >= 0 })
			n.entries = slices.Insert(n.entries, at, ent)
		}
	}
	n.kids, n.dirty = nil, false
	if len(n.entries) == 0 && !root {
		n.hash = plumbing.ZeroHash
		return plumbing.ZeroHash, true, nil
	}
	h, err := e.objs.put(plumbing.TreeObject, encodeTree(n.entries))
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	n.hash = h
	return h, false, nil
}

// find returns the index of the entry called name, or -1. Names are
// unique in a tree whatever their modes.
func find(es []object.TreeEntry, name string) int {
	// Entries are sorted as if directories had a trailing slash: look
	// where a file of that name would be, then where a directory would.
	for _, dir := range []bool{false, true} {
		i := sort.Search(len(es), func(i int) bool { return compareName(es[i].Name, es[i].Mode == filemode.Dir, name, dir) >= 0 })
		if i < len(es) && es[i].Name == name {
			return i
		}
	}
	return -1
}

func compareEntry(a, b object.TreeEntry) int {
	return compareName(a.Name, a.Mode == filemode.Dir, b.Name, b.Mode == filemode.Dir)
}

// compareName orders tree entries as git does: by name, a directory
// compared as if its name ended in "/".
func compareName(a string, aDir bool, b string, bDir bool) int {
	n := min(len(a), len(b))
	if c := strings.Compare(a[:n], b[:n]); c != 0 {
		return c
	}
	end := func(s string, dir bool) int {
		switch {
		case len(s) > n:
			return int(s[n])
		case dir:
			return '/'
		}
		return 0
	}
	ca, cb := end(a, aDir), end(b, bDir)
	switch {
	case ca < cb:
		return -1
	case ca > cb:
		return 1
	}
	return 0
}
