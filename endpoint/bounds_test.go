package endpoint

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// boundCases are each bound just inside and just outside, as the value of
// one field of an endpoints file entry; field is what the refusal names.
var boundCases = []struct {
	name, inside, outside, field, bound string
}{
	{"timeout", "timeout: 30s", "timeout: 31s", "timeout:", "30s"},
	{"probe_every", "circuit: {probe_every: [5s, 1m]}", "circuit: {probe_every: [1m, 4999ms]}", "circuit.probe_every[1]:", "5s"},
	{"drain_per_second", "circuit: {drain_per_second: 0.1}", "circuit: {drain_per_second: 0.09}", "circuit.drain_per_second:", "0.1"},
	{"open_after", "circuit: {open_after: 1000}", "circuit: {open_after: 1001}", "circuit.open_after:", "1000"},
	{"park_limit", "circuit: {park_limit: 720h}", "circuit: {park_limit: 721h}", "circuit.park_limit:", "720h"},
	{"retry steps", "retry_schedule: [" + strings.Repeat("1s, ", 29) + "1s]", "retry_schedule: [" + strings.Repeat("1s, ", 30) + "1s]", "retry_schedule:", "at most 30"},
	{"max_in_flight high", "max_in_flight: 100", "max_in_flight: 101", "max_in_flight:", "1 to 100"},
	{"max_in_flight low", "max_in_flight: 1", "max_in_flight: 0", "max_in_flight:", "1 to 100"},
	{"rate_limit low", "rate_limit: 0.1", "rate_limit: 0.09", "rate_limit:", "0.1 to 1000"},
	{"rate_limit high", "rate_limit: 1000", "rate_limit: 1001", "rate_limit:", "0.1 to 1000"},
	{"retry total", "retry_schedule: [168h, 168h, 168h, 168h, 48h]", "retry_schedule: [168h, 168h, 168h, 168h, 48h, 1s]", "retry_schedule:", "720h"},
}

func boundEntry(extra string) []byte {
	return []byte("endpoints:\n  - id: ok\n    url: https://a.example.com/\n    events: ['*']\n    secret: " + validSecret + "\n" +
		"  - id: bounded\n    url: https://b.example.com/\n    events: ['*']\n    secret: " + validSecret + "\n    " + extra + "\n")
}

// Every bound: a value just inside loads; one just outside is refused,
// naming the entry, the field and the bound.
func TestFileBounds(t *testing.T) {
	for _, c := range boundCases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse(boundEntry(c.inside), "."); err != nil {
				t.Fatalf("just inside (%s): %v", c.inside, err)
			}
			_, err := Parse(boundEntry(c.outside), ".")
			if err == nil {
				t.Fatalf("just outside (%s) loaded", c.outside)
			}
			for _, want := range []string{`endpoint "bounded" (endpoints[1])`, c.field, c.bound} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

// narrowedThrottle narrows max_in_flight to 1 to 5 and rate_limit to 1 to 50.
func narrowedThrottle() Bounds {
	b := DefaultBounds()
	b.MaxInFlight, b.MinRateLimit, b.MaxRateLimit = 5, 1, 50
	return b
}

// The throttle settings under bounds narrowed by flag: a value just inside
// loads; one just outside is refused, naming the entry, the field and the
// narrowed bound. A rate_limit of 0 (none) stays allowed.
func TestFileNarrowedThrottleBounds(t *testing.T) {
	b := narrowedThrottle()
	if err := b.Narrowing(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, inside, outside, field, bound string
		builtIn                             bool // outside is within the built-in bounds
	}{
		{"max_in_flight", "max_in_flight: 5", "max_in_flight: 6", "max_in_flight: 6", "1 to 5", true},
		{"max_in_flight zero", "max_in_flight: 1", "max_in_flight: 0", "max_in_flight: 0", "1 to 5", false},
		{"rate_limit high", "rate_limit: 50", "rate_limit: 50.5", "rate_limit: 50.5", "1 to 50 requests", true},
		{"rate_limit low", "rate_limit: 1", "rate_limit: 0.9", "rate_limit: 0.9", "1 to 50 requests", true},
		{"rate_limit none", "rate_limit: 0", "rate_limit: 0.1", "rate_limit: 0.1", "1 to 50 requests", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse(boundEntry(c.inside), ".", WithBounds(b)); err != nil {
				t.Fatalf("just inside (%s): %v", c.inside, err)
			}
			_, err := Parse(boundEntry(c.outside), ".", WithBounds(b))
			if err == nil {
				t.Fatalf("just outside (%s) loaded", c.outside)
			}
			for _, want := range []string{`endpoint "bounded" (endpoints[1])`, c.field, c.bound} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if _, err := Parse(boundEntry(c.outside), "."); c.builtIn && err != nil {
				t.Errorf("%s under the built-in bounds: %v", c.outside, err)
			}
		})
	}
	// The default max_in_flight is brought within the narrowed bound.
	cfg, err := Parse(boundEntry("rate_limit: 2"), ".", WithBounds(b))
	if err != nil {
		t.Fatal(err)
	}
	ok, _ := cfg.Lookup("ok")
	bounded, _ := cfg.Lookup("bounded")
	if ok.MaxInFlight != 5 || ok.EffectiveMaxInFlight() != 5 || ok.RateLimit != 0 || bounded.RateLimit != 2 {
		t.Fatalf("under max_in_flight at most 5: default max_in_flight %d (effective %d), rate_limit %g and %g; want 5, 5, 0 and 2",
			ok.MaxInFlight, ok.EffectiveMaxInFlight(), ok.RateLimit, bounded.RateLimit)
	}
}

