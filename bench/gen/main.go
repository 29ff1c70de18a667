// Command gen writes a synthetic playbook repository for firebreak's
// benchmarks, the same playbooks set up for `cue vet` against firebreak's
// schema, and optionally a file of alerts with the playbooks each must
// match.
//
//	go run ./bench/gen -n 1000 -out DIR [-cue DIR-cue] [-alerts FILE] [-broken]
//
// The firebreak side (DIR) is a repository `firebreak validate` accepts.
// The cue side (DIR-cue) holds byte-identical playbook and test files, and
// per package a copy of firebreak's schema with the constraints that make
// it check them: alert: #Alert and [!="alert"]: #Playbook in package
// playbooks, tests: [string]: #Test in package tests, and firebreak.cue
// in package config with #Config embedded. Check it with
//
//	cd DIR-cue && cue vet -c=false ./config ./playbooks ./playbooks/tests
//
// (-c=false: match constraints and steps that read the alert are not
// concrete before an alert arrives, which is what firebreak allows too).
// With -broken, the first playbook's severity is not a #Severity, on both
// sides, and both must fail.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

type options struct {
	n, files, nAlerts int
	seed              uint64
	out, cueOut       string
	alertsOut         string
	matchShare        float64
	broken            bool
}

func run(args []string) int {
	var o options
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.IntVar(&o.n, "n", 1000, "number of playbooks")
	fs.IntVar(&o.files, "files", 50, "number of playbook files")
	fs.StringVar(&o.out, "out", "", "directory of the firebreak repository (required; must not exist or be empty)")
	fs.StringVar(&o.cueOut, "cue", "", "directory of the cue vet side (default OUT-cue)")
	fs.StringVar(&o.alertsOut, "alerts", "", "write alerts and the playbooks each must match to this JSON file")
	fs.IntVar(&o.nAlerts, "nalerts", 10000, "number of alerts for -alerts")
	fs.Float64Var(&o.matchShare, "match", 0.7, "share of alerts that match exactly one playbook")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed")
	fs.BoolVar(&o.broken, "broken", false, "put one schema error (a severity outside #Severity) in the first playbook")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.out == "" || o.n < 1 || o.files < 1 {
		fmt.Fprintln(os.Stderr, "gen: -out DIR is required, -n and -files must be positive")
		return 2
	}
	if o.cueOut == "" {
		o.cueOut = o.out + "-cue"
	}
	if err := generate(o); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		return 1
	}
	return 0
}

func generate(o options) error {
	files := min(o.files, o.n)
	c := newCorpus(o.n, files, o.seed)
	g := newAlertGen(c, o.seed)
	fb, cue, err := c.repoFiles(g, o.broken)
	if err != nil {
		return err
	}
	if err := writeTree(o.out, fb); err != nil {
		return err
	}
	if err := writeTree(o.cueOut, cue); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: %d playbooks in %d files, %d tests: %s (firebreak), %s (cue vet)\n", len(c.playbooks), len(c.files), 2*len(c.files), o.out, o.cueOut)
	if o.alertsOut == "" {
		return nil
	}
	data, err := json.Marshal(g.alerts(o.nAlerts, o.matchShare))
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.alertsOut, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: %d alerts: %s\n", o.nAlerts, o.alertsOut)
	return nil
}
