// Package webhookverify is for receivers: it checks that a webhook came from
// hookrelay (or any Standard Webhooks sender) and is fresh. It verifies the
// webhook-id, webhook-timestamp and webhook-signature headers against one or
// more secrets, so a receiver can rotate its secret without downtime.
//
// It depends on the standard library only, so receivers can import it
// without hookrelay's other dependencies:
//
//	v, err := webhookverify.New(os.Getenv("WEBHOOK_SECRET"))
//	...
//	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
//	if err := v.Verify(r.Header, body); err != nil {
//		http.Error(w, "bad signature", http.StatusUnauthorized)
//		return
//	}
package webhookverify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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

// DefaultTolerance is how far webhook-timestamp may be from the receiver's
// clock: older messages may be replays.
const DefaultTolerance = 5 * time.Minute

// MinKeyBytes and MaxKeyBytes bound a secret's key, per the Standard
// Webhooks specification.
const (
	MinKeyBytes = 24
	MaxKeyBytes = 64
)

// Errors Verify returns, wrapped with detail; tell them apart with errors.Is.
var (
	// ErrMissingHeader: one of the three headers is absent or empty.
	ErrMissingHeader = errors.New("missing webhook header")
	// ErrInvalidTimestamp: webhook-timestamp is not integer unix seconds.
	ErrInvalidTimestamp = errors.New("webhook-timestamp is not unix seconds")
	// ErrStaleTimestamp: the timestamp is further than the tolerance from
	// now, in the past (a possible replay) or the future.
	ErrStaleTimestamp = errors.New("webhook-timestamp outside tolerance")
	// ErrBadSignature: no v1 signature in webhook-signature matches any secret.
	ErrBadSignature = errors.New("no matching webhook signature")
)

// Verifier checks webhooks against a set of secrets.
type Verifier struct {
	keys [][]byte
	// Tolerance overrides DefaultTolerance when positive.
	Tolerance time.Duration
	// Now overrides the clock, for tests.
	Now func() time.Time
}

// New returns a verifier accepting a signature by any of secrets, each
// "whsec_" + base64 of 24 to 64 bytes (the prefix is optional). Errors name
// the secret by position, never by value.
func New(secrets ...string) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("webhookverify: no secrets")
	}
	v := &Verifier{}
	for i, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "whsec_"))
		if err != nil {
			return nil, fmt.Errorf("webhookverify: secret %d is not whsec_ + base64", i+1)
		}
		if len(key) < MinKeyBytes || len(key) > MaxKeyBytes {
			return nil, fmt.Errorf("webhookverify: secret %d is %d bytes, want %d to %d", i+1, len(key), MinKeyBytes, MaxKeyBytes)
		}
		v.keys = append(v.keys, key)
	}
	return v, nil
}

// Verify checks h's three headers against body: all present, a timestamp
// within tolerance, and a v1 signature by one of the secrets. Signatures are
// compared in constant time.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	id, timestamp, signatures := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	for _, m := range []struct{ name, value string }{{HeaderID, id}, {HeaderTimestamp, timestamp}, {HeaderSignature, signatures}} {
		if m.value == "" {
			return fmt.Errorf("%w: %s", ErrMissingHeader, m.name)
		}
	}
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrInvalidTimestamp
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tolerance := DefaultTolerance
	if v.Tolerance > 0 {
		tolerance = v.Tolerance
	}
	// Compared in whole seconds: no time.Duration arithmetic to overflow on hostile input.
	nowUnix, tol := now().Unix(), int64(tolerance/time.Second)
	if unix < nowUnix-tol || unix > nowUnix+tol {
		return fmt.Errorf("%w: %s is more than %s from now", ErrStaleTimestamp, timestamp, tolerance)
	}
	candidates := ParseSignatures(signatures)
	for _, key := range v.keys {
		want := mac(key, id, timestamp, body)
		for _, got := range candidates {
			if got.Version == "v1" && hmac.Equal(got.MAC, want) {
				return nil
			}
		}
	}
	return ErrBadSignature
}

// Signature is one entry of a webhook-signature header.
type Signature struct {
	Version string // "v1" for HMAC-SHA256
	MAC     []byte
}

// ParseSignatures reads a webhook-signature header: space-separated
// "<version>,<base64>" entries. Entries that do not parse are skipped, as the
// specification asks, so a sender may add new versions.
func ParseSignatures(header string) []Signature {
	var out []Signature
	for _, field := range strings.Fields(header) {
		version, encoded, ok := strings.Cut(field, ",")
		if !ok || version == "" {
			continue
		}
		mac, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || len(mac) == 0 {
			continue
		}
		out = append(out, Signature{Version: version, MAC: mac})
	}
	return out
}

// mac is the v1 signature of a message: HMAC-SHA256(key, id.timestamp.body).
func mac(key []byte, id, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(timestamp))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}