// Narrowed bounds refuse what the built-in ones admit, naming the new
// bound, and bring the defaults within them.
func TestNarrowedBounds(t *testing.T) {
	b := DefaultBounds()
	b.MaxTimeout, b.MinProbeEvery, b.MaxParkLimit, b.MaxRetrySteps = 10*time.Second, time.Minute, 48*time.Hour, 3
	if err := b.Narrowing(); err != nil {
		t.Fatal(err)
	}
	_, err := Parse(boundEntry("timeout: 11s"), ".", WithBounds(b))
	if err == nil || !strings.Contains(err.Error(), "timeout: 11s is over the 10s maximum") {
		t.Fatalf("11s under a 10s bound: %v", err)
	}
	cfg, err := Parse(boundEntry("timeout: 10s"), ".", WithBounds(b))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := cfg.Lookup("ok")
	if e.Timeout != 10*time.Second || e.Circuit.ParkLimit != 48*time.Hour || len(e.RetrySchedule) != 3 || e.Circuit.ProbeEvery[0] != time.Minute {
		t.Fatalf("defaults under narrowed bounds: timeout %s, park_limit %s, retry_schedule %v, probe_every %v",
			e.Timeout, e.Circuit.ParkLimit, e.RetrySchedule, e.Circuit.ProbeEvery)
	}
	for _, wide := range []func(*Bounds){
		func(b *Bounds) { b.MaxTimeout = 31 * time.Second },
		func(b *Bounds) { b.MinProbeEvery = 4 * time.Second },
		func(b *Bounds) { b.MinDrainPerSecond = 0.05 },
		func(b *Bounds) { b.MaxOpenAfter = 1001 },
		func(b *Bounds) { b.MaxParkLimit = 721 * time.Hour },
		func(b *Bounds) { b.MaxRetrySteps = 31 },
		func(b *Bounds) { b.MaxRetryTotal = 721 * time.Hour },
		func(b *Bounds) { b.MaxInFlight = 101 },
		func(b *Bounds) { b.MaxInFlight = 0 },
		func(b *Bounds) { b.MinRateLimit = 0.09 },
		func(b *Bounds) { b.MaxRateLimit = 1000.5 },
		func(b *Bounds) { b.MaxRateLimit = 0.05 },
	} {
		b := DefaultBounds()
		wide(&b)
		if err := b.Narrowing(); err == nil || errors.Is(err, ErrNoRateLimitAllowed) {
			t.Errorf("%+v widens a built-in bound, yet: %v", b, err)
		}
	}
	b = DefaultBounds()
	b.MinRateLimit, b.MaxRateLimit = 20, 10
	if err := b.Narrowing(); !errors.Is(err, ErrNoRateLimitAllowed) || !strings.HasPrefix(err.Error(), "MinRateLimit: 20 is above MaxRateLimit, 10") {
		t.Errorf("a smallest rate_limit above the largest: %v, want ErrNoRateLimitAllowed", err)
	}
	b.MinRateLimit = 10
	if err := b.Narrowing(); err != nil {
		t.Errorf("a single allowed rate_limit, 10: %v", err)
	}
}

