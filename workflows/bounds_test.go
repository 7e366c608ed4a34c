package workflows

import (
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// daySchedule is a retry schedule of n steps of a day.
func daySchedule(n int) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = 24 * time.Hour
	}
	return s
}

// boundUpdate records how one update ended.
type boundUpdate struct{ accepted, rejected error }

func (r *signalRun) update(name, id string, got *boundUpdate) {
	r.env.UpdateWorkflow(name, id, &testsuite.TestUpdateCallback{
		OnAccept:   func() { got.accepted = errors.New("accepted") },
		OnReject:   func(err error) { got.rejected = err },
		OnComplete: func(any, error) {},
	})
}

// TestOperatorAttemptsAreBoundedPerHour: of seven retry-now and resend
// signals within minutes, five act; an update over the bound is rejected
// (before history) naming the limit and when the next is accepted; an hour
// after the first, one is accepted again.
func TestOperatorAttemptsAreBoundedPerHour(t *testing.T) {
	r := newSignalRun(t, respond(503))
	for i := 1; i <= 7; i++ {
		name := RetryNowSignal
		if i%2 == 0 {
			name = ResendSignal
		}
		r.at(time.Duration(i)*time.Minute, func() { r.env.SignalWorkflow(name, nil) })
	}
	var over, later boundUpdate
	r.at(8*time.Minute, func() { r.update(RetryNowUpdate, "over", &over) })
	r.at(62*time.Minute, func() { r.update(ResendUpdate, "later", &later) })
	r.at(70*time.Minute, func() { r.env.SignalWorkflow(CancelSignal, nil) })
	st, _ := r.execute(t, testInput(daySchedule(10)...))

	if len(st.Attempts) != 1+MaxOperatorAttempts+1 {
		t.Fatalf("%d attempts, want %d: the first, %d operator attempts, and one an hour later", len(st.Attempts), MaxOperatorAttempts+2, MaxOperatorAttempts)
	}
	var appErr *temporal.ApplicationError
	if !errors.As(over.rejected, &appErr) || appErr.Type() != OperatorLimitType {
		t.Fatalf("the update over the bound: rejected with %v, want %s", over.rejected, OperatorLimitType)
	}
	var secs int64
	if err := appErr.Details(&secs); err != nil || secs <= 0 || secs > 3600 {
		t.Fatalf("retry after %d seconds (%v), want within the hour", secs, err)
	}
	if later.accepted == nil || later.rejected != nil {
		t.Fatalf("an hour later the resend update was not accepted: %v", later.rejected)
	}
	if n := len(st.Actions); n != MaxOperatorAttempts+2 { // the accepted ones, the later resend, cancel
		t.Fatalf("actions = %+v, want the %d accepted, the later one and the cancel", st.Actions, MaxOperatorAttempts)
	}
}

// canInput runs a delivery that must continue as new and returns the next run's input.
func canInput(t *testing.T, env *testsuite.TestWorkflowEnvironment) DeliveryInput {
	t.Helper()
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("run ended with %v, want to continue as new", err)
	}
	var in DeliveryInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
		t.Fatalf("decode the next run's input: %v", err)
	}
	return in
}

// TestLongHistoryContinuesAsNewKeepingItsState: a run that has taken
// continueAsNewAfter signals and attempts continues as new while it waits,
// carrying its attempts, actions, operator attempts and next attempt's
// time; the next run answers the status query with them, waits out the
// rest of the wait and delivers, numbering on.
func TestLongHistoryContinuesAsNewKeepingItsState(t *testing.T) {
	defer func(n int) { continueAsNewAfter = n }(continueAsNewAfter)
	continueAsNewAfter = 3 // the first attempt, a retry-now and its attempt

	r := newSignalRun(t, respond(503))
	r.at(time.Minute, func() { r.env.SignalWorkflow(RetryNowSignal, nil) })
	r.env.ExecuteWorkflow(DeliveryWorkflowName, testInput(time.Hour, time.Hour))
	in := canInput(t, r.env)
	c := in.Carry
	if c == nil || c.Next != 3 || len(c.Attempts) != 2 || len(c.Actions) != 1 || c.Actions[0].Name != RetryNowSignal ||
		c.Status != StatusRetrying || c.NextAttemptAt == nil || len(in.OperatorTimes) != 1 || c.Runs != 1 {
		t.Fatalf("carried %+v, operator times %v", c, in.OperatorTimes)
	}
	if in.EndpointID != "acme" || in.EventID != "evt_1" || len(in.RetrySchedule) != 2 {
		t.Fatalf("the next run's input lost the delivery: %+v", in)
	}

	next := newSignalRun(t, respond(200))
	var mid DeliveryState
	next.at(time.Minute, func() {
		v, err := next.env.QueryWorkflow(StatusQuery)
		if err != nil || v.Get(&mid) != nil {
			t.Errorf("status query on the new run: %v", err)
		}
	})
	next.start = c.NextAttemptAt.Add(-30 * time.Minute)
	next.env.SetStartTime(next.start)
	st, took := next.execute(t, in)
	if took < 30*time.Minute || took > 31*time.Minute {
		t.Fatalf("the new run attempted after %s, want the 30m left of the wait", took)
	}
	if mid.Status != StatusRetrying || len(mid.Attempts) != 2 || mid.DeliveryID != "acme:evt_1" {
		t.Fatalf("the new run's status = %+v, want the carried attempts", mid)
	}
	if st.Status != StatusDelivered || len(st.Attempts) != 3 || st.Attempts[2].Number != 3 || len(st.Actions) != 1 {
		t.Fatalf("final state = %+v", st)
	}
}

// TestContinueAsNewWhenTemporalSuggestsIt: Temporal's suggestion (its
// history length or size limits) continues a waiting run too; a run that
// was parked resumes parked.
func TestContinueAsNewWhenTemporalSuggestsIt(t *testing.T) {
	r := newSignalRun(t, scripted(t, Attempt{Outcome: OutcomeParked, ParkLimitSeconds: 3600}))
	r.env.SetContinueAsNewSuggested(true)
	r.env.ExecuteWorkflow(DeliveryWorkflowName, testInput(time.Hour))
	in := canInput(t, r.env)
	if c := in.Carry; c == nil || !c.Parked || c.Status != StatusParked || c.Next != 1 || c.ParkDeadline.IsZero() {
		t.Fatalf("carried %+v, want parked with its deadline", in.Carry)
	}
	next := newSignalRun(t, respond(200))
	var got boundUpdate
	next.at(time.Minute, func() { next.update(RetryNowUpdate, "rn", &got) })
	st, _ := next.execute(t, in)
	if got.accepted == nil || st.Status != StatusDelivered || len(st.Attempts) != 1 || st.Attempts[0].Number != 1 {
		t.Fatalf("after a retry-now of the resumed parked run: %v, %+v", got.rejected, st)
	}
}
