package workflows

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/hookrelay/hookrelay/endpoint"
)

// healthHistoryLimit: past this many events the workflow continues as new,
// carrying its state, so a long outage's failure reports never grow one
// history without bound. A variable for tests.
var healthHistoryLimit = 2000

// Health workflow limits.
const (
	// maxHealthActions keeps the last operator actions and transitions.
	maxHealthActions = 50
	// sweepAfter: after a drain the circuit is healthy, but a worker may
	// still hold the old state for a refresh or two and park a delivery;
	// one more release this long after catches those, so nothing stays
	// parked with no one to release it.
	sweepAfter = 15 * time.Second
	// releaseHeartbeatTimeout bounds how long a lost worker's drain goes
	// unnoticed before another worker takes it over.
	releaseHeartbeatTimeout = 10 * time.Second
)

// RegisterHealth registers EndpointHealthWorkflow under its contract name.
func RegisterHealth(r interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}) {
	r.RegisterWorkflowWithOptions(EndpointHealthWorkflow, workflow.RegisterOptions{Name: HealthWorkflowName})
}

// EndpointHealthWorkflow keeps one endpoint's circuit: healthy, open
// (failing: deliveries park, one is released as a probe on the ProbeEvery
// backoff), draining (parked deliveries released oldest event first at
// DrainPerSecond; OpenAfter consecutive failures re-open), paused or
// disabled (by an operator, or after DisableAfter continuously open:
// deliveries park until enabled). It runs for as long as the endpoint
// exists, continuing as new to keep its history short.
func EndpointHealthWorkflow(ctx workflow.Context, in HealthInput) (HealthState, error) {
	if in.EndpointID == "" {
		return HealthState{}, temporal.NewNonRetryableApplicationError("health input lacks endpoint_id", "InvalidInput", nil)
	}
	h := &health{in: in, circuit: in.Circuit}
	if h.circuit.OpenAfter < 1 || len(h.circuit.ProbeEvery) == 0 || h.circuit.DrainPerSecond <= 0 {
		h.circuit = endpoint.DefaultCircuit()
	}
	if in.State != nil {
		h.st = *in.State
	} else {
		h.st = HealthState{EndpointID: in.EndpointID, State: CircuitHealthy, Since: workflow.Now(ctx)}
	}
	if err := workflow.SetQueryHandler(ctx, HealthQuery, func() (HealthState, error) { return h.st, nil }); err != nil {
		return h.st, fmt.Errorf("register %s query: %w", HealthQuery, err)
	}
	return h.run(ctx)
}

// health is the workflow's state.
type health struct {
	in      HealthInput
	circuit endpoint.Circuit
	st      HealthState
	// failures are the times of the latest failed attempts reported, at
	// most OpenAfter of them: those after LastSuccessAt are consecutive.
	failures []time.Time
	// published is the state last upserted to HookrelayCircuit.
	published CircuitState
	// steps counts what this run handled (signals, timers, releases), each
	// a few history events.
	steps int

	// The one release activity (probe, drain or sweep) and the one timer in flight.
	release       workflow.Future
	releaseKind   string
	cancelRelease workflow.CancelFunc
	timer         workflow.Future
	timerKind     string
	cancelTimer   workflow.CancelFunc
}

// healthSignals are the signals the workflow reads, in the order it reads them.
var healthSignals = []string{FailureSignal, PauseSignal, ResumeSignal, EnableSignal, DisableSignal}

func (h *health) run(ctx workflow.Context) (HealthState, error) {
	// The starter sets HookrelayCircuit (healthy) at start, and
	// continue-as-new carries it: only a change costs an upsert.
	if v, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(CircuitAttr); ok {
		h.published = CircuitState(v)
	}
	h.publish(ctx)
	h.arm(ctx)
	channels := make([]workflow.ReceiveChannel, len(healthSignals))
	for i, name := range healthSignals {
		channels[i] = workflow.GetSignalChannel(ctx, name)
	}
	for {
		sel := workflow.NewSelector(ctx)
		for i, ch := range channels {
			sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
				var raw json.RawMessage
				c.Receive(ctx, &raw)
				h.onSignal(ctx, healthSignals[i], raw)
			})
		}
		if h.timer != nil {
			sel.AddFuture(h.timer, func(f workflow.Future) {
				kind := h.timerKind
				h.timer, h.timerKind, h.cancelTimer = nil, "", nil
				if f.Get(ctx, nil) == nil {
					h.onTimer(ctx, kind)
				}
			})
		}
		if h.release != nil {
			sel.AddFuture(h.release, func(f workflow.Future) {
				kind := h.releaseKind
				h.release, h.releaseKind, h.cancelRelease = nil, "", nil
				var r ReleaseResult
				if err := f.Get(ctx, &r); err != nil {
					h.onReleaseFailed(ctx, kind, err)
					return
				}
				h.onReleased(ctx, kind, r)
			})
		}
		sel.Select(ctx)
		h.showDetails(ctx)
		h.steps++
		if h.release == nil && h.historyFull(ctx) {
			return h.continueAsNew(ctx, channels)
		}
	}
}

