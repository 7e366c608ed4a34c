package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/throttle"
	"github.com/hookrelay/hookrelay/workflows"
)

// Rates reserves a rate-limited endpoint's next request: the registry
// (PostgreSQL: one schedule for the whole fleet) or, for the endpoints
// file, this process's schedule (*throttle.Rates).
type Rates interface {
	Reserve(ctx context.Context, endpointID string, perSecond float64) (time.Duration, error)
}

// InFlight holds each endpoint to its places in flight in this worker.
type InFlight interface {
	// TryAcquire takes one of endpointID's limit places without waiting;
	// when all are taken, ok is false and wait is when one is likely free.
	TryAcquire(endpointID string, limit int) (release func(), wait time.Duration, ok bool)
}

// maxRateSleep is the longest an attempt waits in the activity for its
// reserved request time; a later one is the workflow's to wait for, on a
// durable timer, holding no slot.
const maxRateSleep = time.Second

// admit decides whether the attempt may POST now under the endpoint's
// max_in_flight (in this worker) and rate_limit (fleet-wide). It returns
// the release of the attempt's place in flight, or a throttled record:
// nothing sent, at once, no slot held.
func (a *Activities) admit(ctx context.Context, in workflows.AttemptInput, ep endpoint.Endpoint, rec workflows.Attempt) (release func(), throttled *workflows.Attempt, err error) {
	release = func() {}
	if !in.MayThrottle {
		return release, nil, nil
	}
	var wait time.Duration
	if ep.RateLimit > 0 && a.Rates != nil {
		if wait, err = a.rateWait(ctx, in, ep); err != nil {
			return release, nil, err
		}
		if wait > maxRateSleep {
			slot := a.Now().Add(wait)
			rec.Outcome, rec.RateSlot = workflows.OutcomeThrottled, &slot
			rec.Error = fmt.Sprintf("the endpoint's rate_limit (%g a second) has its next request in %s; nothing sent yet", ep.RateLimit, wait.Round(time.Millisecond))
			return release, &rec, nil
		}
	}
	if a.InFlight != nil {
		limit := ep.EffectiveMaxInFlight()
		if a.MaxInFlight > 0 {
			limit = min(limit, a.MaxInFlight)
		}
		rel, back, ok := a.InFlight.TryAcquire(ep.ID, limit)
		if !ok {
			rec.Outcome, rec.ThrottleWaitMS = workflows.OutcomeThrottled, max(back.Milliseconds(), 1)
			rec.Error = fmt.Sprintf("the endpoint has %d attempts in flight in this worker, its limit; nothing sent yet", limit)
			return func() {}, &rec, nil
		}
		release = rel
	}
	if wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			release()
			return func() {}, nil, fmt.Errorf("wait for the rate_limit's request time: %w", ctx.Err())
		}
	}
	return release, nil, nil
}

// rateWait is how long until the attempt may send under the endpoint's
// rate_limit: until the request time it reserved before, if that is not
// long past, else a new reservation's.
func (a *Activities) rateWait(ctx context.Context, in workflows.AttemptInput, ep endpoint.Endpoint) (time.Duration, error) {
	if in.RateSlot != nil {
		// Sent later than its time by more than half the interval, a
		// request could crowd the next one's: it takes a new time instead.
		slack := min(throttle.Interval(ep.RateLimit)/2, time.Second)
		if wait := in.RateSlot.Sub(a.Now()); wait >= -slack {
			return max(wait, 0), nil
		}
	}
	return a.Rates.Reserve(ctx, ep.ID, ep.RateLimit)
}

// deref is *p, or otherwise when p is nil.
func deref(p *workflows.Attempt, otherwise workflows.Attempt) workflows.Attempt {
	if p == nil {
		return otherwise
	}
	return *p
}
