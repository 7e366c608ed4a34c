// Package signing signs webhooks per the Standard Webhooks specification:
// webhook-id, webhook-timestamp and webhook-signature headers, where a
// signature is "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
// Receivers verify with package webhookverify.
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

	"github.com/hookrelay/hookrelay/webhookverify"
)

// Header names defined by Standard Webhooks, as receivers read them.
const (
	HeaderID        = webhookverify.HeaderID
	HeaderTimestamp = webhookverify.HeaderTimestamp
	HeaderSignature = webhookverify.HeaderSignature
)

// SecretPrefix starts every secret's text form.
const SecretPrefix = "whsec_"

// Key length bounds from the Standard Webhooks specification.
const (
	MinKeyBytes = webhookverify.MinKeyBytes
	MaxKeyBytes = webhookverify.MaxKeyBytes
)

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
