package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/hookrelay/hookrelay/endpoint"
)

// healthRun runs an endpoint's health workflow with scripted release and
// notice activities, recording what it did.
type healthRun struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment

	mu       sync.Mutex
	releases []ReleaseInput
	answer   func(ReleaseInput) ReleaseResult
	notices  []NoticeInput
	circuits []string // HookrelayCircuit upserts
	timers   []time.Duration
	circuit  endpoint.Circuit
}

var testCircuit = endpoint.Circuit{OpenAfter: 3, ProbeEvery: []time.Duration{2 * time.Second, 10 * time.Second}, DrainPerSecond: 10, DisableAfter: 120 * time.Hour, ParkLimit: 168 * time.Hour}

func newHealthRun(t *testing.T, answer func(ReleaseInput) ReleaseResult) *healthRun {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	h := &healthRun{t: t, env: env, answer: answer, circuit: testCircuit}
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: HealthWorkflowID("acme"), WorkflowExecutionTimeout: 30 * 24 * time.Hour})
	if err := env.SetTypedSearchAttributesOnStart(temporal.NewSearchAttributes(CircuitAttr.ValueSet(string(CircuitHealthy)))); err != nil {
		t.Fatal(err)
	}
	RegisterHealth(env)
	env.RegisterActivityWithOptions(func(ctx context.Context, in ReleaseInput) (ReleaseResult, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.releases = append(h.releases, in)
		return h.answer(in), nil
	}, activity.RegisterOptions{Name: ReleaseActivityName})
	env.RegisterActivityWithOptions(func(ctx context.Context, in NoticeInput) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.notices = append(h.notices, in)
		return nil
	}, activity.RegisterOptions{Name: NoticeActivityName})
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if s, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(CircuitAttr); ok {
			h.circuits = append(h.circuits, s)
		}
	}).Return(nil)
	env.SetOnTimerScheduledListener(func(_ string, d time.Duration) { h.timers = append(h.timers, d) })
	return h
}

func (h *healthRun) at(d time.Duration, f func()) { h.env.RegisterDelayedCallback(f, d) }

func (h *healthRun) fail(at time.Duration, n int, lastSuccess time.Time) {
	h.at(at, func() {
		for range n {
			h.env.SignalWorkflow(FailureSignal, FailureReport{EndpointID: "acme", DeliveryID: "acme:evt", Outcome: OutcomeHTTPError,
				At: h.env.Now(), LastSuccessAt: lastSuccess, Circuit: h.circuit})
		}
	})
}

