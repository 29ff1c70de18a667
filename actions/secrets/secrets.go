// Package secrets resolves secrets by name at run time and redacts their
// values from anything that leaves the process: errors, logs, commits,
// messages. firebreak.cue names secrets; it never holds them.
package secrets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// EnvPrefix is the prefix of the environment variables that hold secrets:
// the secret GITHUB_TOKEN is FIREBREAK_SECRET_GITHUB_TOKEN.
const EnvPrefix = "FIREBREAK_SECRET_"

var validName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// ErrNotFound is returned for a secret that is neither in the environment
// nor in the secrets directory.
var ErrNotFound = errors.New("secret not set")

// Store resolves secrets from the environment, then from a directory of
// files named after the secrets (as Kubernetes mounts them). Every value
// it hands out is remembered for Redact. It is safe for concurrent use.
type Store struct {
	dir    string
	lookup func(string) (string, bool)

	mu     sync.Mutex
	values map[string]string // name -> value, of secrets handed out
	// known is values as Redact reads it: every log line and error goes
	// through Redact, so it takes no lock and allocates nothing when the
	// text holds no secret. Get, which is rare, builds a new one.
	known atomic.Pointer[[]secret]
}

type secret struct{ name, value string }

// New returns a Store reading the process environment and, when dir is
// not empty, files in dir.
func New(dir string) *Store {
	return &Store{dir: dir, lookup: os.LookupEnv, values: map[string]string{}}
}

// NewFromMap returns a Store over fixed values, for tests.
func NewFromMap(m map[string]string) *Store {
	return &Store{lookup: func(k string) (string, bool) {
		v, ok := m[strings.TrimPrefix(k, EnvPrefix)]
		return v, ok
	}, values: map[string]string{}}
}

// Get returns the value of the secret name. The error names the secret,
// never a value.
func (s *Store) Get(name string) (string, error) {
	if !validName.MatchString(name) {
		return "", fmt.Errorf("secret %q: invalid name", name)
	}
	v, ok := s.lookup(EnvPrefix + name)
	if !ok && s.dir != "" {
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		switch {
		case err == nil:
			v, ok = strings.TrimRight(string(data), "\r\n"), true
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("secret %s: %w", name, errors.Unwrap(err))
		}
	}
	if !ok || v == "" {
		return "", fmt.Errorf("secret %s: %w (set %s%s)", name, ErrNotFound, EnvPrefix, name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.values[name]; !ok || old != v {
		s.values[name] = v
		known := make([]secret, 0, len(s.values))
		for n, v := range s.values {
			known = append(known, secret{n, v})
		}
		// Longest first, so a secret that contains another is replaced whole.
		sort.Slice(known, func(i, j int) bool { return len(known[i].value) > len(known[j].value) })
		s.known.Store(&known)
	}
	return v, nil
}

// Redact replaces every secret value handed out so far with
// [redacted NAME]. Short values are redacted too: a leaked short secret is
// still a leak.
func (s *Store) Redact(text string) string {
	known := s.known.Load()
	if known == nil {
		return text
	}
	for _, k := range *known {
		text = strings.ReplaceAll(text, k.value, "[redacted "+k.name+"]")
	}
	return text
}

// RedactError returns err with secret values removed from its message, or
// nil. errors.Is still sees the original chain.
func (s *Store) RedactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := s.Redact(msg); red != msg {
		return &redacted{msg: red, err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }
