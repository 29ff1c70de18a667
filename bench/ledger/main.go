// Command ledger measures how long firebreak takes to record one incident
// update in a local playbook repository holding 50,000 incident files,
// against the git CLI doing the same by hand in the same worktree:
//
//	firebreak: ledger.Write of one file (blob, trees on its path, commit,
//	           branch CAS, index entry, worktree file)
//	git CLI:   write the file, then git add <file> && git commit -q -m ...
//
// The repository is made with git fast-import (incidents/YYYY/MM/<id>.md
// spread over five years) and checked out once. The rounds alternate the
// sides, and which goes first, each side updating a different incident
// each time: an update of an existing incident in odd rounds, a new
// incident in even ones. firebreak is measured twice: with the Ledger a process keeps
// open (warm, how `firebreak serve` and a `firebreak run` with several
// updates use it) and opened afresh for every write (cold, a one-shot
// process). It prints each round, the medians and the ratios firebreak /
// git CLI; the goal is ≤ 0.5. At the end it checks git agrees with the
// result: a clean `git status`, the index's trees equal to HEAD's, and
// `git fsck`.
//
//	go run ./bench/ledger [-files 50000] [-rounds 10] [-keep]
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/firebreak-dev/firebreak/engine/ledger"
)

func main() {
	files := flag.Int("files", 50000, "incident files in the repository")
	rounds := flag.Int("rounds", 10, "timed rounds per side")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	fsck := flag.Bool("fsck", true, "run git fsck on the result")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed firebreak writes to `file`")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/ledger:", err)
			os.Exit(1)
		}
		profile = f
	}
	if err := run(*files, *rounds, *keep, *fsck); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ledger:", err)
		os.Exit(1)
	}
}

// profile, when set, receives a CPU profile of the firebreak writes only.
var profile *os.File

type gitCLI struct {
	path, dir string
	env       []string
}

func (g gitCLI) run(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(g.path, args...)
	cmd.Dir = g.dir
	cmd.Env = g.env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return strings.TrimSpace(out.String()), nil
}

func run(nfiles, rounds int, keep, fsck bool) error {
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
	paths, err := generate(g, nfiles)
	if err != nil {
		return err
	}
	if _, err := g.run(nil, "status", "--porcelain"); err != nil {
		return err
	}
	idx, _ := os.Stat(filepath.Join(dir, ".git", "index"))
	fmt.Printf("repository: %d incident files, index %.1f MB, git %s; made in %s\n",
		nfiles, float64(idx.Size())/1e6, mustRun(g, "version"), time.Since(start).Round(time.Millisecond))

	ctx := context.Background()
	l, err := ledger.OpenLocal(dir, ledger.Options{})
	if err != nil {
		return err
	}
	defer l.Close()

	// Each write touches an incident nobody touched before: an existing
	// one in odd rounds (an update), a new one in even rounds (an
	// incident opened), the same kind for every side of a round.
	next := 0
	pick := func(round int) string {
		next++
		if round%2 == 0 {
			return fmt.Sprintf("incidents/2025/12/INC-202512-new%04d.md", next)
		}
		return paths[(next*7919)%len(paths)]
	}
	update := func(p string, round int, who string) []byte {
		return fmt.Appendf(nil, "---\nid: %s\nstatus: mitigated\nupdated_by: %s\nround: %d\n---\n\nMitigated.\n",
			strings.TrimSuffix(filepath.Base(p), ".md"), who, round)
	}
	warm := func(round int) (time.Duration, error) {
		p := pick(round)
		t0 := time.Now()
		_, changed, err := l.Write(ctx, "incident "+p+": mitigated", map[string][]byte{p: update(p, round, "firebreak")})
		d := time.Since(t0)
		if err == nil && !changed {
			err = errors.New("firebreak: no change")
		}
		return d, err
	}
	cold := func(round int) (time.Duration, error) {
		p := pick(round)
		t0 := time.Now()
		l2, err := ledger.OpenLocal(dir, ledger.Options{})
		if err != nil {
			return 0, err
		}
		_, _, err = l2.Write(ctx, "incident "+p+": mitigated", map[string][]byte{p: update(p, round, "firebreak-cold")})
		l2.Close()
		return time.Since(t0), err
	}
	cli := func(round int) (time.Duration, error) {
		p := pick(round)
		t0 := time.Now()
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), update(p, round, "git"), 0o644); err != nil {
			return 0, err
		}
		if _, err := g.run(nil, "add", "--", p); err != nil {
			return 0, err
		}
		if _, err := g.run(nil, "commit", "-q", "-m", "incident "+p+": mitigated"); err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}

	// One untimed round warms the page cache and the Ledger's trees.
	for _, f := range []func(int) (time.Duration, error){cli, warm, cold} {
		if _, err := f(0); err != nil {
			return err
		}
	}
	sides := []struct {
		name string
		f    func(int) (time.Duration, error)
		all  []time.Duration
	}{{"firebreak (warm)", warm, nil}, {"firebreak (cold)", cold, nil}, {"git add && git commit", cli, nil}}
	fmt.Printf("\n%-10s %18s %18s %22s\n", "round", sides[0].name, sides[1].name, sides[2].name)
	for r := 1; r <= rounds; r++ {
		order := []int{0, 1, 2}
		if r%2 == 0 {
			order = []int{2, 1, 0}
		}
		got := make([]time.Duration, 3)
		for _, i := range order {
			d, err := sides[i].f(r)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r, sides[i].name, err)
			}
			got[i] = d
			sides[i].all = append(sides[i].all, d)
		}
		fmt.Printf("%-10s %18s %18s %22s\n", fmt.Sprint(r, map[bool]string{true: " new", false: " update"}[r%2 == 0]), ms(got[0]), ms(got[1]), ms(got[2]))
	}
	mw, mc, mg := median(sides[0].all), median(sides[1].all), median(sides[2].all)
	fmt.Printf("%-10s %18s %18s %22s\n", "median", ms(mw), ms(mc), ms(mg))
	fmt.Printf("\nratio firebreak (warm) / git CLI: %.3f   (goal ≤ 0.5)\n", float64(mw)/float64(mg))
	fmt.Printf("ratio firebreak (cold) / git CLI: %.3f\n", float64(mc)/float64(mg))

	extra := 0
	if profile != nil {
		const profiled = 40
		if err := pprof.StartCPUProfile(profile); err != nil {
			return err
		}
		for i := range profiled {
			if _, err := warm(rounds + 1 + i); err != nil {
				return err
			}
		}
		pprof.StopCPUProfile()
		extra = profiled
		fmt.Printf("profiled %d more warm writes into %s\n", profiled, profile.Name())
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
	if got, want := mustRun(g, "rev-list", "--count", "HEAD"), fmt.Sprint(1+3*(rounds+1)+extra); got != want {
		return fmt.Errorf("%s commits, want %s", got, want)
	}
	if fsck {
		if _, err := g.run(nil, "fsck", "--strict", "--no-progress", "--no-dangling"); err != nil {
			return err
		}
	}
	fmt.Println("checked: git status clean, index trees = HEAD's, commit count right" + map[bool]string{true: ", git fsck --strict clean", false: ""}[fsck])
	return nil
}

