package respond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/ledger"
)

// The engine's own files, beside the incident records. Both are derived
// state: the records are the truth, and the index is rebuilt from them
// when it is missing or unreadable.
const (
	indexPath  = ".firebreak/index.json"
	outboxDir  = ".firebreak/outbox"
	maxRecords = 1 << 20 // bytes of one incident file read back
)

// tx is one attempt at a change of the incident log: the records, the
// index and the outbox it read, and what it changed. Everything it writes
// goes into one commit; when the branch moved under it the whole change
// runs again on the new head (ledger.Update), so what it writes is always
// derived from what it read.
type tx struct {
	v    ledger.View
	head string // the commit v reads, the parent of the commit t makes
	dir  string // the incidents directory
	// parent, for one change applied to a Recorder's log, is the log: t
	// reads through it, copying what it reads, and its changes are merged
	// into it only when the change succeeds.
	parent *tx
	// idxShared: t's index is its parent's own, changed in place (a copy
	// per change was most of the cost of deciding in a storm). A change
	// that fails after taking it leaves the log to be rebuilt.
	idxShared bool
	records   map[string]*incident.Incident
	dirty     map[string]bool
	idx       *index
	idxDirty  bool
	// idxFile is the index as index.json holds it at head (idx may have
	// been changed since, without being written); cache is the engine's.
	idxFile  *index
	cache    *indexCache
	owed     map[string][]string // incident id → outbox keys
	oweDirty map[string]bool
	msgs     []string
}

// change runs fn in a transaction on the ledger and commits what it
// changed as one commit whose message is the lines fn noted. It returns
// whether a commit was made.
func (e *Engine) change(ctx context.Context, fn func(t *tx) error) (bool, error) {
	if r := e.Recorder; r != nil {
		// The caller waits for the commit, so a second run of fn on
		// another head may set its variables: it reads them after.
		seq, err := r.apply(fn, fn)
		if seq == 0 || err != nil {
			return false, err
		}
		return true, r.Wait(ctx, seq)
	}
	// One change of this engine at a time (the Ledger runs them one at a
	// time anyway), so that the index cache follows every commit before
	// the next change looks.
	e.idxCache.mu.Lock()
	defer e.idxCache.mu.Unlock()
	var last *tx // the attempt that landed, when Update succeeds
	commit, changed, err := e.Ledger.Update(ctx, func(v ledger.View) (string, map[string][]byte, error) {
		t := newTx(v, e.dir())
		t.cache = &e.idxCache
		last = t
		if err := fn(t); err != nil {
			return "", nil, err
		}
		return t.commit()
	})
	if err == nil && last != nil {
		last.remember(commit)
	}
	return changed, err
}

func newTx(v ledger.View, dir string) *tx {
	t := &tx{v: v, dir: dir}
	if v != nil {
		t.head = v.Head()
	}
	t.reset()
	return t
}

// reset forgets what t changed (not what it read).
func (t *tx) reset() {
	if t.records == nil {
		t.records = map[string]*incident.Incident{}
	}
	if t.owed == nil {
		t.owed = map[string][]string{}
	}
	t.dirty, t.oweDirty, t.idxDirty, t.msgs = map[string]bool{}, map[string]bool{}, false, nil
}

// child returns a change built on t, which sees what t holds and changes
// nothing of it until t.merge.
func (t *tx) child() *tx {
	c := newTx(nil, t.dir)
	c.head, c.parent = t.head, t
	return c
}

// merge takes what child c changed into t. What c only read, t holds
// already.
func (t *tx) merge(c *tx) {
	for p := range c.dirty {
		t.records[p] = c.records[p]
		t.dirty[p] = true
	}
	if c.idxDirty {
		t.idx, t.idxDirty = c.idx, true
	}
	for id := range c.oweDirty {
		t.owed[id] = c.owed[id]
		t.oweDirty[id] = true
	}
	t.msgs = append(t.msgs, c.msgs...)
}

func (t *tx) changed() bool {
	return len(t.dirty) > 0 || t.idxDirty || len(t.oweDirty) > 0
}

// changeNow is change that, with a Recorder, returns once the change is
// applied, before it is committed: what the engine does next may start at
// once. Its out is the first run's; a second run on another head (see
// Recorder) gets a throwaway one, since the caller is reading out by then.
func changeNow[T any](ctx context.Context, e *Engine, fn func(t *tx, out *T) error) (T, error) {
	return changeSoon(ctx, e, fn)()
}

