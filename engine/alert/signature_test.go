package alert

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// The signatures of the PagerDuty fixtures were computed apart from this
// code, with `openssl dgst -sha256 -hmac SECRET -hex < FILE`.
const (
	pdSecret        = "whsec-firebreak-test"
	pdOldSecret     = "whsec-old-secret"
	pdTriggeredSig  = "5aa8a300e7fe9d9bb289876dbe72fb9e77e0f7bd3b09f24d596536961225b388" // incident-triggered.json, pdSecret
	pdTriggeredOld  = "bae83dd12f27aeef9329c0820b94d3ad1b1514da1ae6b067b4f5d7d2449bb1b7" // incident-triggered.json, pdOldSecret
	pdResolvedSig   = "dcccc4de5e43833dfce09a47b474e1f54ec743d13c82529e3b58864f90b9e632" // incident-resolved.json, pdSecret
	pdPingSignature = "c5c25b0e400d7a82d0439ae2e74b361e3d5e4edf220d8e7238ee8c418b0e5daa" // pagey-ping.json, pdSecret
)

func TestVerifyPagerDuty(t *testing.T) {
	triggered := readSource(t, filepath.Join("pagerduty", "incident-triggered.json"))
	resolved := readSource(t, filepath.Join("pagerduty", "incident-resolved.json"))
	ping := readSource(t, filepath.Join("pagerduty", "pagey-ping.json"))
	tests := []struct {
		name   string
		secret string
		body   []byte
		header string
		want   string // "" for a match
	}{
		{"match", pdSecret, triggered, "v1=" + pdTriggeredSig, ""},
		{"other fixture", pdSecret, resolved, "v1=" + pdResolvedSig, ""},
		{"compact ping", pdSecret, ping, "v1=" + pdPingSignature, ""},
		{"upper-case hex", pdSecret, triggered, "v1=" + strings.ToUpper(pdTriggeredSig), ""},
		// While a secret is rotated, PagerDuty signs with both.
		{"rotation, new first", pdSecret, triggered, "v1=" + pdTriggeredSig + ",v1=" + pdTriggeredOld, ""},
		{"rotation, new second", pdSecret, triggered, "v1=" + pdTriggeredOld + ", v1=" + pdTriggeredSig, ""},
		{"rotation, old secret", pdOldSecret, triggered, "v1=" + pdTriggeredSig + ",v1=" + pdTriggeredOld, ""},
		{"unknown versions ignored", pdSecret, triggered, "v2=abc,v0=" + pdTriggeredSig + ",v1=" + pdTriggeredSig, ""},
		{"malformed one spoils nothing", pdSecret, triggered, "v1=zz,v1=,v1=" + pdTriggeredSig, ""},

		{"no header", pdSecret, triggered, "", "webhook signature: no X-PagerDuty-Signature header"},
		{"no v1", pdSecret, triggered, "v2=" + pdTriggeredSig, "webhook signature: X-PagerDuty-Signature has no v1 signature"},
		{"no prefix", pdSecret, triggered, pdTriggeredSig, "webhook signature: X-PagerDuty-Signature has no v1 signature"},
		{"wrong secret", "whsec-guess", triggered, "v1=" + pdTriggeredSig, "webhook signature: no v1 signature in X-PagerDuty-Signature matches the body"},
		// A signature replayed onto another body does not match it.
		{"replayed onto another body", pdSecret, resolved, "v1=" + pdTriggeredSig, "webhook signature: no v1 signature in X-PagerDuty-Signature matches the body"},
		{"body changed by a byte", pdSecret, append([]byte(" "), triggered...), "v1=" + pdTriggeredSig, "webhook signature: no v1 signature in X-PagerDuty-Signature matches the body"},
		{"truncated signature", pdSecret, triggered, "v1=" + pdTriggeredSig[:62], "webhook signature: no v1 signature in X-PagerDuty-Signature matches the body"},
		{"signature with more", pdSecret, triggered, "v1=" + pdTriggeredSig + "00", "webhook signature: no v1 signature in X-PagerDuty-Signature matches the body"},
		{"sha256 of the body is not its HMAC", pdSecret, []byte(""), "v1=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "webhook signature: no v1 signature in X-PagerDuty-Signature matches the body"},
		{"no secret", "", triggered, "v1=" + pdTriggeredSig, "no webhook secret to verify the signature with"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyPagerDuty([]byte(tc.secret), tc.body, tc.header)
			checkVerify(t, err, tc.want, tc.secret)
		})
	}
}