// generate makes the repository with git fast-import and checks it out;
// it returns the incident paths.
func generate(g gitCLI, n int) ([]string, error) {
	if _, err := g.run(nil, "init", "-q", "-b", "main", "."); err != nil {
		return nil, err
	}
	var stream bytes.Buffer
	w := bufio.NewWriter(&stream)
	fmt.Fprintf(w, "commit refs/heads/main\ncommitter On Call <oncall@example.com> 1700000000 +0000\ndata 17\nfive years of it\n")
	inline := func(p string, data string) {
		fmt.Fprintf(w, "M 100644 inline %s\ndata %d\n%s\n", p, len(data), data)
	}
	inline("firebreak.cue", "package firebreak\n")
	inline("playbooks/checkout.cue", "package playbooks\n")
	paths := make([]string, 0, n)
	const months = 60
	for i := range n {
		m := i % months
		year, month := 2021+m/12, m%12+1
		id := fmt.Sprintf("INC-%04d%02d-%05d", year, month, i)
		p := fmt.Sprintf("incidents/%04d/%02d/%s.md", year, month, id)
		paths = append(paths, p)
		inline(p, fmt.Sprintf("---\nid: %s\ntitle: checkout error rate above 5%%\nstatus: resolved\nseverity: sev%d\nplaybook: checkout-rollback\nowner: team-payments\nalerts:\n  - fingerprint: %016x\n    status: resolved\n---\n\n# %s\n\nRolled back checkout; error rate recovered.\n", id, i%4+1, i*2654435761, id))
	}
	w.Flush()
	if _, err := g.run(stream.Bytes(), "fast-import", "--quiet"); err != nil {
		return nil, err
	}
	if _, err := g.run(nil, "repack", "-a", "-d", "-q"); err != nil {
		return nil, err
	}
	if _, err := g.run(nil, "checkout", "-q", "-f", "main"); err != nil {
		return nil, err
	}
	slices.Sort(paths)
	return paths, nil
}

func mustRun(g gitCLI, args ...string) string {
	out, err := g.run(nil, args...)
	if err != nil {
		return "?"
	}
	return out
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
