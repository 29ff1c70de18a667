// Command ledger measures how long firebreak takes to record one incident
// update in a local playbook repository holding 50,000 incident files,
// against the git CLI doing the same by hand in the same worktree:
//
//	engine:        respond.Engine.Handle of a firing alert that joins an
//	               open incident: the alert matched and its playbook
//	               rendered, .firebreak/index.json and the record read,
//	               the record rewritten, one commit
//	update:        one ledger.Update as engine/respond makes it when an
//	               incident resolves: read the index and the record,
//	               rewrite both, one commit
//	write (warm):  ledger.Write of one record (blob, trees on its path,
//	               commit, branch CAS, index entry, worktree file)
//	write (cold):  the same with the Ledger opened afresh, as a one-shot
//	               process would
//	git CLI:       write the same record change, then
//	               git add <file> && git commit -q -m ...
//
// The repository holds real incident records (incident.Marshal, spread
// over five years, one in 250 open) and a valid playbook repository,
// made with git fast-import and checked out once. The engine's index
// (.firebreak/index.json) is built once, before the timed rounds, by an
// untimed update that reads all 50,000 records, as a first run on such a
// repository does; the timed updates read and, for update, rewrite it.
//
// The rounds alternate the sides, and which goes first, each side changing
// a different incident each time. Every side but the git CLI runs in this
// process with the Ledger (and Engine) it keeps open, as `firebreak serve`
// does, except write (cold). It prints each round, the medians and the
// ratios to the git CLI; the goal is ≤ 0.5. At the end it checks git
// agrees with the result (a clean `git status`, the index's trees equal
// to HEAD's, the commit count, `git fsck`) and that the records say what
// the updates did.
//
//	go run ./bench/ledger [-files 50000] [-rounds 10] [-keep]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/registry"
	"github.com/firebreak-dev/firebreak/actions/secrets"
	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/ledger"
	"github.com/firebreak-dev/firebreak/engine/plan"
	"github.com/firebreak-dev/firebreak/engine/repo"
	"github.com/firebreak-dev/firebreak/engine/respond"
	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/schema"
)

func main() {
	files := flag.Int("files", 50000, "incident files in the repository")
	rounds := flag.Int("rounds", 10, "timed rounds per side")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	fsck := flag.Bool("fsck", true, "run git fsck on the result")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of 40 more engine updates to `file`")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/ledger:", err)
			os.Exit(1)
		}
		profile = f
	}
	if err := runBench(*files, *rounds, *keep, *fsck); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ledger:", err)
		os.Exit(1)
	}
}

// profile, when set, receives a CPU profile of engine updates only.
var profile *os.File

type gitCLI struct {
	path, dir string
	env       []string
}

func (g gitCLI) run(stdin io.Reader, args ...string) (string, error) {
	cmd := exec.Command(g.path, args...)
	cmd.Dir = g.dir
	cmd.Env = g.env
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return strings.TrimSpace(out.String()), nil
}

func mustRun(g gitCLI, args ...string) string {
	out, err := g.run(nil, args...)
	if err != nil {
		return "?"
	}
	return out
}

// The playbook repository: one playbook, grouped by service, whose step
// never runs here (a joining alert runs nothing).
const (
	playbookName = "checkout"
	config       = `channels: hook: webhook: url: "http://127.0.0.1:9/hook"
policy: {
	limits: {runs_per_hour: 100000, step_timeout: "1m", run_timeout: "5m"}
	owners: "@acme/payments": notify: ["hook"]
}
`
	playbooks = `package playbooks

checkout: {
	title:    "checkout errors on \(alert.labels.service)"
	owner:    "@acme/payments"
	severity: "critical"
	match: labels: alertname: "CheckoutErrors"
	group_by: ["service"]
	steps: [{notify: {channel: "hook", text: "checkout errors on \(alert.labels.service)"}}]
}
`
)

// openEvery makes one generated incident in this many open (mitigated):
// the index lists it, and the sides take theirs from these. Smaller
// repositories get more, so that there are enough for the rounds.
const openEvery = 250

