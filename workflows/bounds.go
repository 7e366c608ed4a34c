package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Bounds on a delivery's history. Operators' resends and retry-nows each
// POST the event again and grow the delivery's history, so a delivery takes
// at most MaxOperatorAttempts of them (together, signal or update) in any
// OperatorWindow. An update over the bound is rejected by its validator,
// before anything is written to history; a signal over it (a client that
// reached the frontend directly) is recorded by Temporal as received but
// changes nothing. And a run whose history grows long continues as new,
// carrying its state (DeliveryCarry), before Temporal's limits.
const (
	MaxOperatorAttempts = 5
	OperatorWindow      = time.Hour

	// ResendUpdate does what ResendSignal does to an open delivery, and is
	// rejected, unwritten, over the bound.
	ResendUpdate = "resend"

	// OperatorLimitType is the type of the application error a resend or
	// retry-now over the bound is rejected with; its one detail is the
	// number of seconds until another is accepted.
	OperatorLimitType = "OperatorLimit"
)

// boundsChange is the workflow.GetVersion change ID of the bounds. It is
// read only when a bound is first reached (a signal over the limit, a
// history long enough to continue as new), so a delivery that never
// reaches one records nothing; a history recorded before the bounds has no
// marker there, replays as DefaultVersion and keeps its old behaviour.
const boundsChange = "delivery-bounds"

// continueAsNewAfter is how many signals, updates and attempts a run takes
// before it continues as new (besides Temporal's suggestion): each adds a
// handful of events, so a run stays far below Temporal's 51,200 events.
var continueAsNewAfter = 2000

// maxCarriedAttempts and maxCarriedActions cap the audit trail a run
// carries to the next: the latest ones, the rest counted.
const (
	maxCarriedAttempts = 100
	maxCarriedActions  = 50
)

// DeliveryCarry is what a delivery's run hands the next when it continues
// as new: where it stood and its audit trail's summary.
type DeliveryCarry struct {
	Status Status `json:"status"`
	// Next numbers the next attempt.
	Next           int `json:"next"`
	OutageAttempts int `json:"outage_attempts,omitempty"`
	// NextAttemptAt: the run was waiting for the next attempt of the
	// schedule, due then; After is the attempt the wait follows.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	After         Attempt    `json:"after"`
	// ParkDeadline: the run was parked, until then at the latest.
	Parked       bool      `json:"parked,omitempty"`
	ParkDeadline time.Time `json:"park_deadline,omitzero"`
	Attempts     []Attempt `json:"attempts"`
	Actions      []Action  `json:"actions,omitempty"`
	// Runs counts the runs before this one.
	Runs int `json:"runs"`
}

// boundsState is the delivery's state for its bounds.
type boundsState struct {
	// operatorTimes are when recent operator attempts were accepted.
	operatorTimes []time.Time
	// handled counts the run's signals and attempts.
	handled    int
	bounds     workflow.Version // of boundsChange, once read
	boundsRead bool
	noContinue bool  // a run recorded before the bounds: it never continues as new
	canErr     error // the run continues as new with it
	// What a continued run resumes: the attempt the current wait or park
	// follows, and when the park ends at the latest.
	waitAfter      Attempt
	parkDeadlineAt time.Time
}

// validateResend rejects a resend update to a delivery being canceled or
// over the bound.
func (d *delivery) validateResend(ctx workflow.Context) error {
	if d.cancelReq != nil || d.state.Status.Final() {
		return errors.New("delivery is being canceled or has finished")
	}
	return d.validateOperator(ctx)
}

// resendUpdate is the resend update: it acts as the resend signal.
func (d *delivery) resendUpdate(ctx workflow.Context) error {
	d.onResend(ctx)
	return nil
}

// await waits for cond. Meanwhile, should the history grow long, it
// continues the run as new: it then returns with d.canErr set.
func (d *delivery) await(ctx workflow.Context, cond func() bool) error {
	for {
		err := workflow.Await(ctx, func() bool {
			return cond() || d.longHistory(ctx) && workflow.AllHandlersFinished(ctx)
		})
		if err != nil || cond() {
			return err
		}
		if d.canErr = d.continueAsNew(ctx); d.canErr != nil {
			return nil
		}
	}
}

// operatorRetryAfter is how long until another operator attempt is
// accepted: 0 while under the bound. It changes nothing (validators call it).
func (d *delivery) operatorRetryAfter(now time.Time) time.Duration {
	recent := recentTimes(d.operatorTimes, now)
	if len(recent) < MaxOperatorAttempts {
		return 0
	}
	return recent[len(recent)-MaxOperatorAttempts].Add(OperatorWindow).Sub(now)
}

// recentTimes are the times within OperatorWindow before now, in order.
func recentTimes(times []time.Time, now time.Time) []time.Time {
	for i, t := range times {
		if now.Sub(t) < OperatorWindow {
			return times[i:]
		}
	}
	return nil
}