// changeSoon is changeNow in two halves: with a Recorder it queues the
// change and returns what waits for it, so that a caller with several
// changes waits once for all of them; without, it changes the log first.
func changeSoon[T any](ctx context.Context, e *Engine, fn func(t *tx, out *T) error) func() (T, error) {
	var out T
	if r := e.Recorder; r != nil {
		req := r.submit(
			func(t *tx) error { return fn(t, &out) },
			func(t *tx) error { var again T; return fn(t, &again) })
		return func() (T, error) {
			_, err := r.await(req)
			return out, err
		}
	}
	_, err := e.change(ctx, func(t *tx) error {
		var zero T
		out = zero
		return fn(t, &out)
	})
	return func() (T, error) { return out, err }
}

// indexCache is the index as index.json holds it at one commit, so that a
// change building on that commit does not read and parse the file again:
// with thousands of incidents open that was most of the work of opening
// one. A commit's files never change, so an entry is never stale; a
// change on any other head reads the file. The index it holds is never
// modified: a tx gets a copy. mu is held for the whole of a change.
type indexCache struct {
	mu     sync.Mutex
	commit string
	idx    *index
}

func (c *indexCache) get(commit string) *index {
	if commit == "" || c.commit != commit {
		return nil
	}
	return c.idx
}

// remember records the index at commit, which t made or, having nothing
// to change, found as the head.
func (t *tx) remember(commit string) {
	c := t.cache
	switch {
	case commit == "":
	case t.idxDirty: // commit holds t.idx, as commit() wrote it
		c.commit, c.idx = commit, t.idx.clone()
	case t.idxFile != nil: // commit holds index.json as t read it
		c.commit, c.idx = commit, t.idxFile
	case c.commit != "" && c.commit == t.head: // t left index.json as it was at head
		c.commit = commit
	}
}

// note adds a line to the commit message.
func (t *tx) note(format string, args ...any) {
	t.msgs = append(t.msgs, fmt.Sprintf(format, args...))
}

// record reads the incident at p; nil without error when there is none.
func (t *tx) record(p string) (*incident.Incident, error) {
	if in, ok := t.records[p]; ok {
		return in, nil
	}
	if t.parent != nil {
		in, err := t.parent.record(p)
		if in == nil || err != nil {
			return nil, err
		}
		// The log's records are never changed in place: a snapshot of
		// them is being committed while changes go on.
		in = in.Clone()
		t.records[p] = in
		return in, nil
	}
	data, err := t.v.Read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(data) > maxRecords {
		return nil, fmt.Errorf("%s: %d bytes, more than an incident file holds", p, len(data))
	}
	in, err := incident.Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	t.records[p] = in
	return in, nil
}

// byID reads the incident id; an error when there is none.
func (t *tx) byID(id string) (*incident.Incident, string, error) {
	p, err := pathOf(t.dir, id)
	if err != nil {
		return nil, "", err
	}
	in, err := t.record(p)
	if err != nil {
		return nil, "", err
	}
	if in == nil {
		return nil, "", fmt.Errorf("incident %s: %w", id, ErrNotFound)
	}
	return in, p, nil
}

// put marks in, stored at p, as changed.
func (t *tx) put(p string, in *incident.Incident) {
	t.records[p] = in
	t.dirty[p] = true
}

