// Package notify is the notify action: a message to a channel declared in
// firebreak.cue — a Slack incoming webhook, a generic HMAC-signed webhook,
// PagerDuty Events v2 or a comment on the incident's GitHub issue.
//
// Execute is idempotent as far as each channel allows. PagerDuty merges
// every trigger of one incident into one alert through the dedup key
// firebreak-<incident>. A generic webhook gets the same
// X-Firebreak-Delivery header on every re-send of a step, for the receiver
// to drop duplicates. A GitHub comment carries a hidden marker with the
// same delivery id, for the Commenter to find an earlier post. A Slack
// incoming webhook cannot deduplicate: a step executed again posts again,
// so the engine must not re-execute a finished notify step, and a 5xx
// retried by the HTTP client may, rarely, post twice.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/webclient"
	"github.com/firebreak-dev/firebreak/schema"
)

// Limits on parameters; Slack refuses text over 40,000 characters and
// PagerDuty summaries over 1,024.
const (
	MaxText          = 40000
	MaxTitle         = 250
	pagerDutySummary = 1024
)

// Action is the notify action.
type Action struct{}

var _ actions.Action = Action{}

type params struct {
	Channel string `json:"channel"`
	Text    string `json:"text"`
	Title   string `json:"title,omitempty"`
}

// Validate checks notify's parameters without I/O.
func (Action) Validate(raw map[string]any) error {
	_, err := decode(raw)
	return err
}

func decode(raw map[string]any) (params, error) {
	var p params
	if err := actions.DecodeParams(raw, &p); err != nil {
		return p, err
	}
	switch {
	case p.Channel == "":
		return p, errors.New("channel: required")
	case strings.TrimSpace(p.Text) == "":
		return p, errors.New("text: required")
	case utf8.RuneCountInString(p.Text) > MaxText:
		return p, fmt.Errorf("text: %d characters, more than %d", utf8.RuneCountInString(p.Text), MaxText)
	case utf8.RuneCountInString(p.Title) > MaxTitle:
		return p, fmt.Errorf("title: %d characters, more than %d", utf8.RuneCountInString(p.Title), MaxTitle)
	}
	return p, nil
}

// message is one notification, its text and title already redacted.
type message struct {
	params
	kind    string
	channel schema.Channel
	redact  func(string) string
}

// prepare decodes the step, re-checks the sandbox and redacts the text.
func prepare(env *actions.Env, req *actions.Request) (*message, error) {
	redact := redactor(env)
	p, err := decode(req.Step.Params)
	if err != nil {
		return nil, fmt.Errorf("notify: %s", redact(err.Error()))
	}
	if vs := actions.Check(env.Config, req.Owner, "notify", req.Step.Params); len(vs) > 0 {
		msgs := make([]string, len(vs))
		for i, v := range vs {
			msgs[i] = v.Error()
		}
		return nil, actions.Refusef("notify: %s", redact(strings.Join(msgs, "; ")))
	}
	ch := env.Config.Channels[p.Channel]
	m := &message{params: p, kind: ch.Kind(), channel: ch, redact: redact}
	m.Text, m.Title = redact(p.Text), redact(p.Title)
	return m, nil
}

// Plan describes the message and where it would go; it sends nothing.
func (Action) Plan(ctx context.Context, env *actions.Env, req *actions.Request) (*actions.Outcome, error) {
	m, err := prepare(env, req)
	if err != nil {
		return nil, err
	}
	return &actions.Outcome{
		Summary: fmt.Sprintf("would notify %s channel %q: %s", m.kind, m.Channel, oneLine(m)),
		Target:  m.Channel,
		Changed: true,
		Diff:    m.plain(),
	}, nil
}