func runBench(nfiles, rounds int, keep, fsck bool) error {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("the git CLI is required: %w", err)
	}
	tmp, err := os.MkdirTemp("", "bench-ledger-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	dir := filepath.Join(tmp, "playbooks")
	g := gitCLI{path: gitPath, dir: dir, env: append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=On Call", "GIT_AUTHOR_EMAIL=oncall@example.com",
		"GIT_COMMITTER_NAME=On Call", "GIT_COMMITTER_EMAIL=oncall@example.com",
	)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	start := time.Now()
	every := max(1, min(openEvery, nfiles/(3*(rounds+2)+50)))
	open, resolved, err := generate(g, nfiles, every)
	if err != nil {
		return err
	}
	if len(open) < 3*(rounds+2)+40 {
		return fmt.Errorf("%d open incidents in %d files: too few for %d rounds", len(open), nfiles, rounds)
	}
	idx, _ := os.Stat(filepath.Join(dir, ".git", "index"))
	pack := mustRun(g, "count-objects", "-vH")
	fmt.Printf("repository: %d incident files (%d open), git index %.1f MB, git %s; made in %s\n  %s\n",
		nfiles, len(open), float64(idx.Size())/1e6, mustRun(g, "version"), time.Since(start).Round(time.Millisecond),
		strings.Join(strings.Fields(strings.ReplaceAll(pack, "\n", ", ")), " "))

	ctx := context.Background()
	l, err := ledger.OpenLocal(dir, ledger.Options{})
	if err != nil {
		return err
	}
	defer l.Close()
	e, err := newEngine(dir, l)
	if err != nil {
		return err
	}

	// The index is built once, untimed: the first update finds none,
	// reads every record and commits it.
	t0 := time.Now()
	if err := joinAlert(ctx, e, open[0], 0); err != nil {
		return fmt.Errorf("building the index: %w", err)
	}
	if _, err := l.Read(ctx, ".firebreak/index.json"); err != nil {
		return fmt.Errorf("no index after the first update: %w", err)
	}
	fmt.Printf("index: built from %d records by the first (untimed) engine update in %s\n", nfiles, time.Since(t0).Round(time.Millisecond))

	// Each side takes incidents nobody touched before.
	nextOpen, nextResolved := 1, 0
	takeOpen := func() *incident.Incident { nextOpen++; return open[nextOpen-1] }
	takeResolved := func() *incident.Incident { nextResolved++; return resolved[(nextResolved*7919)%len(resolved)] }
	var joined, resolvedByUpdate []string

	engineSide := func(round int) (time.Duration, error) {
		in := takeOpen()
		t0 := time.Now()
		err := joinAlert(ctx, e, in, round)
		d := time.Since(t0)
		joined = append(joined, in.ID)
		return d, err
	}
	updateSide := func(round int) (time.Duration, error) {
		in := takeOpen()
		t0 := time.Now()
		err := resolveByUpdate(ctx, l, in.ID)
		d := time.Since(t0)
		resolvedByUpdate = append(resolvedByUpdate, in.ID)
		return d, err
	}
	writeSide := func(led func() (*ledger.Ledger, func(), error)) func(int) (time.Duration, error) {
		return func(round int) (time.Duration, error) {
			in := takeResolved()
			p, data, err := reviewed(in, round, "firebreak")
			if err != nil {
				return 0, err
			}
			t0 := time.Now()
			w, done, err := led()
			if err != nil {
				return 0, err
			}
			_, changed, err := w.Write(ctx, "incident "+in.ID+": postmortem reviewed", map[string][]byte{p: data})
			done()
			d := time.Since(t0)
			if err == nil && !changed {
				err = errors.New("no change")
			}
			return d, err
		}
	}
	warm := writeSide(func() (*ledger.Ledger, func(), error) { return l, func() {}, nil })
	cold := writeSide(func() (*ledger.Ledger, func(), error) {
		c, err := ledger.OpenLocal(dir, ledger.Options{})
		if err != nil {
			return nil, nil, err
		}
		return c, func() { c.Close() }, nil
	})
	cli := func(round int) (time.Duration, error) {
		// The same change the update side makes to its record, by hand.
		in := takeOpen()
		in.Status = incident.Resolved
		in.Timestamps.Resolved = time.Now().UTC()
		in.Record(incident.Event{At: in.Timestamps.Resolved, Kind: incident.EventResolved, Text: "resolved: by hand"})
		data, err := incident.Marshal(in)
		if err != nil {
			return 0, err
		}
		p := incident.Path("incidents", in)
		t0 := time.Now()
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), data, 0o644); err != nil {
			return 0, err
		}
		if _, err := g.run(nil, "add", "--", p); err != nil {
			return 0, err
		}
		if _, err := g.run(nil, "commit", "-q", "-m", "incident "+in.ID+": resolved"); err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}

	sides := []struct {
		name string
		f    func(int) (time.Duration, error)
		all  []time.Duration
	}{
		{"engine", engineSide, nil},
		{"update", updateSide, nil},
		{"write (warm)", warm, nil},
		{"write (cold)", cold, nil},
		{"git CLI", cli, nil},
	}
	// One untimed round warms the page cache, the Ledger's trees and the
	// renderer.
	for _, s := range sides {
		if _, err := s.f(0); err != nil {
			return fmt.Errorf("warm-up, %s: %w", s.name, err)
		}
	}
	fmt.Printf("\n%-8s", "round")
	for _, s := range sides {
		fmt.Printf(" %14s", s.name)
	}
	fmt.Println()
	for r := 1; r <= rounds; r++ {
		order := []int{0, 1, 2, 3, 4}
		if r%2 == 0 {
			slices.Reverse(order)
		}
		got := make([]time.Duration, len(sides))
		for _, i := range order {
			d, err := sides[i].f(r)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r, sides[i].name, err)
			}
			got[i] = d
			sides[i].all = append(sides[i].all, d)
		}
		fmt.Printf("%-8d", r)
		for _, d := range got {
			fmt.Printf(" %14s", ms(d))
		}
		fmt.Println()
	}
	meds := make([]time.Duration, len(sides))
	fmt.Printf("%-8s", "median")
	for i, s := range sides {
		meds[i] = median(s.all)
		fmt.Printf(" %14s", ms(meds[i]))
	}
	fmt.Println()
	gitMed := meds[len(meds)-1]
	fmt.Println()
	for i, s := range sides[:len(sides)-1] {
		goal := ""
		if i == 0 {
			goal = "   (goal ≤ 0.5)"
		}
		fmt.Printf("ratio %-12s / git CLI: %.3f%s\n", s.name, float64(meds[i])/float64(gitMed), goal)
	}

	extra := 0
	if profile != nil {
		const profiled = 40
		if err := pprof.StartCPUProfile(profile); err != nil {
			return err
		}
		for i := range profiled {
			if _, err := engineSide(rounds + 1 + i); err != nil {
				return err
			}
		}
		pprof.StopCPUProfile()
		extra = profiled
		fmt.Printf("profiled %d more engine updates into %s\n", profiled, profile.Name())
	}

	// git agrees with the result.
	if st, err := g.run(nil, "status", "--porcelain"); err != nil || st != "" {
		return fmt.Errorf("git status after the rounds: %v\n%s", err, st)
	}
	wt, err := g.run(nil, "write-tree")
	if err != nil {
		return err
	}
	if head := mustRun(g, "rev-parse", "HEAD^{tree}"); wt != head {
		return fmt.Errorf("index tree %s != HEAD tree %s", wt, head)
	}
	// The generated commit, the index build, then a commit per side and
	// round (the warm-up round included).
	if got, want := mustRun(g, "rev-list", "--count", "HEAD"), fmt.Sprint(2+len(sides)*(rounds+1)+extra); got != want {
		return fmt.Errorf("%s commits, want %s", got, want)
	}
	// And the records say what the updates did.
	for _, id := range joined {
		in, err := e.Get(ctx, id)
		if err != nil {
			return err
		}
		if len(in.Alerts) != 2 || in.Status != incident.Mitigated {
			return fmt.Errorf("incident %s after its alert joined: %s, %d alerts", id, in.Status, len(in.Alerts))
		}
	}
	index, err := readIndex(ctx, l)
	if err != nil {
		return err
	}
	for _, id := range resolvedByUpdate {
		if in, err := e.Get(ctx, id); err != nil || in.Status != incident.Resolved {
			return fmt.Errorf("incident %s after its update: %v %v", id, in, err)
		}
		for _, entry := range index.Open {
			if entry.ID == id {
				return fmt.Errorf("incident %s resolved, still open in the index", id)
			}
		}
	}
	if fsck {
		if _, err := g.run(nil, "fsck", "--strict", "--no-progress", "--no-dangling"); err != nil {
			return err
		}
	}
	fmt.Println("checked: git status clean, index trees = HEAD's, commit count right, records and index as updated" +
		map[bool]string{true: ", git fsck --strict clean", false: ""}[fsck])
	return nil
}

