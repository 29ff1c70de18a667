package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions/gitrepo/gittest"
	"github.com/firebreak-dev/firebreak/engine/incident"
)

const remoteToken = "ghp_twoPROCESSEStoken0123456789"

// pagePlaybooks has one playbook whose one step waits for approval: an
// incident is two commits (opened, step waiting) and its step never
// reaches the network, so the git server is all the two processes share.
const pagePlaybooks = `package playbooks

page: {
	title:    "\(alert.labels.service) paging"
	owner:    "@acme/payments"
	severity: "high"
	match: labels: alertname: "Page"
	group_by: ["service"]
	steps: [{name: "page", notify: {channel: "hook", text: "page \(alert.labels.service)"}, approval: "required"}]
}
`

const pageConfig = `channels: hook: webhook: url: "http://127.0.0.1:9/hook"
policy: {
	limits: {runs_per_hour: 10000, step_timeout: "1m", run_timeout: "5m"}
	owners: "@acme/payments": notify: ["hook"]
}
`

// pageAlerts writes n firing Page alerts of services prefix-0 … prefix-(n-1)
// to a file, each its own alert group.
func pageAlerts(t *testing.T, dir, prefix string, n int) string {
	t.Helper()
	var alerts []map[string]any
	for i := range n {
		svc := fmt.Sprintf("%s-%03d", prefix, i)
		alerts = append(alerts, map[string]any{
			"status":      "firing",
			"labels":      map[string]string{"alertname": "Page", "service": svc},
			"annotations": map[string]string{"summary": "paging " + svc},
			"startsAt":    "2026-11-21T09:00:00Z",
			"fingerprint": "fp-" + svc,
		})
	}
	data, err := json.Marshal(alerts)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, prefix+".json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTwoProcessesOneRemote starts two `firebreak run --repo URL`
// processes at once against one playbook repository on a real git server,
// each with 100 alerts of distinct groups. Both push to the same branch
// all the time, so many of their pushes race; the remote must end up with
// all 200 incidents, each file whole and in its last state, an index that
// lists every one, and every commit of both processes in its history.
func TestTwoProcessesOneRemote(t *testing.T) {
	if testing.Short() {
		t.Skip("builds firebreak and runs two processes against a git server")
	}
	const perProcess = 100
	bin := buildFirebreak(t)
	srv := gittest.NewServer(t, gittest.WithToken(remoteToken))
	srv.CreateRepo("ops", map[string]string{"firebreak.cue": pageConfig, "playbooks/page.cue": pagePlaybooks})
	initial := srv.Head("ops")

	work := t.TempDir()
	files := []string{pageAlerts(t, work, "alpha", perProcess), pageAlerts(t, work, "beta", perProcess)}
	type result struct {
		stdout, stderr bytes.Buffer
		err            error
		took, cpu      time.Duration
	}
	results := make([]*result, len(files))
	// A process that hangs fails the test rather than the test binary.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	start, childCPU := time.Now(), childrenCPU(t)
	var wg sync.WaitGroup
	for i, f := range files {
		res := &result{}
		results[i] = res
		cmd := exec.CommandContext(ctx, bin, "run", "--alert", f, "--repo", srv.RepoURL("ops"), "--format", "json",
			// Each process its own clone cache, as on two machines.
			"--cache-dir", filepath.Join(work, fmt.Sprint("cache-", i)))
		cmd.Env = append(baseEnv(), "FIREBREAK_SECRET_GITHUB_TOKEN="+remoteToken)
		cmd.Stdout, cmd.Stderr = &res.stdout, &res.stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			res.err = cmd.Wait()
			res.took = time.Since(start)
			res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		})
	}
	wg.Wait()
	// Where the time goes: requests to the git server by kind, and the
	// pushes each process lost to the other.
	kinds := map[string]int{}
	for _, r := range srv.Requests() {
		switch {
		case strings.HasSuffix(r, "/info/refs"):
			kinds["info/refs"]++
		default:
			kinds[path.Base(r)]++
		}
	}
	// The git processes the server runs are this test's children, as are
	// the two firebreaks: what is left of the children's CPU time is the
	// git server's.
	serverCPU := childrenCPU(t) - childCPU
	for _, res := range results {
		serverCPU -= res.cpu
	}
	t.Logf("git server: %d requests %v, %d pushes, CPU %s", len(srv.Requests()), kinds, srv.Pushes(), serverCPU.Round(time.Millisecond))
	for i, res := range results {
		t.Logf("process %d: wall %s, CPU %s, %d pushes rejected", i, res.took.Round(time.Millisecond), res.cpu.Round(time.Millisecond),
			strings.Count(res.stderr.String(), "git push rejected"))
		if res.err != nil {
			t.Fatalf("process %d: %v\nstderr:\n%s", i, res.err, tail(res.stderr.String(), 4000))
		}
		if strings.Contains(res.stdout.String()+res.stderr.String(), remoteToken) {
			t.Fatalf("process %d printed the token", i)
		}
		var reports []runReport
		if err := json.Unmarshal(res.stdout.Bytes(), &reports); err != nil {
			t.Fatalf("process %d stdout: %v\n%s", i, err, tail(res.stdout.String(), 2000))
		}
		if len(reports) != perProcess {
			t.Fatalf("process %d reported %d groups, want %d", i, len(reports), perProcess)
		}
		for _, rep := range reports {
			if rep.What != "opened" || rep.Result == nil || rep.Result.Status != "waiting" {
				t.Errorf("process %d: %s %v: %s (%s), want opened and waiting", i, rep.Incident, rep.Group, rep.What, rep.Reason)
			}
		}
	}

	clone := srv.Clone("ops")
	paths := strings.Fields(clone.Git("ls-files", "incidents"))
	if len(paths) != 2*perProcess {
		t.Fatalf("%d incident files on the remote, want %d", len(paths), 2*perProcess)
	}
	services := map[string]string{} // service → incident id
	ids := map[string]string{}      // incident id → path
	for _, p := range paths {
		in, err := incident.Unmarshal([]byte(clone.File(p)))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		svc := in.Group["service"]
		// The file is whole and in the incident's last state: its own
		// group, its own alert, the step recorded waiting.
		if want := "incidents/2026/11/" + in.ID + ".md"; p != want || !incident.ValidID(in.ID) {
			t.Errorf("%s holds incident %q", p, in.ID)
		}
		if in.Status != incident.Open || len(in.Steps) != 1 || in.Steps[0].Status != "waiting" {
			t.Errorf("%s: status %s, steps %+v", p, in.Status, in.Steps)
		}
		if len(in.Alerts) != 1 || in.Alerts[0].Fingerprint != "fp-"+svc || in.Title != svc+" paging" {
			t.Errorf("%s: another incident's content: title %q, alerts %+v", p, in.Title, in.Alerts)
		}
		if prev, dup := services[svc]; dup {
			t.Errorf("service %s has two incidents: %s and %s", svc, prev, in.ID)
		}
		services[svc], ids[in.ID] = in.ID, p
	}
	for i, prefix := range []string{"alpha", "beta"} {
		for j := range perProcess {
			if svc := fmt.Sprintf("%s-%03d", prefix, j); services[svc] == "" {
				t.Errorf("process %d's incident for %s is missing", i, svc)
			}
		}
	}

	// The index lists every incident open, at its path.
	var idx struct {
		Version int `json:"version"`
		Open    map[string]struct {
			ID, Path string
		} `json:"open"`
		Runs []struct{ ID string } `json:"runs"`
	}
	if err := json.Unmarshal([]byte(clone.File(".firebreak/index.json")), &idx); err != nil {
		t.Fatalf(".firebreak/index.json: %v", err)
	}
	if len(idx.Open) != 2*perProcess || len(idx.Runs) != 2*perProcess {
		t.Errorf("index: %d open, %d runs, want %d each", len(idx.Open), len(idx.Runs), 2*perProcess)
	}
	for key, e := range idx.Open {
		if ids[e.ID] != e.Path {
			t.Errorf("index entry %s: %s at %s, the remote has it at %q", key, e.ID, e.Path, ids[e.ID])
		}
	}

	// No commit was lost: on top of the initial one, exactly an "opened"
	// and a "step page waiting" per incident, each touching its own file.
	log := clone.Git("log", "--format=@@%H %s", "--name-only", initial+"..HEAD")
	opened, waiting := map[string]int{}, map[string]int{}
	subject := regexp.MustCompile(`^incident ([a-z0-9-]+): (opened \(playbook page\)|step page waiting)$`)
	commits := 0
	for _, entry := range strings.Split(log, "@@")[1:] {
		lines := strings.Split(strings.TrimSpace(entry), "\n")
		commits++
		head := strings.SplitN(lines[0], " ", 2)
		m := subject.FindStringSubmatch(head[1])
		if m == nil {
			t.Errorf("commit %s: unexpected subject %q", head[0][:12], head[1])
			continue
		}
		touched := slices.DeleteFunc(lines[1:], func(s string) bool { return s == "" })
		if !slices.Contains(touched, ids[m[1]]) || slices.ContainsFunc(touched, func(f string) bool {
			return strings.HasPrefix(f, "incidents/") && f != ids[m[1]]
		}) {
			t.Errorf("commit %s %q touched %v", head[0][:12], head[1], touched)
		}
		if strings.HasPrefix(m[2], "opened") {
			opened[m[1]]++
		} else {
			waiting[m[1]]++
		}
	}
	if commits != 4*perProcess {
		t.Errorf("%d commits after the initial one, want %d (two per incident)", commits, 4*perProcess)
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if opened[id] != 1 || waiting[id] != 1 {
			t.Errorf("incident %s: %d opened and %d waiting commits, want one each", id, opened[id], waiting[id])
		}
	}
	if n := strings.TrimSpace(clone.Git("rev-list", "--count", "HEAD")); n != fmt.Sprint(1+4*perProcess) {
		t.Errorf("rev-list --count HEAD = %s, want %d", n, 1+4*perProcess)
	}
	if root := clone.Git("rev-list", "--max-parents=0", "HEAD"); root != initial {
		t.Errorf("history does not start at the initial commit %s: %s", initial, root)
	}
}

// childrenCPU is the user and system time of this process's children
// that have been waited for.
func childrenCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
