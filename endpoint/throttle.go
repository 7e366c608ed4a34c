package endpoint

// Throttle settings: how much of the fleet one endpoint may take.
const (
	// DefaultMaxInFlight bounds the attempts to one endpoint that one worker
	// runs at once. Ten is what a receiver behind one small server takes
	// without queueing, and leaves most of a worker's attempt slots (and
	// local activity slots) to every other endpoint.
	DefaultMaxInFlight = 10
	// MaxMaxInFlight: beyond a hundred, one endpoint could hold most of a
	// worker's slots again. The built-in bound (Bounds.MaxInFlight).
	MaxMaxInFlight = 100
	// MinRateLimit and MaxRateLimit bound rate_limit (requests per second);
	// 0 is no rate limit. The built-in bounds (Bounds.MinRateLimit and
	// Bounds.MaxRateLimit).
	MinRateLimit = 0.1
	MaxRateLimit = 1000
)

// EffectiveMaxInFlight is MaxInFlight, or its default when unset (an
// endpoint built outside this package).
func (e Endpoint) EffectiveMaxInFlight() int {
	if e.MaxInFlight < 1 {
		return DefaultMaxInFlight
	}
	return min(e.MaxInFlight, MaxMaxInFlight)
}
