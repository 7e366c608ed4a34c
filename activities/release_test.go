package activities

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/workflows"
)

// fakeReleases releases parked deliveries with round trips of a fixed
// pattern, recording when each started.
type fakeReleases struct {
	mu       sync.Mutex
	trips    []time.Duration // round trip of release i, cycled
	started  []time.Time
	order    []string
	inFlight int
	most     int
	outcome  workflows.Outcome
}

func (f *fakeReleases) release(ctx context.Context, id string) (workflows.Attempt, error) {
	f.mu.Lock()
	trip := f.trips[len(f.started)%len(f.trips)]
	f.started = append(f.started, time.Now())
	f.order = append(f.order, id)
	f.inFlight++
	f.most = max(f.most, f.inFlight)
	f.mu.Unlock()
	select {
	case <-time.After(trip):
	case <-ctx.Done():
	}
	f.mu.Lock()
	f.inFlight--
	f.mu.Unlock()
	return workflows.Attempt{Outcome: f.outcome}, nil
}

func parkedList(n int) []parkedDelivery {
	base := time.Date(2026, 4, 18, 20, 0, 0, 0, time.UTC)
	out := make([]parkedDelivery, n)
	for i := range out {
		out[i] = parkedDelivery{id: fmt.Sprintf("d%03d", i), eventTime: base.Add(time.Duration(i) * time.Second)}
	}
	return out
}

func (f *fakeReleases) rate() float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return float64(len(f.started)-1) / f.started[len(f.started)-1].Sub(f.started[0]).Seconds()
}

// Round trips that are mostly short but now and then longer than 1/rate
// (a loaded server) must not slow the drain: the releases after a slow one
// catch up, one at a time, so the order stays strict.
func TestDrainKeepsItsRateWhenRoundTripsVary(t *testing.T) {
	const perSecond = 40.0 // 25ms apart
	f := &fakeReleases{outcome: workflows.OutcomeDelivered,
		// Mean 11.5ms, well under 1/rate (25ms) even with a loaded machine's
		// timer lag; the 40ms one alone would take a window of 2.
		trips: []time.Duration{2 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond, 40 * time.Millisecond}}
	var res workflows.ReleaseResult
	parked := parkedList(120)
	progressed, err := releaseAll(context.Background(), workflows.ReleaseInput{PerSecond: perSecond, OpenAfter: 5},
		parked, newPacing(perSecond, maxReleasesInFlight), &res, f.release)
	if err != nil || !progressed || res.Released != len(parked) || res.Delivered != len(parked) {
		t.Fatalf("released %+v, progressed %v, err %v", res, progressed, err)
	}
	if got := f.rate(); math.Abs(got-perSecond)/perSecond > 0.1 {
		t.Errorf("released at %.1f/s, want %.0f/s ± 10%%", got, perSecond)
	}
	if f.most != 1 {
		t.Errorf("%d releases in flight at once, want 1 while the average round trip is shorter than 1/rate", f.most)
	}
	for i, id := range f.order {
		if id != parked[i].id {
			t.Fatalf("release %d was %s, want %s: not in event-time order", i, id, parked[i].id)
		}
	}
}

// Round trips longer than 1/rate throughout: more releases go in flight,
// so the drain still keeps its rate.
func TestDrainWidensWhenRoundTripsAreLong(t *testing.T) {
	const perSecond = 40.0
	f := &fakeReleases{outcome: workflows.OutcomeDelivered, trips: []time.Duration{70 * time.Millisecond}}
	var res workflows.ReleaseResult
	if _, err := releaseAll(context.Background(), workflows.ReleaseInput{PerSecond: perSecond, OpenAfter: 5},
		parkedList(120), newPacing(perSecond, maxReleasesInFlight), &res, f.release); err != nil {
		t.Fatal(err)
	}
	if got := f.rate(); math.Abs(got-perSecond)/perSecond > 0.1 {
		t.Errorf("released at %.1f/s, want %.0f/s ± 10%%", got, perSecond)
	}
	if f.most < 3 || f.most > 4 {
		t.Errorf("%d releases in flight at most, want 3 (70ms round trips at 40/s), or 4 while the average settles", f.most)
	}
}

// OpenAfter consecutive failed releases stop the drain (to re-open the
// circuit) with nothing more released.
func TestDrainStopsAfterOpenAfterFailures(t *testing.T) {
	f := &fakeReleases{outcome: workflows.OutcomeHTTPError, trips: []time.Duration{time.Millisecond}}
	var res workflows.ReleaseResult
	if _, err := releaseAll(context.Background(), workflows.ReleaseInput{PerSecond: 100, OpenAfter: 3},
		parkedList(50), newPacing(100, maxReleasesInFlight), &res, f.release); err != nil {
		t.Fatal(err)
	}
	if !res.Reopen || res.Released != 3 || res.Failed != 3 || len(f.started) != 3 {
		t.Fatalf("after 3 failures: %+v with %d released, want reopen after exactly 3", res, len(f.started))
	}
}

