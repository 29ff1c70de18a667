// Package respond is the incident lifecycle: alerts in, incidents out.
//
// A firing alert group that matches a playbook opens an incident; the
// playbook's steps run through the sandbox, each one recorded before it
// starts and when it finishes; the incident is mitigated when its steps
// succeed (or a verify step held), and resolved when its alerts resolve or
// someone says so. Alerts of the same playbook and group key join the open
// incident and run nothing again.
//
// The incident records in the playbook repository are the engine's only
// memory. Every state change is one commit, made by a read-modify-write
// that runs again on the new head when another writer got there first
// (ledger.Update), so two engines handling the same alert make one
// incident. After a crash, Resume plans the unfinished steps of an
// incident again; the actions are idempotent, so a step that ran but was
// not recorded finished is not applied twice.
//
// GitHub (the issue, a comment per finished step, closing it, the
// postmortem pull request) is a mirror, fed from a durable outbox written
// in the same commits: GitHub being down never holds up an incident.
package respond

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/firebreak-dev/firebreak/engine/github"
	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/ledger"
	"github.com/firebreak-dev/firebreak/engine/plan"
	"github.com/firebreak-dev/firebreak/engine/render"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/schema"
)

// Engine handles alerts for one playbook repository.
type Engine struct {
	Repo    *repo.Repo
	Planner *plan.Planner
	// Ledger is the playbook repository the records are committed to.
	Ledger *ledger.Ledger
	Runner *run.Runner
	// GitHub mirrors incidents as issues; nil keeps them in Git only.
	GitHub *github.Client
	// Branch is the playbook repository's branch, which postmortem pull
	// requests merge into; "main" when empty.
	Branch string
	// PlaybooksCommit is the commit the playbooks were loaded from.
	PlaybooksCommit string
	// Recorder, when set, keeps the incident log in memory and commits it
	// behind (a server); without it every change is a commit before the
	// engine goes on (the CLI).
	Recorder *Recorder
	// RunSlots bounds the runs of one playbook at once; with it Handle
	// runs the steps of a batch's incidents concurrently, without it one
	// after another.
	RunSlots *RunSlots
	Log      *slog.Logger
	Now      func() time.Time

	idxCache indexCache
}

// Outcome is what became of one alert group.
type Outcome struct {
	Incident string            `json:"incident"`
	Playbook string            `json:"playbook"`
	Group    map[string]string `json:"group"`
	// What is opened, joined, resumed, resolved, held (opened, steps held
	// back), ignored (a resolved alert of no open incident) or failed.
	What   string      `json:"what"`
	Reason string      `json:"reason,omitempty"`
	Result *run.Result `json:"result,omitempty"`
}

// What an alert group did.
const (
	Opened   = "opened"
	Joined   = "joined"
	Resumed  = "resumed"
	Resolved = "resolved"
	Held     = "held"
	Ignored  = "ignored"
	Failed   = "failed"
)

// heldBack starts the error of a step that did not run because a limit
// held the incident's steps back.
const heldBack = "held back: "

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

func (e *Engine) dir() string { return e.Repo.Config.Paths.Incidents }

// group is the alerts of one batch that share a playbook and group key.
type group struct {
	pb     *repo.Playbook
	key    string
	labels map[string]string
	plan   *render.Plan // the steps rendered for the first firing alert
	alerts []*schema.Alert
}

// Handle takes a batch of alerts (one webhook, one alert file) through the
// lifecycle and returns what became of each alert group, in the order the
// groups first appear. An error means the incident log could not be
// written: what was not recorded was not done.
func (e *Engine) Handle(ctx context.Context, alerts []schema.Alert) ([]Outcome, error) {
	return e.Start(ctx, alerts).Wait()
}

// Handling is a batch of alerts whose steps may still be running.
type Handling struct {
	groups []*group
	out    []Outcome
	errs   []error
	runs   sync.WaitGroup
}