// validateOperator rejects a resend or retry-now update over the bound.
func (d *delivery) validateOperator(ctx workflow.Context) error {
	wait := d.operatorRetryAfter(workflow.Now(ctx))
	if wait <= 0 {
		return nil
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	return temporal.NewApplicationErrorWithOptions(
		fmt.Sprintf("at most %d resends and retry-nows per delivery per hour; the next is accepted in %ds", MaxOperatorAttempts, secs),
		OperatorLimitType, temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{secs}})
}

// operatorAllowed counts an operator attempt and reports whether it may
// act: a signal over the bound is dropped (for histories recorded before
// the bounds, it acts as it did).
func (d *delivery) operatorAllowed(ctx workflow.Context) bool {
	d.handled++
	if d.operatorRetryAfter(workflow.Now(ctx)) > 0 && d.boundsOn(ctx) {
		return false
	}
	d.operatorTimes = append(recentTimes(d.operatorTimes, workflow.Now(ctx)), workflow.Now(ctx))
	return true
}

// boundsOn reads, once, whether this run has the bounds.
func (d *delivery) boundsOn(ctx workflow.Context) bool {
	if !d.boundsRead {
		d.bounds = workflow.GetVersion(ctx, boundsChange, workflow.DefaultVersion, 1)
		d.boundsRead = true
	}
	return d.bounds >= 1
}

// longHistory reports whether the run should continue as new: a condition,
// with no side effect.
func (d *delivery) longHistory(ctx workflow.Context) bool {
	if d.noContinue || d.inFlight != 0 {
		return false
	}
	return d.handled >= continueAsNewAfter || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}

// continueAsNew drains the signals already received and, with nothing
// pending for this run to do, returns the error that continues the run as
// new with its state; nil means the run carries on (the next wait tries
// again).
func (d *delivery) continueAsNew(ctx workflow.Context) error {
	if !d.boundsOn(ctx) {
		d.noContinue = true // recorded before the bounds: never continues
		return nil
	}
	for _, name := range []string{CancelSignal, RetryNowSignal, ResendSignal} {
		ch := workflow.GetSignalChannel(ctx, name)
		for {
			var raw json.RawMessage
			if !ch.ReceiveAsync(&raw) {
				break
			}
			d.onSignal(ctx, name, raw)
		}
	}
	if d.retryNow || d.resend || d.release || d.cancelReq != nil || !workflow.AllHandlersFinished(ctx) {
		return nil
	}
	in := d.in
	in.Carry = d.carry()
	in.OperatorTimes = d.operatorTimes
	in.FirstAttemptLocal = false
	return workflow.NewContinueAsNewError(ctx, DeliveryWorkflowName, in)
}

// carry is the run's state for the next run.
func (d *delivery) carry() *DeliveryCarry {
	c := &DeliveryCarry{
		Status: d.state.Status, Next: d.next, OutageAttempts: d.outageAttempts,
		NextAttemptAt: d.state.NextAttemptAt, After: d.waitAfter,
		Parked: d.parked, ParkDeadline: d.parkDeadlineAt,
		Attempts: d.state.Attempts, Actions: d.state.Actions,
	}
	if d.in.Carry != nil {
		c.Runs = d.in.Carry.Runs
	}
	c.Runs++
	if n := len(c.Attempts); n > maxCarriedAttempts {
		c.Attempts = c.Attempts[n-maxCarriedAttempts:]
	}
	if n := len(c.Actions); n > maxCarriedActions {
		c.Actions = c.Actions[n-maxCarriedActions:]
	}
	return c
}

// restore takes up the state a previous run carried.
func (d *delivery) restore(c *DeliveryCarry) {
	d.next = c.Next
	d.outageAttempts = c.OutageAttempts
	d.state.Status = c.Status
	d.state.Attempts = append([]Attempt{}, c.Attempts...)
	d.state.Actions = c.Actions
	d.resendStarted = false
}

// resume goes back to what the previous run was doing when it continued
// as new: waiting for the schedule's next attempt, or parked. It reports,
// as park does, whether the delivery ended.
func (d *delivery) resume(ctx workflow.Context) (ended bool, s Status) {
	c := d.in.Carry
	switch {
	case c.Parked:
		a := c.After
		a.ParkLimitSeconds = 0
		if !c.ParkDeadline.IsZero() {
			a.ParkLimitSeconds = max(int64(c.ParkDeadline.Sub(workflow.Now(ctx))/time.Second), 1)
		}
		return d.park(ctx, a)
	case c.NextAttemptAt != nil:
		d.wait(ctx, max(c.NextAttemptAt.Sub(workflow.Now(ctx)), 0), c.After)
		d.retryNow = false
	}
	return false, ""
}
