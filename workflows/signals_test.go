package workflows

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
)

// signalRun runs a delivery whose attempt activity is attempt, with
// callbacks registered at the given workflow-clock offsets.
type signalRun struct {
	env    *testsuite.TestWorkflowEnvironment
	start  time.Time
	timers []time.Duration
}

func newSignalRun(t *testing.T, attempt func(context.Context, AttemptInput) (Attempt, error)) *signalRun {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "acme:evt_1"})
	Register(env)
	env.RegisterActivityWithOptions(attempt, activity.RegisterOptions{Name: AttemptActivityName})
	r := &signalRun{env: env, start: env.Now()}
	env.SetOnTimerScheduledListener(func(_ string, d time.Duration) { r.timers = append(r.timers, d) })
	return r
}

func (r *signalRun) at(d time.Duration, f func()) { r.env.RegisterDelayedCallback(f, d) }

func (r *signalRun) execute(t *testing.T, in DeliveryInput) (DeliveryState, time.Duration) {
	t.Helper()
	r.env.ExecuteWorkflow(DeliveryWorkflowName, in)
	if !r.env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	return closedState(t, r.env), r.env.Now().Sub(r.start)
}

// respond answers attempts in order with the given status codes (200 = delivered).
func respond(codes ...int) func(context.Context, AttemptInput) (Attempt, error) {
	i := 0
	return func(ctx context.Context, in AttemptInput) (Attempt, error) {
		code := codes[min(i, len(codes)-1)]
		i++
		if code == 200 {
			return Attempt{Outcome: OutcomeDelivered, StatusCode: 200}, nil
		}
		return Attempt{Outcome: OutcomeHTTPError, StatusCode: code}, nil
	}
}

func TestCancelDuringWait(t *testing.T) {
	r := newSignalRun(t, respond(503))
	r.at(10*time.Minute, func() {
		r.env.SignalWorkflow(CancelSignal, map[string]string{"reason": "customer asked to stop"})
	})
	st, took := r.execute(t, testInput(time.Hour, time.Hour))
	if st.Status != StatusCanceled || len(st.Attempts) != 1 {
		t.Fatalf("state = %+v", st)
	}
	if len(st.Actions) != 1 || st.Actions[0].Name != CancelSignal || st.Actions[0].Reason != "customer asked to stop" || st.Actions[0].At.IsZero() {
		t.Fatalf("actions = %+v", st.Actions)
	}
	if took > 11*time.Minute {
		t.Fatalf("canceled after %s, want right after the signal at 10m", took)
	}
}

func TestCancelAcceptsAPlainStringReason(t *testing.T) {
	r := newSignalRun(t, respond(503))
	r.at(time.Minute, func() { r.env.SignalWorkflow(CancelSignal, "wrong endpoint") })
	st, _ := r.execute(t, testInput(time.Hour))
	if st.Status != StatusCanceled || st.Actions[0].Reason != "wrong endpoint" {
		t.Fatalf("state = %+v", st)
	}
}

// The workflow ends at once, without waiting for the activity to acknowledge;
// the activity learns of it from its next heartbeat (tests/ checks that the
// receiver's connection is closed).
func TestCancelInFlightRecordsACanceledAttempt(t *testing.T) {
	r := newSignalRun(t, slowAttempt)
	// While an activity runs the test clock follows the wall clock.
	r.at(200*time.Millisecond, func() { r.env.SignalWorkflow(CancelSignal, "stop now") })
	st, _ := r.execute(t, testInput(time.Hour))
	if st.Status != StatusCanceled || len(st.Attempts) != 1 || st.Attempts[0].Outcome != OutcomeCanceled ||
		!strings.Contains(st.Attempts[0].Error, "stop now") {
		t.Fatalf("state = %+v", st)
	}
}

func TestTemporalCancellationEndsCanceled(t *testing.T) {
	r := newSignalRun(t, respond(500))
	r.at(5*time.Minute, func() { r.env.CancelWorkflow() })
	st, _ := r.execute(t, testInput(time.Hour))
	if st.Status != StatusCanceled || len(st.Actions) != 1 || !strings.Contains(st.Actions[0].Reason, "Temporal") {
		t.Fatalf("state = %+v", st)
	}
}

func TestRetryNowCutsTheWaitShort(t *testing.T) {
	r := newSignalRun(t, respond(503, 500, 200))
	r.at(10*time.Minute, func() { r.env.SignalWorkflow(RetryNowSignal, nil) })
	st, took := r.execute(t, testInput(time.Hour, 2*time.Hour))
	if st.Status != StatusDelivered || len(st.Attempts) != 3 {
		t.Fatalf("state = %+v", st)
	}
	// The schedule continues from there: after attempt 2 comes the second delay.
	if !slices.Equal(r.timers, []time.Duration{time.Hour, 2 * time.Hour}) {
		t.Fatalf("timers = %v", r.timers)
	}
	if took < 2*time.Hour+10*time.Minute || took > 2*time.Hour+11*time.Minute {
		t.Fatalf("delivered after %s, want 10m + 2h", took)
	}
	if len(st.Actions) != 1 || st.Actions[0].Name != RetryNowSignal {
		t.Fatalf("actions = %+v", st.Actions)
	}
}

func TestRetryNowBeyondTheScheduleStillAttempts(t *testing.T) {
	r := newSignalRun(t, respond(500, 200))
	r.at(time.Minute, func() { r.env.SignalWorkflow(RetryNowSignal, nil) })
	st, _ := r.execute(t, testInput(time.Hour))
	if st.Status != StatusDelivered || len(st.Attempts) != 2 {
		t.Fatalf("state = %+v", st)
	}
}

type updateResult struct {
	rejected, err error
	attempt       Attempt
}