// newEngine is the Engine `firebreak serve` would keep on dir.
func newEngine(dir string, l *ledger.Ledger) (*respond.Engine, error) {
	r, err := repo.Load(dir)
	if err != nil {
		return nil, err
	}
	if !r.Valid() {
		return nil, fmt.Errorf("playbook repository: %v", r.Diagnostics)
	}
	p, err := plan.New(r)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	env := &actions.Env{Config: r.Config, Secrets: secrets.NewFromMap(nil), Log: log}
	return &respond.Engine{Repo: r, Planner: p, Ledger: l, Branch: "main", Log: log,
		Runner: &run.Runner{Env: env, Actions: registry.Actions, Log: log}}, nil
}

// joinAlert has a new firing alert of in's group join it: one commit.
func joinAlert(ctx context.Context, e *respond.Engine, in *incident.Incident, round int) error {
	now := time.Now().UTC()
	out, err := e.Handle(ctx, []schema.Alert{{
		Source: "alertmanager", Status: "firing", Fingerprint: fmt.Sprintf("bench-%d", round),
		Labels:   map[string]string{"alertname": "CheckoutErrors", "service": in.Group["service"], "pod": fmt.Sprint("checkout-", round)},
		StartsAt: now.Add(-time.Minute), ReceivedAt: now,
	}})
	if err != nil {
		return err
	}
	if len(out) != 1 || out[0].What != respond.Joined || out[0].Incident != in.ID {
		return fmt.Errorf("alert for %s: %+v", in.ID, out)
	}
	return nil
}