// Start is Handle that returns once what each alert group does is decided
// and applied to the incident log, in the order the alerts came. With
// RunSlots the steps of the incidents opened then run in the background
// (Wait for them); without, Start runs them one after another first.
func (e *Engine) Start(ctx context.Context, alerts []schema.Alert) *Handling {
	alerts = slices.Clone(alerts)
	for i := range alerts {
		if alerts[i].Fingerprint == "" {
			alerts[i].Fingerprint = fingerprint(alerts[i].Labels)
		}
	}
	h := &Handling{groups: e.group(alerts)}
	h.out = make([]Outcome, len(h.groups))
	h.errs = make([]error, len(h.groups))
	// With a Recorder every group's change is queued before any is
	// waited for, and they are applied together, in this order. Without,
	// each is a commit of its own, decided as its turn comes (after the
	// steps of the groups before it, when those run here).
	soon := make([]decided, len(h.groups))
	if e.Recorder != nil {
		for i, g := range h.groups {
			soon[i] = e.decideSoon(ctx, g)
		}
	}
	for i, g := range h.groups {
		if soon[i] == nil {
			soon[i] = e.decideSoon(ctx, g)
		}
		var next func() (*run.Result, error)
		h.out[i], next, h.errs[i] = soon[i]()
		if next == nil {
			continue
		}
		do := func() {
			res, err := next()
			h.out[i].Result, h.errs[i] = res, err
		}
		if e.RunSlots == nil {
			do()
			continue
		}
		h.runs.Go(func() {
			release, err := e.RunSlots.take(ctx, g.pb.Name)
			if err != nil {
				h.errs[i] = err
				return
			}
			defer release()
			do()
		})
	}
	return h
}

// Wait returns what became of each alert group, in the order the groups
// first appear, once their steps ran. An error means the incident log
// could not be written: what was not recorded was not done.
func (h *Handling) Wait() ([]Outcome, error) {
	h.runs.Wait()
	for i, g := range h.groups {
		if h.errs[i] != nil {
			h.out[i].What, h.out[i].Reason = Failed, h.errs[i].Error()
			h.errs[i] = fmt.Errorf("playbook %s: %w", g.pb.Name, h.errs[i])
		}
	}
	return h.out, errors.Join(h.errs...)
}

// RunSlots bounds how many runs of one playbook go on at once, so that a
// storm of one alert does not start thousands of actions on one target.
type RunSlots struct {
	per int
	mu  sync.Mutex
	m   map[string]chan struct{}
}

// DefaultMaxRuns is how many runs of one playbook serve allows at once
// unless told otherwise (--max-runs). It bounds the engine's goroutines
// and memory in a storm; what production is protected by sits where the
// limit is real — the policy's runs_per_hour, one push at a time per git
// target, at most webclient.MaxConnsPerHost requests to one host — so it
// is set where a storm's runs do not wait for each other: with 64 and 256
// slots, a 2,000-incident storm's first actions queued behind the notifies
// of other incidents for most of a second.
const DefaultMaxRuns = 4096

// NewRunSlots allows per runs of each playbook at once (at least one).
func NewRunSlots(per int) *RunSlots {
	return &RunSlots{per: max(per, 1), m: map[string]chan struct{}{}}
}

