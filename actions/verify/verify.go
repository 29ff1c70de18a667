// Package verify is the verify action: it checks, every `every`, that a
// PromQL query against a prometheus target returns a non-empty result, or
// that a URL answers 2xx, and fails when that does not happen within
// `within` or before the step's deadline, whichever comes first.
package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/firebreak-dev/firebreak/actions"
	"github.com/firebreak-dev/firebreak/actions/webclient"
)

// DefaultEvery is the interval between checks when a step gives none.
const DefaultEvery = 15 * time.Second

// Limits on parameters.
const (
	MaxQuery = 16 << 10
	MaxURL   = 2048
	// maxResult is how much of a result an outcome or error quotes.
	maxResult = 300
)

// ErrNotHeld marks a verification that did not hold within its window.
var ErrNotHeld = errors.New("did not hold")

// Action is the verify action.
type Action struct{}

var _ actions.Action = Action{}

type params struct {
	Query      string `json:"query,omitempty"`
	Datasource string `json:"datasource,omitempty"`
	URL        string `json:"url,omitempty"`
	Within     string `json:"within"`
	Every      string `json:"every,omitempty"`
}

type spec struct {
	params
	within, every time.Duration
}

// Validate checks verify's parameters without I/O.
func (Action) Validate(raw map[string]any) error {
	_, err := decode(raw)
	return err
}

func decode(raw map[string]any) (*spec, error) {
	s := &spec{every: DefaultEvery}
	if err := actions.DecodeParams(raw, &s.params); err != nil {
		return nil, err
	}
	switch {
	case (s.Query == "") == (s.URL == ""):
		return nil, errors.New("exactly one of query or url is required")
	case s.Query != "" && s.Datasource == "":
		return nil, errors.New("datasource: required with query")
	case s.URL != "" && s.Datasource != "":
		return nil, errors.New("datasource: only with query, not with url")
	case len(s.Query) > MaxQuery:
		return nil, fmt.Errorf("query: %d bytes, more than %d", len(s.Query), MaxQuery)
	case len(s.URL) > MaxURL:
		return nil, fmt.Errorf("url: %d bytes, more than %d", len(s.URL), MaxURL)
	}
	if s.URL != "" {
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("url: not an absolute http(s) URL")
		}
	}
	var err error
	if s.within, err = positive("within", s.Within); err != nil {
		return nil, err
	}
	if s.Every != "" {
		if s.every, err = positive("every", s.Every); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func positive(field, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive duration", field, v)
	}
	return d, nil
}

// prepare decodes the step and re-checks the sandbox, including the kill
// switch: while policy.paused is set only notify runs.
func prepare(env *actions.Env, req *actions.Request) (*spec, func(string) string, error) {
	redact := redactor(env)
	s, err := decode(req.Step.Params)
	if err != nil {
		return nil, redact, fmt.Errorf("verify: %s", redact(err.Error()))
	}
	if env.Config.Policy.Paused {
		return nil, redact, actions.Refusef("verify: policy.paused is set in firebreak.cue; only notify runs")
	}
	if vs := actions.Check(env.Config, req.Owner, "verify", req.Step.Params); len(vs) > 0 {
		msgs := make([]string, len(vs))
		for i, v := range vs {
			msgs[i] = v.Error()
		}
		return nil, redact, actions.Refusef("verify: %s", redact(strings.Join(msgs, "; ")))
	}
	return s, redact, nil
}

func (s *spec) String() string {
	if s.Query != "" {
		return fmt.Sprintf("query %q on %s", s.Query, s.Datasource)
	}
	return fmt.Sprintf("GET %s answers 2xx", showURL(s.URL))
}

func (s *spec) target() string {
	if s.Query != "" {
		return s.Datasource
	}
	return showURL(s.URL)
}

// Plan says what would be checked; it queries nothing.
func (Action) Plan(ctx context.Context, env *actions.Env, req *actions.Request) (*actions.Outcome, error) {
	s, redact, err := prepare(env, req)
	if err != nil {
		return nil, err
	}
	return &actions.Outcome{
		Summary: redact(fmt.Sprintf("would check every %s, for up to %s, that %s", s.every, s.within, s)),
		Target:  s.target(),
	}, nil
}

// Execute checks until the verification holds, `within` passes or ctx
// ends. It changes nothing, so Changed is always false.
func (Action) Execute(ctx context.Context, env *actions.Env, req *actions.Request) (*actions.Outcome, error) {
	s, redact, err := prepare(env, req)
	if err != nil {
		return nil, err
	}
	fail := func(err error) error { return actions.SafeError(err, redact, ErrNotHeld) }
	log := env.Logger()

	check := s.checkURL
	if s.Query != "" {
		check = s.checkQuery
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, s.within)
	defer cancel()
	last := "no check completed"
	checks := 0
	for {
		checks++
		held, result, err := check(wctx, env)
		if err != nil {
			if errors.Is(err, webclient.ErrHostNotAllowed) {
				return nil, fail(fmt.Errorf("%w: verify %s: %w", actions.ErrRefused, s, err))
			}
			return nil, fail(fmt.Errorf("verify %s: %w", s, err))
		}
		if held {
			log.Info("verify held", "target", s.target(), "checks", checks, "elapsed", time.Since(start).Round(time.Millisecond))
			return &actions.Outcome{
				Summary: redact(fmt.Sprintf("%s held after %d check(s) in %s: %s", s, checks, time.Since(start).Round(time.Millisecond), result)),
				Target:  s.target(),
			}, nil
		}
		if wctx.Err() == nil || checks == 1 {
			// A check cut short by the deadline says nothing new.
			last = result
		}
		log.Info("verify not yet", "target", s.target(), "check", checks, "result", redact(result))
		t := time.NewTimer(s.every)
		select {
		case <-wctx.Done():
			t.Stop()
		case <-t.C:
		}
		if wctx.Err() != nil {
			break
		}
	}
	elapsed := time.Since(start).Round(time.Millisecond)
	if ctx.Err() != nil {
		why := ctx.Err()
		if cause := context.Cause(ctx); cause != nil && cause != why {
			why = fmt.Errorf("%w: %w", why, cause)
		}
		return nil, fail(fmt.Errorf("verify %s: step deadline reached after %s and %d check(s), before `within` %s: %w; last result: %s",
			s, elapsed, checks, s.within, why, last))
	}
	return nil, fail(fmt.Errorf("verify %s: %w within %s (%d checks); last result: %s", s, ErrNotHeld, s.within, checks, last))
}