// historyFull reports whether this run's history is long enough to
// continue as new: by the server's count, its suggestion, or this run's own
// count of steps (each a signal, timer or release and its workflow task:
// about four events).
func (h *health) historyFull(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetCurrentHistoryLength() > healthHistoryLimit || info.GetContinueAsNewSuggested() || h.steps*4 > healthHistoryLimit
}

// continueAsNew hands the state to a fresh run once every signal received
// so far is applied.
func (h *health) continueAsNew(ctx workflow.Context, channels []workflow.ReceiveChannel) (HealthState, error) {
	for i, ch := range channels {
		var raw json.RawMessage
		for ch.ReceiveAsync(&raw) {
			h.onSignal(ctx, healthSignals[i], raw)
		}
	}
	st := h.st
	return st, workflow.NewContinueAsNewError(ctx, HealthWorkflowName, HealthInput{
		EndpointID: h.in.EndpointID, AccountID: h.in.AccountID, Circuit: h.circuit, State: &st,
	})
}

func (h *health) onSignal(ctx workflow.Context, name string, raw json.RawMessage) {
	if name == FailureSignal {
		var r FailureReport
		if err := json.Unmarshal(raw, &r); err != nil {
			workflow.GetLogger(ctx).Warn("failure report does not decode; ignored", "error", err.Error())
			return
		}
		h.onFailure(ctx, r)
		return
	}
	reason := cancelReason(raw) // the same {"reason": ...} or string form as a delivery's cancel
	h.act(ctx, name, reason)
	switch name {
	case PauseSignal:
		h.enter(ctx, CircuitPaused)
	case DisableSignal:
		h.enter(ctx, CircuitDisabled)
		h.notify(ctx, "disabled by an operator: "+reason)
	case ResumeSignal:
		if h.st.State == CircuitPaused {
			h.enter(ctx, CircuitDraining)
		}
	case EnableSignal:
		if h.st.State == CircuitDisabled {
			h.st.OpenedAt = nil
			h.enter(ctx, CircuitDraining)
		}
	}
}

// onFailure counts a failed attempt; OpenAfter consecutive ones open the
// circuit. Failures before the latest success any worker reported are not
// consecutive: each report carries the last success its worker saw, so a
// first-try success needs no report (and costs no action) of its own.
func (h *health) onFailure(ctx workflow.Context, r FailureReport) {
	if r.Circuit.OpenAfter > 0 && len(r.Circuit.ProbeEvery) > 0 && r.Circuit.DrainPerSecond > 0 {
		h.circuit = r.Circuit // the endpoint's settings as the worker resolved them
	}
	if r.LastSuccessAt.After(h.st.LastSuccessAt) {
		h.st.LastSuccessAt = r.LastSuccessAt
	}
	h.failures = append(h.failures, r.At)
	kept := h.failures[:0]
	for _, at := range h.failures {
		if at.After(h.st.LastSuccessAt) {
			kept = append(kept, at)
		}
	}
	h.failures = kept[max(0, len(kept)-h.circuit.OpenAfter):]
	h.st.ConsecutiveFailures = len(h.failures)
	if h.st.ConsecutiveFailures < h.circuit.OpenAfter {
		return
	}
	switch h.st.State {
	case CircuitHealthy, CircuitDraining:
		// During a drain the drain counts its own releases; a failure
		// reported from elsewhere (an operator's retry-now) counts too.
		h.open(ctx, fmt.Sprintf("after %d consecutive failures", h.st.ConsecutiveFailures))
	}
}

func (h *health) open(ctx workflow.Context, why string) {
	now := workflow.Now(ctx)
	if h.st.State != CircuitOpen {
		h.st.OpenedAt = &now
	}
	h.st.ProbeStep = 0
	h.act(ctx, "opened", why)
	h.enter(ctx, CircuitOpen)
}

