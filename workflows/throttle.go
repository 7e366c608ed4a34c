package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// Throttled deliveries: an attempt that found its endpoint at its
// max_in_flight in the worker, or its rate_limit's next request too far
// ahead, sent nothing (OutcomeThrottled). The delivery waits on a durable
// timer and tries again with an ordinary activity, which the task queue
// dispatches under the account's fairness key, whatever the worker's local
// activity slots hold. Neither spends a step of the retry schedule, and
// the happy path (no throttle) schedules exactly what it did before, so
// every history recorded before replays unchanged without a version.
const (
	// throttleBackoffFirst and throttleBackoffMax bound the wait after an
	// attempt found its endpoint at max_in_flight and the worker did not
	// say for how long: it doubles from the first to the most, one timer
	// and one activity each time.
	throttleBackoffFirst = time.Second
	throttleBackoffMax   = time.Minute
	// throttleWaitMax bounds the wait the worker asks for.
	throttleWaitMax = 10 * time.Minute
	// throttleLead ends a rate limit's wait this much before the reserved
	// request time: the attempt's dispatch takes some of it, and the
	// attempt sleeps out the rest, so the request leaves on time.
	throttleLead = time.Second
)

// throttle is a delivery's state while throttled.
type throttle struct {
	seen     bool       // some attempt of this run was throttled: the rest are ordinary activities
	inARow   int        // throttled attempts since the last one that sent
	rateSlot *time.Time // the rate limit's request time reserved for the next attempt
}

// waitThrottled waits as the throttled attempt a asks: until just before
// its reserved request time, or until the worker expects a place in
// flight to be free, or else the backoff. A cancel or a retry-now cuts
// the wait short.
func (d *delivery) waitThrottled(ctx workflow.Context, a Attempt) {
	d.throttle.seen = true
	d.throttle.inARow++
	d.throttle.rateSlot = a.RateSlot
	delay := min(throttleBackoffFirst<<min(d.throttle.inARow-1, 10), throttleBackoffMax)
	why := "max_in_flight"
	if a.ThrottleWaitMS > 0 {
		delay = min(time.Duration(a.ThrottleWaitMS)*time.Millisecond, throttleWaitMax)
	}
	if a.RateSlot != nil {
		delay, why = a.RateSlot.Sub(workflow.Now(ctx))-throttleLead, "rate_limit"
	}
	if delay <= 0 {
		return
	}
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	timer := workflow.NewTimerWithOptions(timerCtx, delay, workflow.TimerOptions{
		Summary: fmt.Sprintf("throttled by %s: wait %s", why, shortDuration(delay)),
	})
	if err := workflow.Await(ctx, func() bool { return timer.IsReady() || d.retryNow || d.cancelReq != nil }); err != nil {
		d.onTemporalCancel(ctx)
	}
	if !timer.IsReady() {
		cancelTimer()
	}
	d.retryNow = false
}

// takeRateSlot hands the reserved request time to the next attempt.
func (t *throttle) takeRateSlot() *time.Time {
	s := t.rateSlot
	t.rateSlot = nil
	return s
}
