package endpoint

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/hookrelay/hookrelay/webhookverify"
)

// SecretPrefix starts every secret's text form.
const SecretPrefix = "whsec_"

// Secret is an endpoint's decoded signing key. Its String form never
// reveals the key, and neither does any method: it signs, and names itself.
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
	if len(key) < webhookverify.MinKeyBytes || len(key) > webhookverify.MaxKeyBytes {
		return Secret{}, fmt.Errorf("secret key is %d bytes, want %d to %d", len(key), webhookverify.MinKeyBytes, webhookverify.MaxKeyBytes)
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

// Signature is the raw Standard Webhooks v1 signature of one message under
// the key: HMAC-SHA256 of id + "." + timestamp + "." + body.
func (s Secret) Signature(id, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}
