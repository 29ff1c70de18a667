package alert

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrSignature is wrapped by every error that says a webhook's signature is
// missing, malformed or does not match its body: a server answers it 401.
// The errors never repeat the header or the secret.
//
// A valid signature proves who sent the body, not when: neither PagerDuty
// nor GitHub signs a timestamp, so an intercepted delivery replays with a
// valid signature. Refusing a delivery id seen before (X-Webhook-Id,
// X-GitHub-Delivery) is the server's job.
var ErrSignature = errors.New("webhook signature")

// ErrNoSecret is returned when the secret to verify with is empty: an HMAC
// keyed with nothing is one anybody can compute, so it proves nothing. It
// is a configuration error, not the sender's.
var ErrNoSecret = errors.New("no webhook secret to verify the signature with")

// VerifyGitHub checks a GitHub webhook's X-Hub-Signature-256 header,
// "sha256=" and the hex HMAC-SHA256 of the raw body keyed with the
// webhook's secret.
func VerifyGitHub(secret, body []byte, header string) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	digits, ok := strings.CutPrefix(header, "sha256=")
	switch {
	case header == "":
		return fmt.Errorf("%w: no X-Hub-Signature-256 header", ErrSignature)
	case !ok:
		return fmt.Errorf(`%w: X-Hub-Signature-256 does not start with "sha256="`, ErrSignature)
	}
	sig, err := hex.DecodeString(digits)
	if err != nil || len(sig) != sha256.Size {
		return fmt.Errorf("%w: X-Hub-Signature-256 is not %d hex digits", ErrSignature, 2*sha256.Size)
	}
	if !hmac.Equal(sig, sign(secret, body)) {
		return fmt.Errorf("%w: X-Hub-Signature-256 does not match the body", ErrSignature)
	}
	return nil
}

// VerifyPagerDuty checks a PagerDuty V3 webhook's X-PagerDuty-Signature
// header: comma-separated signatures, each "v1=" and the hex HMAC-SHA256 of
// the raw body keyed with a signing secret. The body is genuine when any v1
// signature matches, since while a secret is rotated PagerDuty signs with
// both; signatures of other versions are ignored, as PagerDuty may add
// versions.
func VerifyPagerDuty(secret, body []byte, header string) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	want := sign(secret, body)
	v1, match := false, false
	for part := range strings.SplitSeq(header, ",") {
		digits, ok := strings.CutPrefix(strings.TrimSpace(part), "v1=")
		if !ok {
			continue
		}
		v1 = true
		// A malformed signature is one that does not match; it does not
		// spoil the others.
		sig, err := hex.DecodeString(digits)
		if err == nil && hmac.Equal(sig, want) {
			match = true
		}
	}
	switch {
	case header == "":
		return fmt.Errorf("%w: no X-PagerDuty-Signature header", ErrSignature)
	case !v1:
		return fmt.Errorf("%w: X-PagerDuty-Signature has no v1 signature", ErrSignature)
	case !match:
		return fmt.Errorf("%w: no v1 signature in X-PagerDuty-Signature matches the body", ErrSignature)
	}
	return nil
}

// sign returns the HMAC-SHA256 of body keyed with secret.
func sign(secret, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return mac.Sum(nil)
}