func TestVerifyGitHub(t *testing.T) {
	// GitHub's documented example: secret "It's a Secret to Everybody",
	// body "Hello, World!".
	const (
		secret = "It's a Secret to Everybody"
		sig    = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	)
	body := []byte("Hello, World!")
	tests := []struct {
		name, secret string
		body         []byte
		header, want string
	}{
		{"GitHub's example", secret, body, "sha256=" + sig, ""},
		{"upper-case hex", secret, body, "sha256=" + strings.ToUpper(sig), ""},
		{"no header", secret, body, "", "webhook signature: no X-Hub-Signature-256 header"},
		{"no prefix", secret, body, sig, `webhook signature: X-Hub-Signature-256 does not start with "sha256="`},
		{"SHA-1 header's prefix", secret, body, "sha1=" + sig, `webhook signature: X-Hub-Signature-256 does not start with "sha256="`},
		{"upper-case prefix", secret, body, "SHA256=" + sig, `webhook signature: X-Hub-Signature-256 does not start with "sha256="`},
		{"not hex", secret, body, "sha256=" + strings.Repeat("g", 64), "webhook signature: X-Hub-Signature-256 is not 64 hex digits"},
		{"short", secret, body, "sha256=" + sig[:62], "webhook signature: X-Hub-Signature-256 is not 64 hex digits"},
		{"long", secret, body, "sha256=" + sig + "00", "webhook signature: X-Hub-Signature-256 is not 64 hex digits"},
		{"two signatures", secret, body, "sha256=" + sig + ",sha256=" + sig, "webhook signature: X-Hub-Signature-256 is not 64 hex digits"},
		{"wrong secret", "It's a secret to everybody", body, "sha256=" + sig, "webhook signature: X-Hub-Signature-256 does not match the body"},
		{"replayed onto another body", secret, []byte("Hello, World?"), "sha256=" + sig, "webhook signature: X-Hub-Signature-256 does not match the body"},
		{"no secret", "", body, "sha256=" + sig, "no webhook secret to verify the signature with"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyGitHub([]byte(tc.secret), tc.body, tc.header)
			checkVerify(t, err, tc.want, tc.secret)
		})
	}
}

// checkVerify checks err against want ("" for none), that a bad signature
// wraps ErrSignature, and that no error repeats the secret.
func checkVerify(t *testing.T, err error, want, secret string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("got %v, want a match", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got a match, want %s", want)
	}
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	if strings.HasPrefix(want, "webhook signature") != errors.Is(err, ErrSignature) {
		t.Errorf("errors.Is(%v, ErrSignature) = %v", err, errors.Is(err, ErrSignature))
	}
	if secret == "" && !errors.Is(err, ErrNoSecret) {
		t.Errorf("error %v for an empty secret is not ErrNoSecret", err)
	}
	if secret != "" && strings.Contains(err.Error(), secret) {
		t.Errorf("error %q repeats the secret", err)
	}
}

func BenchmarkVerifyPagerDuty(b *testing.B) {
	body := readSource(b, filepath.Join("pagerduty", "incident-triggered.json"))
	header := "v1=" + pdTriggeredOld + ",v1=" + pdTriggeredSig
	for b.Loop() {
		if err := VerifyPagerDuty([]byte(pdSecret), body, header); err != nil {
			b.Fatal(err)
		}
	}
}
