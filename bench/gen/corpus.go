package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode"
)

// team is one owner with its namespace, its services and the targets and
// channels its policy allows.
type team struct {
	owner     string
	namespace string
	services  []string
}

var teams = []team{
	{"@acme/payments", "payments", []string{"payments-api", "payments-worker", "ledger-api", "billing-api", "invoice-worker", "refunds-api", "fraud-scorer", "payouts-worker", "wallet-api", "psp-gateway"}},
	{"@acme/shop", "shop", []string{"checkout-api", "checkout-web", "cart-api", "catalog-api", "search-api", "recommendations-api", "pricing-api", "inventory-api", "orders-api", "reviews-api"}},
	{"@acme/platform", "platform", []string{"ingress-gateway", "kafka-connect", "redis-cache", "pgbouncer", "coredns", "cert-manager", "vault-agent", "thanos-query", "loki-gateway", "tempo-distributor"}},
	{"@acme/identity", "identity", []string{"auth-api", "session-api", "users-api", "sso-gateway", "mfa-api", "token-service", "profile-api", "notifications-api", "email-worker", "sms-worker"}},
}

// sreOwner owns the paging-only playbooks of every team.
const sreOwner = "@acme/sre"

// kind is the shape of a playbook's steps.
type kind int

const (
	kindRollback kind = iota
	kindScale
	kindFlag
	kindPage
)

// symptom is the second half of an alertname and what is done about it.
type symptom struct {
	name     string
	kind     kind
	severity string
	// label is the alert label that names the workload.
	label string
}

var symptoms = []symptom{
	{"CrashLooping", kindRollback, "critical", "deployment"},
	{"HighErrorRate", kindFlag, "high", "service"},
	{"HighLatency", kindScale, "high", "service"},
	{"CPUSaturation", kindScale, "high", "deployment"},
	{"MemorySaturation", kindScale, "high", "deployment"},
	{"OOMKilled", kindRollback, "critical", "deployment"},
	{"ReplicasMismatch", kindRollback, "high", "deployment"},
	{"CanaryHighErrorRate", kindRollback, "critical", "deployment"},
	{"SLOBurnRateFast", kindPage, "critical", "service"},
	{"SLOBurnRateSlow", kindPage, "warning", "service"},
	{"QueueBacklog", kindScale, "warning", "service"},
	{"ConsumerLag", kindScale, "warning", "deployment"},
	{"5xxSpike", kindFlag, "critical", "service"},
	{"DependencyTimeouts", kindFlag, "high", "service"},
	{"CertExpiringSoon", kindPage, "warning", "service"},
	{"PodRestartsHigh", kindRollback, "high", "deployment"},
	{"ReadinessProbeFailing", kindRollback, "high", "deployment"},
	{"ThreadPoolExhausted", kindScale, "high", "service"},
	{"ConnectionPoolExhausted", kindScale, "high", "service"},
	{"ErrorBudgetExhausted", kindPage, "critical", "service"},
	{"CacheHitRateLow", kindFlag, "warning", "service"},
	{"DiskPressure", kindPage, "warning", "deployment"},
	{"HighGCPause", kindScale, "warning", "deployment"},
	{"RequestRateDrop", kindPage, "high", "service"},
	{"FeatureFlagErrors", kindFlag, "high", "service"},
}

// constraint is one field of a match, with a value that satisfies it and
// one that does not.
type constraint struct {
	top   string // "labels", or a top-level alert field such as "status"
	field string // label name when top is "labels"
	expr  string // CUE
	good  []string
	bad   string
}

// concrete reports whether the constraint is one string, which an alert
// without the field satisfies too.
func (c constraint) concrete() bool { return len(c.good) == 1 && strings.HasPrefix(c.expr, `"`) }

// playbook is one generated playbook and what its alerts look like.
type playbook struct {
	name      string
	file      string
	alertname string
	team      team
	service   string
	symptom   symptom
	owner     string
	match     []constraint
	// steps is the CUE of the steps list and on_failure is that of
	// on_failure, or empty.
	steps     []string
	onFailure []string
	// replicas is the scale step's replicas (0: factor 2).
	replicas int
}

// corpus is a generated repository.
type corpus struct {
	playbooks []*playbook
	files     []string // file names in order
	byFile    map[string][]*playbook
}