func (s *RunSlots) take(ctx context.Context, playbook string) (release func(), err error) {
	s.mu.Lock()
	c, ok := s.m[playbook]
	if !ok {
		c = make(chan struct{}, s.per)
		s.m[playbook] = c
	}
	s.mu.Unlock()
	select {
	case c <- struct{}{}:
		return func() { <-c }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *Engine) group(alerts []schema.Alert) []*group {
	byKey := map[string]*group{}
	var order []*group
	for i := range alerts {
		a := &alerts[i]
		// A resolved alert finds its playbooks as if it fired: a match
		// on status must not hide the end of an incident.
		probe := *a
		probe.Status = "firing"
		names := e.Planner.Matches(&probe)
		if len(names) == 0 {
			e.log().Info("no playbook matches", "alert", alertName(a), "fingerprint", a.Fingerprint)
		}
		for _, name := range names {
			pb := e.playbook(name)
			if pb == nil {
				continue
			}
			labels := plan.Group(pb, a)
			key := incident.GroupKey(pb.Name, labels)
			g, ok := byKey[key]
			if !ok {
				g = &group{pb: pb, key: key, labels: labels}
				byKey[key] = g
				order = append(order, g)
			}
			g.alerts = append(g.alerts, a)
		}
	}
	return order
}

func (e *Engine) playbook(name string) *repo.Playbook {
	for _, pb := range e.Repo.Playbooks {
		if pb.Name == name {
			return pb
		}
	}
	return nil
}

// decision is what a group's alerts did to the incident log.
type decision struct {
	id, what, reason string
	resume           bool // an open incident a gone runner left unfinished
}

// decided is the second half of a decision: see decideSoon.
type decided func() (Outcome, func() (*run.Result, error), error)

// decideSoon records g's alerts in the incident log — opening an
// incident, joining one, resolving — in two halves: it queues the change
// and returns what waits for it and then says what is left to do, the
// steps to run if any, so that Start waits once for all its groups.
// Resolving alerts is decided at once.
func (e *Engine) decideSoon(ctx context.Context, g *group) decided {
	o := Outcome{Playbook: g.pb.Name, Group: g.labels}
	firing := slices.ContainsFunc(g.alerts, func(a *schema.Alert) bool { return a.Status == "firing" })
	if !firing {
		o, err := e.resolveGroup(ctx, g, o)
		return func() (Outcome, func() (*run.Result, error), error) { return o, nil, err }
	}
	i := slices.IndexFunc(g.alerts, func(a *schema.Alert) bool { return a.Status == "firing" })
	rendered, err := e.Planner.Render(g.pb.Name, g.alerts[i])
	if err != nil {
		return func() (Outcome, func() (*run.Result, error), error) { return o, nil, err }
	}
	g.plan = rendered

	now := e.now()
	wait := changeSoon(ctx, e, func(t *tx, d *decision) error {
		idx, err := t.index()
		if err != nil {
			return err
		}
		idx.prune(now, e.keepRuns())
		if entry, ok := idx.Open[g.key]; ok {
			in, err := t.record(entry.Path)
			if err != nil {
				return err
			}
			if in != nil {
				d.id, d.what = in.ID, Joined
				d.resume = e.stale(in, now)
				return e.join(t, entry.Path, in, g, now)
			}
			// The index names a record that is gone: open afresh.
			delete(idx.Open, g.key)
			t.touchIndex()
		}
		in, err := e.open(t, idx, g, now)
		if err != nil || in == nil {
			return err
		}
		d.id, d.what = in.ID, Opened
		if held := heldReason(in); held != "" {
			d.what, d.reason = Held, held
		}
		return nil
	})
	return func() (Outcome, func() (*run.Result, error), error) {
		d, err := wait()
		return e.decision(ctx, g, o, d, err)
	}
}

// decision is what decide returns once g's change is applied as d.
func (e *Engine) decision(ctx context.Context, g *group, o Outcome, d decision, err error) (Outcome, func() (*run.Result, error), error) {
	rendered := g.plan
	o.Incident, o.What, o.Reason = d.id, d.what, d.reason
	if err != nil {
		return o, nil, err
	}
	switch {
	case o.What == Opened:
		id := d.id
		var fresh *incident.Incident
		if e.Recorder != nil {
			// Just opened: no step to resume, and reading the record
			// back would take the log's lock once more per run.
			fresh = &incident.Incident{ID: id}
			if s := rendered.Steps; len(s) > 0 && e.startsAtOnce(s[0]) {
				fresh.Steps = []incident.Step{{Name: s[0].Name, Status: run.Running}}
			}
		}
		return o, func() (*run.Result, error) { return e.runStepsOf(ctx, fresh, id, g.pb, rendered) }, nil
	case o.What == Joined && d.resume:
		o.What = Resumed
		id := d.id
		return o, func() (*run.Result, error) { return e.Resume(ctx, id) }, nil
	case o.What == "":
		o.What, o.Reason = Ignored, "these alerts were handled by an incident already resolved"
	}
	return o, nil, nil
}

// keepRuns is how long the index remembers runs: the longest cooldown,
// and at least the hour runs_per_hour counts.
func (e *Engine) keepRuns() time.Duration {
	keep := time.Hour
	for _, pb := range e.Repo.Playbooks {
		keep = max(keep, pb.Cooldown)
	}
	return keep
}

// stale reports whether an open incident has steps left unfinished by a
// runner that is gone: one started longer ago than the run deadline, or
// none started although the incident opened that long ago. Only then does
// a joining alert resume it; a live runner is still at work otherwise.
func (e *Engine) stale(in *incident.Incident, now time.Time) bool {
	deadline := duration(e.Repo.Config.Policy.Limits.RunTimeout, 30*time.Minute)
	last := in.Timestamps.Opened
	for _, s := range in.Steps {
		if s.Started.After(last) {
			last = s.Started
		}
	}
	return unfinished(in) && now.Sub(last) > deadline
}

// join records g's alerts in the open incident in.
func (e *Engine) join(t *tx, p string, in *incident.Incident, g *group, now time.Time) error {
	changed := false
	for _, a := range g.alerts {
		ref := incident.AlertRefOf(a)
		if prev := alertRef(in, ref.Fingerprint); prev != nil && prev.Status == ref.Status && prev.StartsAt.Equal(ref.StartsAt.UTC().Truncate(time.Second)) {
			continue // a repeat notification
		}
		in.SetAlert(ref)
		kind := incident.EventAlertFiring
		if a.Status != "firing" {
			kind = incident.EventAlertResolved
		}
		in.Record(incident.Event{At: now, Kind: kind, Text: "alert " + a.Status + " " + alertName(a)})
		changed = true
	}
	if !changed {
		return nil
	}
	t.put(p, in)
	t.note("incident %s: alerts joined", in.ID)
	return e.maybeResolve(t, p, in, now, "its alerts resolved")
}

func alertRef(in *incident.Incident, fingerprint string) *incident.AlertRef {
	if fingerprint == "" {
		return nil
	}
	for i := range in.Alerts {
		if in.Alerts[i].Fingerprint == fingerprint {
			return &in.Alerts[i]
		}
	}
	return nil
}

// fingerprint identifies an alert that came without one by its labels, as
// Alertmanager does, so that a repeat of it is known as a repeat.
func fingerprint(labels map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(labels[k]), labels[k])
	}
	return "labels-" + hex.EncodeToString(h.Sum(nil))[:16]
}