// Within brings every value to the nearest bound, and leaves values inside alone.
func TestWithin(t *testing.T) {
	old := Endpoint{Timeout: 5 * time.Minute, RetrySchedule: append(make([]time.Duration, 0, 40), 300*time.Hour, 300*time.Hour, 300*time.Hour),
		Circuit: Circuit{OpenAfter: 10000, ProbeEvery: []time.Duration{time.Nanosecond, time.Hour}, DrainPerSecond: 1e-9, DisableAfter: time.Hour, ParkLimit: 8760 * time.Hour}}
	got := DefaultBounds().Within(old)
	want := Endpoint{Timeout: 30 * time.Second, RetrySchedule: []time.Duration{300 * time.Hour, 300 * time.Hour},
		Circuit: Circuit{OpenAfter: 1000, ProbeEvery: []time.Duration{5 * time.Second, time.Hour}, DrainPerSecond: 0.1, DisableAfter: time.Hour, ParkLimit: 720 * time.Hour}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("within bounds:\n got %+v\nwant %+v", got, want)
	}
	if err := DefaultBounds().Check(got); err != nil {
		t.Fatalf("brought within, yet: %v", err)
	}
	if old.Circuit.ProbeEvery[0] != time.Nanosecond {
		t.Fatal("Within changed its argument's probe_every")
	}
	def := Endpoint{Timeout: DefaultTimeout, RetrySchedule: DefaultRetrySchedule, Circuit: DefaultCircuit(), MaxInFlight: DefaultMaxInFlight}
	if got := DefaultBounds().Within(def); !reflect.DeepEqual(got, def) {
		t.Fatalf("the defaults are not within the built-in bounds: %+v", got)
	}
	for _, c := range []struct {
		in, want Endpoint
	}{
		{Endpoint{MaxInFlight: 8, RateLimit: 0.5}, Endpoint{MaxInFlight: 5, RateLimit: 1}},
		{Endpoint{MaxInFlight: 3, RateLimit: 80}, Endpoint{MaxInFlight: 3, RateLimit: 50}},
		{Endpoint{}, Endpoint{}}, // unset stays unset: the default, and no rate limit
	} {
		got := narrowedThrottle().Within(c.in)
		if got.MaxInFlight != c.want.MaxInFlight || got.RateLimit != c.want.RateLimit {
			t.Errorf("within max_in_flight 5 and rate_limit 1 to 50: %d, %g became %d, %g; want %d, %g",
				c.in.MaxInFlight, c.in.RateLimit, got.MaxInFlight, got.RateLimit, c.want.MaxInFlight, c.want.RateLimit)
		}
	}
}

// The endpoints file keeps to the endpoint quota per account: one entry
// past it is refused, naming the entry, the account and the quota; other
// accounts' entries, and entries without an account, are counted apart.
func TestFileEndpointQuota(t *testing.T) {
	entry := func(id, account string) string {
		acct := ""
		if account != "" {
			acct = "\n    account_id: " + account
		}
		return "  - id: " + id + "\n    url: https://a.example.com/" + id + "\n    events: ['*']\n    secret: " + validSecret + acct + "\n"
	}
	b := DefaultBounds()
	b.MaxEndpointsPerAccount = 2
	doc := "endpoints:\n" + entry("a1", "acct_a") + entry("b1", "acct_b") + entry("a2", "acct_a") + entry("n1", "") + entry("n2", "") + entry("b2", "acct_b")
	if _, err := Parse([]byte(doc), ".", WithBounds(b)); err != nil {
		t.Fatalf("two endpoints per account under a quota of 2: %v", err)
	}
	_, err := Parse([]byte(doc+entry("a3", "acct_a")), ".", WithBounds(b))
	if err == nil {
		t.Fatal("a third endpoint of acct_a loaded under a quota of 2")
	}
	for _, want := range []string{`endpoint "a3" (endpoints[6])`, `account "acct_a"`, "3 endpoints, over the 2", "max-endpoints-per-account"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := Parse([]byte(doc), "."); err != nil {
		t.Fatalf("the default quota: %v", err)
	}
}