// benchIndex is the part of engine/respond's index this benchmark reads.
type benchIndex struct {
	Version int                        `json:"version"`
	Open    map[string]benchIndexEntry `json:"open"`
	Runs    json.RawMessage            `json:"runs"`
}

type benchIndexEntry struct {
	ID       string `json:"id"`
	Path     string `json:"path"`
	Playbook string `json:"playbook"`
	Issue    int    `json:"issue,omitempty"`
}

func readIndex(ctx context.Context, l *ledger.Ledger) (*benchIndex, error) {
	data, err := l.Read(ctx, ".firebreak/index.json")
	if err != nil {
		return nil, err
	}
	var x benchIndex
	return &x, json.Unmarshal(data, &x)
}

// resolveByUpdate is what engine/respond commits when an incident
// resolves by hand: one ledger.Update reading the index and the record,
// writing the resolved record and the index without it.
func resolveByUpdate(ctx context.Context, l *ledger.Ledger, id string) error {
	_, changed, err := l.Update(ctx, func(v ledger.View) (string, map[string][]byte, error) {
		data, err := v.Read(".firebreak/index.json")
		if err != nil {
			return "", nil, err
		}
		var x benchIndex
		if err := json.Unmarshal(data, &x); err != nil {
			return "", nil, err
		}
		var key string
		var entry benchIndexEntry
		for k, e := range x.Open {
			if e.ID == id {
				key, entry = k, e
			}
		}
		if key == "" {
			return "", nil, fmt.Errorf("incident %s is not open in the index", id)
		}
		data, err = v.Read(entry.Path)
		if err != nil {
			return "", nil, err
		}
		in, err := incident.Unmarshal(data)
		if err != nil {
			return "", nil, err
		}
		now := time.Now().UTC()
		in.Status, in.Timestamps.Resolved = incident.Resolved, now
		in.Record(incident.Event{At: now, Kind: incident.EventResolved, Text: "resolved: by bench"})
		rec, err := incident.Marshal(in)
		if err != nil {
			return "", nil, err
		}
		delete(x.Open, key)
		idx, err := json.MarshalIndent(&x, "", "  ")
		if err != nil {
			return "", nil, err
		}
		return "incident " + id + ": resolved", map[string][]byte{entry.Path: rec, ".firebreak/index.json": append(idx, '\n')}, nil
	})
	if err == nil && !changed {
		err = errors.New("no change")
	}
	return err
}

// reviewed is in with a note that its postmortem was reviewed: its path
// and new content.
func reviewed(in *incident.Incident, round int, who string) (string, []byte, error) {
	c := *in
	c.Timeline = append(slices.Clone(in.Timeline), incident.Event{At: time.Now().UTC(), Kind: incident.EventNote,
		Text: fmt.Sprintf("postmortem reviewed by %s (round %d)", who, round)})
	data, err := incident.Marshal(&c)
	return incident.Path("incidents", in), data, err
}