// newCorpus generates n playbooks over files files, deterministically.
func newCorpus(n, files int, seed uint64) *corpus {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	var services []struct {
		t   team
		svc string
	}
	for _, t := range teams {
		for _, s := range t.services {
			services = append(services, struct {
				t   team
				svc string
			}{t, s})
		}
	}
	c := &corpus{byFile: map[string][]*playbook{}}
	perRound := len(services) * len(symptoms)
	for i := range n {
		sv := services[i%len(services)]
		sy := symptoms[(i/len(services))%len(symptoms)]
		round := i / perRound
		alertname := camel(sv.svc) + sy.name
		name := snake(sv.svc) + "_" + snake(sy.name)
		if round > 0 {
			alertname += fmt.Sprintf("V%d", round+1)
			name += fmt.Sprintf("_v%d", round+1)
		}
		pb := &playbook{
			name:      name,
			alertname: alertname,
			team:      sv.t,
			service:   sv.svc,
			symptom:   sy,
			owner:     sv.t.owner,
		}
		if sy.kind == kindPage {
			pb.owner = sreOwner
		}
		pb.match = matchFor(r, pb)
		pb.steps, pb.onFailure = stepsFor(r, pb)
		// Consecutive playbooks mostly share a symptom; a file is named
		// after the symptom of its first.
		if fileIdx := i * files / n; fileIdx == len(c.files) {
			c.files = append(c.files, fmt.Sprintf("%02d_%s.cue", fileIdx, snake(sy.name)))
		}
		pb.file = c.files[len(c.files)-1]
		c.byFile[pb.file] = append(c.byFile[pb.file], pb)
		c.playbooks = append(c.playbooks, pb)
	}
	return c
}

// matchFor draws the match of pb: alertname by equality, and a mix of
// equality, disjunctions of strings, =~ and != on the other labels.
func matchFor(r *rand.Rand, pb *playbook) []constraint {
	ns := pb.team.namespace
	svc := pb.service
	var cs []constraint
	if r.Float64() < 0.8 {
		cs = append(cs, constraint{top: "status", expr: `"firing"`, good: []string{"firing"}, bad: "resolved"})
	}
	if r.Float64() < 0.15 {
		cs = append(cs, constraint{top: "source", expr: `"alertmanager" | "grafana"`, good: []string{"alertmanager", "grafana"}, bad: "pagerduty"})
	}
	cs = append(cs, constraint{top: "labels", field: "alertname", expr: quote(pb.alertname), good: []string{pb.alertname}, bad: pb.alertname})
	if r.Float64() < 0.6 {
		cs = append(cs, constraint{top: "labels", field: "namespace", expr: quote(ns), good: []string{ns}, bad: "default"})
	} else {
		cs = append(cs, constraint{top: "labels", field: "namespace", expr: quote(ns) + " | " + quote(ns+"-canary"), good: []string{ns, ns + "-canary"}, bad: ns + "-staging"})
	}
	prefix := svc
	if i := strings.IndexByte(svc, '-'); i > 0 {
		prefix = svc[:i+1]
	}
	switch x := r.Float64(); {
	case x < 0.4:
		cs = append(cs, constraint{top: "labels", field: pb.symptom.label, expr: quote(svc), good: []string{svc}, bad: "zz-unrelated"})
	case x < 0.8:
		cs = append(cs, constraint{top: "labels", field: pb.symptom.label, expr: "=~" + quote("^"+svc+"(-canary)?$"), good: []string{svc, svc + "-canary"}, bad: svc + "-shadow"})
	default:
		cs = append(cs, constraint{top: "labels", field: pb.symptom.label, expr: "=~" + quote("^"+prefix), good: []string{svc}, bad: "zz-unrelated"})
	}
	switch x := r.Float64(); {
	case x < 0.5:
		cs = append(cs, constraint{top: "labels", field: "env", expr: `"prod" | "production"`, good: []string{"prod", "production"}, bad: "staging"})
	case x < 0.8:
		cs = append(cs, constraint{top: "labels", field: "env", expr: `!="staging"`, good: []string{"prod", "production"}, bad: "staging"})
	}
	switch x := r.Float64(); {
	case x < 0.4:
		cs = append(cs, constraint{top: "labels", field: "severity", expr: `"critical" | "page"`, good: []string{"critical", "page"}, bad: "warning"})
	case x < 0.6:
		cs = append(cs, constraint{top: "labels", field: "severity", expr: `!="info"`, good: []string{"critical", "warning"}, bad: "info"})
	}
	if r.Float64() < 0.25 {
		cs = append(cs, constraint{top: "labels", field: "cluster", expr: "=~" + quote(`^(eu|us)-(west|east)-[0-9]$`), good: []string{"eu-west-1", "us-east-2"}, bad: "ap-south-1"})
	}
	return cs
}

