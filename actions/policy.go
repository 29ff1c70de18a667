// Package actions is firebreak's action library and the sandbox around it:
// what a step may touch is decided here, at validate time and again at run
// time with the rendered values.
package actions

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/firebreak-dev/firebreak/schema"
)

// Violation is one thing the sandbox refuses. Field names the parameter at
// fault ("target", "factor"), or is empty when the step as a whole is.
type Violation struct {
	Field   string
	Message string
}

func (v Violation) Error() string {
	if v.Field == "" {
		return v.Message
	}
	return v.Field + ": " + v.Message
}

// Check returns what the policy of cfg refuses in one step of a playbook
// owned by owner. params holds the step's parameters; a parameter that is
// absent is not checked (at validate time it may still depend on the alert;
// at run time every parameter is present).
func Check(cfg *schema.Config, owner, action string, params map[string]any) []Violation {
	p, ok := cfg.Policy.Owners[owner]
	if !ok {
		return []Violation{{"", fmt.Sprintf("owner %s has no policy in firebreak.cue", owner)}}
	}
	c := checker{cfg: cfg, owner: owner, params: params}
	switch action {
	case "notify":
		if ch, ok := c.str("channel"); ok {
			c.channel(ch, p.Notify)
		}
	case "rollback":
		c.gitTarget("rollback", p.Rollback)
	case "scale":
		c.scale(p.Scale)
	case "flag":
		c.flag(p.Flag)
	case "verify":
		c.verify(p.Verify)
	default:
		c.add("", "unknown action %q", action)
	}
	return c.out
}

type checker struct {
	cfg    *schema.Config
	owner  string
	params map[string]any
	out    []Violation
}

func (c *checker) add(field, format string, args ...any) {
	c.out = append(c.out, Violation{field, fmt.Sprintf(format, args...)})
}

func (c *checker) str(key string) (string, bool) {
	s, ok := c.params[key].(string)
	return s, ok
}

func (c *checker) num(key string) (float64, bool) {
	switch n := c.params[key].(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func (c *checker) channel(name string, allowed []string) {
	if _, ok := c.cfg.Channels[name]; !ok {
		c.add("channel", "channel %q is not declared in firebreak.cue", name)
		return
	}
	if !slices.Contains(allowed, name) {
		c.add("channel", "policy for %s does not allow notify on channel %q", c.owner, name)
	}
}

// target checks that the step's target is declared with the given kind.
func (c *checker) target(kind string) (string, bool) {
	name, ok := c.str("target")
	if !ok {
		return "", false
	}
	t, declared := c.cfg.Targets[name]
	switch {
	case !declared:
		c.add("target", "target %q is not declared in firebreak.cue", name)
		return "", false
	case t.Kind() != kind:
		c.add("target", "target %q is a %s target, not %s", name, t.Kind(), kind)
		return "", false
	}
	return name, true
}

func (c *checker) gitTarget(action string, allowed []string) {
	name, ok := c.target("git")
	if ok && !slices.Contains(allowed, name) {
		c.add("target", "policy for %s does not allow %s on target %q", c.owner, action, name)
	}
}

func (c *checker) scale(p *schema.ScalePolicy) {
	if p == nil {
		c.add("", "policy for %s does not allow scale", c.owner)
		return
	}
	c.gitTarget("scale", p.Targets)
	if n, ok := c.num("replicas"); ok && p.MaxReplicas != nil && n > float64(*p.MaxReplicas) {
		c.add("replicas", "%g exceeds max_replicas %d of %s", n, *p.MaxReplicas, c.owner)
	}
	if f, ok := c.num("factor"); ok && p.MaxFactor != nil && f > *p.MaxFactor {
		c.add("factor", "%g exceeds max_factor %g of %s", f, *p.MaxFactor, c.owner)
	}
}

func (c *checker) flag(p *schema.FlagPolicy) {
	if p == nil {
		c.add("", "policy for %s does not allow flag", c.owner)
		return
	}
	if name, ok := c.target("flagd"); ok && !slices.Contains(p.Targets, name) {
		c.add("target", "policy for %s does not allow flag on target %q", c.owner, name)
	}
	if key, ok := c.str("key"); ok && !slices.ContainsFunc(p.Keys, func(glob string) bool { return Glob(glob, key) }) {
		c.add("key", "policy for %s does not allow flag key %q (allowed: %s)", c.owner, key, strings.Join(p.Keys, ", "))
	}
}

func (c *checker) verify(allowed []string) {
	if ds, ok := c.str("datasource"); ok {
		t, declared := c.cfg.Targets[ds]
		switch {
		case !declared:
			c.add("datasource", "datasource %q is not declared in firebreak.cue", ds)
		case t.Prometheus == nil:
			c.add("datasource", "datasource %q is a %s target, not prometheus", ds, t.Kind())
		case allowed != nil && !slices.Contains(allowed, ds):
			c.add("datasource", "policy for %s does not allow verify on %q", c.owner, ds)
		}
	}
	if raw, ok := c.str("url"); ok {
		name, ok := c.targetForURL(raw)
		switch {
		case !ok:
			c.add("url", "host of %q is not a declared http or prometheus target", redactURL(raw))
		case allowed != nil && !slices.Contains(allowed, name):
			c.add("url", "policy for %s does not allow verify on %q", c.owner, name)
		}
	}
}

// targetForURL finds the declared http or prometheus target whose scheme
// and host the URL has.
func (c *checker) targetForURL(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", false
	}
	names := make([]string, 0, len(c.cfg.Targets))
	for name := range c.cfg.Targets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t := c.cfg.Targets[name]
		var base string
		switch {
		case t.HTTP != nil:
			base = t.HTTP.URL
		case t.Prometheus != nil:
			base = t.Prometheus.URL
		default:
			continue
		}
		if b, err := url.Parse(base); err == nil && b.Scheme == u.Scheme && strings.EqualFold(b.Host, u.Host) {
			return name, true
		}
	}
	return "", false
}

