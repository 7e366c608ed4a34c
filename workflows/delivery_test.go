package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

func testInput(schedule ...time.Duration) DeliveryInput {
	return DeliveryInput{
		EndpointID:    "acme",
		EventID:       "evt_1",
		EventName:     "api_mail_log_delivered",
		MailLogID:     5555,
		Payload:       json.RawMessage(`{"id":5555,"time":"2026-01-02T03:04:05Z"}`),
		RetrySchedule: schedule,
		Timeout:       15 * time.Second,
	}
}

// scripted answers the attempt activity with one scripted attempt per call, in order.
func scripted(t *testing.T, attempts ...Attempt) func(context.Context, AttemptInput) (Attempt, error) {
	calls := 0
	return func(ctx context.Context, in AttemptInput) (Attempt, error) {
		if calls >= len(attempts) {
			t.Fatalf("attempt %d was not scripted", calls+1)
		}
		if in.Attempt != calls+1 || in.DeliveryID != "acme:evt_1" || in.EndpointID != "acme" {
			t.Errorf("attempt input = %+v", in)
		}
		a := attempts[calls]
		calls++
		return a, nil
	}
}

type run struct {
	state  DeliveryState
	timers []time.Duration
}

func runDelivery(t *testing.T, in DeliveryInput, attempt func(context.Context, AttemptInput) (Attempt, error)) run {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "acme:evt_1"})
	Register(env)
	env.RegisterActivityWithOptions(attempt, activity.RegisterOptions{Name: AttemptActivityName})
	var r run
	env.SetOnTimerScheduledListener(func(timerID string, d time.Duration) { r.timers = append(r.timers, d) })
	env.ExecuteWorkflow(DeliveryWorkflowName, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	r.state = closedState(t, env)
	return r
}

// closedState is how a run ended: its result, or the state a failed or
// canceled delivery closes with, which must match its close status.
func closedState(t *testing.T, env *testsuite.TestWorkflowEnvironment) DeliveryState {
	t.Helper()
	var st DeliveryState
	if err := env.GetWorkflowError(); err != nil {
		st, ok := StateFromError(err)
		var canceled *temporal.CanceledError
		switch {
		case !ok:
			t.Fatalf("workflow error without a delivery state: %v", err)
		case errors.As(err, &canceled) != (st.Status == StatusCanceled):
			t.Fatalf("closed with %v but status %s", err, st.Status)
		case st.Status != StatusFailed && st.Status != StatusCanceled:
			t.Fatalf("workflow error %v with status %s, want failed or canceled", err, st.Status)
		}
		return st
	}
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusDelivered {
		t.Fatalf("completed with status %s: a failed or canceled delivery must close as such", st.Status)
	}
	return st
}

func outcomes(s DeliveryState) []Outcome {
	var out []Outcome
	for _, a := range s.Attempts {
		out = append(out, a.Outcome)
	}
	return out
}

func TestDeliveredFirstTry(t *testing.T) {
	r := runDelivery(t, testInput(DefaultTestSchedule...), scripted(t, Attempt{Outcome: OutcomeDelivered, StatusCode: 200}))
	if r.state.Status != StatusDelivered || len(r.state.Attempts) != 1 || r.state.Attempts[0].Number != 1 || len(r.timers) != 0 {
		t.Fatalf("state = %+v, timers = %v", r.state, r.timers)
	}
	if r.state.DeliveryID != "acme:evt_1" || r.state.NextAttemptAt != nil {
		t.Fatalf("state = %+v", r.state)
	}
}

var DefaultTestSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute}

func TestRetriesWaitTheScheduledDelays(t *testing.T) {
	r := runDelivery(t, testInput(DefaultTestSchedule...), scripted(t,
		Attempt{Outcome: OutcomeHTTPError, StatusCode: 500},
		Attempt{Outcome: OutcomeConnectionError, Error: "connection refused"},
		Attempt{Outcome: OutcomeTimeout, Error: "deadline exceeded"},
		Attempt{Outcome: OutcomeDelivered, StatusCode: 200},
	))
	if r.state.Status != StatusDelivered {
		t.Fatalf("status = %s", r.state.Status)
	}
	if want := DefaultTestSchedule; !slices.Equal(r.timers, want) {
		t.Fatalf("timers = %v, want %v", r.timers, want)
	}
	for i, a := range r.state.Attempts {
		if a.Number != i+1 {
			t.Fatalf("attempt %d numbered %d", i+1, a.Number)
		}
	}
}

func TestRetryAfterReplacesTheScheduledDelay(t *testing.T) {
	r := runDelivery(t, testInput(5*time.Second, 5*time.Minute), scripted(t,
		Attempt{Outcome: OutcomeHTTPError, StatusCode: 503, RetryAfterSeconds: 120},
		Attempt{Outcome: OutcomeHTTPError, StatusCode: 429, RetryAfterSeconds: int64(48 * time.Hour / time.Second)},
		Attempt{Outcome: OutcomeDelivered, StatusCode: 200},
	))
	if want := []time.Duration{120 * time.Second, 24 * time.Hour}; !slices.Equal(r.timers, want) {
		t.Fatalf("timers = %v, want %v (Retry-After, capped at 24h)", r.timers, want)
	}
	if r.state.Status != StatusDelivered {
		t.Fatalf("status = %s", r.state.Status)
	}
}

