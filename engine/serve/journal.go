package serve

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/firebreak-dev/firebreak/engine/alert"
	"github.com/firebreak-dev/firebreak/schema"
)

// Journal is where an accepted request's alerts are kept, on local disk,
// from the moment the server answers 2xx until the engine has recorded
// them in the repository.
//
// It is a write-ahead log: entries are appended to a segment file
// (NNN.wal) and made durable by fdatasync, one for all the appends that
// arrive while the one before runs. A storm's requests share a few syncs
// of one file instead of paying a file create, two fsyncs, a rename and
// an unlink each — that was a quarter of the server's CPU in a storm. An
// entry done gets a done record, not synced: the next sync carries it,
// and one lost in a crash only replays the entry, which joins the
// incident it is already in. A segment is removed once it and every older
// one hold no entry pending. A crash mid-write leaves a torn last record,
// whose request was never answered: reading stops there.
//
// Entries an earlier version left as one file each (NNN.json) are read,
// listed and removed as before.
type Journal struct {
	dir string
	// syncFile and syncDir are fdatasync and a directory sync; tests make
	// them fail.
	syncFile func(*os.File) error
	syncDir  func(dir string) error
	segMax   int64 // a segment's size past which appends go to a new one

	mu      sync.Mutex
	active  *segment   // appended to; nil until the first append
	segs    []*segment // oldest first, the active one last
	pending map[string]*segment
	lastSeq uint64
	// Segments rotated out whose last records wait for a sync, and
	// whether a segment was created since the last sync (its directory
	// entry waits for one too).
	unsynced []*os.File
	created  bool
	damaged  []string // segments read at open with a damaged record

	// spare is a zero-filled file, synced, that becomes the next segment
	// (Preallocate): appends then write over blocks the file has, so
	// fdatasync has only their data to write, no size or block allocation
	// to commit to the filesystem's journal, which other files' changes
	// share. As databases keep their log files.
	spare              *os.File
	keepSpare, closing bool
	preparing          bool
	prep               sync.WaitGroup

	// The syncs: the running one's leader takes next, the round that
	// every append arriving meanwhile waits for.
	smu     sync.Mutex
	syncing bool
	next    *syncRound
	rounds  int                 // syncs done, for tests
	synced  func(time.Duration) // told how long each sync took
}

// segment is one file of the log.
type segment struct {
	seq     uint64
	f       *os.File // open while it is the active one
	size    int64
	pending int  // entries not done
	full    bool // a write or a sync failed: appends go to a new segment
}

type syncRound struct {
	done chan struct{}
	err  error
}

const (
	segmentMax   = 8 << 20
	recordHeader = 8 // length, CRC-32C
	kindEntry    = 'E'
	kindDone     = 'D'
)

// recordMax is the largest record; a length beyond it is damage. A
// variable for tests.
var recordMax = 256 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Entry is one accepted request.
type Entry struct {
	Source   string         `json:"source"`
	Received time.Time      `json:"received"`
	Alerts   []schema.Alert `json:"alerts,omitempty"`
	// Body is the request's body as it came, which the journal keeps
	// instead of encoding Alerts again: Read decodes it as Source.
	Body []byte `json:"-"`
}

// header is the first line of an entry; the body follows it. An entry of
// one JSON line is an Entry with its alerts (as written before bodies
// were kept).
type header struct {
	Source     string    `json:"source"`
	Received   time.Time `json:"received"`
	Normalized bool      `json:"normalized,omitempty"` // the body is Alerts as JSON
}

// OpenJournal opens (creating) the journal in dir and reads what an
// earlier process left pending. It writes nothing until the first
// Append or Done.
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	// Leftover temporary files are writes an earlier version's crash cut
	// short: their requests were never answered 2xx.
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
	j := &Journal{dir: dir, pending: map[string]*segment{}, syncFile: fdatasync, syncDir: syncDir, segMax: segmentMax}
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		seq, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), ".wal"), 10, 64)
		if err != nil {
			continue
		}
		if err := j.load(name, seq); err != nil {
			return nil, err
		}
		j.lastSeq = max(j.lastSeq, seq)
	}
	return j, nil
}

// load reads segment file name into the pending entries.
func (j *Journal) load(name string, seq uint64) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	seg := &segment{seq: seq, size: int64(len(data))}
	j.segs = append(j.segs, seg)
	for off := 0; off < len(data); {
		kind, payload, n, err := record(data[off:])
		if err != nil {
			if !torn(data[off:]) {
				// Not what a crash leaves: a copy stays for a person,
				// and the entries before the damage are handled.
				copyName := name + ".damaged"
				if werr := os.WriteFile(copyName, data, 0o600); werr != nil {
					copyName = "not kept: " + werr.Error()
				}
				j.damaged = append(j.damaged, fmt.Sprintf("%s: offset %d: %v (%d bytes not read; copy %s)", name, off, err, len(data)-off, copyName))
			}
			break
		}
		switch kind {
		case kindEntry:
			j.pending[entryID(seq, int64(off))] = seg
			seg.pending++
		case kindDone:
			if s, ok := j.pending[string(payload)]; ok {
				delete(j.pending, string(payload))
				s.pending--
			}
		}
		off += n
	}
	return nil
}

