package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// parkingAttempts answers attempts: parked while the circuit is open (unless
// released or overridden), else the next scripted status code. It records
// every input.
type parkingAttempts struct {
	mu   sync.Mutex
	open bool
	// probing: the circuit is open (not draining), so a failed release is
	// a failed probe and parks again.
	probing bool
	codes   []int
	inputs  []AttemptInput
}

func (p *parkingAttempts) attempt(ctx context.Context, in AttemptInput) (Attempt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inputs = append(p.inputs, in)
	if p.open && in.MayPark && !in.Release && !in.Override {
		return Attempt{Outcome: OutcomeParked, ParkLimitSeconds: int64((7 * 24 * time.Hour) / time.Second)}, nil
	}
	code := p.codes[0]
	if len(p.codes) > 1 {
		p.codes = p.codes[1:]
	}
	if code == 200 {
		return Attempt{Outcome: OutcomeDelivered, StatusCode: 200}, nil
	}
	a := Attempt{Outcome: OutcomeHTTPError, StatusCode: code}
	if p.probing && in.Release {
		a.ParkAgain, a.ParkLimitSeconds = true, int64((7*24*time.Hour)/time.Second)
	}
	return a, nil
}

func (p *parkingAttempts) setOpen(open bool) {
	p.mu.Lock()
	p.open = open
	p.mu.Unlock()
}

// statusUpserts records each HookrelayStatus the workflow upserts.
func statusUpserts(env *testsuite.TestWorkflowEnvironment) *[]string {
	var got []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if s, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(StatusAttr); ok {
			got = append(got, s)
		}
	}).Return(nil)
	return &got
}

// A delivery whose first attempt finds the circuit open parks: nothing is
// sent, no attempt is recorded and no delay of its schedule is used; the
// health workflow's release makes the attempt, and the update returns it.
func TestParkedDeliveryIsReleased(t *testing.T) {
	p := &parkingAttempts{open: true, codes: []int{200}}
	r := newSignalRun(t, p.attempt)
	upserts := statusUpserts(r.env)
	var released Attempt
	r.at(3*time.Hour, func() {
		r.env.UpdateWorkflow(ReleaseUpdate, "release-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("release rejected: %v", err) },
			OnComplete: func(v interface{}, err error) {
				if err != nil {
					t.Errorf("release: %v", err)
				}
				released = v.(Attempt)
			},
		})
	})
	st, took := r.execute(t, testInput(5*time.Minute))
	if st.Status != StatusDelivered || len(st.Attempts) != 1 || st.Attempts[0].Number != 1 {
		t.Fatalf("state %+v, want delivered by attempt 1", st)
	}
	if released.Outcome != OutcomeDelivered || released.Number != 1 {
		t.Fatalf("the release answered %+v", released)
	}
	if took < 3*time.Hour || len(r.timers) != 1 || r.timers[0] != 7*24*time.Hour {
		t.Fatalf("took %s with timers %v: want one park-limit timer and the release after 3h", took, r.timers)
	}
	if len(p.inputs) != 2 || !p.inputs[0].MayPark || p.inputs[0].Release || !p.inputs[1].Release || p.inputs[1].Attempt != 1 {
		t.Fatalf("attempt inputs %+v", p.inputs)
	}
	if len(*upserts) != 1 || (*upserts)[0] != string(StatusParked) {
		t.Fatalf("status upserts %v, want [parked] only (the close status carries delivered)", *upserts)
	}
}

// A release of a delivery that is not parked is refused, so a drain that
// listed it just before it was released another way skips it.
func TestReleaseIsRefusedUnlessParked(t *testing.T) {
	p := &parkingAttempts{codes: []int{503, 200}}
	r := newSignalRun(t, p.attempt)
	r.at(time.Minute, func() {
		r.env.UpdateWorkflow(ReleaseUpdate, "release-1", &testsuite.TestUpdateCallback{
			OnAccept:   func() { t.Error("a release of a delivery waiting in backoff was accepted") },
			OnReject:   func(err error) {},
			OnComplete: func(interface{}, error) {},
		})
	})
	if st, _ := r.execute(t, testInput(5*time.Minute)); st.Status != StatusDelivered || len(st.Attempts) != 2 {
		t.Fatalf("state %+v", st)
	}
}