func TestGoneStopsAtOnce(t *testing.T) {
	r := runDelivery(t, testInput(DefaultTestSchedule...), scripted(t,
		Attempt{Outcome: OutcomeHTTPError, StatusCode: 500},
		Attempt{Outcome: OutcomeGone, StatusCode: 410},
	))
	if r.state.Status != StatusFailed || len(r.state.Attempts) != 2 || len(r.timers) != 1 {
		t.Fatalf("state = %+v, timers %v", r.state, r.timers)
	}
}

func TestExhaustedScheduleFails(t *testing.T) {
	r := runDelivery(t, testInput(time.Second, 2*time.Second), scripted(t,
		Attempt{Outcome: OutcomeHTTPError, StatusCode: 500},
		Attempt{Outcome: OutcomeRedirect, StatusCode: 302},
		Attempt{Outcome: OutcomeHTTPError, StatusCode: 502},
	))
	if r.state.Status != StatusFailed || len(r.state.Attempts) != 3 {
		t.Fatalf("state = %+v", r.state)
	}
	if want := []Outcome{OutcomeHTTPError, OutcomeRedirect, OutcomeHTTPError}; !slices.Equal(outcomes(r.state), want) {
		t.Fatalf("outcomes = %v", outcomes(r.state))
	}
	if !slices.Equal(r.timers, []time.Duration{time.Second, 2 * time.Second}) {
		t.Fatalf("timers = %v", r.timers)
	}
}

func TestEmptyScheduleMeansOneAttempt(t *testing.T) {
	r := runDelivery(t, testInput(), scripted(t, Attempt{Outcome: OutcomeHTTPError, StatusCode: 500}))
	if r.state.Status != StatusFailed || len(r.state.Attempts) != 1 || len(r.timers) != 0 {
		t.Fatalf("state = %+v", r.state)
	}
}

func TestActivityFailureIsARecordedAttempt(t *testing.T) {
	calls := 0
	r := runDelivery(t, testInput(time.Minute), func(ctx context.Context, in AttemptInput) (Attempt, error) {
		calls++
		if calls == 1 {
			return Attempt{}, context.DeadlineExceeded
		}
		return Attempt{Outcome: OutcomeDelivered, StatusCode: 200}, nil
	})
	if r.state.Status != StatusDelivered || r.state.Attempts[0].Outcome != OutcomeWorkerError || r.state.Attempts[0].Error == "" {
		t.Fatalf("state = %+v", r.state)
	}
}

func TestStatusQueryWhileWaiting(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "acme:evt_1"})
	Register(env)
	env.RegisterActivityWithOptions(scripted(t,
		Attempt{Outcome: OutcomeHTTPError, StatusCode: 503},
		Attempt{Outcome: OutcomeDelivered, StatusCode: 200},
	), activity.RegisterOptions{Name: AttemptActivityName})
	start := env.Now()
	var during DeliveryState
	env.RegisterDelayedCallback(func() {
		val, err := env.QueryWorkflow(StatusQuery)
		if err != nil {
			t.Fatal(err)
		}
		if err := val.Get(&during); err != nil {
			t.Fatal(err)
		}
	}, time.Minute)
	env.ExecuteWorkflow(DeliveryWorkflowName, testInput(time.Hour))
	if during.Status != StatusRetrying || len(during.Attempts) != 1 || during.NextAttemptAt == nil {
		t.Fatalf("state while waiting = %+v", during)
	}
	if next := during.NextAttemptAt.Sub(start); next < time.Hour || next > time.Hour+time.Minute {
		t.Fatalf("next attempt %s after start, want about 1h", next)
	}
}

func TestInvalidInputFailsTheWorkflow(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	Register(env)
	in := testInput()
	in.Payload = nil
	env.ExecuteWorkflow(DeliveryWorkflowName, in)
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("a delivery without payload ran")
	}
}

func TestParseWorkflowID(t *testing.T) {
	ep, ev, err := ParseWorkflowID(DeliveryID("acme", "evt_1:x"))
	if err != nil || ep != "acme" || ev != "evt_1:x" {
		t.Fatalf("ParseWorkflowID = %q, %q, %v", ep, ev, err)
	}
	for _, bad := range []string{"", "acme", ":evt", "acme:"} {
		if _, _, err := ParseWorkflowID(bad); err == nil {
			t.Errorf("ParseWorkflowID(%q) accepted", bad)
		}
	}
}

// An ordinary attempt's heartbeat timeout leaves room for two heartbeats
// recorded late or lost (the worker sends one every AttemptHeartbeatEvery):
// a loaded server that records one late must not time out an attempt whose
// request is still open, which would send it again.
func TestAttemptHeartbeatTimeoutSpansThreeHeartbeats(t *testing.T) {
	var got time.Duration
	r := newSignalRun(t, func(ctx context.Context, _ AttemptInput) (Attempt, error) {
		got = activity.GetInfo(ctx).HeartbeatTimeout
		return Attempt{Outcome: OutcomeDelivered, StatusCode: 200}, nil
	})
	if st, _ := r.execute(t, testInput()); st.Status != StatusDelivered {
		t.Fatalf("state = %+v", st)
	}
	if want := 3 * AttemptHeartbeatEvery; got != want {
		t.Errorf("attempt heartbeat timeout = %s, want %s (three of the worker's heartbeat intervals)", got, want)
	}
}