// redactURL drops user info and query, where credentials hide.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// Glob reports whether name matches pattern, where * matches any run of
// characters (flag keys may contain '/', so path.Match does not fit).
func Glob(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(name, mid)
		if i < 0 {
			return false
		}
		name = name[i+len(mid):]
	}
	return strings.HasSuffix(name, parts[len(parts)-1])
}

// CheckConfig returns the inconsistencies inside firebreak.cue itself, each
// with the CUE path of the field at fault.
func CheckConfig(cfg *schema.Config) []PathViolation {
	var out []PathViolation
	add := func(path, format string, args ...any) {
		out = append(out, PathViolation{path, fmt.Sprintf(format, args...)})
	}
	for _, name := range sortedKeys(cfg.Targets) {
		t := cfg.Targets[name]
		if n := countSet(t.Git != nil, t.Flagd != nil, t.Prometheus != nil, t.HTTP != nil, t.Kubernetes != nil); n != 1 {
			add("targets."+quote(name), "target must have exactly one of git, flagd, prometheus, http, kubernetes (has %d)", n)
		}
		if t.Flagd != nil {
			if r, ok := cfg.Targets[t.Flagd.Repo]; !ok || r.Git == nil {
				add("targets."+quote(name)+".flagd.repo", "%q is not a declared git target", t.Flagd.Repo)
			}
		}
	}
	for _, name := range sortedKeys(cfg.Channels) {
		ch := cfg.Channels[name]
		if n := countSet(ch.Slack != nil, ch.Webhook != nil, ch.GitHub != nil, ch.PagerDuty != nil); n != 1 {
			add("channels."+quote(name), "channel must have exactly one of slack, webhook, github, pagerduty (has %d)", n)
		}
	}
	for _, owner := range sortedKeys(cfg.Policy.Owners) {
		p := cfg.Policy.Owners[owner]
		base := "policy.owners." + quote(owner)
		kinds := func(field string, names []string, want ...string) {
			for i, n := range names {
				t, ok := cfg.Targets[n]
				if !ok {
					add(fmt.Sprintf("%s.%s[%d]", base, field, i), "target %q is not declared", n)
				} else if !slices.Contains(want, t.Kind()) {
					add(fmt.Sprintf("%s.%s[%d]", base, field, i), "target %q is a %s target, not %s", n, t.Kind(), strings.Join(want, " or "))
				}
			}
		}
		kinds("rollback", p.Rollback, "git", "kubernetes")
		if p.Scale != nil {
			kinds("scale.targets", p.Scale.Targets, "git", "kubernetes")
		}
		if p.Flag != nil {
			kinds("flag.targets", p.Flag.Targets, "flagd")
		}
		kinds("verify", p.Verify, "prometheus", "http")
		for i, n := range p.Notify {
			if _, ok := cfg.Channels[n]; !ok {
				add(fmt.Sprintf("%s.notify[%d]", base, i), "channel %q is not declared", n)
			}
		}
	}
	return out
}

// PathViolation is a Violation located by a CUE path in firebreak.cue.
type PathViolation struct {
	Path    string
	Message string
}

func countSet(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// quote makes a map key safe as a CUE path selector.
func quote(s string) string {
	return fmt.Sprintf("%q", s)
}
