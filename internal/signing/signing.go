// Package signing signs webhooks per the Standard Webhooks specification:
// webhook-id, webhook-timestamp and webhook-signature headers, where a
// signature is "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
// Receivers verify with package webhookverify.
package signing

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/webhookverify"
)

// Header names defined by Standard Webhooks, as receivers read them.
const (
	HeaderID        = webhookverify.HeaderID
	HeaderTimestamp = webhookverify.HeaderTimestamp
	HeaderSignature = webhookverify.HeaderSignature
)

// SecretPrefix starts every secret's text form.
const SecretPrefix = endpoint.SecretPrefix

// Key length bounds from the Standard Webhooks specification.
const (
	MinKeyBytes = webhookverify.MinKeyBytes
	MaxKeyBytes = webhookverify.MaxKeyBytes
)

// Secret is a decoded signing key: endpoint.Secret, which endpoints
// carry. Its String form never reveals the key.
type Secret = endpoint.Secret

// ParseSecret decodes "whsec_" + base64 of 24 to 64 random bytes.
func ParseSecret(s string) (Secret, error) { return endpoint.ParseSecret(s) }

// Sign returns the webhook-signature header value: one "v1,<base64>" per
// secret, space-separated, so receivers holding any of them can verify
// during a rotation.
func Sign(id string, ts time.Time, body []byte, secrets ...Secret) string {
	timestamp := strconv.FormatInt(ts.Unix(), 10)
	parts := make([]string, 0, len(secrets))
	for _, s := range secrets {
		parts = append(parts, "v1,"+base64.StdEncoding.EncodeToString(s.Signature(id, timestamp, body)))
	}
	return strings.Join(parts, " ")
}

// Headers sets the three Standard Webhooks headers on h.
func Headers(h http.Header, id string, ts time.Time, body []byte, secrets ...Secret) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, Sign(id, ts, body, secrets...))
}