func (u *updateResult) Accept()          {}
func (u *updateResult) Reject(err error) { u.rejected = err }
func (u *updateResult) Complete(v any, err error) {
	u.err = err
	if a, ok := v.(Attempt); ok {
		u.attempt = a
	}
}

func TestRetryNowUpdateReturnsTheAttempt(t *testing.T) {
	r := newSignalRun(t, respond(503, 200))
	var u updateResult
	r.at(10*time.Minute, func() { r.env.UpdateWorkflow(RetryNowUpdate, "u1", &u) })
	st, took := r.execute(t, testInput(time.Hour))
	if u.rejected != nil || u.err != nil || u.attempt.Number != 2 || u.attempt.StatusCode != 200 {
		t.Fatalf("update = %+v", u)
	}
	if st.Status != StatusDelivered || took > 11*time.Minute {
		t.Fatalf("state = %+v after %s", st, took)
	}
}

func TestResendWhileWaitingActsLikeRetryNow(t *testing.T) {
	r := newSignalRun(t, respond(500, 200))
	r.at(time.Minute, func() { r.env.SignalWorkflow(ResendSignal, nil) })
	st, took := r.execute(t, testInput(time.Hour))
	if st.Status != StatusDelivered || len(st.Attempts) != 2 || took > 2*time.Minute {
		t.Fatalf("state = %+v after %s", st, took)
	}
}

func TestResendInFlightSendsAgainAfterSuccess(t *testing.T) {
	calls := 0
	r := newSignalRun(t, func(ctx context.Context, in AttemptInput) (Attempt, error) {
		calls++
		if calls == 1 {
			time.Sleep(500 * time.Millisecond) // in flight while the resend arrives
		}
		return Attempt{Outcome: OutcomeDelivered, StatusCode: 200}, nil
	})
	r.at(100*time.Millisecond, func() { r.env.SignalWorkflow(ResendSignal, nil) })
	st, _ := r.execute(t, testInput(time.Hour))
	if st.Status != StatusDelivered || len(st.Attempts) != 2 || st.Attempts[1].Number != 2 {
		t.Fatalf("state = %+v", st)
	}
}

func TestResendRunContinuesTheNumbering(t *testing.T) {
	var numbers []int
	r := newSignalRun(t, func(ctx context.Context, in AttemptInput) (Attempt, error) {
		numbers = append(numbers, in.Attempt)
		return respond(500, 200)(ctx, in)
	})
	in := testInput(time.Minute)
	in.FirstAttempt, in.ResendOf = 4, "run-1"
	// respond is rebuilt each call above, so every attempt gets 500: the
	// one-delay schedule then ends the run after attempts 4 and 5.
	st, _ := r.execute(t, in)
	if len(numbers) != 2 || numbers[0] != 4 || numbers[1] != 5 || st.Attempts[0].Number != 4 || st.ResendOf != "run-1" {
		t.Fatalf("attempt numbers %v, state %+v", numbers, st)
	}
	if st.Status != StatusFailed || !slices.Equal(r.timers, []time.Duration{time.Minute}) {
		t.Fatalf("state = %+v, timers %v", st, r.timers)
	}
}

func TestCancelReason(t *testing.T) {
	long := strings.Repeat("é", MaxReasonLength+10)
	tests := map[string]string{
		`{"reason":"duplicate endpoint"}`: "duplicate endpoint",
		`"plain string"`:                  "plain string",
		`null`:                            "",
		``:                                "",
		`42`:                              "",
		`"two\nlines\tand\u0000nul"`:      "two lines and nul",
		`"` + long + `"`:                  strings.Repeat("é", MaxReasonLength) + "…",
	}
	for in, want := range tests {
		if got := cancelReason(json.RawMessage(in)); got != want {
			t.Errorf("cancelReason(%.30q) = %.30q, want %.30q", in, got, want)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Second: "5s", 5 * time.Minute: "5m", 2 * time.Hour: "2h", 90 * time.Minute: "1h30m",
		1500 * time.Millisecond: "1.5s", 24 * time.Hour: "24h", time.Hour + time.Second: "1h0m1s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestFirstAttemptLocalThenOrdinary(t *testing.T) {
	var local []bool
	r := newSignalRun(t, func(ctx context.Context, in AttemptInput) (Attempt, error) {
		local = append(local, activity.GetInfo(ctx).IsLocalActivity)
		return respond(500, 500, 200)(ctx, in)
	})
	in := testInput(time.Second, time.Second)
	in.FirstAttemptLocal = true
	st, _ := r.execute(t, in)
	// respond is rebuilt per call, so each answers 500: three failed attempts.
	if len(local) != 3 || !local[0] || local[1] || local[2] || st.Status != StatusFailed || st.Attempts[0].Number != 1 {
		t.Fatalf("local per attempt %v, state %+v", local, st)
	}
}

func TestCancelDuringALocalFirstAttempt(t *testing.T) {
	r := newSignalRun(t, slowAttempt)
	r.at(200*time.Millisecond, func() { r.env.SignalWorkflow(CancelSignal, "stop") })
	in := testInput(time.Hour)
	in.FirstAttemptLocal = true
	st, _ := r.execute(t, in)
	if st.Status != StatusCanceled || st.Attempts[0].Outcome != OutcomeCanceled {
		t.Fatalf("state = %+v", st)
	}
}

// slowAttempt delivers after two seconds unless canceled first.
func slowAttempt(ctx context.Context, _ AttemptInput) (Attempt, error) {
	select {
	case <-ctx.Done():
		return Attempt{}, ctx.Err()
	case <-time.After(2 * time.Second):
		return Attempt{Outcome: OutcomeDelivered, StatusCode: 200}, nil
	}
}
