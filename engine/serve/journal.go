package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

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
}

// Entry is one accepted request.
type Entry struct {
	Source   string         `json:"source"`
	Received time.Time      `json:"received"`
	Alerts   []schema.Alert `json:"alerts"`
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
	return &Journal{dir: dir}, nil
}

// Append stores e durably and returns its id. Ids sort in append order.
func (j *Journal) Append(e *Entry) (string, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
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
	if err := syncDir(j.dir); err != nil {
		return "", fmt.Errorf("journal: %w", err)
	}
	return id, nil
}

// Read returns entry id.
func (j *Journal) Read(id string) (*Entry, error) {
	data, err := os.ReadFile(filepath.Join(j.dir, id+".json"))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("journal %s: %w", id, err)
	}
	return &e, nil
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