// The circuit opens while a delivery waits in backoff: its retry parks and
// keeps its place in the schedule; after a release fails, the schedule
// resumes where it was (outage time used none of its delays). (A release
// that fails in a drain, not a probe, spends a step like any attempt.)
func TestRetryParksAndKeepsItsSchedule(t *testing.T) {
	p := &parkingAttempts{codes: []int{503, 503, 200}}
	r := newSignalRun(t, p.attempt)
	r.at(time.Minute, func() { p.setOpen(true) })
	r.at(10*time.Hour, func() {
		r.env.UpdateWorkflow(ReleaseUpdate, "release-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("release rejected: %v", err) }, OnAccept: func() {}, OnComplete: func(interface{}, error) {},
		})
	})
	r.at(10*time.Hour+time.Second, func() { p.setOpen(false) })
	st, _ := r.execute(t, testInput(5*time.Minute, 30*time.Minute))
	if st.Status != StatusDelivered || len(st.Attempts) != 3 {
		t.Fatalf("state %+v, want delivered by attempt 3", st)
	}
	for i, a := range st.Attempts {
		if a.Number != i+1 {
			t.Fatalf("attempt numbers %+v: a parked check is not an attempt", st.Attempts)
		}
	}
	// 5m (after 1), park limit (when 2 parked), 30m (after 2, released and failed).
	want := []time.Duration{5 * time.Minute, 7 * 24 * time.Hour, 30 * time.Minute}
	if len(r.timers) != 3 || r.timers[0] != want[0] || r.timers[1] != want[1] || r.timers[2] != want[2] {
		t.Fatalf("timers %v, want %v", r.timers, want)
	}
}

// Failed probes (releases while the circuit stays open) park the delivery
// again at once: no retry timer, no status change, and none of its one
// retry step spent, however many probes fail; the next release delivers it.
func TestFailedProbesKeepTheSchedule(t *testing.T) {
	p := &parkingAttempts{open: true, probing: true, codes: []int{503, 503, 503, 503, 200}}
	r := newSignalRun(t, p.attempt)
	upserts := statusUpserts(r.env)
	for i := 1; i <= 5; i++ {
		r.at(time.Duration(i)*time.Hour, func() {
			r.env.UpdateWorkflow(ReleaseUpdate, fmt.Sprintf("probe-%d", i), &testsuite.TestUpdateCallback{
				OnReject: func(err error) { t.Errorf("probe %d rejected: %v", i, err) }, OnAccept: func() {}, OnComplete: func(interface{}, error) {},
			})
		})
	}
	st, took := r.execute(t, testInput(5*time.Minute))
	if st.Status != StatusDelivered || len(st.Attempts) != 5 || st.Attempts[4].Number != 5 {
		t.Fatalf("state %+v, want delivered by attempt 5 after 4 failed probes", st)
	}
	if took != 5*time.Hour || len(r.timers) != 1 || r.timers[0] != 7*24*time.Hour {
		t.Fatalf("took %s with timers %v: want the park-limit timer only, and delivery at the fifth probe", took, r.timers)
	}
	if len(*upserts) != 1 || (*upserts)[0] != string(StatusParked) {
		t.Fatalf("status upserts %v, want [parked] only", *upserts)
	}
}

// retry-now on a parked delivery POSTs once, whatever the circuit: an
// operator's override; cancel ends it.
func TestOperatorsOnAParkedDelivery(t *testing.T) {
	p := &parkingAttempts{open: true, codes: []int{503}}
	r := newSignalRun(t, p.attempt)
	r.at(time.Hour, func() { r.env.SignalWorkflow(RetryNowSignal, nil) })
	r.at(2*time.Hour, func() { r.env.SignalWorkflow(CancelSignal, map[string]string{"reason": "endpoint retired"}) })
	st, _ := r.execute(t, testInput(5*time.Minute))
	if st.Status != StatusCanceled || len(st.Attempts) != 1 || st.Attempts[0].StatusCode != 503 {
		t.Fatalf("state %+v, want canceled after the one override attempt", st)
	}
	var overrides int
	for _, in := range p.inputs {
		if in.Override {
			overrides++
		}
	}
	if overrides != 1 {
		t.Fatalf("inputs %+v, want exactly one override", p.inputs)
	}
}

// A delivery parked past its endpoint's park_limit fails with outcome
// endpoint_unavailable; nothing was sent.
func TestParkLimitFailsTheDelivery(t *testing.T) {
	p := &parkingAttempts{open: true, codes: []int{200}}
	r := newSignalRun(t, p.attempt)
	st, took := r.execute(t, testInput(5*time.Minute))
	if st.Status != StatusFailed || len(st.Attempts) != 1 || st.Attempts[0].Outcome != OutcomeEndpointUnavailable {
		t.Fatalf("state %+v, want failed with endpoint_unavailable", st)
	}
	if took != 7*24*time.Hour || len(p.inputs) != 1 {
		t.Fatalf("took %s with %d attempt calls", took, len(p.inputs))
	}
	var appErr interface{ Type() string }
	if err := r.env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != DeliveryFailedType {
		t.Fatalf("closed with %v, want a %s failure", err, DeliveryFailedType)
	}
}
