package workflows

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
)

// throttlingAttempts answers throttled a scripted number of times, with a
// rate slot when given one, then delivered; it records each input and
// whether it ran as a local activity.
type throttlingAttempts struct {
	mu        sync.Mutex
	throttles int
	slotAfter time.Duration // >0: each throttle reserves a slot this far ahead of start
	waitMS    int64         // each throttle's throttle_wait_ms
	start     time.Time
	inputs    []AttemptInput
	local     []bool
}

func (p *throttlingAttempts) attempt(ctx context.Context, in AttemptInput) (Attempt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inputs = append(p.inputs, in)
	p.local = append(p.local, activity.GetInfo(ctx).IsLocalActivity)
	if in.MayThrottle && len(p.inputs) <= p.throttles {
		a := Attempt{Outcome: OutcomeThrottled, ThrottleWaitMS: p.waitMS}
		if p.slotAfter > 0 {
			slot := p.start.Add(p.slotAfter)
			a.RateSlot = &slot
		}
		return a, nil
	}
	return Attempt{Outcome: OutcomeDelivered, StatusCode: 200}, nil
}

// A delivery whose endpoint is at its max_in_flight waits and tries again,
// as ordinary activities, with a backoff: nothing recorded as an attempt,
// no step of its schedule spent (it has none: one attempt).
func TestThrottledDeliveryWaitsWithoutSpendingItsSchedule(t *testing.T) {
	p := &throttlingAttempts{throttles: 3}
	r := newSignalRun(t, p.attempt)
	in := testInput()
	in.FirstAttemptLocal = true
	st, _ := r.execute(t, in)
	if st.Status != StatusDelivered || len(st.Attempts) != 1 || st.Attempts[0].Number != 1 {
		t.Fatalf("state = %+v, want delivered by attempt 1 alone", st)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; !slices.Equal(r.timers, want) {
		t.Fatalf("timers %v, want the backoff %v", r.timers, want)
	}
	if want := []bool{true, false, false, false}; !slices.Equal(p.local, want) {
		t.Fatalf("local per try %v, want %v: after a throttle, ordinary activities", p.local, want)
	}
	for i, in := range p.inputs {
		if in.Attempt != 1 || !in.MayThrottle {
			t.Fatalf("try %d: attempt %d may_throttle %t, want attempt 1 and may_throttle", i, in.Attempt, in.MayThrottle)
		}
	}
}

// A rate limit's throttle waits until just before the reserved request
// time, and hands that time to the next attempt.
func TestRateThrottledDeliverySendsAtItsReservedTime(t *testing.T) {
	p := &throttlingAttempts{throttles: 1, slotAfter: 10 * time.Second}
	r := newSignalRun(t, p.attempt)
	p.start = r.start
	st, _ := r.execute(t, testInput(time.Hour))
	if st.Status != StatusDelivered || len(st.Attempts) != 1 {
		t.Fatalf("state = %+v", st)
	}
	if want := []time.Duration{10*time.Second - throttleLead}; !slices.Equal(r.timers, want) {
		t.Fatalf("timers %v, want %v", r.timers, want)
	}
	if got := p.inputs[1].RateSlot; got == nil || !got.Equal(r.start.Add(10*time.Second)) {
		t.Fatalf("second try's rate slot %v, want the reserved %v", got, r.start.Add(10*time.Second))
	}
	if p.inputs[0].RateSlot != nil {
		t.Fatalf("first try carries a rate slot %v", p.inputs[0].RateSlot)
	}
}

// A cancel ends a throttled wait at once.
func TestCancelDuringAThrottledWait(t *testing.T) {
	p := &throttlingAttempts{throttles: 100}
	r := newSignalRun(t, p.attempt)
	r.at(90*time.Second, func() { r.env.SignalWorkflow(CancelSignal, "stop") })
	st, took := r.execute(t, testInput(time.Hour))
	if st.Status != StatusCanceled || len(st.Attempts) != 0 || took > 2*time.Minute {
		t.Fatalf("state = %+v after %s, want canceled with no attempt soon after the signal", st, took)
	}
	if got := r.timers[len(r.timers)-1]; got != throttleBackoffMax {
		t.Fatalf("last backoff %s, want the %s most", got, throttleBackoffMax)
	}
}

// The worker's estimate of when a place is free replaces the backoff,
// within its bound.
func TestThrottledDeliveryWaitsAsTheWorkerSays(t *testing.T) {
	for _, tc := range []struct {
		waitMS int64
		want   time.Duration
	}{{2500, 2500 * time.Millisecond}, {int64(time.Hour / time.Millisecond), throttleWaitMax}} {
		p := &throttlingAttempts{throttles: 2, waitMS: tc.waitMS}
		r := newSignalRun(t, p.attempt)
		st, _ := r.execute(t, testInput())
		if st.Status != StatusDelivered || !slices.Equal(r.timers, []time.Duration{tc.want, tc.want}) {
			t.Fatalf("throttle_wait_ms %d: status %s, timers %v, want two of %s", tc.waitMS, st.Status, r.timers, tc.want)
		}
	}
}

// A release that finds the endpoint at its max_in_flight stays a release:
// the try after the wait POSTs whatever the circuit, and the release's
// update answers with it.
func TestThrottledReleaseStaysARelease(t *testing.T) {
	var inputs []AttemptInput
	r := newSignalRun(t, func(ctx context.Context, in AttemptInput) (Attempt, error) {
		inputs = append(inputs, in)
		switch len(inputs) {
		case 1:
			return Attempt{Outcome: OutcomeParked, ParkLimitSeconds: 3600}, nil
		case 2:
			return Attempt{Outcome: OutcomeThrottled, ThrottleWaitMS: 1000}, nil
		}
		if !in.Release {
			return Attempt{Outcome: OutcomeParked, ParkLimitSeconds: 3600}, nil
		}
		return Attempt{Outcome: OutcomeDelivered, StatusCode: 200}, nil
	})
	var released Attempt
	r.at(time.Minute, func() {
		r.env.UpdateWorkflow(ReleaseUpdate, "release-1", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { t.Errorf("release rejected: %v", err) },
			OnAccept:   func() {},
			OnComplete: func(v any, err error) { released, _ = v.(Attempt) },
		})
	})
	st, _ := r.execute(t, testInput(time.Hour))
	if st.Status != StatusDelivered || len(inputs) != 3 || !inputs[2].Release || released.Outcome != OutcomeDelivered {
		t.Fatalf("state %+v, inputs %+v, release answered %+v", st, inputs, released)
	}
}

// A throttled try sent nothing: the timeline of a recorded rate-limited
// delivery shows its one attempt, the ordinary one after the wait, as the
// delivery's own state does.
func TestTimelineSkipsThrottledTries(t *testing.T) {
	tl := loadTimeline(t, "testdata/delivery_rate_throttled_throttle_history.json")
	if tl.Result.Status != StatusDelivered || len(tl.Attempts) != 1 || !reflect.DeepEqual(tl.Attempts, tl.Result.Attempts) {
		t.Fatalf("timeline %+v\nresult %+v", tl.Attempts, tl.Result)
	}
}