// enter moves to state s: it stops whatever the old state had in flight,
// publishes the new state to visibility (one upsert per transition) and
// starts what the new state runs.
func (h *health) enter(ctx workflow.Context, s CircuitState) {
	if h.st.State != s {
		h.st.State = s
		h.st.Since = workflow.Now(ctx)
	}
	if s == CircuitHealthy {
		h.failures, h.st.ConsecutiveFailures, h.st.OpenedAt = nil, 0, nil
	}
	h.stopTimer()
	h.stopRelease()
	h.st.NextProbeAt = nil
	h.publish(ctx)
	h.arm(ctx)
}

// arm starts what the current state runs: the next probe and the disable
// deadline while open, the drain while draining.
func (h *health) arm(ctx workflow.Context) {
	switch h.st.State {
	case CircuitOpen:
		if h.st.OpenedAt != nil && !workflow.Now(ctx).Before(h.st.OpenedAt.Add(h.circuit.DisableAfter)) {
			h.disable(ctx)
			return
		}
		step := min(h.st.ProbeStep, len(h.circuit.ProbeEvery)-1)
		delay := h.circuit.ProbeEvery[step]
		kind := "probe"
		if h.st.OpenedAt != nil {
			// Whichever comes first: the next probe, or the disable deadline.
			if left := h.st.OpenedAt.Add(h.circuit.DisableAfter).Sub(workflow.Now(ctx)); left < delay {
				delay, kind = left, "disable"
			}
		}
		next := workflow.Now(ctx).Add(delay)
		if kind == "probe" {
			h.st.NextProbeAt = &next
		}
		h.startTimer(ctx, kind, delay, fmt.Sprintf("%s in %s", kind, shortDuration(delay)))
	case CircuitDraining:
		h.startRelease(ctx, "drain", ReleaseInput{EndpointID: h.in.EndpointID, PerSecond: h.circuit.DrainPerSecond, OpenAfter: h.circuit.OpenAfter})
	}
}

func (h *health) onTimer(ctx workflow.Context, kind string) {
	switch {
	case kind == "disable" && h.st.State == CircuitOpen:
		h.disable(ctx)
	case kind == "probe" && h.st.State == CircuitOpen:
		h.st.NextProbeAt = nil
		h.startRelease(ctx, "probe", ReleaseInput{EndpointID: h.in.EndpointID, Limit: 1, PerSecond: h.circuit.DrainPerSecond, OpenAfter: 1})
	case kind == "sweep" && h.st.State == CircuitHealthy:
		h.startRelease(ctx, "sweep", ReleaseInput{EndpointID: h.in.EndpointID, PerSecond: h.circuit.DrainPerSecond, OpenAfter: h.circuit.OpenAfter})
	}
}

func (h *health) disable(ctx workflow.Context) {
	h.act(ctx, "disabled", fmt.Sprintf("open for %s", shortDuration(h.circuit.DisableAfter)))
	h.enter(ctx, CircuitDisabled)
	h.notify(ctx, fmt.Sprintf("open since %s for %s after %d consecutive failures", h.st.OpenedAtText(), shortDuration(h.circuit.DisableAfter), h.st.ConsecutiveFailures))
}

func (h *health) onReleased(ctx workflow.Context, kind string, r ReleaseResult) {
	h.st.Parked = r.Parked
	switch {
	case kind == "probe" && h.st.State == CircuitOpen:
		if r.Delivered > 0 {
			h.act(ctx, "probe delivered", "")
			h.enter(ctx, CircuitDraining)
			return
		}
		// The probe failed, or found nothing parked to probe with: the next
		// probe, one step further along the backoff.
		h.st.ProbeStep++
		h.arm(ctx)
	case kind == "drain" && h.st.State == CircuitDraining, kind == "sweep" && h.st.State == CircuitHealthy:
		if r.Reopen {
			h.open(ctx, fmt.Sprintf("after %d consecutive failures while draining", h.circuit.OpenAfter))
			return
		}
		if kind == "drain" {
			h.act(ctx, "drained", fmt.Sprintf("%d released", r.Released))
			h.enter(ctx, CircuitHealthy)
			h.startTimer(ctx, "sweep", sweepAfter, "release any delivery parked on a stale circuit")
		}
	}
}

// onReleaseFailed: the release activity itself failed (its retries ran
// out): the state's work starts again, so nothing parked is left behind.
func (h *health) onReleaseFailed(ctx workflow.Context, kind string, err error) {
	workflow.GetLogger(ctx).Warn("release failed; retrying", "kind", kind, "error", err.Error())
	switch {
	case kind == "probe" && h.st.State == CircuitOpen:
		h.arm(ctx)
	case kind == "drain" && h.st.State == CircuitDraining:
		h.arm(ctx)
	case kind == "sweep" && h.st.State == CircuitHealthy:
		h.startTimer(ctx, "sweep", sweepAfter, "release any delivery parked on a stale circuit")
	}
}

