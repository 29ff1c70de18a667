package incident

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/engine/run"
	"github.com/firebreak-dev/firebreak/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// realistic is a resolved checkout crash-loop incident, as the engine
// would record it.
func realistic() *Incident {
	group := map[string]string{"namespace": "shop", "deployment": "checkout-api"}
	detected := at("2026-11-21T09:12:03Z")
	labels := func(pod string) map[string]string {
		return map[string]string{"alertname": "KubePodCrashLooping", "namespace": "shop", "deployment": "checkout-api", "pod": pod, "severity": "critical"}
	}
	return &Incident{
		ID:              NewID("checkout_crashloop", group, detected),
		Title:           "Checkout pods crash-looping after a deploy",
		Status:          Resolved,
		Severity:        "critical",
		Playbook:        "checkout_crashloop",
		PlaybooksCommit: "9c1e2d3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e",
		Owner:           "@acme/payments",
		GroupKey:        GroupKey("checkout_crashloop", group),
		Group:           group,
		Timestamps: Timestamps{
			Detected:     detected,
			Opened:       at("2026-11-21T09:13:15Z"),
			Acknowledged: at("2026-11-21T09:16:40Z"),
			Mitigated:    at("2026-11-21T09:19:20Z"),
			Resolved:     at("2026-11-21T10:01:03Z"),
		},
		Issue:        412,
		PostmortemPR: 415,
		Alerts: []AlertRef{
			{Fingerprint: "8c1f3e9a2b7d4c10", Status: "resolved", StartsAt: detected, EndsAt: at("2026-11-21T09:58:03Z"), Labels: labels("checkout-api-7d9f8-x2x4k")},
			{Fingerprint: "1b2c3d4e5f607182", Status: "resolved", StartsAt: at("2026-11-21T09:12:33Z"), EndsAt: at("2026-11-21T09:57:33Z"), Labels: labels("checkout-api-7d9f8-q8zzp")},
		},
		Steps: []Step{
			{Name: "notify", Action: "notify", Target: "oncall", Status: "succeeded", Started: at("2026-11-21T09:13:16Z"), Finished: at("2026-11-21T09:13:17Z"), Result: "posted to slack channel oncall"},
			{Name: "rollback", Action: "rollback", Target: "shop-deploy", Status: "succeeded", Started: at("2026-11-21T09:13:17Z"), Finished: at("2026-11-21T09:13:21Z"), Result: "reverted 4be1c0a in apps/checkout-api", Commit: "e83c5163316f89bfbde7d9ab23ca2e25604af290"},
			{Name: "verify", Action: "verify", Target: "prom", Status: "succeeded", Started: at("2026-11-21T09:13:21Z"), Finished: at("2026-11-21T09:19:20Z"), Result: "query held after 5m59s"},
			{Name: "flag", Action: "flag", Target: "shop-flags", Status: "succeeded", Started: at("2026-11-21T09:19:21Z"), Finished: at("2026-11-21T09:19:24Z"), Result: "new-checkout defaultVariant on → off", Commit: "0d9a5c7e1f2b3a4c5d6e7f8091a2b3c4d5e6f708", ApprovedBy: "octocat", ApprovedAt: at("2026-11-21T09:19:21Z")},
		},
		Timeline: []Event{
			{At: detected, Kind: EventAlertFiring, Text: "KubePodCrashLooping firing for checkout-api-7d9f8-x2x4k"},
			{At: at("2026-11-21T09:13:15Z"), Kind: EventOpened, Text: "Incident opened by playbook checkout_crashloop"},
			{At: at("2026-11-21T09:13:16Z"), Kind: EventIssue, Text: "Issue #412 opened"},
			{At: at("2026-11-21T09:13:17Z"), Kind: EventStep, Text: "notify succeeded: posted to slack channel oncall"},
			{At: at("2026-11-21T09:13:21Z"), Kind: EventStep, Text: "rollback succeeded: reverted 4be1c0a in apps/checkout-api"},
			{At: at("2026-11-21T09:16:40Z"), Kind: EventAcknowledged, Text: "Acknowledged by octocat"},
			{At: at("2026-11-21T09:19:20Z"), Kind: EventMitigated, Text: "verify held: no unavailable checkout replicas"},
			{At: at("2026-11-21T09:19:21Z"), Kind: EventApproval, Text: "flag approved by octocat"},
			{At: at("2026-11-21T09:19:24Z"), Kind: EventStep, Text: "flag succeeded: new-checkout defaultVariant on → off"},
			{At: at("2026-11-21T10:01:03Z"), Kind: EventResolved, Text: "All alerts resolved"},
			{At: at("2026-11-21T10:01:05Z"), Kind: EventPostmortem, Text: "Postmortem pull request #415 opened"},
		},
	}
}