func alertName(a *schema.Alert) string {
	if n := a.Labels["alertname"]; n != "" {
		return n
	}
	return a.Fingerprint
}

// open records a new incident for g; nil when g's alerts were already
// handled by an incident now resolved (a repeat of the same alert).
func (e *Engine) open(t *tx, idx *index, g *group, now time.Time) (*incident.Incident, error) {
	in := &incident.Incident{
		Title:           g.plan.Title,
		Status:          incident.Open,
		Severity:        g.pb.Severity,
		Playbook:        g.pb.Name,
		PlaybooksCommit: e.PlaybooksCommit,
		Owner:           g.pb.Owner,
		GroupKey:        g.key,
		Group:           maps.Clone(g.labels),
	}
	in.Timestamps.Opened = now
	for _, a := range g.alerts {
		in.SetAlert(incident.AlertRefOf(a))
	}
	detected := in.Timestamps.Detected
	if detected.IsZero() {
		detected = now
		in.Timestamps.Detected = now
	}
	// Alerts an earlier incident of the group already had, from the same
	// starts, are a late or reordered delivery of what it handled (say a
	// firing handled after its resolution, as a restart's workers may): no
	// new incident, whatever id it would get.
	for i := len(idx.Runs) - 1; i >= 0; i-- {
		if idx.Runs[i].GroupKey != g.key {
			continue
		}
		rp, err := pathOf(e.dir(), idx.Runs[i].ID)
		if err != nil {
			continue
		}
		if prev, err := t.record(rp); err != nil {
			return nil, err
		} else if prev != nil && covers(prev, in) {
			return nil, nil
		}
	}
	base := incident.NewID(g.pb.Name, g.labels, detected)
	var p string
	for n := 1; ; n++ {
		in.ID = base
		if n > 1 {
			in.ID = fmt.Sprintf("%s-%d", base, n)
		}
		p = incident.Path(e.dir(), in)
		prev, err := t.record(p)
		if err != nil {
			return nil, err
		}
		if prev == nil {
			break
		}
		if covers(prev, in) {
			return nil, nil
		}
	}
	in.Record(incident.Event{At: now, Kind: incident.EventOpened, Text: fmt.Sprintf("opened by playbook %s for %d alert(s)", g.pb.Name, len(in.Alerts))})

	held := e.holdReason(idx, g, now)
	for i, s := range g.plan.Steps {
		st := incident.Step{Name: s.Name, Action: s.Action, Target: stepTarget(s), Status: run.Pending}
		switch {
		case held != "":
			st.Status, st.Error = run.Skipped, heldBack+held
		case i == 0 && e.startsAtOnce(s):
			// Its run starts as soon as this change is applied: saying
			// so here spares the run a change of its own before its
			// first action, the storm's latency.
			st.Status, st.Started = run.Running, now
		}
		in.Steps = append(in.Steps, st)
	}
	if held != "" {
		in.Record(incident.Event{At: now, Kind: incident.EventNote, Text: "steps held back: " + held})
	}
	t.put(p, in)
	idx.Open[g.key] = openEntry{ID: in.ID, Path: p, Playbook: g.pb.Name}
	idx.Runs = append(idx.Runs, runEntry{ID: in.ID, Playbook: g.pb.Name, GroupKey: g.key, Opened: now, Ran: held == ""})
	t.touchIndex()
	t.note("incident %s: opened (playbook %s)", in.ID, g.pb.Name)
	if e.GitHub != nil {
		if err := t.owe(in.ID, keyIssue); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// startsAtOnce reports whether step s, an opened incident's first, runs
// the moment the change that opens it is applied: steps run in the
// background (serve), the run records its steps, and s needs no approval.
func (e *Engine) startsAtOnce(s schema.Step) bool {
	return e.Recorder != nil && e.RunSlots != nil && !e.Runner.DryRun && s.Approval != "required"
}

// covers reports whether every alert of in is already in prev, as firing
// or resolved from the same start: the alerts are a repeat.
func covers(prev, in *incident.Incident) bool {
	for _, a := range in.Alerts {
		old := alertRef(prev, a.Fingerprint)
		if old == nil || !old.StartsAt.Equal(a.StartsAt.UTC().Truncate(time.Second)) {
			return false
		}
	}
	return true
}

// holdReason says why a new incident's steps must not run, "" when they may.
func (e *Engine) holdReason(idx *index, g *group, now time.Time) string {
	if cd := g.pb.Cooldown; cd > 0 {
		if last, ok := idx.lastRun(g.key); ok && now.Sub(last.Opened) < cd {
			return fmt.Sprintf("cooldown: incident %s of this group ran %s ago (cooldown %s)", last.ID, now.Sub(last.Opened).Round(time.Second), cd)
		}
	}
	limit := e.Repo.Config.Policy.Limits.RunsPerHour
	if limit > 0 && idx.runsSince(g.pb.Name, now.Add(-time.Hour)) >= limit {
		return fmt.Sprintf("policy.limits.runs_per_hour: playbook %s ran %d times in the last hour", g.pb.Name, limit)
	}
	return ""
}

func heldReason(in *incident.Incident) string {
	for _, s := range in.Steps {
		if s.Status == run.Skipped && len(s.Error) > len(heldBack) && s.Error[:len(heldBack)] == heldBack {
			return s.Error[len(heldBack):]
		}
	}
	return ""
}

func stepTarget(s schema.Step) string {
	for _, k := range []string{"target", "channel"} {
		if v, ok := s.Params[k].(string); ok {
			return v
		}
	}
	return ""
}

func sortRuns(rs []runEntry) {
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Opened.Before(rs[j].Opened) })
}

func duration(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	return def
}
