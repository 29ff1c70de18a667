package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
	"github.com/firebreak-dev/firebreak/engine/github/githubtest"
	"github.com/firebreak-dev/firebreak/engine/incident"
	"github.com/firebreak-dev/firebreak/engine/serve"
)

// crashKills is how many times TestServeCrash kills the server.
const crashKills = 20

// crashServices are the alert groups fired, repeated and resolved: one
// per service, each with a deploy of its own to roll back. A sixth group,
// "probe", gets a new alert before every kill.
const crashServices = 5

// TestServeCrash kills `firebreak serve` with SIGKILL at random moments
// while incidents run — 20 times, restarting it each time on the same
// --state-dir, cache and remote — and feeds it Alertmanager webhooks
// between and during the kills: five alert groups with new alerts
// joining, repeats and later resolutions, and a probe group that gets a
// new alert right before every kill. The moments come from a seeded
// random source (FIREBREAK_CRASH_SEED, logged); the server's own timing
// is not seeded, so a run explores different interleavings around the
// same plan.
//
// When the last run settles it asserts, reading the remotes with the git
// CLI:
//   - every alert answered 2xx is in an incident record, by fingerprint
//     (the probes are never sent again, so a later repeat cannot mask a
//     loss), and the journal is empty;
//   - every record parses and sits at its path; no step is left pending
//     or running; an open incident whose steps all succeeded is
//     mitigated; the index agrees with the records; the playbook
//     repository's history is linear; one incident per group;
//   - rollback, the step that changes a target, applied at most once per
//     incident: at most one commit with trailers Firebreak-Incident: ID and
//     Firebreak-Step: rollback on the config repository, exactly one when
//     the record says the step succeeded, and it is the commit the record
//     names; no other commit was pushed there;
//   - notify (a webhook, which cannot be exactly-once across a crash) was
//     delivered at most once per process lifetime: between two deliveries
//     of one X-Firebreak-Delivery id (incident/step) a kill happened — a
//     step recorded finished never runs again; a step recorded succeeded
//     was delivered at least once;
//   - a step recorded skipped was neither delivered nor committed;
//   - a group whose resolution was answered 2xx has its incident resolved
//     and its postmortem on postmortem/<id>;
//   - GitHub has at most one issue per incident, one postmortem pull
//     request per incident, and no comment twice on an issue (markers).
func TestServeCrash(t *testing.T) {
	seed := uint64(20261121)
	if s := os.Getenv("FIREBREAK_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FIREBREAK_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (set FIREBREAK_CRASH_SEED to replay the same kill moments and alerts)", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	bin := buildFirebreak(t)
	begin := time.Now()

	srv := gittest.NewServer(t, gittest.WithToken(serveRepoToken))
	files := map[string]string{}
	services := []string{"probe"}
	for i := range crashServices {
		services = append(services, fmt.Sprintf("svc-%d", i))
	}
	for _, svc := range services {
		files["apps/"+svc+"/deployment.yaml"] = "image: " + svc + ":v1\n"
	}
	srv.CreateRepo("deploy", files)
	deployBase := map[string]bool{}
	for _, svc := range services {
		h := srv.Commit("deploy", "deploy "+svc+" v2", map[string]string{"apps/" + svc + "/deployment.yaml": "image: " + svc + ":v2\n"})
		deployBase[h] = true
	}
	for _, h := range strings.Fields(srv.Run(srv.BareDir("deploy"), "rev-list", "main")) {
		deployBase[h] = true
	}

	gh := githubtest.New(t, githubtest.Config{Owner: "acme", Repo: "ops", Token: serveGHToken})
	gh.SetTeamMember("acme", "team", "bob", "active")

	// The notify channel: every delivery and when it came. It answers
	// after a pause, so that kills land while notify steps run.
	type delivery struct {
		id string
		at time.Time
	}
	var hookMu sync.Mutex
	var deliveries []delivery
	hookRng := rand.New(rand.NewPCG(seed+1, seed+2))
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hookMu.Lock()
		deliveries = append(deliveries, delivery{r.Header.Get("X-Firebreak-Delivery"), time.Now()})
		pause := time.Duration(hookRng.IntN(150)) * time.Millisecond
		hookMu.Unlock()
		time.Sleep(pause)
	}))
	t.Cleanup(hook.Close)

	srv.CreateRepo("ops", map[string]string{
		"firebreak.cue": fmt.Sprintf(`
targets: deploy: git: {url: %q, token: secret: "GITHUB_TOKEN"}
channels: hook: webhook: url: %q
policy: {
	limits: {runs_per_hour: 1000, step_timeout: "30s", run_timeout: "5m"}
	owners: "@acme/team": {rollback: ["deploy"], notify: ["hook"]}
}
github: {owner: "acme", repo: "ops", api_url: %q, token: secret: "GH_API_TOKEN"}
`, srv.RepoURL("deploy"), hook.URL, gh.URL+"/"),
		"playbooks/crash.cue": `package playbooks

crashing: {
	title:    "svc crashing: \(alert.labels.service)"
	owner:    "@acme/team"
	severity: "critical"
	match: labels: alertname: "Crashing"
	group_by: ["service"]
	steps: [
		{name: "page", notify: {channel: "hook", text: "paging about \(alert.labels.service)"}},
		{rollback: {target: "deploy", path: "apps/\(alert.labels.service)"}},
		{name: "done", notify: {channel: "hook", text: "rolled back \(alert.labels.service)"}},
	]
}
`,
	})

	stateDir := t.TempDir()
	fb := newFBServer(t, bin, serveAPIToken, []string{
		"--repo", srv.RepoURL("ops"),
		"--state-dir", stateDir, "--cache-dir", t.TempDir(),
	}, []string{
		"FIREBREAK_SECRET_GITHUB_TOKEN=" + serveRepoToken,
		"FIREBREAK_SECRET_GH_API_TOKEN=" + serveGHToken,
	})

	// The alerts: each service's alerts by fingerprint, with their
	// start; what was answered 2xx; which services were resolved.
	type alertState struct {
		service  string
		startsAt time.Time
	}
	var feedMu sync.Mutex
	sent := map[string]alertState{} // every fingerprint ever sent, answered or not
	accepted := map[string]bool{}   // fingerprints in a request answered 2xx
	resolvedOK := map[string]bool{} // services whose resolution was answered 2xx
	closing := map[string]bool{}    // services no longer fired
	perService := map[string][]string{}
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	requests, answered := 0, 0

	amBody := func(status string, fps []string) string {
		var alerts []string
		for _, fp := range fps {
			a := sent[fp]
			ends := "0001-01-01T00:00:00Z"
			if status == "resolved" {
				ends = a.startsAt.Add(30 * time.Minute).Format(time.RFC3339)
			}
			alerts = append(alerts, fmt.Sprintf(`{"status": %q, "labels": {"alertname": "Crashing", "service": %q, "instance": %q},
 "annotations": {"summary": "crashing"}, "startsAt": %q, "endsAt": %q, "fingerprint": %q}`,
				status, a.service, fp, a.startsAt.Format(time.RFC3339), ends, fp))
		}
		return fmt.Sprintf(`{"version": "4", "status": %q, "receiver": "firebreak", "groupKey": "{}:{alertname=\"Crashing\"}",
 "truncatedAlerts": 0, "groupLabels": {"alertname": "Crashing"}, "alerts": [%s]}`, status, strings.Join(alerts, ","))
	}
	post := func(ctx context.Context, status string, fps []string) {
		feedMu.Lock()
		body := amBody(status, fps)
		requests++
		feedMu.Unlock()
		code, _, err := fb.post(ctx, "/v1/alerts/alertmanager", body)
		if err != nil || code/100 != 2 {
			return // not accepted: no promise was made
		}
		feedMu.Lock()
		defer feedMu.Unlock()
		answered++
		for _, fp := range fps {
			accepted[fp] = true
		}
	}
	// firing picks one to three alerts of services still firing: a new
	// alert of a service now and then, otherwise repeats.
	firing := func(r *rand.Rand) []string {
		feedMu.Lock()
		defer feedMu.Unlock()
		var fps []string
		for range 1 + r.IntN(3) {
			svc := fmt.Sprintf("svc-%d", r.IntN(crashServices))
			if closing[svc] {
				continue
			}
			known := perService[svc]
			if len(known) == 0 || r.IntN(10) < 3 {
				fp := fmt.Sprintf("fp-%s-%d", svc, len(known))
				sent[fp] = alertState{service: svc, startsAt: t0.Add(time.Duration(len(sent)) * time.Second)}
				perService[svc] = append(known, fp)
				known = perService[svc]
			}
			fp := known[r.IntN(len(known))]
			if !slices.Contains(fps, fp) {
				fps = append(fps, fp)
			}
		}
		return fps
	}
	// probe is a new alert of the group "probe", which is never resolved
	// and whose alerts are never sent again: an accepted probe missing
	// from the records cannot be masked by a later repeat.
	probe := func() string {
		feedMu.Lock()
		defer feedMu.Unlock()
		fp := fmt.Sprintf("fp-probe-%d", len(perService["probe"]))
		sent[fp] = alertState{service: "probe", startsAt: t0.Add(time.Duration(len(sent)) * time.Second)}
		perService["probe"] = append(perService["probe"], fp)
		return fp
	}

	var kills []time.Time
	for round := 1; round <= crashKills; round++ {
		fb.start()
		ctx, cancel := context.WithCancel(context.Background())
		// Between kills: a batch or two, answered before the kill, the
		// last with a probe...
		for i := range 1 + rng.IntN(2) {
			fps := firing(rng)
			if i > 0 || rng.IntN(2) == 0 {
				fps = append(fps, probe())
			}
			if len(fps) > 0 {
				post(ctx, "firing", fps)
			}
		}
		// ... a service resolved now and then, all its alerts at once ...
		if round >= 6 && round <= crashKills-3 && rng.IntN(3) == 0 {
			feedMu.Lock()
			svc := fmt.Sprintf("svc-%d", rng.IntN(crashServices))
			fps := slices.Clone(perService[svc])
			already := closing[svc]
			closing[svc] = true
			feedMu.Unlock()
			if !already && len(fps) > 0 {
				feedMu.Lock()
				requests++
				body := amBody("resolved", fps)
				feedMu.Unlock()
				if code, _, err := fb.post(ctx, "/v1/alerts/alertmanager", body); err == nil && code/100 == 2 {
					feedMu.Lock()
					answered++
					resolvedOK[svc] = true
					for _, fp := range fps {
						accepted[fp] = true
					}
					feedMu.Unlock()
				}
			}
		}
		// ... and one more in flight when the kill may land.
		lateDelay := time.Duration(rng.IntN(400)) * time.Millisecond
		lateAlerts := append(firing(rng), probe())
		var late sync.WaitGroup
		late.Go(func() {
			select {
			case <-time.After(lateDelay):
			case <-ctx.Done():
				return
			}
			if len(lateAlerts) > 0 {
				post(ctx, "firing", lateAlerts)
			}
		})
		// The moment: mostly anywhere in the next 1.2 s of work, one
		// time in four right after a 2xx.
		delay := time.Duration(rng.IntN(1200)) * time.Millisecond
		if rng.IntN(4) == 0 {
			delay = time.Duration(rng.IntN(10)) * time.Millisecond
		}
		time.Sleep(delay)
		fb.kill9()
		hookMu.Lock()
		kills = append(kills, time.Now()) // the process is gone
		hookMu.Unlock()
		cancel()
		late.Wait()
		t.Logf("kill %2d after %4dms: journal holds %d", round, delay.Milliseconds(), len(journalEntries(stateDir)))
	}

	// The last run: everything accepted must be handled and every
	// incident finished.
	fb.start()
	settle := time.Now()
	var last []*incident.Incident
	settled := waitUntil(60*time.Second, func() bool {
		if len(journalEntries(stateDir)) > 0 {
			return false
		}
		code, body, err := fb.get("/v1/incidents")
		if err != nil || code != http.StatusOK {
			return false
		}
		last = nil
		if json.Unmarshal([]byte(body), &last) != nil {
			return false
		}
		done := map[string]bool{}
		for _, in := range last {
			if in.Status != incident.Resolved && !finished(in) || allSucceeded(in) && in.Status == incident.Open {
				return false
			}
			if in.Status == incident.Resolved && postmortemRecorded(in) {
				done[in.Group["service"]] = true
			}
		}
		for svc := range resolvedOK {
			if !done[svc] {
				return false
			}
		}
		return true
	})
	if !settled {
		t.Errorf("the last run did not settle in 60s: journal %v, incidents %s", journalEntries(stateDir), summary(last))
	}
	t.Logf("settled %s after the last start; %d requests, %d answered 2xx, %d kills, %d runs",
		time.Since(settle).Round(time.Millisecond), requests, answered, len(kills), fb.runs)
	if !fb.proc.stop(40 * time.Second) {
		t.Errorf("the last run did not shut down on SIGTERM")
	}

	// Read the remotes.
	ops := srv.Clone("ops")
	records := incidentFiles(t, ops)
	byID := map[string]*incident.Incident{}
	byService := map[string][]*incident.Incident{}
	inRecords := map[string]bool{}
	for _, in := range records {
		byID[in.ID] = in
		byService[in.Group["service"]] = append(byService[in.Group["service"]], in)
		for _, a := range in.Alerts {
			inRecords[a.Fingerprint] = true
		}
		if !finished(in) {
			t.Errorf("incident %s has a step left unfinished:\n%s", in.ID, describe(in))
		}
		if allSucceeded(in) && in.Status == incident.Open {
			t.Errorf("incident %s: every step succeeded, yet it is open, not mitigated:\n%s", in.ID, describe(in))
		}
	}

	// Every alert answered 2xx is in a record.
	var lost []string
	for fp := range accepted {
		if !inRecords[fp] {
			lost = append(lost, fp)
		}
	}
	sort.Strings(lost)
	if len(lost) > 0 {
		t.Errorf("alerts answered 2xx but in no incident record: %v", lost)
	}
	if left := journalEntries(stateDir); len(left) > 0 {
		t.Errorf("journal entries never handled: %v", left)
	}
	for svc, ins := range byService {
		if len(ins) != 1 {
			t.Errorf("service %s has %d incidents, want one: %v", svc, len(ins), ids(ins))
			for _, in := range ins {
				t.Logf("%s", describe(in))
			}
		}
	}

	// The playbook repository: linear, and the index agrees with the
	// records.
	if merges := ops.Git("rev-list", "--merges", "--count", "HEAD"); merges != "0" {
		t.Errorf("the playbook repository has %s merge commits", merges)
	}
	var idx struct {
		Open map[string]struct {
			ID, Path string
		} `json:"open"`
	}
	if err := json.Unmarshal([]byte(ops.File(".firebreak/index.json")), &idx); err != nil {
		t.Errorf(".firebreak/index.json: %v", err)
	}
	for key, e := range idx.Open {
		in := records[e.Path]
		if in == nil || in.ID != e.ID || in.GroupKey != key || in.Status == incident.Resolved {
			t.Errorf("index open entry %s → %s (%s) does not match a record open at that path: %+v", key, e.ID, e.Path, in)
		}
	}
	for p, in := range records {
		if in.Status != incident.Resolved && idx.Open[in.GroupKey].Path != p {
			t.Errorf("open incident %s is not in the index", in.ID)
		}
	}

	// Rollback: at most one stamped commit per incident and step, the one
	// the record names; nothing else pushed.
	deploy := srv.Clone("deploy")
	stamped := trailerCommits(t, deploy)
	for key, hashes := range stamped {
		id, step, _ := strings.Cut(key, " ")
		if len(hashes) > 1 {
			t.Errorf("step %s of incident %s applied %d times: %v", step, id, len(hashes), hashes)
		}
		in := byID[id]
		if in == nil {
			t.Errorf("commit %v is stamped with incident %s, which has no record", hashes, id)
			continue
		}
		if s := in.StepByName(step); s == nil || s.Status != "succeeded" || s.Commit != hashes[0] {
			t.Errorf("commit %s of incident %s step %s: the record says %+v", hashes[0], id, step, s)
		}
	}
	for _, in := range records {
		if s := in.StepByName("rollback"); s != nil && s.Status == "succeeded" && len(stamped[in.ID+" rollback"]) != 1 {
			t.Errorf("incident %s: rollback recorded succeeded (%s) but %d stamped commits", in.ID, s.Commit, len(stamped[in.ID+" rollback"]))
		}
	}
	stampedHash := map[string]bool{}
	for _, hs := range stamped {
		for _, h := range hs {
			stampedHash[h] = true
		}
	}
	for _, h := range strings.Fields(deploy.Git("rev-list", "HEAD")) {
		if !deployBase[h] && !stampedHash[h] {
			t.Errorf("commit %s on the config repository is neither history nor a stamped step", h)
		}
	}
	for svc, ins := range byService {
		if len(ins) == 1 && ins[0].StepByName("rollback").Status == "succeeded" {
			if got, want := deploy.File("apps/"+svc+"/deployment.yaml"), "image: "+svc+":v1\n"; got != want {
				t.Errorf("%s after its rollback: %q, want %q", svc, got, want)
			}
		}
	}

	// Notify: between two deliveries of one step a kill happened; a step
	// recorded succeeded was delivered.
	hookMu.Lock()
	byDelivery := map[string][]time.Time{}
	for _, d := range deliveries {
		byDelivery[d.id] = append(byDelivery[d.id], d.at)
	}
	hookMu.Unlock()
	redelivered := 0
	for id, ats := range byDelivery {
		inc, step, _ := strings.Cut(id, "/")
		if in := byID[inc]; in == nil || in.StepByName(step) == nil {
			t.Errorf("delivery %s names no step of a recorded incident", id)
		}
		for i := 1; i < len(ats); i++ {
			redelivered++
			// A kill between them: the first came from a process gone by
			// the kill's time (a delivery of a dying process may be logged
			// a moment later), the second from a later one.
			if !slices.ContainsFunc(kills, func(k time.Time) bool {
				return !ats[i-1].After(k.Add(50*time.Millisecond)) && !ats[i].Before(k)
			}) {
				t.Errorf("notify %s delivered again at %s with no crash since the delivery at %s: a step ran twice in one run",
					id, ats[i].Format("15:04:05.000"), ats[i-1].Format("15:04:05.000"))
			}
		}
	}
	for _, in := range records {
		for _, s := range in.Steps {
			if s.Action == "notify" && s.Status == "succeeded" && len(byDelivery[in.ID+"/"+s.Name]) == 0 {
				t.Errorf("incident %s: notify %s recorded succeeded, never delivered", in.ID, s.Name)
			}
		}
	}

	// A step the record says was not run did not run.
	for _, in := range records {
		for _, s := range in.Steps {
			if s.Status != "skipped" {
				continue
			}
			if n := len(byDelivery[in.ID+"/"+s.Name]); n > 0 {
				t.Errorf("incident %s: step %s recorded skipped (%s) but delivered %d times", in.ID, s.Name, s.Error, n)
			}
			if n := len(stamped[in.ID+" "+s.Name]); n > 0 {
				t.Errorf("incident %s: step %s recorded skipped (%s) but committed %v", in.ID, s.Name, s.Error, stamped[in.ID+" "+s.Name])
			}
		}
	}

	// Resolutions answered 2xx: resolved, postmortem on its branch.
	for svc := range resolvedOK {
		for _, in := range byService[svc] {
			if in.Status != incident.Resolved {
				t.Errorf("service %s's resolution was answered 2xx; incident %s is %s", svc, in.ID, in.Status)
				continue
			}
			branch := "origin/postmortem/" + in.ID
			if out, err := gitCLI(ops.Dir, "show", branch+":postmortems/"+in.ID+".md"); err != nil || !strings.Contains(out, in.ID) {
				t.Errorf("incident %s resolved, no postmortem on %s: %v %s", in.ID, branch, err, out)
			}
		}
	}

	// GitHub: nothing twice.
	marker := regexp.MustCompile(`<!-- firebreak:(incident|comment|pr)=([^ ]+) -->`)
	seen := map[string]int{}
	for _, is := range append(gh.Issues(), gh.Pulls()...) {
		for _, m := range marker.FindAllStringSubmatch(is.Body, -1) {
			seen[m[1]+"="+m[2]]++
		}
		comments := map[string]int{}
		for _, c := range is.Comments {
			for _, m := range marker.FindAllStringSubmatch(c.Body, -1) {
				comments[m[2]]++
			}
		}
		for k, n := range comments {
			if n > 1 {
				t.Errorf("issue #%d has comment %s %d times", is.Number, k, n)
			}
		}
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("GitHub holds %d issues or pull requests with marker %s", n, k)
		}
	}
	t.Logf("%d incidents, %d notify deliveries (%d again after a crash), %d issues, %d pull requests; %s in all",
		len(records), len(deliveries), redelivered, len(gh.Issues()), len(gh.Pulls()), time.Since(begin).Round(time.Millisecond))
}