func TestGolden(t *testing.T) {
	got, err := Marshal(realistic())
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "resolved.md")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("Marshal differs from %s (run go test -update to rewrite it):\n%s", golden, got)
	}
	in, err := Unmarshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, realistic()) {
		t.Errorf("Unmarshal(%s) = %+v, want %+v", golden, in, realistic())
	}
}

func TestRoundTrip(t *testing.T) {
	base := func() *Incident {
		return &Incident{ID: "2026-01-02-p-0123abcd", Status: Open}
	}
	with := func(f func(*Incident)) *Incident {
		in := base()
		f(in)
		return in
	}
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		in   *Incident
		// want is the normalized record; nil means in itself.
		want *Incident
	}{
		{name: "minimal", in: base()},
		{name: "realistic", in: realistic()},
		{name: "values YAML would read as other types", in: with(func(in *Incident) {
			in.Title, in.Severity, in.Owner = "true", "null", "~"
			in.Group = map[string]string{
				"yes": "no", "on": "off", "int": "123", "octal": "0o17", "hex": "0x1F", "float": "1e3",
				"inf": ".inf", "nan": ".NaN", "date": "2026-01-02", "time": "2026-01-02T03:04:05Z", "base60": "1:20",
				"underscores": "1_000", "empty": "", "space": " padded ", "colon": "a: b", "comment": "a #b",
				"dash": "- item", "merge": "<<", "anchor": "&a", "alias": "*a", "tag": "!!int 3", "quote": `"`, "single": "'",
				"doc": "---", "end": "...", "flow": "{a: [b]}", "percent": "%YAML 1.2", "at": "@acme/payments",
			}
		})},
		{name: "unicode", in: with(func(in *Incident) {
			in.Title = "Zahlungen schlagen fehl — 支払い失敗 🔥"
			in.Group = map[string]string{"région": "eu-west-3", "ключ": "значение", "nbsp": "a\u00a0b", "bom": "\ufeffx", "ls": "a\u2028b", "nel": "a\u0085b", "nul": "a\x00b", "tab": "a\tb", "cr": "a\rb"}
		})},
		{name: "multi-line values", in: with(func(in *Incident) {
			in.Title = "line one\nline two\n"
			in.Steps = []Step{{Name: "rollback", Action: "rollback", Status: "failed", Error: "push rejected:\n  ! [remote rejected] main -> main\n\n---\n  trailing  \n"}}
			in.Timeline = []Event{{At: at("2026-01-02T03:04:05Z"), Kind: EventNote, Text: "\n\nleading newlines"}, {At: at("2026-01-02T03:04:06Z"), Kind: EventNote, Text: "  leading spaces\n"}}
		})},
		{name: "times are UTC, to the second", in: with(func(in *Incident) {
			in.Timestamps.Detected = time.Date(2026, 1, 2, 4, 4, 5, 999_999_999, berlin)
			in.Steps = []Step{{Name: "n", Action: "notify", Status: "succeeded", Started: time.Date(2026, 1, 2, 4, 4, 6, 1, berlin)}}
		}), want: with(func(in *Incident) {
			in.Timestamps.Detected = at("2026-01-02T03:04:05Z")
			in.Steps = []Step{{Name: "n", Action: "notify", Status: "succeeded", Started: at("2026-01-02T03:04:06Z")}}
		})},
		{name: "empty collections are nil", in: with(func(in *Incident) {
			in.Group, in.Alerts, in.Steps, in.Timeline = map[string]string{}, []AlertRef{}, []Step{}, []Event{}
			in.SetAlert(AlertRef{Fingerprint: "f", Status: "firing", Labels: map[string]string{}})
		}), want: with(func(in *Incident) {
			in.Alerts = []AlertRef{{Fingerprint: "f", Status: "firing"}}
		})},
		{name: "invalid UTF-8 and oversize values", in: with(func(in *Incident) {
			in.Title = "bad \xff\xfe byte"
			in.Group = map[string]string{"big": strings.Repeat("x", 100_000), "k\xc3": "v"}
		}), want: with(func(in *Incident) {
			in.Title = "bad \uFFFD byte"
			in.Group = map[string]string{"big": strings.Repeat("x", MaxValueBytes-len(TruncatedMarker)) + TruncatedMarker, "k\uFFFD": "v"}
		})},
		{name: "long label names", in: with(func(in *Incident) {
			in.Group = map[string]string{strings.Repeat("k", 300): "v", strings.Repeat("é", 3000): "w"}
		}), want: with(func(in *Incident) {
			in.Group = map[string]string{strings.Repeat("k", 300): "v", strings.Repeat("é", (MaxValueBytes-len(TruncatedMarker))/2) + TruncatedMarker: "w"}
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.in.Clone()
			data, err := Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tc.in, before) {
				t.Errorf("Marshal modified its argument")
			}
			got, err := Unmarshal(data)
			if err != nil {
				t.Fatalf("Unmarshal: %v\n%s", err, data)
			}
			want := tc.want
			if want == nil {
				want = tc.in
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Unmarshal(Marshal(x)) = %#v\nwant %#v\nfile:\n%s", got, want, data)
			}
			again, err := Marshal(got)
			if err != nil || string(again) != string(data) {
				t.Errorf("Marshal(Unmarshal(Marshal(x))) differs (err %v):\n%s", err, again)
			}
		})
	}
}

func TestUnmarshalErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty file", "", "front matter: line 1: want ---, the start of the front matter"},
		{"no front matter", "# Title\n", "front matter: line 1: want ---, the start of the front matter"},
		{"not closed", "---\nid: a\nstatus: open\n", "front matter: no closing --- line"},
		{"empty", "---\n---\n", "front matter: empty"},
		{"syntax", "---\nid: a\nstatus: open\ntitle: [unclosed\n---\n", "front matter: line 4: did not find expected ',' or ']'"},
		{"bad indentation", "---\nid: a\n  status: open\n---\n", "front matter: line 3: mapping values are not allowed in this context"},
		{"unknown field", "---\nid: a\nstatus: open\nowners: x\n---\n", `front matter: line 4: unknown field "owners"`},
		{"unknown nested field", "---\nid: a\nstatus: open\nsteps:\n  - name: a\n    commmit: x\n---\n", `front matter: line 6: unknown field "commmit"`},
		{"wrong type", "---\nid: a\nstatus: open\nissue: twelve\n---\n", "front matter: line 4: cannot unmarshal !!str `twelve` into int"},
		{"bad time", "---\nid: a\nstatus: open\ntimestamps:\n  opened: yesterday\n---\n", `front matter: line 5: opened: "yesterday" is not a time, want RFC 3339 such as 2026-11-21T09:12:03Z`},
		{"duplicate key", "---\nid: a\nstatus: open\nid: b\n---\n", `front matter: line 4: mapping key "id" already defined at line 2`},
		{"alias", "---\nid: a\nstatus: open\ntitle: &t x\nseverity: *t\n---\n", "front matter: line 4: anchors and aliases are not allowed"},
		{"document end", "---\nid: a\nstatus: open\n...\ntitle: x\n---\n", "front matter: line 4: ... ends the YAML document before the closing ---"},
		{"scanner error", "---\nid: a\nstatus: open\ntitle: `x\n---\n", "front matter: line 4: found character that cannot start any token"},
		{"block mapping", "---\nid: a\nstatus: open\ngroup:\n  a: b\n c: d\n---\n", "front matter: line 6: did not find expected key"},
		{"not a mapping", "---\n- a\n---\n", "front matter: line 2: cannot unmarshal !!seq into incident.Incident"},
		{"bad status", "---\nid: a\nstatus: closed\n---\n", `front matter: line 3: status "closed": want open, mitigated or resolved`},
		{"no status", "---\nid: a\n---\n", `front matter: status "": want open, mitigated or resolved`},
		{"path in id", "---\nid: ../../etc/passwd\nstatus: open\n---\n", `front matter: line 2: id "../../etc/passwd": want 1 to 128 lower-case letters, digits and dashes`},
		{"hostile id", "---\nstatus: open\nid: \"a\\nb" + strings.Repeat("x", 200) + "\"\n---\n", `front matter: line 3: id "a\nb` + strings.Repeat("x", 61) + `…": want 1 to 128 lower-case letters, digits and dashes`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal([]byte(tc.in))
			if err == nil {
				t.Fatalf("Unmarshal(%q) succeeded", tc.in)
			}
			if err.Error() != tc.want {
				t.Errorf("Unmarshal(%q):\n got %s\nwant %s", tc.in, err, tc.want)
			}
		})
	}
}