// Execute sends the message.
func (Action) Execute(ctx context.Context, env *actions.Env, req *actions.Request) (*actions.Outcome, error) {
	m, err := prepare(env, req)
	if err != nil {
		return nil, err
	}
	scrub := m.redact
	switch m.kind {
	case "slack":
		err = m.slack(ctx, env, &scrub)
	case "webhook":
		err = m.webhook(ctx, env, req)
	case "pagerduty":
		err = m.pagerDuty(ctx, env, req)
	case "github":
		err = m.github(ctx, env, req)
	default:
		err = fmt.Errorf("channel kind %q is not supported", m.kind)
	}
	if err != nil {
		if errors.Is(err, webclient.ErrHostNotAllowed) && !errors.Is(err, actions.ErrRefused) {
			err = fmt.Errorf("%w: %w", actions.ErrRefused, err)
		}
		return nil, actions.SafeError(fmt.Errorf("notify %s (%s): %w", m.Channel, m.kind, err), scrub)
	}
	env.Logger().Info("notified", "channel", m.Channel, "kind", m.kind, "incident", req.Incident, "step", req.Step.Name)
	return &actions.Outcome{
		Summary: fmt.Sprintf("notified %s channel %q: %s", m.kind, m.Channel, oneLine(m)),
		Target:  m.Channel,
		Changed: true,
	}, nil
}

// slack posts to the incoming webhook whose URL is the channel's secret.
// It widens *scrub to the URL's path, which is the secret part, in case
// the secret's value differs from the URL as printed (spaces, escaping).
func (m *message) slack(ctx context.Context, env *actions.Env, scrub *func(string) string) error {
	name := m.channel.Slack.Webhook.Secret
	secret, err := env.Secrets.Get(name)
	if err != nil {
		return err
	}
	raw := strings.TrimSpace(secret)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("secret %s is not an http(s) URL", name)
	}
	base := *scrub
	*scrub = func(s string) string {
		s = base(s)
		for _, v := range []string{raw, u.String(), u.EscapedPath(), u.Path, u.RawQuery} {
			if len(v) > 1 {
				s = strings.ReplaceAll(s, v, "[redacted "+name+"]")
			}
		}
		return s
	}
	host := m.channel.Slack.Host
	if host == "" {
		host = webclient.DefaultSlackHost
	}
	if !strings.EqualFold(u.Host, host) {
		return actions.Refusef("secret %s points at a host other than the channel's host %s", name, host)
	}
	text := slackEscape(m.Text)
	if m.Title != "" {
		text = "*" + slackEscape(m.Title) + "*\n" + text
	}
	body, _ := json.Marshal(map[string]string{"text": text})
	return post(ctx, env, u.String(), body, nil)
}

// webhookBody is the generic webhook's JSON body.
type webhookBody struct {
	Incident string `json:"incident"`
	Playbook string `json:"playbook"`
	Owner    string `json:"owner"`
	Step     string `json:"step"`
	Title    string `json:"title,omitempty"`
	Text     string `json:"text"`
	SentAt   string `json:"sent_at"`
}

// Headers of the generic webhook.
const (
	SignatureHeader = "X-Firebreak-Signature"
	TimestampHeader = "X-Firebreak-Timestamp"
	DeliveryHeader  = "X-Firebreak-Delivery"
)

// webhook posts the JSON body, signed with HMAC-SHA256 of the body when
// the channel names an hmac secret.
func (m *message) webhook(ctx context.Context, env *actions.Env, req *actions.Request) error {
	now := env.Clock().UTC()
	body, err := json.Marshal(webhookBody{
		Incident: req.Incident,
		Playbook: req.Playbook,
		Owner:    req.Owner,
		Step:     req.Step.Name,
		Title:    m.Title,
		Text:     m.Text,
		SentAt:   now.Format(time.RFC3339),
	})
	if err != nil {
		return err
	}
	h := http.Header{}
	h.Set(TimestampHeader, strconv.FormatInt(now.Unix(), 10))
	h.Set(DeliveryHeader, deliveryID(req))
	if s := m.channel.Webhook.HMAC; s != nil {
		key, err := env.Secrets.Get(s.Secret)
		if err != nil {
			return err
		}
		h.Set(SignatureHeader, Sign([]byte(key), body))
	}
	return post(ctx, env, m.channel.Webhook.URL, body, h)
}

