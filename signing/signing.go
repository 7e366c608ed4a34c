// Package signing signs and verifies webhooks per the Standard Webhooks
// specification: webhook-id, webhook-timestamp and webhook-signature headers,
// where a signature is "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names defined by Standard Webhooks.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret's text form.
const SecretPrefix = "whsec_"

// Key length bounds from the Standard Webhooks specification.
const (
	MinKeyBytes = 24
	MaxKeyBytes = 64
)

// DefaultTolerance is how far a webhook-timestamp may be from the verifier's clock.
const DefaultTolerance = 5 * time.Minute

// Secret is a decoded signing key. Its String form never reveals the key.
type Secret struct {
	key []byte
}

// ParseSecret decodes "whsec_" + base64 of 24 to 64 random bytes.
func ParseSecret(s string) (Secret, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, SecretPrefix) {
		return Secret{}, fmt.Errorf("secret must start with %q", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil {
		return Secret{}, errors.New("secret is not valid base64 after the whsec_ prefix")
	}
	if len(key) < MinKeyBytes || len(key) > MaxKeyBytes {
		return Secret{}, fmt.Errorf("secret key is %d bytes, want %d to %d", len(key), MinKeyBytes, MaxKeyBytes)
	}
	return Secret{key: key}, nil
}

// KeyID names the key without revealing it: "key_" and the first 8 hex
// digits of its SHA-256, for audit records and logs.
func (s Secret) KeyID() string {
	sum := sha256.Sum256(s.key)
	return "key_" + hex.EncodeToString(sum[:4])
}

// String keeps keys out of logs and fmt output.
func (s Secret) String() string { return "whsec_<redacted " + s.KeyID() + ">" }

// sign returns the raw v1 signature of one message under one key.
func (s Secret) sign(id, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// Sign returns the webhook-signature header value: one "v1,<base64>" per
// secret, space-separated, so receivers holding any of them can verify
// during a rotation.
func Sign(id string, ts time.Time, body []byte, secrets ...Secret) string {
	timestamp := strconv.FormatInt(ts.Unix(), 10)
	parts := make([]string, 0, len(secrets))
	for _, s := range secrets {
		parts = append(parts, "v1,"+base64.StdEncoding.EncodeToString(s.sign(id, timestamp, body)))
	}
	return strings.Join(parts, " ")
}

// Headers sets the three Standard Webhooks headers on h.
func Headers(h http.Header, id string, ts time.Time, body []byte, secrets ...Secret) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, Sign(id, ts, body, secrets...))
}

// Verification errors, for callers that answer differently to each.
var (
	ErrMissingHeader    = errors.New("missing webhook header")
	ErrBadTimestamp     = errors.New("webhook-timestamp is not unix seconds")
	ErrTimestampSkew    = errors.New("webhook-timestamp outside tolerance")
	ErrNoMatchingSecret = errors.New("no signature matches")
)

// Verify checks the headers against body with any of secrets, accepting a
// timestamp within tolerance of now (DefaultTolerance when tolerance is 0).
// Comparison is constant-time.
func Verify(h http.Header, body []byte, now time.Time, tolerance time.Duration, secrets ...Secret) error {
	id, timestamp, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	for name, v := range map[string]string{HeaderID: id, HeaderTimestamp: timestamp, HeaderSignature: sigs} {
		if v == "" {
			return fmt.Errorf("%w: %s", ErrMissingHeader, name)
		}
	}
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	if skew := now.Sub(time.Unix(unix, 0)); skew > tolerance || skew < -tolerance {
		return fmt.Errorf("%w: %s", ErrTimestampSkew, skew.Round(time.Second))
	}
	for _, s := range secrets {
		want := s.sign(id, timestamp, body)
		for _, sig := range strings.Fields(sigs) {
			version, encoded, ok := strings.Cut(sig, ",")
			if !ok || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(encoded)
			if err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return ErrNoMatchingSecret
}