func (h *health) startTimer(ctx workflow.Context, kind string, d time.Duration, summary string) {
	h.stopTimer()
	tctx, cancel := workflow.WithCancel(ctx)
	h.timer = workflow.NewTimerWithOptions(tctx, d, workflow.TimerOptions{Summary: summary})
	h.timerKind, h.cancelTimer = kind, cancel
}

func (h *health) stopTimer() {
	if h.cancelTimer != nil {
		h.cancelTimer()
	}
	h.timer, h.timerKind, h.cancelTimer = nil, "", nil
}

func (h *health) startRelease(ctx workflow.Context, kind string, in ReleaseInput) {
	h.stopRelease()
	actx, cancel := workflow.WithCancel(ctx)
	actx = workflow.WithActivityOptions(actx, workflow.ActivityOptions{
		// A drain of many parked deliveries at a slow rate takes long; the
		// heartbeat, not this bound, notices a lost worker.
		StartToCloseTimeout: 7 * 24 * time.Hour,
		HeartbeatTimeout:    releaseHeartbeatTimeout,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
		Summary:             fmt.Sprintf("%s parked deliveries", kind),
	})
	h.release = workflow.ExecuteActivity(actx, ReleaseActivityName, in)
	h.releaseKind, h.cancelRelease = kind, cancel
}

func (h *health) stopRelease() {
	if h.cancelRelease != nil {
		h.cancelRelease()
	}
	h.release, h.releaseKind, h.cancelRelease = nil, "", nil
}

// notify runs the notice activity: an audit line and, when configured, a
// signed webhook to the operations endpoint. It is fire and forget: the
// circuit does not wait on it.
func (h *health) notify(ctx workflow.Context, reason string) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10},
		Summary:             "notice: endpoint " + string(h.st.State),
	})
	workflow.ExecuteActivity(actx, NoticeActivityName, NoticeInput{
		EndpointID: h.in.EndpointID, AccountID: h.in.AccountID, State: h.st.State, Since: h.st.Since,
		Reason: reason, ConsecutiveFailures: h.st.ConsecutiveFailures, Parked: h.st.Parked,
	})
}

// publish upserts HookrelayCircuit when the state changed, so workers
// (which read it from visibility) park or send accordingly.
func (h *health) publish(ctx workflow.Context) {
	if h.published == h.st.State {
		return
	}
	h.published = h.st.State
	if err := workflow.UpsertTypedSearchAttributes(ctx, CircuitAttr.ValueSet(string(h.st.State))); err != nil {
		panic(fmt.Sprintf("upsert search attributes: %v", err))
	}
}

func (h *health) act(ctx workflow.Context, name, reason string) {
	h.st.Actions = append(h.st.Actions, Action{Name: name, Reason: reason, At: workflow.Now(ctx)})
	if n := len(h.st.Actions); n > maxHealthActions {
		h.st.Actions = h.st.Actions[n-maxHealthActions:]
	}
}

// showDetails is the UI's current details: "open since 10:42 after 10
// failures, 1,234 parked, next probe 11:30", and the latest actions.
func (h *health) showDetails(ctx workflow.Context) {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** since %s", h.st.State, h.st.Since.UTC().Format("2006-01-02 15:04:05Z"))
	if h.st.ConsecutiveFailures > 0 {
		fmt.Fprintf(&b, " after %d failures", h.st.ConsecutiveFailures)
	}
	fmt.Fprintf(&b, ", %s parked", thousands(h.st.Parked))
	if h.st.NextProbeAt != nil {
		fmt.Fprintf(&b, ", next probe %s", h.st.NextProbeAt.UTC().Format("15:04:05Z"))
	}
	for i := len(h.st.Actions) - 1; i >= 0 && i >= len(h.st.Actions)-10; i-- {
		a := h.st.Actions[i]
		fmt.Fprintf(&b, "\n%s %s", a.At.UTC().Format(time.RFC3339), a.Name)
		if a.Reason != "" {
			fmt.Fprintf(&b, ": %s", a.Reason)
		}
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

// OpenedAtText is when the circuit opened, for messages.
func (s HealthState) OpenedAtText() string {
	if s.OpenedAt == nil {
		return "-"
	}
	return s.OpenedAt.UTC().Format(time.RFC3339)
}

// thousands prints 1234 as 1,234.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
