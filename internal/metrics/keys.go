package metrics

import (
	"log/slog"

	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/internal/codec"
)

// KeyMonitor counts a codec's encryptions per key in m (if not nil) and
// warns, in the log and in m, when a key reaches the threshold past which
// it should be rotated (docs/security.md, "Encryption and key rotation").
func KeyMonitor(logger *slog.Logger, m client.MetricsHandler) codec.Monitor {
	var mon codec.Monitor
	if m != nil {
		mon.Sealed = func(id string) {
			m.WithTags(map[string]string{"key_id": id}).Counter(CodecEncryptions).Inc(1)
		}
	}
	mon.Overused = func(id string, n uint64) {
		logger.Warn("payload key sealed many payloads: rotate it", "key_id", id, "encryptions", n,
			"limit", "2^32 per key for AES-GCM with random nonces; see docs/security.md")
		if m != nil {
			m.WithTags(map[string]string{"key_id": id}).Gauge(CodecKeyOverused).Update(1)
		}
	}
	return mon
}