// generate makes the repository with git fast-import and checks it out;
// it returns the open and the resolved incidents, sorted by id.
func generate(g gitCLI, n, every int) (open, resolved []*incident.Incident, err error) {
	if _, err := g.run(nil, "init", "-q", "-b", "main", "."); err != nil {
		return nil, nil, err
	}
	// The records go to fast-import as they are made: 50,000 of them are
	// over 100 MB.
	pr, pw := io.Pipe()
	imported := make(chan error, 1)
	go func() {
		_, err := g.run(pr, "fast-import", "--quiet")
		pr.CloseWithError(err)
		imported <- err
	}()
	w := bufio.NewWriterSize(pw, 1<<20)
	fmt.Fprintf(w, "commit refs/heads/main\ncommitter On Call <oncall@example.com> 1700000000 +0000\ndata 17\nfive years of it\n")
	inline := func(p string, data []byte) {
		fmt.Fprintf(w, "M 100644 inline %s\ndata %d\n%s\n", p, len(data), data)
	}
	inline("firebreak.cue", []byte(config))
	inline("playbooks/checkout.cue", []byte(playbooks))
	first := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	span := time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC).Sub(first)
	for i := range n {
		in := record(i, every, first.Add(time.Duration(int64(span)/int64(n)*int64(i))))
		data, err := incident.Marshal(in)
		if err != nil {
			pw.CloseWithError(err)
			<-imported
			return nil, nil, err
		}
		inline(incident.Path("incidents", in), data)
		if in.Status == incident.Resolved {
			resolved = append(resolved, in)
		} else {
			open = append(open, in)
		}
	}
	err = w.Flush()
	pw.CloseWithError(err)
	if ierr := <-imported; ierr != nil || err != nil {
		return nil, nil, errors.Join(err, ierr)
	}
	if _, err := g.run(nil, "repack", "-a", "-d", "-q"); err != nil {
		return nil, nil, err
	}
	if _, err := g.run(nil, "checkout", "-q", "-f", "main"); err != nil {
		return nil, nil, err
	}
	return open, resolved, nil
}

// record is generated incident i, detected at detected: resolved, or
// mitigated (open in the index) for one in every, with a service no other
// open incident has.
func record(i, every int, detected time.Time) *incident.Incident {
	svc := fmt.Sprintf("svc-%d", i%40)
	status := incident.Resolved
	if i%every == 0 {
		svc, status = fmt.Sprintf("open-%d", i), incident.Mitigated
	}
	group := map[string]string{"service": svc}
	in := &incident.Incident{
		ID:              incident.NewID(playbookName, group, detected),
		Title:           "checkout errors on " + svc,
		Status:          status,
		Severity:        "critical",
		Playbook:        playbookName,
		PlaybooksCommit: fmt.Sprintf("%040x", i),
		Owner:           "@acme/payments",
		GroupKey:        incident.GroupKey(playbookName, group),
		Group:           group,
	}
	opened := detected.Add(90 * time.Second)
	in.Timestamps = incident.Timestamps{Detected: detected, Opened: opened, Acknowledged: opened.Add(4 * time.Minute),
		Mitigated: opened.Add(9 * time.Minute)}
	in.Alerts = []incident.AlertRef{{
		Fingerprint: fmt.Sprintf("%016x", uint64(i)*2654435761),
		Status:      "firing", StartsAt: detected,
		Labels:      map[string]string{"alertname": "CheckoutErrors", "service": svc, "cluster": "prod-eu-1"},
		Annotations: map[string]string{"summary": "5xx above 5% on " + svc},
	}}
	in.Steps = []incident.Step{{Name: "notify", Action: "notify", Target: "hook", Status: run.Succeeded,
		Started: opened, Finished: opened.Add(time.Second), Result: "posted to hook"}}
	in.Timeline = []incident.Event{
		{At: opened, Kind: incident.EventOpened, Text: "opened by playbook checkout for 1 alert(s)"},
		{At: opened.Add(time.Second), Kind: incident.EventStep, Text: "step notify (notify) succeeded: posted to hook"},
		{At: in.Timestamps.Mitigated, Kind: incident.EventMitigated, Text: "mitigated: every step succeeded"},
	}
	if status == incident.Resolved {
		in.Alerts[0].Status, in.Alerts[0].EndsAt = "resolved", opened.Add(40*time.Minute)
		in.Timestamps.Resolved = opened.Add(40 * time.Minute)
		in.Timeline = append(in.Timeline, incident.Event{At: in.Timestamps.Resolved, Kind: incident.EventResolved, Text: "resolved: its alerts resolved"})
	}
	return in
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
