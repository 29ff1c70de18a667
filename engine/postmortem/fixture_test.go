package postmortem

import (
	"time"

	"github.com/firebreak-dev/firebreak/engine/incident"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

var links = Links{
	IssueURL: "https://github.com/acme/ops/issues/412",
	RepoURL:  "https://github.com/acme/deploy",
}

// realistic is a resolved incident as firebreak records one.
func realistic() *incident.Incident {
	group := map[string]string{"namespace": "shop", "deployment": "checkout-api"}
	detected := at("2026-11-21T09:12:03Z")
	labels := func(pod, service string) map[string]string {
		return map[string]string{"alertname": "KubePodCrashLooping", "namespace": "shop", "deployment": "checkout-api", "pod": pod, "service": service}
	}
	return &incident.Incident{
		ID:              incident.NewID("checkout_crashloop", group, detected),
		Title:           "Checkout pods crash-looping after a deploy",
		Status:          incident.Resolved,
		Severity:        "critical",
		Playbook:        "checkout_crashloop",
		PlaybooksCommit: "9c1e2d3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e",
		Owner:           "@acme/payments",
		GroupKey:        incident.GroupKey("checkout_crashloop", group),
		Group:           group,
		Timestamps: incident.Timestamps{
			Detected:     detected,
			Opened:       at("2026-11-21T09:13:15Z"),
			Acknowledged: at("2026-11-21T09:16:40Z"),
			Mitigated:    at("2026-11-21T09:19:20Z"),
			Resolved:     at("2026-11-21T10:01:03Z"),
		},
		Issue:        412,
		PostmortemPR: 415,
		Alerts: []incident.AlertRef{
			{Fingerprint: "8c1f3e9a2b7d4c10", Status: "resolved", StartsAt: detected, EndsAt: at("2026-11-21T09:58:03Z"), Labels: labels("checkout-api-7d9f8-x2x4k", "checkout")},
			{Fingerprint: "1b2c3d4e5f607182", Status: "resolved", StartsAt: at("2026-11-21T09:12:33Z"), EndsAt: at("2026-11-21T09:57:33Z"), Labels: labels("checkout-api-7d9f8-q8zzp", "payments-gateway")},
			{Fingerprint: "77aa", Status: "resolved", StartsAt: at("2026-11-21T09:12:40Z"), Labels: labels("checkout-api-7d9f8-zz", "checkout")},
		},
		Steps: []incident.Step{
			{Name: "notify", Action: "notify", Target: "oncall", Status: "succeeded", Started: at("2026-11-21T09:13:16Z"), Finished: at("2026-11-21T09:13:17Z"), Result: "posted to slack channel oncall"},
			{Name: "rollback", Action: "rollback", Target: "shop-deploy", Status: "succeeded", Started: at("2026-11-21T09:13:17Z"), Finished: at("2026-11-21T09:13:21Z"), Result: "reverted 4be1c0a in apps/checkout-api", Commit: "e83c5163316f89bfbde7d9ab23ca2e25604af290"},
			{Name: "verify", Action: "verify", Target: "prom", Status: "failed", Started: at("2026-11-21T09:13:21Z"), Finished: at("2026-11-21T09:19:20Z"), Error: "query did not hold for 5m"},
			{Name: "flag", Action: "flag", Target: "shop-flags", Status: "succeeded", Started: at("2026-11-21T09:19:21Z"), Finished: at("2026-11-21T09:19:24Z"), Result: "new-checkout defaultVariant on → off", Commit: "0d9a5c7e1f2b3a4c5d6e7f8091a2b3c4d5e6f708", ApprovedBy: "octocat", ApprovedAt: at("2026-11-21T09:19:21Z")},
		},
		Timeline: []incident.Event{
			{At: detected, Kind: incident.EventAlertFiring, Text: "KubePodCrashLooping firing for checkout-api-7d9f8-x2x4k"},
			{At: at("2026-11-21T09:13:15Z"), Kind: incident.EventOpened, Text: "Incident opened by playbook checkout_crashloop"},
			{At: at("2026-11-21T09:16:40Z"), Kind: incident.EventAcknowledged, Text: "Acknowledged by octocat"},
			{At: at("2026-11-21T09:19:20Z"), Kind: incident.EventMitigated, Text: "verify held: no unavailable checkout replicas"},
			{At: at("2026-11-21T10:01:03Z"), Kind: incident.EventResolved, Text: "All alerts resolved"},
		},
	}
}
