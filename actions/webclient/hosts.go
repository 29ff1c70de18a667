package webclient

import (
	"net/url"
	"slices"
	"strings"

	"github.com/firebreak-dev/firebreak/schema"
)

// Defaults of firebreak.cue (schema/config.cue), for a Config decoded
// without them.
const (
	DefaultSlackHost    = "hooks.slack.com"
	DefaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"
	DefaultGitHubAPIURL = "https://api.github.com/"
)

// AllowedHosts derives the host allowlist from firebreak.cue: the hosts of
// the http(s) URLs of git, prometheus and http targets, of webhook and
// pagerduty channels, the host of each slack channel, and the host of the
// GitHub api_url. extra hosts ("host" or "host:port") are added as given.
// Git targets reached over ssh, git or file URLs add nothing: this client
// speaks HTTP only.
func AllowedHosts(cfg *schema.Config, extra ...string) []string {
	var hosts []string
	addURL := func(raw string) {
		u, err := url.Parse(raw)
		if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			hosts = append(hosts, strings.ToLower(u.Host))
		}
	}
	if cfg != nil {
		for _, t := range cfg.Targets {
			switch {
			case t.Git != nil:
				addURL(t.Git.URL)
			case t.Prometheus != nil:
				addURL(t.Prometheus.URL)
			case t.HTTP != nil:
				addURL(t.HTTP.URL)
			}
		}
		for _, ch := range cfg.Channels {
			switch {
			case ch.Slack != nil:
				h := ch.Slack.Host
				if h == "" {
					h = DefaultSlackHost
				}
				hosts = append(hosts, strings.ToLower(h))
			case ch.Webhook != nil:
				addURL(ch.Webhook.URL)
			case ch.PagerDuty != nil:
				if ch.PagerDuty.URL == "" {
					addURL(DefaultPagerDutyURL)
				} else {
					addURL(ch.PagerDuty.URL)
				}
			}
		}
		if cfg.GitHub != nil {
			if cfg.GitHub.APIURL == "" {
				addURL(DefaultGitHubAPIURL)
			} else {
				addURL(cfg.GitHub.APIURL)
			}
		}
	}
	for _, h := range extra {
		hosts = append(hosts, strings.ToLower(strings.TrimSpace(h)))
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}