// journalEntries lists the journal's entries not yet done, as the next
// process would read them; a damaged journal is one entry naming it.
func journalEntries(stateDir string) []string {
	j, err := serve.OpenJournal(filepath.Join(stateDir, "journal"))
	if err != nil {
		return []string{err.Error()}
	}
	ids, err := j.Pending()
	if err != nil {
		ids = append(ids, err.Error())
	}
	return ids
}

// finished: no step of in is pending or running.
func finished(in *incident.Incident) bool {
	for _, s := range in.Steps {
		if s.Status == "pending" || s.Status == "running" {
			return false
		}
	}
	return true
}

// allSucceeded: in has steps and every one succeeded.
func allSucceeded(in *incident.Incident) bool {
	for _, s := range in.Steps {
		if s.Status != "succeeded" {
			return false
		}
	}
	return len(in.Steps) > 0
}

func postmortemRecorded(in *incident.Incident) bool {
	return slices.ContainsFunc(in.Timeline, func(e incident.Event) bool { return e.Kind == incident.EventPostmortem })
}

func summary(ins []*incident.Incident) string {
	var parts []string
	for _, in := range ins {
		var steps []string
		for _, s := range in.Steps {
			steps = append(steps, s.Name+"="+s.Status)
		}
		parts = append(parts, fmt.Sprintf("%s %s %s [%s]", in.ID, in.Group["service"], in.Status, strings.Join(steps, " ")))
	}
	return strings.Join(parts, "; ")
}

func ids(ins []*incident.Incident) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

// describe is an incident's alerts, steps and timeline, for a failure.
func describe(in *incident.Incident) string {
	var b strings.Builder
	fmt.Fprintf(&b, "incident %s (%s, %s):\n", in.ID, in.Group["service"], in.Status)
	for _, a := range in.Alerts {
		fmt.Fprintf(&b, "  alert %s %s from %s\n", a.Fingerprint, a.Status, a.StartsAt.Format(time.TimeOnly))
	}
	for _, s := range in.Steps {
		fmt.Fprintf(&b, "  step %s %s %s %s\n", s.Name, s.Status, s.Commit, s.Error)
	}
	for _, e := range in.Timeline {
		fmt.Fprintf(&b, "  %s %s %s\n", e.At.Format(time.TimeOnly), e.Kind, e.Text)
	}
	return b.String()
}
