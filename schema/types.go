package schema

import "time"

// Actions are the action keys a step may carry, in schema order.
var Actions = []string{"notify", "rollback", "scale", "flag", "verify"}

// Alert is the normalized alert every source is decoded into.
type Alert struct {
	Source       string            `json:"source"`
	Status       string            `json:"status"`
	Fingerprint  string            `json:"fingerprint,omitempty"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	ReceivedAt   time.Time         `json:"receivedAt,omitzero"`
}

// Data is the alert as plain data, exactly as CUE sees it: absent optional
// fields are left out, so `!=` and `=~` on them fail as they would in CUE.
func (a *Alert) Data() map[string]any {
	labels := make(map[string]any, len(a.Labels))
	for k, v := range a.Labels {
		labels[k] = v
	}
	annotations := make(map[string]any, len(a.Annotations))
	for k, v := range a.Annotations {
		annotations[k] = v
	}
	m := map[string]any{
		"source":      a.Source,
		"status":      a.Status,
		"labels":      labels,
		"annotations": annotations,
	}
	for k, v := range a.scalars() {
		m[k] = v
	}
	return m
}

// Field returns a top-level string field of the alert as CUE sees it.
func (a *Alert) Field(name string) (string, bool) {
	switch name {
	case "source":
		return a.Source, true
	case "status":
		return a.Status, true
	}
	v, ok := a.scalars()[name]
	return v, ok
}

func (a *Alert) scalars() map[string]string {
	m := map[string]string{}
	if a.Fingerprint != "" {
		m["fingerprint"] = a.Fingerprint
	}
	if a.GeneratorURL != "" {
		m["generatorURL"] = a.GeneratorURL
	}
	for k, t := range map[string]time.Time{"startsAt": a.StartsAt, "endsAt": a.EndsAt, "receivedAt": a.ReceivedAt} {
		if !t.IsZero() {
			m[k] = t.UTC().Format(time.RFC3339Nano)
		}
	}
	return m
}

// Step is one concrete, rendered step of a plan.
type Step struct {
	Name            string         `json:"name"`
	Action          string         `json:"action"`
	Params          map[string]any `json:"params"`
	Approval        string         `json:"approval"`
	Timeout         string         `json:"timeout,omitempty"`
	ContinueOnError bool           `json:"continue_on_error,omitempty"`
}

// Secret names a secret resolved at run time.
type Secret struct {
	Secret string `json:"secret"`
}

// Config is the decoded firebreak.cue.
type Config struct {
	Targets  map[string]Target  `json:"targets"`
	Channels map[string]Channel `json:"channels"`
	Policy   Policy             `json:"policy"`
	GitHub   *GitHub            `json:"github,omitempty"`
	Paths    Paths              `json:"paths"`
}

// Target is a place actions may change or read; exactly one field is set.
type Target struct {
	Git        *GitTarget        `json:"git,omitempty"`
	Flagd      *FlagdTarget      `json:"flagd,omitempty"`
	Prometheus *PrometheusTarget `json:"prometheus,omitempty"`
	HTTP       *HTTPTarget       `json:"http,omitempty"`
	Kubernetes *KubernetesTarget `json:"kubernetes,omitempty"`
}

// Kind names the one kind of target set.
func (t Target) Kind() string {
	switch {
	case t.Git != nil:
		return "git"
	case t.Flagd != nil:
		return "flagd"
	case t.Prometheus != nil:
		return "prometheus"
	case t.HTTP != nil:
		return "http"
	case t.Kubernetes != nil:
		return "kubernetes"
	}
	return ""
}

type GitTarget struct {
	URL      string  `json:"url"`
	Branch   string  `json:"branch"`
	Token    *Secret `json:"token,omitempty"`
	Username string  `json:"username,omitempty"`
}

type FlagdTarget struct {
	Repo string `json:"repo"`
	File string `json:"file"`
}

type PrometheusTarget struct {
	URL   string  `json:"url"`
	Token *Secret `json:"token,omitempty"`
}

type HTTPTarget struct {
	URL string `json:"url"`
}

type KubernetesTarget struct {
	Context   string `json:"context"`
	Namespace string `json:"namespace,omitempty"`
}

// Channel is a notification endpoint; exactly one field is set.
type Channel struct {
	Slack     *SlackChannel     `json:"slack,omitempty"`
	Webhook   *WebhookChannel   `json:"webhook,omitempty"`
	GitHub    *struct{}         `json:"github,omitempty"`
	PagerDuty *PagerDutyChannel `json:"pagerduty,omitempty"`
}

// Kind names the one kind of channel set.
func (c Channel) Kind() string {
	switch {
	case c.Slack != nil:
		return "slack"
	case c.Webhook != nil:
		return "webhook"
	case c.GitHub != nil:
		return "github"
	case c.PagerDuty != nil:
		return "pagerduty"
	}
	return ""
}

type SlackChannel struct {
	Webhook Secret `json:"webhook"`
	Host    string `json:"host"`
}

type WebhookChannel struct {
	URL  string  `json:"url"`
	HMAC *Secret `json:"hmac,omitempty"`
}

type PagerDutyChannel struct {
	RoutingKey Secret `json:"routing_key"`
	URL        string `json:"url"`
}

// Policy is the sandbox's rule book.
type Policy struct {
	Paused bool                   `json:"paused"`
	Limits Limits                 `json:"limits"`
	Owners map[string]OwnerPolicy `json:"owners"`
}

type Limits struct {
	RunsPerHour int    `json:"runs_per_hour"`
	StepTimeout string `json:"step_timeout"`
	RunTimeout  string `json:"run_timeout"`
}

// OwnerPolicy is what the playbooks of one owner may do. A nil list allows
// nothing.
type OwnerPolicy struct {
	Rollback  []string     `json:"rollback,omitempty"`
	Scale     *ScalePolicy `json:"scale,omitempty"`
	Flag      *FlagPolicy  `json:"flag,omitempty"`
	Notify    []string     `json:"notify,omitempty"`
	Verify    []string     `json:"verify,omitempty"`
	Approvers []string     `json:"approvers,omitempty"`
}

type ScalePolicy struct {
	Targets     []string `json:"targets"`
	MaxReplicas *int     `json:"max_replicas,omitempty"`
	MaxFactor   *float64 `json:"max_factor,omitempty"`
}

type FlagPolicy struct {
	Targets []string `json:"targets"`
	Keys    []string `json:"keys"`
}

type GitHub struct {
	Owner  string   `json:"owner"`
	Repo   string   `json:"repo"`
	APIURL string   `json:"api_url"`
	Token  Secret   `json:"token"`
	Labels []string `json:"labels"`
}

type Paths struct {
	Incidents   string `json:"incidents"`
	Postmortems string `json:"postmortems"`
}

// SecretNames lists the names of every secret the config refers to.
func (c *Config) SecretNames() []string {
	if c == nil {
		return nil
	}
	var names []string
	for _, t := range c.Targets {
		switch {
		case t.Git != nil && t.Git.Token != nil:
			names = append(names, t.Git.Token.Secret)
		case t.Prometheus != nil && t.Prometheus.Token != nil:
			names = append(names, t.Prometheus.Token.Secret)
		}
	}
	for _, ch := range c.Channels {
		switch {
		case ch.Slack != nil:
			names = append(names, ch.Slack.Webhook.Secret)
		case ch.Webhook != nil && ch.Webhook.HMAC != nil:
			names = append(names, ch.Webhook.HMAC.Secret)
		case ch.PagerDuty != nil:
			names = append(names, ch.PagerDuty.RoutingKey.Secret)
		}
	}
	if c.GitHub != nil {
		names = append(names, c.GitHub.Token.Secret)
	}
	return names
}