func TestUnmarshalTolerates(t *testing.T) {
	want := &Incident{ID: "a", Status: Open, Title: "t", Timestamps: Timestamps{Opened: at("2026-01-02T02:04:05Z")}}
	for name, in := range map[string]string{
		"CRLF":              "---\r\nid: a\r\nstatus: open\r\ntitle: t\r\ntimestamps:\r\n  opened: 2026-01-02T03:04:05+01:00\r\n---\r\nbody\r\n",
		"byte order mark":   "\uFEFF---\nid: a\nstatus: open\ntitle: t\ntimestamps: {opened: 2026-01-02T02:04:05.5Z}\n---\n",
		"no body, no final": "---\nid: a\nstatus: open\ntitle: t\ntimestamps:\n  opened: 2026-01-02T02:04:05Z\n---",
		"quoted time":       "---\nid: a\nstatus: open\ntitle: t\ntimestamps:\n  opened: \"2026-01-02T02:04:05Z\"\n---\n",
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Unmarshal([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	tests := []struct {
		name string
		in   *Incident
		want string
	}{
		{"no id", &Incident{Status: Open}, `id "": want 1 to 128 lower-case letters, digits and dashes`},
		{"bad id", &Incident{ID: "../x", Status: Open}, `id "../x": want 1 to 128 lower-case letters, digits and dashes`},
		{"bad status", &Incident{ID: "x", Status: "closed"}, `status "closed": want open, mitigated or resolved`},
		{"year", &Incident{ID: "x", Status: Open, Timeline: []Event{{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}}, "timeline[0].at: year 10000 out of range 1 to 9999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Marshal(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Marshal: got %v, want %s", err, tc.want)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	detected := at("2026-11-21T09:12:03Z")
	group := map[string]string{"namespace": "shop", "deployment": "checkout-api"}
	id := NewID("checkout_crashloop", group, detected)
	if !regexp.MustCompile(`^2026-11-21-checkout-crashloop-[0-9a-f]{8}$`).MatchString(id) || !ValidID(id) {
		t.Errorf("NewID = %q", id)
	}
	same := NewID("checkout_crashloop", map[string]string{"deployment": "checkout-api", "namespace": "shop"}, detected.In(time.FixedZone("X", 7200)))
	if same != id {
		t.Errorf("NewID is not stable: %q and %q", id, same)
	}
	for name, other := range map[string]string{
		"playbook": NewID("checkout_crashloop2", group, detected),
		"group":    NewID("checkout_crashloop", map[string]string{"namespace": "shop", "deployment": "checkout-web"}, detected),
		"split":    NewID("checkout_crashloop", map[string]string{"namespace": "shopdeployment", "": "checkout-api"}, detected),
		"time":     NewID("checkout_crashloop", group, detected.Add(time.Second)),
	} {
		if other == id {
			t.Errorf("NewID ignores the %s: %q", name, other)
		}
	}
	for _, pb := range []string{"", "../../etc", "Ünïcode_Playbook", strings.Repeat("a_", 100), "--x--", "a\nb"} {
		id := NewID(pb, map[string]string{"x": "../../<script>"}, detected)
		if !ValidID(id) || len(id) > 10+1+maxSlug+1+8 {
			t.Errorf("NewID(%q) = %q is not a valid id", pb, id)
		}
	}
	if k := GroupKey("checkout_crashloop", group); !regexp.MustCompile(`^checkout-crashloop-[0-9a-f]{16}$`).MatchString(k) {
		t.Errorf("GroupKey = %q", k)
	}
}

func TestPath(t *testing.T) {
	tests := []struct {
		in   *Incident
		want string
	}{
		{realistic(), "incidents/2026/11/2026-11-21-checkout-crashloop-" + realistic().ID[len(realistic().ID)-8:] + ".md"},
		{&Incident{ID: "x", Timestamps: Timestamps{Opened: time.Date(2027, 1, 31, 23, 30, 0, 0, time.FixedZone("W", -3600))}}, "incidents/2027/02/x.md"},
		{&Incident{ID: "../../etc/passwd", Timestamps: Timestamps{Opened: at("2026-03-04T00:00:00Z")}}, "incidents/2026/03/invalid-"},
	}
	for _, tc := range tests {
		got := Path("incidents", tc.in)
		if !strings.HasPrefix(got, tc.want) || !regexp.MustCompile(`^incidents/\d{4}/\d{2}/[a-z0-9-]+\.md$`).MatchString(got) {
			t.Errorf("Path(%q) = %q, want %s…", tc.in.ID, got, tc.want)
		}
	}
}

func TestDurations(t *testing.T) {
	got := realistic().Durations()
	want := Durations{
		Detect: 72 * time.Second, DetectOK: true, // 09:12:03 → 09:13:15
		Acknowledge: 3*time.Minute + 25*time.Second, AcknowledgeOK: true, // 09:13:15 → 09:16:40
		Mitigate: 6*time.Minute + 5*time.Second, MitigateOK: true, // 09:13:15 → 09:19:20
		Recover: 49 * time.Minute, RecoverOK: true, // 09:12:03 → 10:01:03
	}
	if got != want {
		t.Errorf("Durations = %+v, want %+v", got, want)
	}
	open := &Incident{Timestamps: Timestamps{Detected: at("2026-01-01T00:01:00Z"), Opened: at("2026-01-01T00:00:00Z")}}
	if got := open.Durations(); got != (Durations{}) {
		t.Errorf("Durations of an open incident with a skewed clock = %+v, want none", got)
	}
}

func TestHelpers(t *testing.T) {
	in := &Incident{}
	in.Record(Event{At: at("2026-01-01T00:00:00Z"), Kind: EventOpened, Text: "opened"})
	if len(in.Timeline) != 1 || in.Timeline[0].Kind != EventOpened {
		t.Errorf("Record: timeline %+v", in.Timeline)
	}

	in.SetStep(run.StepResult{Name: "flag", Action: "flag", Target: "shop-flags", Status: run.Waiting})
	in.StepByName("flag").ApprovedBy = "octocat"
	s := in.SetStep(run.StepResult{Name: "flag", Action: "flag", Status: run.Succeeded, Started: at("2026-01-01T00:01:00Z"), Finished: at("2026-01-01T00:01:02Z"),
		Outcome: &actions.Outcome{Summary: "new-checkout → off", Target: "shop-flags", Commit: "abc"}})
	want := Step{Name: "flag", Action: "flag", Target: "shop-flags", Status: run.Succeeded, Started: at("2026-01-01T00:01:00Z"), Finished: at("2026-01-01T00:01:02Z"), Result: "new-checkout → off", Commit: "abc", ApprovedBy: "octocat"}
	if len(in.Steps) != 1 || *s != want || in.Steps[0] != want {
		t.Errorf("SetStep: steps %+v, want [%+v]", in.Steps, want)
	}
	in.SetStep(run.StepResult{Name: "verify", Action: "verify", Status: run.Failed, Error: "never held"})
	if in.StepByName("verify") == nil || in.StepByName("verify").Error != "never held" || in.StepByName("nope") != nil {
		t.Errorf("StepByName after SetStep: %+v", in.Steps)
	}

	a := &schema.Alert{Status: "firing", Fingerprint: "f1", StartsAt: at("2026-01-01T00:05:00Z"), Labels: map[string]string{"a": "b"}}
	if !in.SetAlert(AlertRefOf(a)) || in.Timestamps.Detected != a.StartsAt {
		t.Errorf("SetAlert: detected %v", in.Timestamps.Detected)
	}
	a.Labels["a"] = "changed"
	if in.Alerts[0].Labels["a"] != "b" {
		t.Errorf("AlertRefOf shares the label map")
	}
	in.SetAlert(AlertRef{Fingerprint: "f2", Status: "firing", StartsAt: at("2026-01-01T00:03:00Z")})
	if in.SetAlert(AlertRef{Fingerprint: "f1", Status: "resolved", StartsAt: at("2026-01-01T00:05:00Z"), EndsAt: at("2026-01-01T00:09:00Z")}) {
		t.Errorf("SetAlert added an alert it had")
	}
	if len(in.Alerts) != 2 || in.Alerts[0].Status != "resolved" || !in.Timestamps.Detected.Equal(at("2026-01-01T00:03:00Z")) {
		t.Errorf("SetAlert: alerts %+v, detected %v", in.Alerts, in.Timestamps.Detected)
	}
}

// TestEmitWritesRealRecords: the records a storm writes, ASCII, take
// emit's path, and it writes them as yaml.v3 does (checkSafe holds it to
// that for the hostile ones and the fuzzed ones too).
func TestEmitWritesRealRecords(t *testing.T) {
	in := realistic()
	if !checkEmit(t, in) {
		t.Fatal("emit did not write a realistic record")
	}
	// Keys with YAML's other line breaks: yaml.v3 writes them as "? " keys.
	for _, k := range []string{"a\u2028b", "a\u0085b", "a\u2029b"} {
		c := in.Clone()
		c.Group = map[string]string{k: "v"}
		checkEmit(t, c)
	}
	in.Steps, in.Timeline, in.Group = nil, nil, nil // empty collections: [] and {}
	in.Timestamps = Timestamps{}
	if !checkEmit(t, in) {
		t.Fatal("emit did not write a record with empty collections")
	}
}

func BenchmarkMarshal(b *testing.B) {
	in := realistic()
	for b.Loop() {
		if _, err := Marshal(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	data, err := Marshal(realistic())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}