// record decodes the record at the start of data: its kind, payload and
// length.
func record(data []byte) (kind byte, payload []byte, n int, err error) {
	if len(data) < recordHeader+1 {
		return 0, nil, 0, errors.New("short record")
	}
	size := binary.LittleEndian.Uint32(data)
	if size == 0 || int64(size) > int64(recordMax) || int(size) > len(data)-recordHeader {
		return 0, nil, 0, fmt.Errorf("record length %d past the end", size)
	}
	body := data[recordHeader : recordHeader+int(size)]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[4:]) {
		return 0, nil, 0, errors.New("record checksum mismatch")
	}
	if body[0] != kindEntry && body[0] != kindDone {
		return 0, nil, 0, fmt.Errorf("record of unknown kind %q", body[0])
	}
	return body[0], body[1:], recordHeader + int(size), nil
}

// torn reports whether a bad record at the start of data is what a crash
// during an append leaves: the last record, cut short or not all on disk,
// with nothing but zeros after it (where the file grew, or was
// preallocated, and nothing else was written).
func torn(data []byte) bool {
	if len(data) < recordHeader {
		return true
	}
	end := len(data)
	if size := int64(binary.LittleEndian.Uint32(data)); size <= int64(len(data)-recordHeader) {
		end = recordHeader + int(size)
	}
	return len(bytes.Trim(data[end:], "\x00")) == 0
}

func appendRecord(buf []byte, kind byte, parts ...[]byte) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeader)...)
	buf = append(buf, kind)
	for _, p := range parts {
		buf = append(buf, p...)
	}
	body := buf[start+recordHeader:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(body, castagnoli))
	return buf
}

// entryID names the entry at offset off of segment seq. Ids sort in
// append order, after those of an earlier version's files.
func entryID(seq uint64, off int64) string { return fmt.Sprintf("%020d-%012d", seq, off) }

// parseID splits an id into its segment and offset; legacy is true for
// an earlier version's one-file entry.
func parseID(id string) (seq uint64, off int64, legacy bool, err error) {
	a, b, ok := strings.Cut(id, "-")
	if ok && len(a) == 20 && len(b) == 6 {
		return 0, 0, true, nil
	}
	if !ok || len(a) != 20 || len(b) != 12 {
		return 0, 0, false, fmt.Errorf("journal: no entry %q", id)
	}
	seq, err1 := strconv.ParseUint(a, 10, 64)
	o, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false, fmt.Errorf("journal: no entry %q", id)
	}
	return seq, o, false, nil
}

func (j *Journal) segmentPath(seq uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%020d.wal", seq))
}

// Append stores e durably and returns its id. Ids sort in append order.
func (j *Journal) Append(e *Entry) (string, error) {
	h := header{Source: e.Source, Received: e.Received}
	body := e.Body
	if body == nil {
		h.Normalized = true
		var err error
		if body, err = json.Marshal(e.Alerts); err != nil {
			return "", err
		}
	}
	line, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	if n := 1 + len(line) + 1 + len(body); n > recordMax {
		return "", fmt.Errorf("journal: an entry of %d bytes is more than the %d a record holds", n, recordMax)
	}
	rec := appendRecord(make([]byte, 0, recordHeader+1+len(line)+1+len(body)), kindEntry, line, []byte{'\n'}, body)

	j.mu.Lock()
	seg, off, err := j.writeLocked(rec)
	if err != nil {
		j.mu.Unlock()
		return "", fmt.Errorf("journal: %w", err)
	}
	id := entryID(seg.seq, off)
	// Pending before the sync: a segment with an entry on its way is
	// not removed under it.
	j.pending[id] = seg
	seg.pending++
	j.mu.Unlock()

	if err := j.durable(); err != nil {
		j.mu.Lock()
		delete(j.pending, id)
		seg.pending--
		j.mu.Unlock()
		return "", fmt.Errorf("journal: %w", err)
	}
	return id, nil
}

// writeLocked appends rec to the active segment, starting a new one when
// there is none or it is full, and returns the segment and the record's
// offset in it.
func (j *Journal) writeLocked(rec []byte) (*segment, int64, error) {
	if j.active == nil || j.active.full || j.active.size >= j.segMax {
		if err := j.rotateLocked(); err != nil {
			return nil, 0, err
		}
	}
	seg := j.active
	off := seg.size
	n, err := seg.f.WriteAt(rec, off)
	seg.size += int64(n)
	if err != nil {
		// Whatever part was written is a torn record: nothing more goes
		// after it.
		seg.full = true
		return nil, 0, err
	}
	return seg, off, nil
}