func (h *healthRun) state() HealthState {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(HealthQuery)
	if err != nil {
		h.t.Fatalf("health query: %v", err)
	}
	var st HealthState
	if err := v.Get(&st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

// run executes until the test timeout ends the never-ending workflow.
func (h *healthRun) run() {
	h.env.ExecuteWorkflow(HealthWorkflowName, HealthInput{EndpointID: "acme", Circuit: h.circuit})
	var timeout *temporal.TimeoutError
	if err := h.env.GetWorkflowError(); !errors.As(err, &timeout) {
		h.t.Fatalf("the health workflow ended with %v, want it to run until its test deadline", err)
	}
}

// OpenAfter consecutive failures open the circuit; the probe finds a
// parked delivery that fails, then on the next backoff step one that is
// delivered; the drain releases the rest and the circuit is healthy again,
// with one sweep for deliveries parked on a stale circuit.
func TestCircuitOpensProbesAndDrains(t *testing.T) {
	probes := 0
	h := newHealthRun(t, func(in ReleaseInput) ReleaseResult {
		switch {
		case in.Limit == 1:
			probes++
			if probes == 1 {
				return ReleaseResult{Released: 1, Failed: 1, Parked: 40}
			}
			return ReleaseResult{Released: 1, Delivered: 1, Parked: 39}
		default:
			return ReleaseResult{Released: 39, Delivered: 39}
		}
	})
	h.fail(time.Second, 2, time.Time{})
	h.at(2*time.Second, func() {
		if st := h.state(); st.State != CircuitHealthy || st.ConsecutiveFailures != 2 {
			t.Errorf("after 2 failures: %+v, want healthy with 2", st)
		}
	})
	h.fail(3*time.Second, 1, time.Time{})
	h.at(4*time.Second, func() {
		st := h.state()
		if st.State != CircuitOpen || st.NextProbeAt == nil || st.NextProbeAt.Sub(h.env.Now()) != time.Second {
			t.Errorf("after 3 failures: %+v, want open with a probe 2s after opening", st)
		}
	})
	h.at(time.Hour, func() {
		if st := h.state(); st.State != CircuitHealthy || st.ConsecutiveFailures != 0 || st.OpenedAt != nil {
			t.Errorf("after the drain: %+v, want healthy", st)
		}
	})
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: HealthWorkflowID("acme"), WorkflowExecutionTimeout: 2 * time.Hour})
	h.run()
	want := []string{"open", "draining", "healthy"}
	if len(h.circuits) != 3 || h.circuits[0] != want[0] || h.circuits[1] != want[1] || h.circuits[2] != want[2] {
		t.Fatalf("circuit upserts %v, want %v: one per transition", h.circuits, want)
	}
	if len(h.releases) != 4 || h.releases[0].Limit != 1 || h.releases[1].Limit != 1 || h.releases[2].Limit != 0 || h.releases[2].PerSecond != 10 || h.releases[2].OpenAfter != 3 {
		t.Fatalf("releases %+v, want two probes, the drain at 10/s, the sweep", h.releases)
	}
	// Probe timers 2s then 10s (the backoff advanced after the failed probe), then the sweep.
	if len(h.timers) < 3 || h.timers[0] != 2*time.Second || h.timers[1] != 10*time.Second || h.timers[len(h.timers)-1] != sweepAfter {
		t.Fatalf("timers %v", h.timers)
	}
	if len(h.notices) != 0 {
		t.Fatalf("notices %+v: none is sent unless disabled", h.notices)
	}
}

// Failures before the latest success a worker saw are not consecutive.
func TestSuccessBreaksTheRun(t *testing.T) {
	h := newHealthRun(t, func(ReleaseInput) ReleaseResult { return ReleaseResult{} })
	h.fail(time.Second, 2, time.Time{})
	h.at(2*time.Second, func() {
		h.env.SignalWorkflow(FailureSignal, FailureReport{EndpointID: "acme", Outcome: OutcomeTimeout, At: h.env.Now(),
			LastSuccessAt: h.env.Now().Add(-time.Millisecond), Circuit: testCircuit})
	})
	h.at(3*time.Second, func() {
		if st := h.state(); st.State != CircuitHealthy || st.ConsecutiveFailures != 1 {
			t.Errorf("after a success then a failure: %+v, want healthy with 1", st)
		}
	})
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: HealthWorkflowID("acme"), WorkflowExecutionTimeout: time.Minute})
	h.run()
	if len(h.circuits) != 0 {
		t.Fatalf("circuit upserts %v, want none", h.circuits)
	}
}

// Open for DisableAfter with nothing to probe with: disabled, with a notice;
// enable drains.
func TestDisabledAfterDaysOpenAndEnabled(t *testing.T) {
	defer func(n int) { healthHistoryLimit = n }(healthHistoryLimit)
	healthHistoryLimit = 1 << 30 // one run for the whole 123h (continue-as-new has its own test)
	h := newHealthRun(t, func(in ReleaseInput) ReleaseResult {
		if in.Limit == 1 {
			return ReleaseResult{} // nothing parked: probes find nothing
		}
		return ReleaseResult{Released: 3, Delivered: 3}
	})
	h.circuit.ProbeEvery = []time.Duration{2 * time.Second, time.Hour}
	h.fail(time.Second, 3, time.Time{})
	h.at(121*time.Hour, func() {
		st := h.state()
		if st.State != CircuitDisabled {
			t.Errorf("after 121h open: %+v, want disabled", st)
		}
		h.env.SignalWorkflow(EnableSignal, map[string]string{"reason": "customer fixed the server"})
	})
	h.at(122*time.Hour, func() {
		st := h.state()
		if st.State != CircuitHealthy {
			t.Errorf("after enable: %+v, want healthy", st)
		}
		var enabled bool
		for _, a := range st.Actions {
			enabled = enabled || (a.Name == EnableSignal && a.Reason == "customer fixed the server")
		}
		if !enabled {
			t.Errorf("actions %+v lack the enable and its reason", st.Actions)
		}
	})
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: HealthWorkflowID("acme"), WorkflowExecutionTimeout: 123 * time.Hour})
	h.run()
	if len(h.notices) != 1 || h.notices[0].State != CircuitDisabled || h.notices[0].EndpointID != "acme" || h.notices[0].ConsecutiveFailures != 3 {
		t.Fatalf("notices %+v, want one for the disable", h.notices)
	}
	if got := h.circuits; len(got) != 4 || got[0] != "open" || got[1] != "disabled" || got[2] != "draining" || got[3] != "healthy" {
		t.Fatalf("circuit upserts %v", got)
	}
	// Probes back off to the last step (an hour here and by default) even
	// with nothing parked: about one timer an hour.
	if n := len(h.timers); n > 125 {
		t.Fatalf("%d timers in 120h", n)
	}
}

