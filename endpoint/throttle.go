package endpoint

import "fmt"

// Throttle settings: how much of the fleet one endpoint may take.
const (
	// DefaultMaxInFlight bounds the attempts to one endpoint that one worker
	// runs at once. Ten is what a receiver behind one small server takes
	// without queueing, and leaves most of a worker's attempt slots (and
	// local activity slots) to every other endpoint.
	DefaultMaxInFlight = 10
	// MaxMaxInFlight: beyond a hundred, one endpoint could hold most of a
	// worker's slots again.
	MaxMaxInFlight = 100
	// MinRateLimit and MaxRateLimit bound rate_limit (requests per second);
	// 0 is no rate limit.
	MinRateLimit = 0.1
	MaxRateLimit = 1000
)

// CheckMaxInFlight checks max_in_flight.
func CheckMaxInFlight(n int) error {
	if n < 1 || n > MaxMaxInFlight {
		return fmt.Errorf("%d must be 1 to %d", n, MaxMaxInFlight)
	}
	return nil
}

// CheckRateLimit checks rate_limit: 0 (none) or MinRateLimit to MaxRateLimit.
func CheckRateLimit(perSecond float64) error {
	if perSecond != 0 && (perSecond < MinRateLimit || perSecond > MaxRateLimit) {
		return fmt.Errorf("%g must be 0 (no limit) or %g to %d requests per second", perSecond, MinRateLimit, MaxRateLimit)
	}
	return nil
}

// EffectiveMaxInFlight is MaxInFlight, or its default when unset (an
// endpoint built outside this package).
func (e Endpoint) EffectiveMaxInFlight() int {
	if e.MaxInFlight < 1 {
		return DefaultMaxInFlight
	}
	return min(e.MaxInFlight, MaxMaxInFlight)
}
