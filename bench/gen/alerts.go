package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/firebreak-dev/firebreak/schema"
)

// benchAlert is one alert of the alerts file and the playbooks it must
// match, in order.
type benchAlert struct {
	Alert schema.Alert `json:"alert"`
	Want  []string     `json:"want"`
}

// unhandled are alertnames no generated playbook has.
var unhandled = []string{
	"Watchdog", "InfoInhibitor", "TargetDown", "NodeClockNotSynchronising",
	"KubeAPIErrorBudgetBurn", "NodeFilesystemAlmostOutOfSpace", "KubeletTooManyPods",
	"PrometheusRuleFailures", "AlertmanagerFailedToSendAlerts", "KubeQuotaAlmostFull",
}

// alertGen draws alerts for a corpus, deterministically.
type alertGen struct {
	c    *corpus
	r    *rand.Rand
	seq  int
	base time.Time
}

func newAlertGen(c *corpus, seed uint64) *alertGen {
	return &alertGen{c: c, r: rand.New(rand.NewPCG(seed, seed^0xa1e7)), base: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
}

// matching returns an alert that matches pb and no other playbook: every
// constraint gets a value it admits, and alertnames are distinct.
func (g *alertGen) matching(pb *playbook) schema.Alert {
	g.seq++
	r := g.r
	svc := pb.service
	a := schema.Alert{
		Source: "alertmanager",
		Status: "firing",
		Labels: map[string]string{
			"alertname":       pb.alertname,
			"namespace":       pb.team.namespace,
			pb.symptom.label:  svc,
			"env":             "prod",
			"severity":        map[string]string{"critical": "critical", "high": "critical"}[pb.symptom.severity],
			"cluster":         "eu-west-1",
			"team":            pb.team.namespace,
			"job":             "kube-state-metrics",
			"pod":             fmt.Sprintf("%s-%08x-%05x", svc, r.Uint32(), r.Uint32()&0xfffff),
			"prometheus":      "monitoring/k8s",
			"container":       svc,
			"instance":        fmt.Sprintf("10.%d.%d.%d:8080", r.IntN(256), r.IntN(256), r.IntN(256)),
			"alertgroup":      pb.team.namespace + ".rules",
			"endpoint":        "http-metrics",
			"service_version": fmt.Sprintf("v1.%d.%d", r.IntN(40), r.IntN(10)),
		},
		Annotations: map[string]string{
			"summary":     fmt.Sprintf("%s on %s/%s", pb.alertname, pb.team.namespace, svc),
			"description": fmt.Sprintf("%s has been firing for more than 5 minutes in %s.", pb.alertname, pb.team.namespace),
			"runbook_url": "https://runbooks.example.com/" + pb.team.namespace + "/" + pb.name,
		},
		Fingerprint:  fmt.Sprintf("%016x", r.Uint64()),
		StartsAt:     g.base.Add(time.Duration(g.seq) * time.Second),
		GeneratorURL: "http://prometheus:9090/graph?g0.expr=ALERTS&g0.tab=1",
	}
	if a.Labels["severity"] == "" {
		a.Labels["severity"] = "warning"
	}
	for _, m := range pb.match {
		v := m.good[r.IntN(len(m.good))]
		switch m.top {
		case "labels":
			a.Labels[m.field] = v
		case "status":
			a.Status = v
		case "source":
			a.Source = v
		}
	}
	return a
}

// violating returns an alert with pb's alertname that breaks one other
// constraint of pb: a wrong value, or the label left out.
func (g *alertGen) violating(pb *playbook) schema.Alert {
	a := g.matching(pb)
	var others []constraint
	for _, m := range pb.match {
		if m.field != "alertname" {
			others = append(others, m)
		}
	}
	m := others[g.r.IntN(len(others))]
	switch m.top {
	case "labels":
		// A concrete value matches an absent label (unification adds it),
		// so only labels with a constraint that is not concrete are left out.
		if !m.concrete() && g.r.Float64() < 0.2 {
			delete(a.Labels, m.field)
		} else {
			a.Labels[m.field] = m.bad
		}
	case "status":
		a.Status = m.bad
	case "source":
		a.Source = m.bad
	}
	return a
}

// unhandledAlert returns an alert whose alertname no playbook has.
func (g *alertGen) unhandledAlert() schema.Alert {
	pb := g.c.playbooks[g.r.IntN(len(g.c.playbooks))]
	a := g.matching(pb)
	a.Labels["alertname"] = unhandled[g.r.IntN(len(unhandled))]
	return a
}

// alerts returns n alerts in random order: matchShare of them match exactly
// one playbook; of the rest, half have an alertname no playbook handles and
// half the alertname of a playbook whose other constraints they break.
func (g *alertGen) alerts(n int, matchShare float64) []benchAlert {
	out := make([]benchAlert, 0, n)
	matching := int(float64(n)*matchShare + 0.5)
	for i := range n {
		pb := g.c.playbooks[g.r.IntN(len(g.c.playbooks))]
		switch {
		case i < matching:
			out = append(out, benchAlert{Alert: g.matching(pb), Want: []string{pb.name}})
		case (i-matching)%2 == 0:
			out = append(out, benchAlert{Alert: g.unhandledAlert(), Want: []string{}})
		default:
			out = append(out, benchAlert{Alert: g.violating(pb), Want: []string{}})
		}
	}
	g.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