// index reads the index, rebuilding it from the records when it is
// missing or unreadable.
func (t *tx) index() (*index, error) {
	if t.idx != nil {
		return t.idx, nil
	}
	if t.parent != nil {
		idx, err := t.parent.index()
		if err != nil {
			return nil, err
		}
		t.idx, t.idxShared = idx, true
		return t.idx, nil
	}
	if t.cache != nil {
		if idx := t.cache.get(t.head); idx != nil {
			t.idxFile, t.idx = idx, idx.clone()
			return t.idx, nil
		}
	}
	data, err := t.v.Read(indexPath)
	if err == nil {
		var idx index
		if json.Unmarshal(data, &idx) == nil && idx.Version == indexVersion {
			idx.init()
			t.idxFile, t.idx = &idx, idx.clone()
			return t.idx, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	idx, err := rebuildIndex(t.v, t.dir)
	if err != nil {
		return nil, err
	}
	t.idx, t.idxDirty = idx, true
	return idx, nil
}

func (t *tx) touchIndex() { t.idxDirty = true }

// outbox returns what GitHub is owed for incident id.
func (t *tx) outbox(id string) ([]string, error) {
	if keys, ok := t.owed[id]; ok {
		return keys, nil
	}
	if t.parent != nil {
		keys, err := t.parent.outbox(id)
		if err != nil {
			return nil, err
		}
		t.owed[id] = slices.Clone(keys)
		return t.owed[id], nil
	}
	data, err := t.v.Read(outboxPath(id))
	var keys []string
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(data, &keys); err != nil {
			return nil, fmt.Errorf("%s: %w", outboxPath(id), err)
		}
	}
	t.owed[id] = keys
	return keys, nil
}

// owe adds keys to what GitHub is owed for id, each once, in order.
func (t *tx) owe(id string, keys ...string) error {
	cur, err := t.outbox(id)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if !slices.Contains(cur, k) {
			cur = append(cur, k)
			t.oweDirty[id] = true
		}
	}
	t.owed[id] = cur
	return nil
}

// paid removes keys from what GitHub is owed for id.
func (t *tx) paid(id string, keys ...string) error {
	cur, err := t.outbox(id)
	if err != nil {
		return err
	}
	out := slices.DeleteFunc(slices.Clone(cur), func(k string) bool { return slices.Contains(keys, k) })
	if len(out) != len(cur) {
		t.owed[id] = out
		t.oweDirty[id] = true
	}
	return nil
}

func (t *tx) commit() (string, map[string][]byte, error) {
	return t.changes().files()
}

// changes is what a tx changed, by reference: the records it holds are
// not changed again once taken (a child replaces them); the index of a
// Recorder's log is, and the Recorder takes a copy.
type changes struct {
	records map[string]*incident.Incident
	idx     *index // nil when unchanged
	owed    map[string][]string
	msgs    []string
}

func (t *tx) changes() changes {
	c := changes{records: map[string]*incident.Incident{}, owed: map[string][]string{}, msgs: t.msgs}
	for p := range t.dirty {
		c.records[p] = t.records[p]
	}
	if t.idxDirty {
		c.idx = t.idx
	}
	for id := range t.oweDirty {
		c.owed[id] = t.owed[id]
	}
	return c
}

// files encodes the changes as the files and message of one commit.
func (c changes) files() (string, map[string][]byte, error) {
	files := map[string][]byte{}
	for _, p := range slices.Sorted(maps.Keys(c.records)) {
		data, err := incident.Marshal(c.records[p])
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", p, err)
		}
		files[p] = data
	}
	if c.idx != nil {
		data, err := json.MarshalIndent(c.idx, "", "  ")
		if err != nil {
			return "", nil, err
		}
		files[indexPath] = append(data, '\n')
	}
	for id, keys := range c.owed {
		if len(keys) == 0 {
			files[outboxPath(id)] = nil
			continue
		}
		data, err := json.Marshal(keys)
		if err != nil {
			return "", nil, err
		}
		files[outboxPath(id)] = append(data, '\n')
	}
	if len(files) == 0 {
		return "", nil, nil
	}
	msg := "firebreak: update incidents"
	switch n := len(c.msgs); {
	case n == 1:
		msg = c.msgs[0]
	case n > 1:
		msg = c.msgs[0] + "\n\n" + strings.Join(c.msgs[1:], "\n")
	}
	return msg, files, nil
}

func outboxPath(id string) string { return path.Join(outboxDir, id+".json") }

// pathOf returns the file of incident id: ids start with the UTC date the
// incident was detected, which is where incident.Path puts it.
func pathOf(dir, id string) (string, error) {
	if !incident.ValidID(id) || len(id) < 11 || id[4] != '-' || id[7] != '-' {
		return "", fmt.Errorf("incident %q: %w", id, ErrBadID)
	}
	return path.Join(dir, id[:4], id[5:7], id+".md"), nil
}

var (
	// ErrNotFound: no incident has the id.
	ErrNotFound = errors.New("no such incident")
	// ErrBadID: not an incident id (YYYY-MM-DD-playbook-hash).
	ErrBadID = errors.New("not an incident id")
)