// A probe (Limit 1) releases exactly one delivery, the oldest.
func TestProbeReleasesTheOldestOnly(t *testing.T) {
	f := &fakeReleases{outcome: workflows.OutcomeDelivered, trips: []time.Duration{time.Millisecond}}
	var res workflows.ReleaseResult
	if _, err := releaseAll(context.Background(), workflows.ReleaseInput{PerSecond: 10, OpenAfter: 1, Limit: 1},
		parkedList(20), newPacing(10, 1), &res, f.release); err != nil {
		t.Fatal(err)
	}
	if res.Released != 1 || len(f.order) != 1 || f.order[0] != "d000" {
		t.Fatalf("probe released %v (%+v), want d000 alone", f.order, res)
	}
}

// fixedHealth is a circuit as a worker sees it, in one state.
type fixedHealth struct {
	state    workflows.CircuitState
	observed int
}

func (f *fixedHealth) Circuit(string) workflows.CircuitState { return f.state }
func (f *fixedHealth) Observe(context.Context, endpoint.Endpoint, string, workflows.Attempt) {
	f.observed++
}

// A release that fails while the circuit is open is a failed probe: the
// attempt asks the delivery to park again (with the park limit), and
// reports nothing (the release reads the outcome). The same failure in a
// drain spends its step like any attempt.
func TestFailedProbeParksAgain(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer srv.Close()
	cfg, err := endpoint.Parse([]byte(endpointYAML(srv.URL, "    circuit: {park_limit: 48h}\n")), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		state workflows.CircuitState
		again bool
	}{{workflows.CircuitOpen, true}, {workflows.CircuitDraining, false}, {workflows.CircuitHealthy, false}} {
		t.Run(string(c.state), func(t *testing.T) {
			h := &fixedHealth{state: c.state}
			acts := New(cfg, loopbackClient())
			acts.Health = h
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(acts.Attempt)
			val, err := env.ExecuteActivity(acts.Attempt, workflows.AttemptInput{
				DeliveryID: "acme:evt_1", EndpointID: "acme", Attempt: 2, EventName: "api_mail_log_delivered", Payload: payload,
				MayPark: true, Release: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			var a workflows.Attempt
			if err := val.Get(&a); err != nil {
				t.Fatal(err)
			}
			if a.Outcome != workflows.OutcomeHTTPError || a.StatusCode != 503 {
				t.Fatalf("attempt %+v, want the 503 POSTed", a)
			}
			if a.ParkAgain != c.again || (c.again && a.ParkLimitSeconds != 48*3600) {
				t.Fatalf("park_again %t with park limit %ds, want %t (48h)", a.ParkAgain, a.ParkLimitSeconds, c.again)
			}
			if h.observed != 0 {
				t.Fatalf("a release reported its outcome %d times, want none", h.observed)
			}
		})
	}
}

// A drain rate too slow to release even one delivery before the
// activity's deadline (a row or file from before the bound, or a forged
// input) fails the release for good, naming the setting, rather than
// holding a slot while it waits for a token it never gets; a rate that
// paces passes the check.
func TestUnpaceableReleaseFailsForGood(t *testing.T) {
	for _, c := range []struct {
		perSecond float64
		paced     bool
	}{{1e-9, false}, {0, false}, {-1, false}, {math.Inf(1), false}, {math.NaN(), false}, {0.1, true}, {1e-5, true}} {
		ctx, cancel := context.WithTimeout(context.Background(), 7*24*time.Hour)
		err := checkPace(ctx, workflows.ReleaseInput{EndpointID: "slow", PerSecond: c.perSecond, OpenAfter: 1})
		cancel()
		if c.paced {
			if err != nil {
				t.Errorf("drain_per_second %g: %v, want it paced", c.perSecond, err)
			}
			continue
		}
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != UnpaceableReleaseError ||
			!strings.Contains(err.Error(), "circuit.drain_per_second") || !strings.Contains(err.Error(), "slow") {
			t.Errorf("drain_per_second %g: %v, want a non-retryable error naming the setting and the endpoint", c.perSecond, err)
		}
	}

	// A health workflow holding a circuit from before the bounds releases
	// at the endpoint's current rate, which is within them; an endpoint
	// that does not resolve leaves the release unpaceable.
	cfg, err := endpoint.Parse([]byte(endpointYAML("https://hooks.example.com/", "    circuit: {drain_per_second: 0.5}\n")), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := &HealthActivities{Endpoints: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 7*24*time.Hour)
	defer cancel()
	if rate, err := h.paceable(ctx, workflows.ReleaseInput{EndpointID: "acme", PerSecond: 1e-9}); err != nil || rate != 0.5 {
		t.Errorf("stale 1e-9 of a resolvable endpoint: %g %v, want its current 0.5", rate, err)
	}
	if _, err := h.paceable(ctx, workflows.ReleaseInput{EndpointID: "gone", PerSecond: 1e-9}); err == nil || !strings.Contains(err.Error(), "circuit.drain_per_second") {
		t.Errorf("stale 1e-9 of an endpoint not found: %v, want the release refused", err)
	}

	// Through the activity: it fails at once, before listing anything
	// (no client is there to list with).
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	h = &HealthActivities{}
	env.RegisterActivity(h.Release)
	_, err = env.ExecuteActivity(h.Release, workflows.ReleaseInput{EndpointID: "slow", PerSecond: 0, OpenAfter: 1})
	if err == nil || !strings.Contains(err.Error(), "cannot be paced") || !strings.Contains(err.Error(), "circuit.drain_per_second") {
		t.Fatalf("release at 0/s: %v, want it refused naming circuit.drain_per_second", err)
	}
}
