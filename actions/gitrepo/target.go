package gitrepo

import (
	"fmt"
	"strings"

	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/schema"
)

// RemoteOf returns the Remote of the git target name of cfg, its token
// read from sec by the secret's name.
func RemoteOf(cfg *schema.Config, sec *secrets.Store, name string) (Remote, error) {
	t, ok := cfg.Targets[name]
	if !ok || t.Git == nil {
		return Remote{}, fmt.Errorf("target %q is not a git target declared in firebreak.cue", name)
	}
	r := Remote{URL: t.Git.URL, Branch: t.Git.Branch, Username: t.Git.Username}
	if t.Git.Token != nil {
		if sec == nil {
			return Remote{}, fmt.Errorf("target %q: no secrets store for token %s", name, t.Git.Token.Secret)
		}
		tok, err := sec.Get(t.Git.Token.Secret)
		if err != nil {
			return Remote{}, fmt.Errorf("target %q: %w", name, err)
		}
		r.Token = tok
	}
	return r, nil
}

// Redactor returns a function that removes from text the value of every
// secret firebreak.cue names, so a secret fed through a parameter cannot
// come out in a refusal, a summary or a commit message. A secret that is not
// set has nothing to redact.
func Redactor(cfg *schema.Config, sec *secrets.Store) func(string) string {
	if sec == nil {
		return func(s string) string { return s }
	}
	for _, name := range cfg.SecretNames() {
		_, _ = sec.Get(name)
	}
	return sec.Redact
}

// Stamp names the step that made a commit. It goes into the commit message
// as trailers, so a re-run of the step finds its own commit on the remote
// and does nothing.
type Stamp struct {
	Incident string
	Playbook string
	Step     string
}

// Trailer keys of a Stamp.
const (
	TrailerIncident = "Firebreak-Incident"
	TrailerPlaybook = "Firebreak-Playbook"
	TrailerStep     = "Firebreak-Step"
)

// stampSearch is how many of the newest commits touching a path Stamped
// looks through.
const stampSearch = 50

// Message returns a commit message: "firebreak INCIDENT (PLAYBOOK): subject",
// the body paragraphs, then the stamp's trailers.
func (s Stamp) Message(subject string, body ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "firebreak %s (%s): %s\n", oneLine(s.Incident), oneLine(s.Playbook), oneLine(subject))
	for _, p := range body {
		if p = strings.TrimSpace(p); p != "" {
			b.WriteString("\n" + p + "\n")
		}
	}
	fmt.Fprintf(&b, "\n%s: %s\n%s: %s\n%s: %s\n",
		TrailerIncident, oneLine(s.Incident), TrailerPlaybook, oneLine(s.Playbook), TrailerStep, oneLine(s.Step))
	return b.String()
}

// Made reports whether c carries the stamp.
func (s Stamp) Made(c Commit) bool {
	return s.Incident != "" && c.Trailer(TrailerIncident) == oneLine(s.Incident) && c.Trailer(TrailerStep) == oneLine(s.Step)
}

// Stamped returns the newest of the recent commits touching path that
// carries stamp s.
func (tx *Tx) Stamped(path string, s Stamp) (Commit, bool, error) {
	cs, err := tx.Commits(path, stampSearch)
	if err != nil {
		return Commit{}, false, err
	}
	for _, c := range cs {
		if s.Made(c) {
			return c, true, nil
		}
	}
	return Commit{}, false, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