// rotateLocked starts a new active segment: the spare when one is ready,
// else a new, empty file.
func (j *Journal) rotateLocked() error {
	seq := max(uint64(time.Now().UnixNano()), j.lastSeq+1)
	var f *os.File
	if spare := j.spare; spare != nil {
		j.spare = nil
		spare.Close()
		// Opened again by its new name, which errors then give.
		if os.Rename(spare.Name(), j.segmentPath(seq)) == nil {
			f, _ = os.OpenFile(j.segmentPath(seq), os.O_WRONLY, 0)
		}
	}
	if f == nil {
		var err error
		if f, err = os.OpenFile(j.segmentPath(seq), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
			return err
		}
	}
	defer j.prepareLocked()
	if old := j.active; old != nil {
		// Its last records may wait for a sync; the sync closes it.
		j.unsynced = append(j.unsynced, old.f)
		old.f = nil
	}
	j.lastSeq = seq
	j.active = &segment{seq: seq, f: f}
	j.segs = append(j.segs, j.active)
	j.created = true
	j.collectLocked()
	return nil
}

// ObserveSyncs has f told how long each sync takes.
func (j *Journal) ObserveSyncs(f func(time.Duration)) {
	j.smu.Lock()
	defer j.smu.Unlock()
	j.synced = f
}

// Preallocate has the journal keep a zero-filled segment ready for its
// next one, prepared in the background; the first is prepared now. A
// server calls it; a process that only reads the journal does not.
func (j *Journal) Preallocate() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.keepSpare = true
	j.prepareLocked()
}

const spareName = "spare.wal.tmp" // removed by OpenJournal if left

func (j *Journal) prepareLocked() {
	if !j.keepSpare || j.closing || j.spare != nil || j.preparing {
		return
	}
	j.preparing = true
	size := j.segMax
	j.prep.Go(func() {
		f, err := zeroFile(filepath.Join(j.dir, spareName), size)
		j.mu.Lock()
		defer j.mu.Unlock()
		j.preparing = false
		switch {
		case err != nil:
			// The next segment is a new, growing file, as without.
		case j.closing:
			f.Close()
			os.Remove(f.Name())
		default:
			j.spare = f
		}
	})
}

// zeroFile writes a file of size zero bytes and syncs it whole, size and
// blocks.
func zeroFile(name string, size int64) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size && err == nil; off += int64(len(zeros)) {
		_, err = f.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(name)
		return nil, err
	}
	return f, nil
}

// durable returns once everything written before the call is on disk.
// The first caller leads a sync; those arriving while it runs wait for
// the next round, which the leader runs too: one fdatasync for them all.
func (j *Journal) durable() error {
	j.smu.Lock()
	r := j.next
	if r == nil {
		r = &syncRound{done: make(chan struct{})}
		j.next = r
	}
	lead := !j.syncing
	j.syncing = true
	j.smu.Unlock()
	if lead {
		j.lead()
	}
	<-r.done
	return r.err
}

// lead runs rounds until none is waiting. A leader that handed the next
// round to another goroutine would make its waiters wait for that one to
// be scheduled too, which under load is the longer wait.
func (j *Journal) lead() {
	j.smu.Lock()
	for j.next != nil {
		r := j.next
		j.next = nil
		synced := j.synced
		j.smu.Unlock()
		start := time.Now()
		r.err = j.sync()
		if synced != nil {
			synced(time.Since(start))
		}
		j.smu.Lock()
		j.rounds++
		close(r.done)
	}
	j.syncing = false
	j.smu.Unlock()
}

// sync makes every record written so far durable: the segments rotated
// out since the last sync, the active one, and the directory when a
// segment was created.
func (j *Journal) sync() error {
	j.mu.Lock()
	old := j.unsynced
	j.unsynced = nil
	var active *os.File
	if j.active != nil {
		active = j.active.f
	}
	created := j.created
	j.created = false
	j.mu.Unlock()

	var errs []error
	for _, f := range old {
		errs = append(errs, j.syncFile(f))
		f.Close()
	}
	if active != nil {
		errs = append(errs, j.syncFile(active))
	}
	if created {
		errs = append(errs, j.syncDir(j.dir))
	}
	err := errors.Join(errs...)
	if err != nil {
		// After a failed sync the file's state is unknown: the waiters
		// of this round fail (their senders send again), later appends go
		// to a new segment, and its creation syncs the directory again.
		j.mu.Lock()
		if j.active != nil {
			j.active.full = true
		}
		j.mu.Unlock()
	}
	return err
}

