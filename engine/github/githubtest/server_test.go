package githubtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/firebreak-dev/firebreak/engine/github/githubtest"
)

func get(t *testing.T, url, auth string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	// No keep-alive: net/http repeats a GET on a reused connection
	// that drops, which would hide the dropped answer.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return nil, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestServer checks the answers against GitHub's shapes: auth, Link
// pagination, 404, the rate limit answers and a dropped connection.
func TestServer(t *testing.T) {
	s := githubtest.New(t, githubtest.Config{Token: "tok"})
	for i := range 5 {
		s.AddIssue("u", "issue", "", "incident", map[bool]string{true: "other", false: "incident"}[i%2 == 0])
	}
	base := s.URL + "/api/v3/repos/acme/ops/issues"
	if resp, body := get(t, base, ""); resp.StatusCode != 401 || !strings.Contains(body, "Bad credentials") {
		t.Fatalf("no token: %d %s", resp.StatusCode, body)
	}
	resp, body := get(t, base+"?per_page=2&state=all", "Bearer tok")
	var list []map[string]any
	if err := json.Unmarshal([]byte(body), &list); err != nil || resp.StatusCode != 200 || len(list) != 2 {
		t.Fatalf("page 1: %d %s", resp.StatusCode, body)
	}
	if list[0]["number"].(float64) != 5 {
		t.Errorf("not newest first: %v", list[0]["number"])
	}
	link := resp.Header.Get("Link")
	if !strings.Contains(link, `page=2>; rel="next"`) || !strings.Contains(link, `page=3>; rel="last"`) {
		t.Errorf("Link: %s", link)
	}
	if resp, _ := get(t, s.URL+"/repos/acme/ops/nothing", "token tok"); resp.StatusCode != 404 {
		t.Errorf("unknown path: %d", resp.StatusCode)
	}
	s.Sequence(githubtest.SecondaryLimit(7), githubtest.RateLimited(3), githubtest.Dropped())
	resp, body = get(t, base, "token tok")
	if resp.StatusCode != 403 || resp.Header.Get("Retry-After") != "7" || !strings.Contains(body, "You have exceeded a secondary rate limit") {
		t.Errorf("secondary: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, _ = get(t, base, "token tok")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || resp.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("429: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, msg := get(t, base, "token tok"); resp != nil {
		t.Errorf("dropped: answered %d", resp.StatusCode)
	} else if !strings.Contains(msg, "EOF") {
		t.Errorf("dropped: %s", msg)
	}
	reqs := s.Requests()
	if len(reqs) != 6 || reqs[5].Status != 0 || reqs[3].Status != 403 || reqs[3].Fault != "403 secondary retry-after 7" {
		t.Errorf("requests: %+v", reqs)
	}
}
