package endpoint

import (
	"errors"
	"fmt"
	"time"
)

// Bounds are the limits every customer-settable value of an endpoint keeps
// to, so that no endpoint holds more than its share of the fleet: an
// attempt's timeout, the circuit's probes, drain rate, opening threshold
// and park limit, the retry schedule, max_in_flight and rate_limit. Registration and update refuse a
// value outside them (naming the field and the bound), and a worker refuses
// an endpoints file that holds one. Operators may narrow them (the
// --max-attempt-timeout family of flags), never widen them past
// DefaultBounds. MaxEndpointsPerAccount, a quota, is the exception: it may
// be raised up to EndpointsPerAccountCeiling.
type Bounds struct {
	// MaxTimeout bounds an attempt's timeout.
	MaxTimeout time.Duration
	// MinProbeEvery bounds each delay of circuit.probe_every from below.
	MinProbeEvery time.Duration
	// MinDrainPerSecond bounds circuit.drain_per_second from below.
	MinDrainPerSecond float64
	// MaxOpenAfter bounds circuit.open_after.
	MaxOpenAfter int
	// MaxParkLimit bounds circuit.park_limit.
	MaxParkLimit time.Duration
	// MaxRetrySteps bounds the retry schedule's length.
	MaxRetrySteps int
	// MaxRetryTotal bounds the retry schedule's delays added up.
	MaxRetryTotal time.Duration
	// MaxInFlight bounds max_in_flight (from 1).
	MaxInFlight int
	// MinRateLimit and MaxRateLimit bound a rate_limit that is set
	// (requests a second); 0, no rate limit, is always allowed.
	MinRateLimit, MaxRateLimit float64
	// MaxEndpointsPerAccount is the quota of endpoints one account may
	// register (deleted ones do not count; disabled ones do). Unlike the
	// other bounds, an operator may raise it above its default, up to
	// EndpointsPerAccountCeiling.
	MaxEndpointsPerAccount int
}

// EndpointsPerAccountCeiling is the most an operator may raise
// MaxEndpointsPerAccount to: every event starts one delivery per endpoint
// of its account that subscribes to it, so the quota also bounds one
// event's fan-out.
const EndpointsPerAccountCeiling = 1000

// DefaultBounds are the built-in bounds: the widest an operator may set.
func DefaultBounds() Bounds {
	return Bounds{
		MaxTimeout:        30 * time.Second,
		MinProbeEvery:     5 * time.Second,
		MinDrainPerSecond: 0.1,
		MaxOpenAfter:      1000,
		MaxParkLimit:      30 * 24 * time.Hour,
		MaxRetrySteps:     30,
		MaxRetryTotal:     30 * 24 * time.Hour,
		MaxInFlight:       MaxMaxInFlight,
		MinRateLimit:      MinRateLimit,
		MaxRateLimit:      MaxRateLimit,
		// Far above what one clinic registers (a CRM, an archive, billing),
		// far below what fans one event out across the fleet.
		MaxEndpointsPerAccount: 50,
	}
}

// orDefault is b, or DefaultBounds when b is the zero value (no bounds given).
func (b Bounds) orDefault() Bounds {
	if b == (Bounds{}) {
		return DefaultBounds()
	}
	return b
}

// ErrNoRateLimitAllowed is Narrowing's answer to a MinRateLimit above
// MaxRateLimit: no rate_limit could be set.
var ErrNoRateLimitAllowed = errors.New("no rate_limit could be set")

