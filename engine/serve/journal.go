package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/firebreak-dev/firebreak/engine/alert"
	"github.com/firebreak-dev/firebreak/schema"
)

// Journal is where an accepted request's alerts are kept, on local disk,
// from the moment the server answers 2xx until the engine has recorded
// them in the repository. Each entry is one file, written to a temporary
// name, synced and renamed, the directory synced: after a crash an entry
// is either whole or absent, and an entry present is work to resume.
type Journal struct {
	dir string
	mu  sync.Mutex
	seq uint64

	// The directory syncs (see syncDir): begun and done count them.
	smu         sync.Mutex
	synced      *sync.Cond
	begun, done uint64
	syncing     bool
	syncErr     error // of the last one done
	syncFn      func(dir string) error
}

// Entry is one accepted request.
type Entry struct {
	Source   string         `json:"source"`
	Received time.Time      `json:"received"`
	Alerts   []schema.Alert `json:"alerts,omitempty"`
	// Body is the request's body as it came, which the journal keeps
	// instead of encoding Alerts again: Read decodes it as Source.
	Body []byte `json:"-"`
}

// header is the first line of an entry file; the body follows it. A
// file of one JSON line is an Entry with its alerts (as written before
// bodies were kept).
type header struct {
	Source     string    `json:"source"`
	Received   time.Time `json:"received"`
	Normalized bool      `json:"normalized,omitempty"` // the body is Alerts as JSON
}

// OpenJournal opens (creating) the journal in dir.
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	// Leftover temporary files are writes a crash cut short: their
	// requests were never answered 2xx.
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
	j := &Journal{dir: dir, syncFn: syncDir}
	j.synced = sync.NewCond(&j.smu)
	return j, nil
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
	data, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	data = append(append(data, '\n'), body...)
	j.mu.Lock()
	j.seq++
	id := fmt.Sprintf("%020d-%06d", time.Now().UnixNano(), j.seq%1_000_000)
	j.mu.Unlock()
	final := filepath.Join(j.dir, id+".json")
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("journal: %w", err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("journal: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("journal: %w", err)
	}
	if err := j.syncDir(); err != nil {
		return "", fmt.Errorf("journal: %w", err)
	}
	return id, nil
}

// syncDir makes the renames done before it durable. Appends that come
// while a sync of the directory runs share the next one: a storm's
// requests pay for one directory sync between them, not one each.
func (j *Journal) syncDir() error {
	j.smu.Lock()
	defer j.smu.Unlock()
	// Only a sync begun from now on covers the caller's rename.
	want := j.begun + 1
	for j.done < want {
		if j.syncing {
			j.synced.Wait()
			continue
		}
		j.syncing = true
		j.begun++
		n := j.begun
		j.smu.Unlock()
		err := j.syncFn(j.dir)
		j.smu.Lock()
		j.syncing, j.done, j.syncErr = false, n, err
		j.synced.Broadcast()
	}
	// The last sync done began after the rename: its outcome is the
	// caller's.
	return j.syncErr
}

// Read returns entry id.
func (j *Journal) Read(id string) (*Entry, error) {
	data, err := os.ReadFile(filepath.Join(j.dir, id+".json"))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
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

// Done removes entry id: its alerts are in the repository.
func (j *Journal) Done(id string) error {
	err := os.Remove(filepath.Join(j.dir, id+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Pending returns the ids of the entries not done, oldest first.
func (j *Journal) Pending() ([]string, error) {
	names, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var ids []string
	for _, n := range names {
		if name := n.Name(); strings.HasSuffix(name, ".json") {
			ids = append(ids, strings.TrimSuffix(name, ".json"))
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
