package activities

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/workflows"
)

// attemptOnce runs acts' attempt activity once in its own test environment.
func attemptOnce(t *testing.T, acts *Activities, mayThrottle bool) workflows.Attempt {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts.Attempt)
	val, err := env.ExecuteActivity(acts.Attempt, workflows.AttemptInput{
		DeliveryID: "acme:evt_1", EndpointID: "acme", Attempt: 1, EventName: "api_mail_log_delivered", Payload: payload, MayThrottle: mayThrottle,
	})
	if err != nil {
		t.Errorf("activity error: %v", err)
		return workflows.Attempt{}
	}
	var a workflows.Attempt
	if err := val.Get(&a); err != nil {
		t.Error(err)
	}
	return a
}

func throttleActs(t *testing.T, url, extra string) *Activities {
	t.Helper()
	cfg, err := endpoint.Parse([]byte(endpointYAML(url, extra)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, loopbackClient())
}

// An endpoint at its max_in_flight in the worker gets nothing more: the
// next attempt answers throttled at once, without a POST; a place given
// back is taken again. The worker's cap narrows a larger max_in_flight.
func TestAttemptHeldToMaxInFlight(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		workerCap   int
	}{
		{"endpoint's max_in_flight", "    max_in_flight: 2\n", 0},
		{"worker's cap", "    max_in_flight: 50\n", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arrived, hold := make(chan struct{}, 10), make(chan struct{})
			var mu sync.Mutex
			posts := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				posts++
				mu.Unlock()
				arrived <- struct{}{}
				<-hold
			}))
			defer srv.Close()
			acts := throttleActs(t, srv.URL, tc.extra)
			acts.MaxInFlight = tc.workerCap
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					if a := attemptOnce(t, acts, true); a.Outcome != workflows.OutcomeDelivered {
						t.Errorf("held attempt: %s %s", a.Outcome, a.Error)
					}
				})
			}
			<-arrived
			<-arrived
			started := time.Now()
			if a := attemptOnce(t, acts, true); a.Outcome != workflows.OutcomeThrottled || a.RateSlot != nil || time.Since(started) > time.Second {
				t.Fatalf("third attempt: %s %q after %s, want throttled at once", a.Outcome, a.Error, time.Since(started))
			}
			close(hold)
			wg.Wait()
			if a := attemptOnce(t, acts, true); a.Outcome != workflows.OutcomeDelivered {
				t.Fatalf("attempt after the others ended: %s %s", a.Outcome, a.Error)
			}
			if posts != 3 {
				t.Fatalf("receiver saw %d POSTs, want 3 (none from the throttled attempt)", posts)
			}
		})
	}
}

// Under a rate_limit an attempt waits in the activity for a request time
// within a second, and answers throttled with its reserved time beyond
// that; an attempt that may not throttle (an older delivery) just sends.
func TestAttemptHeldToRateLimit(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
	}))
	defer srv.Close()
	near := throttleActs(t, srv.URL, "    rate_limit: 2\n") // one request every 500 ms: waited out in the activity
	for i := range 2 {
		if a := attemptOnce(t, near, true); a.Outcome != workflows.OutcomeDelivered {
			t.Fatalf("attempt %d at 2 a second: %s %q, want delivered", i, a.Outcome, a.Error)
		}
	}
	if len(at) != 2 || at[1].Sub(at[0]) < 450*time.Millisecond {
		t.Fatalf("POSTs at %v, want two 500 ms apart", at)
	}
	far := throttleActs(t, srv.URL, "    rate_limit: 0.5\n") // every 2 s: the workflow waits
	if a := attemptOnce(t, far, true); a.Outcome != workflows.OutcomeDelivered {
		t.Fatalf("first attempt at 0.5 a second: %s %q", a.Outcome, a.Error)
	}
	a := attemptOnce(t, far, true)
	if a.Outcome != workflows.OutcomeThrottled || a.RateSlot == nil || time.Until(*a.RateSlot) < 1500*time.Millisecond {
		t.Fatalf("second attempt at 0.5 a second: %s slot %v, want throttled with a slot about 2 s ahead", a.Outcome, a.RateSlot)
	}
	if len(at) != 3 {
		t.Fatalf("receiver saw %d POSTs, want 3 (none from the throttled attempt)", len(at))
	}
	if a := attemptOnce(t, far, false); a.Outcome != workflows.OutcomeDelivered {
		t.Fatalf("attempt that may not throttle: %s %s", a.Outcome, a.Error)
	}
}