// An operator pauses a healthy endpoint, then resumes it: the drain runs.
func TestPauseAndResume(t *testing.T) {
	h := newHealthRun(t, func(in ReleaseInput) ReleaseResult { return ReleaseResult{Released: 2, Delivered: 2} })
	h.at(time.Second, func() { h.env.SignalWorkflow(PauseSignal, map[string]string{"reason": "maintenance window"}) })
	h.at(time.Hour, func() {
		if st := h.state(); st.State != CircuitPaused {
			t.Errorf("after pause: %+v", st)
		}
		h.env.SignalWorkflow(ResumeSignal, nil)
	})
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: HealthWorkflowID("acme"), WorkflowExecutionTimeout: 2 * time.Hour})
	h.run()
	if got := h.circuits; len(got) != 3 || got[0] != "paused" || got[1] != "draining" || got[2] != "healthy" {
		t.Fatalf("circuit upserts %v", got)
	}
	if len(h.releases) == 0 || h.releases[0].Limit != 0 {
		t.Fatalf("releases %+v, want the drain", h.releases)
	}
}

// OpenAfter consecutive failures during a drain re-open the circuit.
func TestDrainReopens(t *testing.T) {
	drains := 0
	h := newHealthRun(t, func(in ReleaseInput) ReleaseResult {
		if in.Limit == 1 {
			return ReleaseResult{Released: 1, Delivered: 1, Parked: 10}
		}
		drains++
		if drains == 1 {
			return ReleaseResult{Released: 4, Delivered: 1, Failed: 3, Reopen: true, Parked: 6}
		}
		return ReleaseResult{Released: 6, Delivered: 6}
	})
	h.fail(time.Second, 3, time.Time{})
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: HealthWorkflowID("acme"), WorkflowExecutionTimeout: time.Hour})
	h.run()
	want := []string{"open", "draining", "open", "draining", "healthy"}
	if len(h.circuits) != len(want) {
		t.Fatalf("circuit upserts %v, want %v", h.circuits, want)
	}
	for i := range want {
		if h.circuits[i] != want[i] {
			t.Fatalf("circuit upserts %v, want %v", h.circuits, want)
		}
	}
}

// A long outage's reports do not grow one history: the workflow continues
// as new with its state.
func TestHealthContinuesAsNew(t *testing.T) {
	defer func(n int) { healthHistoryLimit = n }(healthHistoryLimit)
	healthHistoryLimit = 40
	h := newHealthRun(t, func(ReleaseInput) ReleaseResult { return ReleaseResult{} })
	for i := range 30 {
		h.fail(time.Duration(i+1)*time.Second, 1, time.Time{})
	}
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: HealthWorkflowID("acme"), WorkflowExecutionTimeout: time.Hour})
	h.env.ExecuteWorkflow(HealthWorkflowName, HealthInput{EndpointID: "acme", Circuit: testCircuit})
	err := h.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("ended with %v, want continue-as-new", err)
	}
	var next HealthInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || next.State.State != CircuitOpen || next.EndpointID != "acme" || next.Circuit.OpenAfter != 3 {
		t.Fatalf("continued with %+v", next)
	}
}