// Read returns entry id.
func (j *Journal) Read(id string) (*Entry, error) {
	seq, off, legacy, err := parseID(id)
	if err != nil {
		return nil, err
	}
	if legacy {
		data, err := os.ReadFile(filepath.Join(j.dir, id+".json"))
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		return decodeEntry(id, data)
	}
	f, err := os.Open(j.segmentPath(seq))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	var hdr [recordHeader]byte
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return nil, fmt.Errorf("journal %s: %w", id, err)
	}
	size := binary.LittleEndian.Uint32(hdr[:])
	if size == 0 || int64(size) > int64(recordMax) {
		return nil, fmt.Errorf("journal %s: record length %d", id, size)
	}
	data := make([]byte, recordHeader+int(size))
	if _, err := f.ReadAt(data, off); err != nil {
		return nil, fmt.Errorf("journal %s: %w", id, err)
	}
	kind, payload, _, err := record(data)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", id, err)
	}
	if kind != kindEntry {
		return nil, fmt.Errorf("journal: no entry %q", id)
	}
	return decodeEntry(id, payload)
}

// decodeEntry decodes an entry: a header line and the body, or (as an
// earlier version wrote) one JSON object.
func decodeEntry(id string, data []byte) (*Entry, error) {
	first, body, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		var e Entry
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("journal %s: %w", id, err)
		}
		return &e, nil
	}
	var h header
	if err := json.Unmarshal(first, &h); err != nil {
		return nil, fmt.Errorf("journal %s: header: %w", id, err)
	}
	e := &Entry{Source: h.Source, Received: h.Received}
	if h.Normalized {
		if err := json.Unmarshal(body, &e.Alerts); err != nil {
			return nil, fmt.Errorf("journal %s: %w", id, err)
		}
		return e, nil
	}
	in, err := alert.DecodeSource(h.Source, "journal "+id, body)
	if err != nil {
		return nil, err
	}
	e.Alerts = in.Alerts
	stampReceived(e.Alerts, e.Received)
	return e, nil
}

// stampReceived sets the receipt time of alerts that do not carry one.
func stampReceived(alerts []schema.Alert, at time.Time) {
	for i := range alerts {
		if alerts[i].ReceivedAt.IsZero() {
			alerts[i].ReceivedAt = at
		}
	}
}

// Done marks entry id handled: its alerts are in the repository. It is
// not synced (see Journal).
func (j *Journal) Done(id string) error {
	_, _, legacy, err := parseID(id)
	if err != nil {
		return err
	}
	if legacy {
		err := os.Remove(filepath.Join(j.dir, id+".json"))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	seg, ok := j.pending[id]
	if !ok {
		return nil
	}
	delete(j.pending, id)
	seg.pending--
	j.collectLocked()
	if slices.Contains(j.segs, seg) {
		// The entry's segment stays: a done record says it is done.
		if _, _, err := j.writeLocked(appendRecord(nil, kindDone, []byte(id))); err != nil {
			return fmt.Errorf("journal: entry %s done, but not marked so (it is handled again after a restart): %w", id, err)
		}
	}
	return nil
}

// collectLocked removes the segments, oldest first, that hold nothing
// pending, up to the active one. Oldest first: a done record may be in a
// later segment than its entry, so a segment goes only with every one
// before it.
func (j *Journal) collectLocked() {
	for len(j.segs) > 0 {
		s := j.segs[0]
		if s == j.active || s.pending > 0 {
			break
		}
		os.Remove(j.segmentPath(s.seq))
		j.segs = j.segs[1:]
	}
}

// Pending returns the ids of the entries not done, oldest first.
func (j *Journal) Pending() ([]string, error) {
	names, err := filepath.Glob(filepath.Join(j.dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var ids []string
	for _, n := range names {
		ids = append(ids, strings.TrimSuffix(filepath.Base(n), ".json"))
	}
	j.mu.Lock()
	ids = slices.AppendSeq(ids, maps.Keys(j.pending))
	damaged := slices.Clone(j.damaged)
	j.mu.Unlock()
	slices.Sort(ids)
	if len(damaged) > 0 {
		return ids, fmt.Errorf("journal damaged: %s", strings.Join(damaged, "; "))
	}
	return ids, nil
}

// Close syncs and closes the journal; with nothing pending, its segments
// are removed.
func (j *Journal) Close() error {
	err := j.durable()
	j.mu.Lock()
	j.closing = true
	if j.active != nil {
		err = errors.Join(err, j.active.f.Close())
		j.active.f = nil
		j.active = nil
	}
	j.collectLocked()
	j.mu.Unlock()
	j.prep.Wait()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.spare != nil {
		j.spare.Close()
		os.Remove(j.spare.Name())
		j.spare = nil
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
