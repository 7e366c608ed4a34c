package testenv

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/internal/codec"
)

// FreeAddr is an address on 127.0.0.1 nothing listens on now, for a server
// that must come back on the same address after a restart.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Endpoint is one entry of an endpoints file.
type Endpoint struct {
	ID, URL string
	// Events it subscribes to; empty subscribes to every event ("*").
	Events []string
	Secret string
	// Timeout of each attempt; zero leaves the file's default.
	Timeout time.Duration
	// RetrySchedule is written when not nil; an empty one retries never.
	RetrySchedule []time.Duration
	// Extra lines of YAML for this endpoint, indented four spaces.
	Extra string
}

// WriteEndpoints writes an endpoints file holding eps.
func WriteEndpoints(path string, eps ...Endpoint) error {
	var b strings.Builder
	b.WriteString("endpoints:\n")
	for _, e := range eps {
		events := `"*"`
		if len(e.Events) > 0 {
			events = strings.Join(e.Events, ", ")
		}
		fmt.Fprintf(&b, "  - id: %s\n    url: %s\n    events: [%s]\n    secret: %s\n", e.ID, e.URL, events, e.Secret)
		if e.Timeout > 0 {
			fmt.Fprintf(&b, "    timeout: %s\n", e.Timeout)
		}
		if e.RetrySchedule != nil {
			var delays []string
			for _, d := range e.RetrySchedule {
				delays = append(delays, d.String())
			}
			fmt.Fprintf(&b, "    retry_schedule: [%s]\n", strings.Join(delays, ", "))
		}
		b.WriteString(e.Extra)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("endpoints file: %w", err)
	}
	return nil
}

// WriteCodecKey writes a payload key file with one fresh key named keyID:
// keys are generated per run and never committed.
func WriteCodecKey(path, keyID string) error {
	content := "# generated for one run; never committed\n" + CodecKeyLine(keyID) + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("codec key: %w", err)
	}
	return nil
}

// CodecKeyLine is a payload key file's line for one fresh key named keyID.
func CodecKeyLine(keyID string) string {
	return keyID + ":" + base64.StdEncoding.EncodeToString(random(codec.KeyBytes))
}

// NewSecret is a fresh signing secret, whsec_ and 32 random bytes.
func NewSecret() string { return "whsec_" + base64.StdEncoding.EncodeToString(random(32)) }

// NewToken is a fresh API token, 32 random bytes in URL-safe base64.
func NewToken() string { return base64.RawURLEncoding.EncodeToString(random(32)) }

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return b
}