// Narrowing checks that b only narrows DefaultBounds (and keeps
// MaxEndpointsPerAccount from 1 to EndpointsPerAccountCeiling); an error
// names the first bound that widens one, by its field name in Bounds. A
// MinRateLimit above MaxRateLimit, each within its built-in bound, is
// ErrNoRateLimitAllowed.
func (b Bounds) Narrowing() error {
	d := DefaultBounds()
	switch {
	case b.MaxTimeout <= 0 || b.MaxTimeout > d.MaxTimeout:
		return fmt.Errorf("MaxTimeout: %s must be above 0 and at most %s", b.MaxTimeout, d.MaxTimeout)
	case b.MinProbeEvery < d.MinProbeEvery || b.MinProbeEvery > maxProbeDelay:
		return fmt.Errorf("MinProbeEvery: %s must be at least %s and at most %s", b.MinProbeEvery, d.MinProbeEvery, formatDuration(maxProbeDelay))
	case !(b.MinDrainPerSecond >= d.MinDrainPerSecond) || b.MinDrainPerSecond > MaxDrainPerSecond:
		return fmt.Errorf("MinDrainPerSecond: %g must be at least %g and at most %d", b.MinDrainPerSecond, d.MinDrainPerSecond, MaxDrainPerSecond)
	case b.MaxOpenAfter < 1 || b.MaxOpenAfter > d.MaxOpenAfter:
		return fmt.Errorf("MaxOpenAfter: %d must be 1 to %d", b.MaxOpenAfter, d.MaxOpenAfter)
	case b.MaxParkLimit <= 0 || b.MaxParkLimit > d.MaxParkLimit:
		return fmt.Errorf("MaxParkLimit: %s must be above 0 and at most %s", b.MaxParkLimit, formatDuration(d.MaxParkLimit))
	case b.MaxRetrySteps < 0 || b.MaxRetrySteps > d.MaxRetrySteps:
		return fmt.Errorf("MaxRetrySteps: %d must be 0 to %d", b.MaxRetrySteps, d.MaxRetrySteps)
	case b.MaxRetryTotal <= 0 || b.MaxRetryTotal > d.MaxRetryTotal:
		return fmt.Errorf("MaxRetryTotal: %s must be above 0 and at most %s", b.MaxRetryTotal, formatDuration(d.MaxRetryTotal))
	case b.MaxInFlight < 1 || b.MaxInFlight > d.MaxInFlight:
		return fmt.Errorf("MaxInFlight: %d must be 1 to %d", b.MaxInFlight, d.MaxInFlight)
	case !(b.MinRateLimit >= d.MinRateLimit) || b.MinRateLimit > d.MaxRateLimit:
		return fmt.Errorf("MinRateLimit: %g must be at least %g and at most %g", b.MinRateLimit, d.MinRateLimit, d.MaxRateLimit)
	case !(b.MaxRateLimit >= d.MinRateLimit) || b.MaxRateLimit > d.MaxRateLimit:
		return fmt.Errorf("MaxRateLimit: %g must be at least %g and at most %g", b.MaxRateLimit, d.MinRateLimit, d.MaxRateLimit)
	case b.MinRateLimit > b.MaxRateLimit:
		return fmt.Errorf("MinRateLimit: %g is above MaxRateLimit, %g: %w", b.MinRateLimit, b.MaxRateLimit, ErrNoRateLimitAllowed)
	case b.MaxEndpointsPerAccount < 1 || b.MaxEndpointsPerAccount > EndpointsPerAccountCeiling:
		return fmt.Errorf("MaxEndpointsPerAccount: %d must be 1 to %d", b.MaxEndpointsPerAccount, EndpointsPerAccountCeiling)
	}
	return nil
}

// CheckTimeout refuses an attempt timeout over the bound, naming the field.
func (b Bounds) CheckTimeout(d time.Duration) error {
	if b = b.orDefault(); d > b.MaxTimeout {
		return fmt.Errorf("timeout: %s is over the %s maximum", formatDuration(d), formatDuration(b.MaxTimeout))
	}
	return nil
}

// CheckRetrySchedule refuses a schedule of too many steps, or whose delays
// add up to more than the bound.
func (b Bounds) CheckRetrySchedule(s []time.Duration) error {
	b = b.orDefault()
	if len(s) > b.MaxRetrySteps {
		return fmt.Errorf("retry_schedule: %d delays, at most %d", len(s), b.MaxRetrySteps)
	}
	var total time.Duration
	for _, d := range s {
		total += d
	}
	if total > b.MaxRetryTotal {
		return fmt.Errorf("retry_schedule: its delays add up to %s, over the %s maximum", formatDuration(total), formatDuration(b.MaxRetryTotal))
	}
	return nil
}