// promResponse is the HTTP API's envelope of an instant query.
type promResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
	Values [][]any           `json:"values"`
}

// checkQuery runs one instant query. It reports held for a non-empty
// vector or matrix; a failure that no later check can fix (a bad query, a
// rejected token, a scalar result) is an error, anything else is a result
// that did not hold.
func (s *spec) checkQuery(ctx context.Context, env *actions.Env) (bool, string, error) {
	t := env.Config.Targets[s.Datasource].Prometheus
	u, err := url.Parse(t.URL)
	if err != nil {
		return false, "", fmt.Errorf("datasource %s: bad url", s.Datasource)
	}
	u = u.JoinPath("api/v1/query")
	u.RawQuery = url.Values{"query": {s.Query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, "", err
	}
	req.Header.Set("Accept", "application/json")
	if t.Token != nil {
		token, err := env.Secrets.Get(t.Token.Secret)
		if err != nil {
			return false, "", err
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := env.HTTP.Do(ctx, req)
	if err != nil {
		var se *webclient.StatusError
		if errors.As(err, &se) && !webclient.Retryable(se.Code) || errors.Is(err, webclient.ErrHostNotAllowed) {
			return false, "", err
		}
		return false, err.Error(), nil
	}
	defer resp.Body.Close()
	var pr promResponse
	if err := json.NewDecoder(resp.Body).Decode(&pr); err != nil {
		return false, fmt.Sprintf("HTTP %d, undecodable body: %v", resp.StatusCode, err), nil
	}
	if pr.Status != "success" {
		return false, fmt.Sprintf("status %s (%s): %s", pr.Status, pr.ErrorType, pr.Error), nil
	}
	switch pr.Data.ResultType {
	case "vector", "matrix":
	default:
		return false, "", fmt.Errorf("the query returns a %s; verify needs an instant vector, such as `x > 0`", pr.Data.ResultType)
	}
	var samples []promSample
	if err := json.Unmarshal(pr.Data.Result, &samples); err != nil {
		return false, "", fmt.Errorf("decode result: %w", err)
	}
	if len(samples) == 0 {
		return false, "empty " + pr.Data.ResultType, nil
	}
	return true, describe(pr.Data.ResultType, samples), nil
}

// checkURL sends one GET; it holds on 2xx. Other statuses and connection
// errors are results that did not hold: the service may come back.
func (s *spec) checkURL(ctx context.Context, env *actions.Env) (bool, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return false, "", errors.New("bad url")
	}
	resp, err := env.HTTP.Do(ctx, req)
	var se *webclient.StatusError
	switch {
	case errors.Is(err, webclient.ErrHostNotAllowed):
		return false, "", err
	case errors.As(err, &se):
		return false, se.Error(), nil
	case err != nil:
		return false, err.Error(), nil
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	result := fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	return resp.StatusCode/100 == 2, result, nil
}

// describe quotes the first series of a result, for outcomes and errors.
func describe(kind string, samples []promSample) string {
	first := samples[0]
	names := make([]string, 0, len(first.Metric))
	for k := range first.Metric {
		names = append(names, k)
	}
	sort.Strings(names)
	labels := make([]string, len(names))
	for i, k := range names {
		labels[i] = fmt.Sprintf("%s=%q", k, first.Metric[k])
	}
	value := ""
	switch {
	case len(first.Value) == 2:
		value = fmt.Sprint(first.Value[1])
	case len(first.Values) > 0 && len(first.Values[len(first.Values)-1]) == 2:
		value = fmt.Sprint(first.Values[len(first.Values)-1][1])
	}
	out := fmt.Sprintf("%s of %d series, first {%s} = %s", kind, len(samples), strings.Join(labels, ", "), value)
	if len(out) > maxResult {
		out = out[:maxResult] + "…"
	}
	return out
}

// showURL drops user info, query and fragment, where credentials hide.
func showURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// redactor returns the redaction of env's secret store, after resolving
// every secret firebreak.cue names, so that one rendered into a query by an
// alert label is known to it.
func redactor(env *actions.Env) func(string) string {
	if env.Secrets == nil {
		return func(s string) string { return s }
	}
	for _, name := range env.Config.SecretNames() {
		_, _ = env.Secrets.Get(name) // a missing secret fails where it is used
	}
	return env.Secrets.Redact
}
