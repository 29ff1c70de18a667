package respond

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/ledger"
)

// Recorder keeps the incident log of a long-running engine in memory,
// ahead of the repository, and commits it behind, many changes per
// commit.
//
// Without it every state change of an incident is a commit of its own,
// made before the engine goes on: in an alert storm, hundreds of new
// incidents a second queued behind one another's commits and the last
// waited minutes for its first action. With a Recorder a change is
// applied to the log in memory at once — whether alerts open or join an
// incident is decided there, so the action can start — and one committer
// writes everything applied since its last commit as the next commit.
//
// What is applied and not yet committed is lost in a crash. The caller
// keeps what caused it (serve's journal entry) until Wait says it is
// committed: after a restart the same alerts are handled again, decide
// the same, and the idempotent actions change nothing twice.
//
// The Recorder expects to be the main writer of the incident log. When
// another writer moved the branch (a person pushing playbooks, a
// `firebreak approve` in a terminal), the changes being committed are
// applied again to the new head before they are committed, as Update
// does, and the log is rebuilt on it.
type Recorder struct {
	ledger *ledger.Ledger
	dir    string
	log    *slog.Logger
	wake   chan struct{}

	// Changes wait in queue; one caller at a time (the combiner) applies
	// all that wait under one taking of mu: see apply.
	qmu       sync.Mutex
	queue     []*applyReq
	combining bool

	mu      sync.Mutex
	cur     *tx        // the branch at cur.head plus every change in pending
	view    *headView  // what cur reads
	pending []*applied // applied, not committed, oldest first
	seq     uint64     // the last change applied
	done    uint64     // the last change committed
	notify  chan struct{}
	// lastApply and oldest (the first change of pending) decide when to
	// commit: see settle.
	lastApply, oldest time.Time
}

// A commit waits until no change was applied for commitQuiet, or until the
// oldest change waiting is commitMaxDelay old. Encoding and writing a
// commit of a storm takes seconds of CPU, and taken while alerts pour in
// it starved the work they wait on; what waits is safe in the caller's
// journal meanwhile.
const (
	commitQuiet    = 25 * time.Millisecond
	commitMaxDelay = 2 * time.Second
)

// applied is one change in the log. Run again on another head, it must
// not write the caller's variables: its first run has returned to the
// caller, who may be reading them.
type applied struct {
	seq     uint64
	again   func(t *tx) error
	dropped atomic.Bool // it failed when applied again
}

// NewRecorder opens the incident log (dir is the incidents directory) of
// the ledger's branch. Run must run for anything to be committed.
func NewRecorder(ctx context.Context, l *ledger.Ledger, dir string, log *slog.Logger) (*Recorder, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{ledger: l, dir: dir, log: log, wake: make(chan struct{}, 1), notify: make(chan struct{})}
	v, err := r.headView(ctx)
	if err != nil {
		return nil, err
	}
	r.view, r.cur = v, newTx(v, dir)
	return r, nil
}

