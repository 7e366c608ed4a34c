package endpointsource

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/cmdline"
)

// boundFlags name each field of endpoint.Bounds by its flag.
var boundFlags = map[string]string{
	"MaxTimeout":        "max-attempt-timeout",
	"MinProbeEvery":     "min-probe-every",
	"MinDrainPerSecond": "min-drain-per-second",
	"MaxOpenAfter":      "max-open-after",
	"MaxParkLimit":      "max-park-limit",
	"MaxRetrySteps":     "max-retry-steps",
	"MaxRetryTotal":     "max-retry-total",
	"MaxInFlight":       "max-in-flight-limit",
	"MinRateLimit":      "min-rate-limit",
	"MaxRateLimit":      "max-rate-limit",

	"MaxEndpointsPerAccount": "max-endpoints-per-account",
}

// AddBoundsFlags defines the flags that narrow the bounds on endpoint
// values (endpoint.Bounds), each defaulting to its built-in bound, for
// every command that validates endpoints.
func AddBoundsFlags(fs *pflag.FlagSet, b *endpoint.Bounds) {
	d := endpoint.DefaultBounds()
	cmdline.Duration(fs, &b.MaxTimeout, "max-attempt-timeout", "HOOKRELAY_MAX_ATTEMPT_TIMEOUT", d.MaxTimeout,
		"longest timeout an endpoint may set for an attempt; narrows the built-in bound, never widens it")
	cmdline.Duration(fs, &b.MinProbeEvery, "min-probe-every", "HOOKRELAY_MIN_PROBE_EVERY", d.MinProbeEvery,
		"shortest delay an endpoint's circuit.probe_every may hold; narrows the built-in bound")
	cmdline.Float64(fs, &b.MinDrainPerSecond, "min-drain-per-second", "HOOKRELAY_MIN_DRAIN_PER_SECOND", d.MinDrainPerSecond,
		"slowest circuit.drain_per_second an endpoint may set; narrows the built-in bound")
	cmdline.Int(fs, &b.MaxOpenAfter, "max-open-after", "HOOKRELAY_MAX_OPEN_AFTER", d.MaxOpenAfter,
		"largest circuit.open_after an endpoint may set; narrows the built-in bound")
	cmdline.Duration(fs, &b.MaxParkLimit, "max-park-limit", "HOOKRELAY_MAX_PARK_LIMIT", d.MaxParkLimit,
		"longest circuit.park_limit an endpoint may set; narrows the built-in bound")
	cmdline.Int(fs, &b.MaxRetrySteps, "max-retry-steps", "HOOKRELAY_MAX_RETRY_STEPS", d.MaxRetrySteps,
		"most delays an endpoint's retry_schedule may hold; narrows the built-in bound")
	cmdline.Duration(fs, &b.MaxRetryTotal, "max-retry-total", "HOOKRELAY_MAX_RETRY_TOTAL", d.MaxRetryTotal,
		"longest an endpoint's retry_schedule may add up to; narrows the built-in bound")
	cmdline.Int(fs, &b.MaxInFlight, "max-in-flight-limit", "HOOKRELAY_MAX_IN_FLIGHT_LIMIT", d.MaxInFlight,
		"largest max_in_flight an endpoint may set (attempts one worker runs at once); narrows the built-in bound")
	cmdline.Float64(fs, &b.MinRateLimit, "min-rate-limit", "HOOKRELAY_MIN_RATE_LIMIT", d.MinRateLimit,
		"slowest rate_limit an endpoint may set, requests a second (none stays allowed); narrows the built-in bound")
	cmdline.Float64(fs, &b.MaxRateLimit, "max-rate-limit", "HOOKRELAY_MAX_RATE_LIMIT", d.MaxRateLimit,
		"fastest rate_limit an endpoint may set, requests a second (none stays allowed); narrows the built-in bound")
	cmdline.Int(fs, &b.MaxEndpointsPerAccount, "max-endpoints-per-account", "HOOKRELAY_MAX_ENDPOINTS_PER_ACCOUNT", d.MaxEndpointsPerAccount,
		fmt.Sprintf("most endpoints one account may have (a quota: may be raised, up to %d)", endpoint.EndpointsPerAccountCeiling))
}

// CheckBounds refuses a bound flag that widens its built-in bound: a usage
// mistake naming the flag.
func CheckBounds(b endpoint.Bounds) error {
	err := b.Narrowing()
	if err == nil {
		return nil
	}
	if errors.Is(err, endpoint.ErrNoRateLimitAllowed) {
		return cmdline.Usagef("--%s: %g is above --%s %g: %v", boundFlags["MinRateLimit"], b.MinRateLimit, boundFlags["MaxRateLimit"], b.MaxRateLimit, endpoint.ErrNoRateLimitAllowed)
	}
	field, problem, _ := strings.Cut(err.Error(), ": ")
	if field == "MaxEndpointsPerAccount" {
		return cmdline.Usagef("--%s: %s", boundFlags[field], problem)
	}
	return cmdline.Usagef("--%s: %s (the built-in bound; a flag may only narrow it)", boundFlags[field], problem)
}