// CheckCircuit refuses circuit settings outside the bounds; set says which
// fields were given (a patch checks only those), nil all of them.
func (b Bounds) CheckCircuit(c Circuit, set *RawCircuit) error {
	b = b.orDefault()
	all := set == nil
	if all || set.OpenAfter != nil {
		if c.OpenAfter > b.MaxOpenAfter {
			return fmt.Errorf("circuit.open_after: %d is over the %d maximum", c.OpenAfter, b.MaxOpenAfter)
		}
	}
	if all || set.ProbeEvery != nil {
		for i, d := range c.ProbeEvery {
			if d < b.MinProbeEvery {
				return fmt.Errorf("circuit.probe_every[%d]: %s is under the %s minimum", i, formatDuration(d), formatDuration(b.MinProbeEvery))
			}
		}
	}
	if all || set.DrainPerSecond != nil {
		if c.DrainPerSecond < b.MinDrainPerSecond {
			return fmt.Errorf("circuit.drain_per_second: %g is under the %g minimum", c.DrainPerSecond, b.MinDrainPerSecond)
		}
	}
	if all || set.ParkLimit != nil {
		if c.ParkLimit > b.MaxParkLimit {
			return fmt.Errorf("circuit.park_limit: %s is over the %s maximum", formatDuration(c.ParkLimit), formatDuration(b.MaxParkLimit))
		}
	}
	return nil
}

// CheckMaxInFlight refuses a max_in_flight outside 1 to the bound, naming
// the field.
func (b Bounds) CheckMaxInFlight(n int) error {
	if b = b.orDefault(); n < 1 || n > b.MaxInFlight {
		return fmt.Errorf("max_in_flight: %d must be 1 to %d", n, b.MaxInFlight)
	}
	return nil
}

// CheckRateLimit refuses a rate_limit other than 0 (none) outside the
// bounds, naming the field.
func (b Bounds) CheckRateLimit(perSecond float64) error {
	b = b.orDefault()
	if perSecond != 0 && !(perSecond >= b.MinRateLimit && perSecond <= b.MaxRateLimit) {
		return fmt.Errorf("rate_limit: %g must be 0 (no limit) or %g to %g requests per second", perSecond, b.MinRateLimit, b.MaxRateLimit)
	}
	return nil
}

// CheckEndpointCount refuses an account's endpoint count over the quota:
// count is how many the account would hold. The error names the account
// and the quota.
func (b Bounds) CheckEndpointCount(accountID string, count int) error {
	if b = b.orDefault(); count > b.MaxEndpointsPerAccount {
		return fmt.Errorf("account %s: %d endpoints, over the %d an account may have (max-endpoints-per-account)", accountLabel(accountID), count, b.MaxEndpointsPerAccount)
	}
	return nil
}

// accountLabel names an account in an error; endpoints without one are
// counted together.
func accountLabel(accountID string) string {
	if accountID == "" {
		return "(none)"
	}
	return fmt.Sprintf("%q", accountID)
}

// Check refuses an endpoint with any value outside the bounds, naming the
// first field.
func (b Bounds) Check(e Endpoint) error {
	if err := b.CheckTimeout(e.Timeout); err != nil {
		return err
	}
	if err := b.CheckRetrySchedule(e.RetrySchedule); err != nil {
		return err
	}
	n := e.MaxInFlight
	if n == 0 { // unset
		n = DefaultMaxInFlight
	}
	if err := b.CheckMaxInFlight(n); err != nil {
		return err
	}
	if err := b.CheckRateLimit(e.RateLimit); err != nil {
		return err
	}
	return b.CheckCircuit(e.Circuit, nil)
}

// Within is e with every value outside the bounds brought to the nearest
// bound: a retry schedule loses the steps past its bounds; an unset
// max_in_flight (0) and rate_limit (0, none) stay unset. It serves the
// defaults under narrowed bounds, and endpoints registered before a bound
// applied.
func (b Bounds) Within(e Endpoint) Endpoint {
	b = b.orDefault()
	e.Timeout = min(e.Timeout, b.MaxTimeout)
	var total time.Duration
	for i, d := range e.RetrySchedule {
		if i == b.MaxRetrySteps || total+d > b.MaxRetryTotal {
			e.RetrySchedule = e.RetrySchedule[:i:i]
			break
		}
		total += d
	}
	e.MaxInFlight = min(e.MaxInFlight, b.MaxInFlight)
	if e.RateLimit != 0 {
		e.RateLimit = min(max(e.RateLimit, b.MinRateLimit), b.MaxRateLimit)
	}
	c := &e.Circuit
	c.OpenAfter = min(c.OpenAfter, b.MaxOpenAfter)
	c.DrainPerSecond = max(c.DrainPerSecond, b.MinDrainPerSecond)
	c.ParkLimit = min(c.ParkLimit, b.MaxParkLimit)
	probes := make([]time.Duration, len(c.ProbeEvery))
	for i, d := range c.ProbeEvery {
		probes[i] = max(d, b.MinProbeEvery)
	}
	c.ProbeEvery = probes
	return e
}