// Sign returns the X-Firebreak-Signature value of body: "sha256=" and the
// hex HMAC-SHA256 of body under key.
func Sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// pagerDuty triggers an Events v2 alert deduplicated per incident.
func (m *message) pagerDuty(ctx context.Context, env *actions.Env, req *actions.Request) error {
	key, err := env.Secrets.Get(m.channel.PagerDuty.RoutingKey.Secret)
	if err != nil {
		return err
	}
	summary := m.Text
	if m.Title != "" {
		summary = m.Title + ": " + m.Text
	}
	body, err := json.Marshal(map[string]any{
		"routing_key":  key,
		"event_action": "trigger",
		"dedup_key":    DedupKey(req.Incident),
		"payload": map[string]any{
			"summary":  truncate(summary, pagerDutySummary),
			"source":   "firebreak",
			"severity": "critical",
			"custom_details": map[string]string{
				"incident": req.Incident,
				"playbook": req.Playbook,
				"owner":    req.Owner,
				"step":     req.Step.Name,
				"text":     m.Text,
			},
		},
	})
	if err != nil {
		return err
	}
	target := m.channel.PagerDuty.URL
	if target == "" {
		target = webclient.DefaultPagerDutyURL
	}
	return post(ctx, env, target, body, nil)
}

// DedupKey is the PagerDuty dedup key of an incident.
func DedupKey(incident string) string { return "firebreak-" + incident }

// github comments on the incident's issue through the Commenter.
func (m *message) github(ctx context.Context, env *actions.Env, req *actions.Request) error {
	if env.Commenter == nil {
		return errors.New("no GitHub commenter: firebreak.cue has no github block, or the run has no GitHub access")
	}
	body := m.Text
	if m.Title != "" {
		body = "**" + m.Title + "**\n\n" + body
	}
	body += "\n\n<!-- firebreak:notify " + deliveryID(req) + " -->"
	return env.Commenter.Comment(ctx, req.Incident, body)
}

// post sends a JSON body through the one HTTP client; any status but 2xx
// fails.
func post(ctx context.Context, env *actions.Env, target string, body []byte, h http.Header) error {
	if env.HTTP == nil {
		return errors.New("no HTTP client")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return errors.New("bad channel URL")
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := env.HTTP.Do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return &webclient.StatusError{Code: resp.StatusCode}
	}
	return nil
}

// deliveryID is the same for every execution of one step of one incident.
func deliveryID(req *actions.Request) string {
	return req.Incident + "/" + req.Step.Name
}

// slackEscape escapes the three characters Slack treats as control
// sequences, so a rendered label cannot ping <!channel> or forge a link.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func (m *message) plain() string {
	if m.Title == "" {
		return m.Text
	}
	return m.Title + "\n\n" + m.Text
}

func oneLine(m *message) string {
	s := m.Title
	if s == "" {
		s = m.Text
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return truncate(s, 80)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// redactor returns the redaction of env's secret store, after resolving
// every secret firebreak.cue names, so that one rendered into the text by
// an alert label is known to it even before its own step asks for it.
func redactor(env *actions.Env) func(string) string {
	if env.Secrets == nil {
		return func(s string) string { return s }
	}
	// The path of a Slack webhook URL is its credential: redact it alone too.
	var paths []string
	for _, name := range env.Config.SecretNames() {
		v, err := env.Secrets.Get(name) // a missing secret fails where it is used
		if err != nil || !slackSecret(env.Config, name) {
			continue
		}
		if u, err := url.Parse(strings.TrimSpace(v)); err == nil && len(u.Path) > 8 {
			paths = append(paths, u.Path, strings.TrimPrefix(u.Path, "/"))
		}
	}
	return func(s string) string {
		s = env.Secrets.Redact(s)
		for _, p := range paths {
			s = strings.ReplaceAll(s, p, "[redacted webhook path]")
		}
		return s
	}
}

func slackSecret(cfg *schema.Config, name string) bool {
	for _, ch := range cfg.Channels {
		if ch.Slack != nil && ch.Slack.Webhook.Secret == name {
			return true
		}
	}
	return false
}