// headView reads the branch as it is now.
func (r *Recorder) headView(ctx context.Context) (*headView, error) {
	v := &headView{ctx: context.WithoutCancel(ctx), l: r.ledger, known: map[string]bool{}}
	_, _, err := r.ledger.Update(ctx, func(lv ledger.View) (string, map[string][]byte, error) {
		v.head = lv.Head()
		clear(v.known)
		for _, dir := range []string{r.dir, outboxDir} {
			files, err := lv.List(dir)
			if err != nil {
				return "", nil, err
			}
			for _, f := range files {
				v.known[f] = true
			}
		}
		if _, err := lv.Read(indexPath); err == nil {
			v.known[indexPath] = true
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", nil, err
		}
		return "", nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("incident log: %w", err)
	}
	return v, nil
}

// headView is the View of the log outside any Update. It knows which of
// the log's files exist, so that looking for one that does not — every new
// incident's path, its outbox — reads nothing and does not wait for the
// Ledger, which a commit may be holding.
type headView struct {
	ctx   context.Context
	l     *ledger.Ledger
	head  string
	known map[string]bool
}

func (v *headView) Read(p string) ([]byte, error) {
	if !v.known[p] {
		return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	return v.l.Read(v.ctx, p)
}

func (v *headView) List(dir string) ([]string, error) { return v.l.List(v.ctx, dir) }

func (v *headView) Head() string { return v.head }

// applyReq is a change waiting to be applied, and then its result.
type applyReq struct {
	first, again func(t *tx) error
	seq          uint64
	err          error
	done         chan struct{}
}

// apply runs first on the log and keeps what it changed; on an error it
// changes nothing. again is what runs when the change must be applied
// once more on another head. It returns the change's sequence number, 0
// when it changed nothing.
//
// In a storm thousands of runs and decisions change the log at once.
// Taking mu for each made a convoy: a contended mutex hands itself to the
// next waiter, which first has to get a CPU, so the log stood still
// between changes. Instead the change is queued; a caller that finds no
// one applying becomes the combiner and applies everything queued, in
// order, under one taking of mu, until the queue is empty, and the others
// just wait for their result. (A combiner that handed its role on after
// each batch, so that its own caller goes on sooner, measured slower in a
// storm: each hand-off waits for a CPU.)
func (r *Recorder) apply(first, again func(t *tx) error) (uint64, error) {
	req := r.submit(first, again)
	return r.await(req)
}

// submit queues a change; await applies it (see apply). Changes submitted
// one after another are applied in that order, and a caller with several
// changes submits them all before it awaits the first: one wait for all.
func (r *Recorder) submit(first, again func(t *tx) error) *applyReq {
	req := &applyReq{first: first, again: again, done: make(chan struct{})}
	r.qmu.Lock()
	r.queue = append(r.queue, req)
	r.qmu.Unlock()
	return req
}

// await returns the result of req once it is applied, applying it, and
// whatever else waits, when no one else is.
func (r *Recorder) await(req *applyReq) (uint64, error) {
	r.qmu.Lock()
	if r.combining {
		r.qmu.Unlock()
		// The combiner drains the queue until it finds it empty, and
		// req was queued before it could.
		<-req.done
		return req.seq, req.err
	}
	r.combining = true
	r.qmu.Unlock()
	for {
		r.qmu.Lock()
		batch := r.queue
		r.queue = nil
		if len(batch) == 0 {
			r.combining = false
			r.qmu.Unlock()
			break
		}
		r.qmu.Unlock()
		r.mu.Lock()
		for _, q := range batch {
			q.seq, q.err = r.applyLocked(q.first, q.again)
		}
		r.mu.Unlock()
		for _, q := range batch {
			close(q.done)
		}
	}
	<-req.done // applied by this combiner, or by one before it
	return req.seq, req.err
}

// applyLocked is apply with mu held.
func (r *Recorder) applyLocked(first, again func(t *tx) error) (uint64, error) {
	c := r.cur.child()
	if err := first(c); err != nil {
		if c.idxShared {
			// The change may have left the shared index half changed.
			r.log.Warn("a failed change took the incident index; rebuilding the log", "error", err)
			r.cur = r.replay(r.view, r.pending)
		}
		return 0, err
	}
	if !c.changed() {
		return 0, nil
	}
	r.cur.merge(c)
	r.lastApply = time.Now()
	if len(r.pending) == 0 {
		r.oldest = r.lastApply
	}
	r.seq++
	r.pending = append(r.pending, &applied{seq: r.seq, again: again})
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return r.seq, nil
}

// Applied returns the sequence number of the last change applied.
func (r *Recorder) Applied() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Wait returns once change seq, and every change before it, is committed.
func (r *Recorder) Wait(ctx context.Context, seq uint64) error {
	for {
		r.mu.Lock()
		done, ch := r.done, r.notify
		r.mu.Unlock()
		if done >= seq {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// get returns a copy of the record at p as the log holds it.
func (r *Recorder) get(p string) (*incident.Incident, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in, err := r.cur.record(p)
	if in == nil || err != nil {
		return nil, err
	}
	return in.Clone(), nil
}

// paths lists the files under dir as the log has them: those committed
// and those its changes added since.
func (r *Recorder) paths(ctx context.Context, dir string) ([]string, error) {
	files, err := r.ledger.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	for t := r.cur; t != nil; t = t.parent {
		for p, in := range t.records {
			if in != nil && strings.HasPrefix(p, dir+"/") {
				files = append(files, p)
			}
		}
	}
	r.mu.Unlock()
	slices.Sort(files)
	return slices.Compact(files), nil
}

// Run commits what is applied until ctx ends. A commit that fails is
// tried again, with a growing pause: nothing applied is dropped.
func (r *Recorder) Run(ctx context.Context) {
	failures := 0
	for {
		if r.idle() {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			case <-time.After(refreshEvery):
				r.refresh(ctx)
			}
			continue
		}
		if !r.settle(ctx) {
			return
		}
		if err := r.commit(ctx); err != nil {
			failures++
			wait := min(time.Duration(failures)*100*time.Millisecond, 10*time.Second)
			r.log.Warn("incident log not committed; trying again", "in", wait, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		failures = 0
	}
}

// settle waits until the changes pending should be committed (see
// commitQuiet); false when ctx ended first.
func (r *Recorder) settle(ctx context.Context) bool {
	for {
		r.mu.Lock()
		now := time.Now()
		wait := min(commitQuiet-now.Sub(r.lastApply), commitMaxDelay-now.Sub(r.oldest))
		r.mu.Unlock()
		if wait <= 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

// refreshEvery is how often an idle Recorder looks for commits of other
// writers (`firebreak resolve` in a terminal), so that the next alert is
// not decided on a log older than that.
var refreshEvery = 10 * time.Second

// refresh starts the log afresh from the branch when another writer moved
// it and nothing is waiting to be committed.
func (r *Recorder) refresh(ctx context.Context) {
	var head string
	if _, _, err := r.ledger.Update(ctx, func(v ledger.View) (string, map[string][]byte, error) {
		head = v.Head()
		return "", nil, nil
	}); err != nil || head == r.base() {
		return
	}
	v, err := r.headView(ctx)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		r.view, r.cur = v, newTx(v, r.dir)
	}
}

func (r *Recorder) base() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.view.head
}

func (r *Recorder) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending) == 0
}

// commit commits every change applied so far as one commit.
func (r *Recorder) commit(ctx context.Context) error {
	r.mu.Lock()
	batch := r.pending
	base, seq := r.cur.head, r.seq
	taken := r.cur.changes()
	if taken.idx != nil {
		taken.idx = taken.idx.clone() // changes go on changing the log's
	}
	r.cur.reset()
	r.mu.Unlock()

	// Encoding is the costly part; the records taken are never changed in
	// place, so changes go on being applied meanwhile.
	msg, files, err := taken.files()
	if err != nil && r.dropUnwritable(taken) {
		msg, files, err = taken.files()
	}
	if err == nil && len(batch) > 1 {
		msg = fmt.Sprintf("firebreak: %d changes to incidents\n\n%s", len(batch), strings.Join(taken.msgs, "\n"))
	}
	moved := false
	var commit string
	if err == nil {
		commit, _, err = r.ledger.Update(ctx, func(v ledger.View) (string, map[string][]byte, error) {
			if v.Head() == base {
				return msg, files, nil
			}
			// Someone else committed: apply the batch again on their head.
			moved = true
			return r.replay(v, batch).commit()
		})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.restore(taken)
		return err
	}
	r.pending = r.pending[len(batch):]
	r.done = seq
	close(r.notify)
	r.notify = make(chan struct{})
	if !moved {
		r.cur.head, r.view.head = commit, commit
		for p, data := range files {
			r.view.known[p] = data != nil
		}
		r.evict()
		return nil
	}
	// Rebuild the log on the new head: the changes applied since the
	// batch was taken run again on it.
	v, err := r.headView(ctx)
	if err != nil {
		// The commit landed. cur stays on the old head; the next commit
		// finds the branch moved and applies its changes again.
		r.log.Warn("incident log not rebuilt on the moved branch yet", "error", err)
		return nil
	}
	r.view, r.cur = v, r.replay(v, r.pending)
	return nil
}

// replay applies changes again to a new log on v, leaving out the ones
// that fail (logged); when one fails after taking the shared index, it
// starts over without it.
func (r *Recorder) replay(v ledger.View, changes []*applied) *tx {
	for {
		t := newTx(v, r.dir)
		clean := true
		for _, a := range changes {
			if a.dropped.Load() {
				continue
			}
			c := t.child()
			if err := a.again(c); err != nil {
				r.log.Warn("a change does not apply on the branch as it is now; dropped", "error", err)
				a.dropped.Store(true)
				if c.idxShared {
					clean = false
					break
				}
				continue
			}
			t.merge(c)
		}
		if clean {
			return t
		}
	}
}

// restore marks the changes of a commit that failed as changed again, under
// what was applied since.
func (r *Recorder) restore(c changes) {
	t := r.cur
	for p, in := range c.records {
		if !t.dirty[p] {
			t.records[p], t.dirty[p] = in, true
		}
	}
	if c.idx != nil {
		t.idxDirty = true // t.idx is the newer: changes go on changing it
	}
	for id, keys := range c.owed {
		if !t.oweDirty[id] {
			t.owed[id], t.oweDirty[id] = keys, true
		}
	}
	t.msgs = append(c.msgs, t.msgs...)
}

// evict forgets committed records of resolved incidents: the log keeps
// what the next alerts are likely to touch, not the whole history.
func (r *Recorder) evict() {
	t := r.cur
	for p, in := range t.records {
		if !t.dirty[p] && in.Status == incident.Resolved {
			delete(t.records, p)
		}
	}
	for id, keys := range t.owed {
		if !t.oweDirty[id] && len(keys) == 0 {
			delete(t.owed, id)
		}
	}
}

// dropUnwritable leaves out of c the records that cannot be encoded, which
// the engine never makes; kept, they would hold up every later commit.
func (r *Recorder) dropUnwritable(c changes) bool {
	dropped := false
	for p, in := range c.records {
		if _, err := incident.Marshal(in); err != nil {
			r.log.Error("incident record cannot be written; left out of the commit", "path", p, "error", err)
			delete(c.records, p)
			dropped = true
		}
	}
	return dropped
}