// stepsFor writes the steps of pb, 3 to 5 of them, each reading alert
// labels through interpolation.
func stepsFor(r *rand.Rand, pb *playbook) (steps, onFailure []string) {
	ns := pb.team.namespace
	l := pb.symptom.label
	ref := func(label string) string { return `\(alert.labels.` + label + `)` }
	rawRef := func(label string) string { return `\#(alert.labels.` + label + `)` }
	oncall := ns + "-oncall"
	page := ns + "-page"
	deploy := ns + "-deploy"
	flags := ns + "-flags"
	announce := fmt.Sprintf(`{
	name: "announce"
	notify: {
		channel: %q
		title:   "%s: %s/%s"
		text:    "%s fired for %s in %s (env %s); firebreak playbook %s is handling it."
	}
}`, oncall, pb.alertname, ref("namespace"), ref(l), ref("alertname"), ref(l), ref("namespace"), ref("env"), pb.name)
	verifyQuery := fmt.Sprintf(`{
	name: "verify"
	verify: {
		query:      #"sum(kube_deployment_status_replicas_unavailable{namespace="%s",deployment="%s"}) == 0"#
		datasource: "prom"
		within:     "%dm"
		every:      "30s"
	}
}`, rawRef("namespace"), rawRef(l), 5+r.IntN(11))
	record := fmt.Sprintf(`{
	name: "record"
	notify: {
		channel: "issue"
		text:    "%s handled %s on %s/%s; see the incident file for the timeline."
	}
}`, pb.name, ref("alertname"), ref("namespace"), ref(l))
	switch pb.symptom.kind {
	case kindRollback:
		steps = []string{announce, fmt.Sprintf(`{
	name: "rollback"
	rollback: {
		target: %q
		path:   "apps/%s"
	}
}`, deploy, ref(l)), verifyQuery, record}
		if r.Float64() < 0.5 {
			steps = append(steps, fmt.Sprintf(`{
	name:     "kill-switch"
	approval: "required"
	flag: {
		target: %q
		key:    "%s-kill-switch"
		to:     "on"
	}
}`, flags, ref(l)))
		}
	case kindScale:
		scale := `factor:   2`
		if r.Float64() < 0.4 {
			pb.replicas = 6 + r.IntN(40)
			scale = fmt.Sprintf(`replicas: %d`, pb.replicas)
		}
		steps = []string{announce, fmt.Sprintf(`{
	name: "scale-out"
	scale: {
		target:   %q
		path:     "apps/%s/deployment.yaml"
		resource: "Deployment/%s"
		%s
	}
}`, deploy, ref(l), ref(l), scale), verifyQuery}
		if r.Float64() < 0.5 {
			steps = append(steps, record)
		}
	case kindFlag:
		approval := ""
		if r.Float64() < 0.5 {
			approval = "\n\tapproval: \"required\""
		}
		steps = []string{announce, fmt.Sprintf(`{
	name: "disable-flag"%s
	flag: {
		target: %q
		key:    "%s-v2"
		to:     "off"
	}
}`, approval, flags, ref(l)), fmt.Sprintf(`{
	name: "audit"
	notify: {
		channel: "audit"
		text:    "flag %s-v2 set to off in %s by firebreak (playbook %s)"
	}
}`, ref(l), flags, pb.name), verifyQuery}
	case kindPage:
		steps = []string{announce, fmt.Sprintf(`{
	name: "page"
	notify: {
		channel: %q
		title:   "%s on %s"
		text:    "%s is burning its error budget in %s; page the owner of %s."
	}
}`, page, ref("alertname"), ref(l), ref(l), ref("namespace"), ref(l)), fmt.Sprintf(`{
	name: "verify-health"
	verify: {
		url:    "https://status.example.com/health/%s/%s"
		within: "15m"
		every:  "1m"
	}
}`, ref("namespace"), ref(l))}
		if r.Float64() < 0.5 {
			steps = append(steps, record)
		}
	}
	onFailure = []string{fmt.Sprintf(`{
	name: "page-owner"
	notify: {
		channel: %q
		title:   "firebreak could not mitigate %s"
		text:    "Playbook %s failed for %s/%s; manual action needed."
	}
}`, page, ref("alertname"), pb.name, ref("namespace"), ref(l))}
	return steps, onFailure
}

// camel turns checkout-api into CheckoutApi.
func camel(s string) string {
	var b strings.Builder
	for _, part := range strings.Split(s, "-") {
		if part == "" {
			continue
		}
		rs := []rune(part)
		rs[0] = unicode.ToUpper(rs[0])
		b.WriteString(string(rs))
	}
	return b.String()
}

// snake turns checkout-api into checkout_api and CPUSaturation into
// cpu_saturation.
func snake(s string) string {
	s = strings.ReplaceAll(s, "-", "_")
	rs := []rune(s)
	var b strings.Builder
	for i, c := range rs {
		if unicode.IsUpper(c) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if i > 0 && rs[i-1] != '_' && (prevLower || (nextLower && unicode.IsUpper(rs[i-1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(c))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
