package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/hookrelay/hookrelay/internal/metrics"
)

const (
	// attemptTimeoutMargin is added to the endpoint's timeout to bound the attempt
	// activity: long enough for signing and reading the capped body, short enough
	// that a lost worker's attempt is noticed and rescheduled promptly.
	attemptTimeoutMargin = 10 * time.Second
	// attemptHeartbeatTimeout: an ordinary attempt heartbeats every
	// AttemptHeartbeatEvery while it runs (see activities), so a cancel
	// reaches it within that and a lost worker is noticed within this time.
	// Three intervals: a heartbeat that a loaded server or worker records late,
	// or one lost, does not time out an attempt whose request is still open
	// (which would send it again). The SDK alone would send one every 80% of
	// this, leaving 20% for the round trip; the worker caps it (MaxHeartbeatThrottleInterval).
	attemptHeartbeatTimeout = 3 * AttemptHeartbeatEvery
)

// AttemptHeartbeatEvery is how often an ordinary attempt heartbeats to the
// server (from the end of its first interval: a quicker attempt sends none),
// and the delivery worker's MaxHeartbeatThrottleInterval.
const AttemptHeartbeatEvery = 5 * time.Second

// Register registers DeliveryWorkflow under its contract name with a worker, replayer or test environment.
func Register(r interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}) {
	r.RegisterWorkflowWithOptions(DeliveryWorkflow, workflow.RegisterOptions{Name: DeliveryWorkflowName})
}

// DeliveryWorkflow delivers one event to one endpoint. Each attempt is one
// activity execution with server-side retries off; between attempts it waits
// on a durable timer for the next delay of the schedule, or the receiver's
// Retry-After. It ends delivered; failed on 410 or when the schedule runs
// out; or canceled by the cancel signal or a Temporal cancellation. The
// retry-now signal (or update) cuts a wait short; resend sends again.
func DeliveryWorkflow(ctx workflow.Context, in DeliveryInput) (DeliveryState, error) {
	d, err := newDelivery(ctx, in)
	if err != nil {
		return DeliveryState{}, err
	}
	return d.run(ctx)
}

// behaviorChange is DeliveryWorkflow's one workflow.GetVersion change ID.
// It is read once, in the first workflow task (beside the local first
// attempt's marker, so it costs no action of its own), and each behaviour
// added since is kept for the versions that have it; a delivery started
// before a behaviour existed keeps the old one for its whole run.
const behaviorChange = "delivery-behavior"

// Behaviours by the version of behaviorChange that introduced them.
const (
	// behaviorCloseStatus: the final status is the workflow's close status
	// (completed: delivered, failed: failed, canceled: canceled) instead of
	// a search-attribute upsert, saving one action per delivery.
	behaviorCloseStatus workflow.Version = 1
	// behaviorHealth: an attempt may park the delivery when the endpoint's
	// circuit is not healthy, until the endpoint's health workflow releases
	// it or its park_limit passes.
	behaviorHealth workflow.Version = 2
	// behaviorProbeParksAgain: a probe that fails (Attempt.ParkAgain) parks
	// the delivery again at once, in its place, without spending a step of
	// its retry schedule; before, it waited out its next delay and then
	// parked, so each probe of a long outage used up a step of the oldest
	// parked delivery's schedule until it failed.
	behaviorProbeParksAgain workflow.Version = 3
	behaviorLatest                           = behaviorProbeParksAgain
)

// delivery is the workflow's state between attempts.
type delivery struct {
	in       DeliveryInput
	state    DeliveryState
	body     json.RawMessage  // what every attempt POSTs
	behavior workflow.Version // of behaviorChange

	next      int     // number of the next attempt
	inFlight  int     // number of the attempt in flight; 0 while waiting
	cancelReq *Action // set once a cancel arrives
	retryNow  bool    // cut the current (or next) wait short
	resend    bool    // attempt again when the attempt in flight ends, whatever its outcome
	// Parking (behaviorHealth).
	parked       bool            // waiting for a release
	release      bool            // the health workflow released it: the next attempt is a release
	override     bool            // an operator asked for an attempt whatever the circuit
	parkDeadline workflow.Future // fires park_limit after the delivery first parked
	parkExpired  bool            // park_limit has passed
	// outageAttempts are failed probes (behaviorProbeParksAgain): attempts
	// that spent no step of the retry schedule.
	outageAttempts int
	// resendStarted: this run was started by a resend, whose signal is
	// already answered by the run's first attempt.
	resendStarted bool
	boundsState
	throttle throttle // see throttle.go
}

func newDelivery(ctx workflow.Context, in DeliveryInput) (*delivery, error) {
	if in.EndpointID == "" || in.EventID == "" || in.EventName == "" || len(in.Body) == 0 && len(in.Payload) == 0 {
		return nil, temporal.NewNonRetryableApplicationError("delivery input lacks endpoint_id, event_id, event_name or body", "InvalidInput", nil)
	}
	if in.Timeout <= 0 {
		return nil, temporal.NewNonRetryableApplicationError("delivery input timeout must be positive", "InvalidInput", nil)
	}
	d := &delivery{
		behavior:      workflow.GetVersion(ctx, behaviorChange, workflow.DefaultVersion, behaviorLatest),
		in:            in,
		next:          max(in.FirstAttempt, 1),
		resendStarted: in.ResendOf != "",
		body:          AttemptInput{Body: in.Body, EventName: in.EventName, Payload: in.Payload}.RequestBody(),
		state: DeliveryState{
			DeliveryID: workflow.GetInfo(ctx).WorkflowExecution.ID,
			EndpointID: in.EndpointID,
			EventID:    in.EventID,
			EventName:  in.EventName,
			Status:     StatusPending,
			Attempts:   []Attempt{},
			ResendOf:   in.ResendOf,
		},
	}
	d.operatorTimes = in.OperatorTimes
	if in.Carry != nil {
		d.restore(in.Carry)
	}
	if err := workflow.SetQueryHandler(ctx, StatusQuery, func() (DeliveryState, error) {
		return d.state, nil
	}); err != nil {
		return nil, fmt.Errorf("register %s query: %w", StatusQuery, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, RetryNowUpdate, d.retryNowAndWait,
		workflow.UpdateHandlerOptions{Validator: d.validateRetryNow}); err != nil {
		return nil, fmt.Errorf("register %s update: %w", RetryNowUpdate, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, ReleaseUpdate, d.releaseAndWait,
		workflow.UpdateHandlerOptions{Validator: d.validateRelease}); err != nil {
		return nil, fmt.Errorf("register %s update: %w", ReleaseUpdate, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, ResendUpdate, d.resendUpdate,
		workflow.UpdateHandlerOptions{Validator: d.validateResend}); err != nil {
		return nil, fmt.Errorf("register %s update: %w", ResendUpdate, err)
	}
	d.listen(ctx)
	return d, nil
}

// listen handles the signals in one goroutine, in arrival order. It runs on a
// disconnected context so signals are still read after a Temporal cancellation.
func (d *delivery) listen(ctx workflow.Context) {
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	sel := workflow.NewSelector(ctx)
	for _, name := range []string{CancelSignal, RetryNowSignal, ResendSignal} {
		sel.AddReceive(workflow.GetSignalChannel(ctx, name), func(ch workflow.ReceiveChannel, _ bool) {
			var raw json.RawMessage
			ch.Receive(ctx, &raw)
			d.onSignal(ctx, name, raw)
		})
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel.Select(ctx)
		}
	})
}

// onSignal handles one signal.
func (d *delivery) onSignal(ctx workflow.Context, name string, raw json.RawMessage) {
	d.handled++
	switch name {
	case CancelSignal:
		d.onCancel(ctx, cancelReason(raw))
	case RetryNowSignal:
		d.onRetryNow(ctx)
	case ResendSignal:
		d.onResend(ctx)
	}
}

func (d *delivery) act(ctx workflow.Context, name, reason string) Action {
	a := Action{Name: name, Reason: reason, At: workflow.Now(ctx)}
	d.state.Actions = append(d.state.Actions, a)
	return a
}

func (d *delivery) onCancel(ctx workflow.Context, reason string) {
	a := d.act(ctx, CancelSignal, reason)
	if d.cancelReq == nil && !d.state.Status.Final() {
		d.cancelReq = &a
	}
}

// onRetryNow cuts the current wait short; with an attempt in flight there is
// nothing to cut, and the schedule carries on after it.
func (d *delivery) onRetryNow(ctx workflow.Context) {
	if !d.operatorAllowed(ctx) {
		return
	}
	d.act(ctx, RetryNowSignal, "")
	if d.inFlight == 0 {
		d.retryNow = true
	}
}

// onResend acts like retry-now while waiting; with an attempt in flight it
// asks for one more attempt after it, even if it succeeds.
func (d *delivery) onResend(ctx workflow.Context) {
	if !d.operatorAllowed(ctx) {
		return
	}
	d.act(ctx, ResendSignal, "")
	if d.resendStarted {
		d.resendStarted = false
		return
	}
	if d.inFlight != 0 {
		d.resend = true
	} else {
		d.retryNow = true
	}
}

func (d *delivery) validateRetryNow(ctx workflow.Context) error {
	switch {
	case d.state.Status.Final():
		return fmt.Errorf("delivery is already %s; resend it instead", d.state.Status)
	case d.cancelReq != nil:
		return errors.New("delivery is being canceled")
	}
	return d.validateOperator(ctx)
}

// retryNowAndWait is the retry-now update: it returns the record of the
// attempt it caused, or of the attempt already in flight.
func (d *delivery) retryNowAndWait(ctx workflow.Context) (Attempt, error) {
	target := d.inFlight
	if target == 0 {
		target = d.next
	}
	d.onRetryNow(ctx)
	return d.awaitAttempt(ctx, target)
}

// validateRelease accepts a release only for a parked delivery: a drain
// that lists one just as it was canceled or released otherwise skips it.
func (d *delivery) validateRelease(ctx workflow.Context) error {
	if !d.parked || d.cancelReq != nil || d.state.Status.Final() {
		return errors.New("delivery is not parked")
	}
	return nil
}

// releaseAndWait is the release update: the endpoint's health workflow
// releases a parked delivery (a probe, or its turn in a drain); it returns
// the attempt that follows, so the release reads the outcome without any
// report of the delivery's own.
func (d *delivery) releaseAndWait(ctx workflow.Context) (Attempt, error) {
	target := d.next
	d.release = true
	return d.awaitAttempt(ctx, target)
}

// awaitAttempt waits for attempt target and returns its record.
func (d *delivery) awaitAttempt(ctx workflow.Context, target int) (Attempt, error) {
	if err := workflow.Await(ctx, func() bool { return d.attempted(target) || d.state.Status.Final() }); err != nil {
		return Attempt{}, err
	}
	for _, a := range d.state.Attempts {
		if a.Number == target {
			return a, nil
		}
	}
	return Attempt{}, temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("delivery ended %s before attempt %d", d.state.Status, target), "DeliveryEnded", nil)
}

func (d *delivery) attempted(n int) bool {
	return len(d.state.Attempts) > 0 && d.state.Attempts[len(d.state.Attempts)-1].Number >= n
}

func (d *delivery) run(ctx workflow.Context) (DeliveryState, error) {
	if d.in.Carry != nil {
		if ended, s := d.resume(ctx); ended || d.canErr != nil {
			return d.finish(ctx, s)
		}
	}
	for {
		if d.cancelReq != nil {
			return d.finish(ctx, StatusCanceled)
		}
		a := d.attempt(ctx)
		if a.Outcome == OutcomeParked {
			if ended, s := d.park(ctx, a); ended {
				return d.finish(ctx, s)
			}
			continue
		}
		if a.Outcome == OutcomeThrottled {
			d.waitThrottled(ctx, a)
			continue
		}
		d.throttle.inARow = 0
		d.state.Attempts = append(d.state.Attempts, a)
		d.state.NextAttemptAt = nil

		switch {
		case d.cancelReq != nil:
			return d.finish(ctx, StatusCanceled)
		case d.resend:
			d.resend = false
			continue
		case a.Outcome == OutcomeDelivered:
			return d.finish(ctx, StatusDelivered)
		case !a.Outcome.Retryable():
			return d.finish(ctx, StatusFailed)
		}
		if a.ParkAgain && d.behavior >= behaviorProbeParksAgain {
			d.outageAttempts++
			if ended, s := d.park(ctx, a); ended {
				return d.finish(ctx, s)
			}
			continue
		}
		// The schedule's index is the number of attempts this run has made
		// that count against it.
		failed := a.Number - max(d.in.FirstAttempt, 1) - d.outageAttempts
		if failed >= len(d.in.RetrySchedule) && !d.retryNow {
			return d.finish(ctx, StatusFailed)
		}
		if failed < len(d.in.RetrySchedule) {
			if d.wait(ctx, nextDelay(d.in.RetrySchedule[failed], a), a); d.canErr != nil {
				return d.finish(ctx, "")
			}
		}
		d.retryNow = false
	}
}

// attempt runs one attempt activity, cancelling it if a cancel arrives while
// it is in flight. An activity failure (a lost worker, a timeout of the
// activity itself) is recorded like any failed attempt.
func (d *delivery) attempt(ctx workflow.Context) Attempt {
	n := d.next
	d.next++
	d.inFlight = n
	d.handled++
	defer func() { d.inFlight = 0 }()

	actCtx, cancelActivity := workflow.WithCancel(ctx)
	in := AttemptInput{
		DeliveryID: d.state.DeliveryID,
		EndpointID: d.in.EndpointID,
		AccountID:  d.in.AccountID,
		Attempt:    n,
		Body:       d.body,
		MayPark:    d.behavior >= behaviorHealth,
		Release:    d.release,
		Override:   d.override,
		// The attempt, not the workflow, refuses a forged input: the same
		// commands either way, so every history replays unchanged.
		UnsealedInput: d.in.Unsealed(),
		Log:           d.attemptLog(ctx, n),
		MayThrottle:   true,
		RateSlot:      d.throttle.takeRateSlot(),
	}
	d.release, d.override = false, false
	started := workflow.Now(ctx)
	var fut workflow.Future
	if d.in.FirstAttemptLocal && n == max(d.in.FirstAttempt, 1) && !d.throttle.seen {
		// A local activity is cancelled in-process, needs no heartbeat, and
		// a lost worker's attempt is retried with the workflow task.
		fut = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(actCtx, workflow.LocalActivityOptions{
			StartToCloseTimeout: d.in.Timeout + attemptTimeoutMargin,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
			Summary:             fmt.Sprintf("POST attempt %d (local)", n),
		}), AttemptActivityName, in)
	} else {
		fut = workflow.ExecuteActivity(workflow.WithActivityOptions(actCtx, workflow.ActivityOptions{
			StartToCloseTimeout: d.in.Timeout + attemptTimeoutMargin,
			HeartbeatTimeout:    attemptHeartbeatTimeout,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
			Summary:             fmt.Sprintf("POST attempt %d", n),
			// Set, not only inherited from the start, so a delivery started
			// without it schedules its attempts under its account's key too.
			// Replay matches an activity by id and type: the same commands.
			Priority: Priority(d.in.AccountID),
		}), AttemptActivityName, in)
	}
	if err := workflow.Await(ctx, func() bool { return fut.IsReady() || d.cancelReq != nil }); err != nil {
		d.onTemporalCancel(ctx)
	}
	if d.cancelReq != nil && !fut.IsReady() {
		cancelActivity()
		return Attempt{Number: n, StartedAt: started, Outcome: OutcomeCanceled, Error: "canceled in flight: " + d.cancelReq.Reason}
	}
	var a Attempt
	if err := fut.Get(ctx, &a); err != nil {
		a = Attempt{StartedAt: started, Outcome: OutcomeWorkerError, Error: activityError(err)}
		if ended := workflow.Now(ctx); ended.After(started) {
			a.LatencyMS = ended.Sub(started).Milliseconds()
		}
	}
	a.Number = n
	if a.Outcome == OutcomeThrottled {
		// The next try is this attempt again: a release or an override still.
		d.release, d.override = in.Release, in.Override
	}
	if a.Outcome.Held() {
		d.next = n // nothing was sent: the number stays for the attempt that will be
	}
	return a
}

// attemptLog is what attempt n writes to the delivery log besides itself:
// computed from the input and the run's state alone, the same on replay.
func (d *delivery) attemptLog(ctx workflow.Context, n int) *AttemptLog {
	l := &AttemptLog{
		CreatedAt: workflow.GetInfo(ctx).WorkflowStartTime,
		EventID:   d.in.EventID,
		EventName: d.in.EventName,
		MailLogID: d.in.MailLogID,
	}
	// The schedule's index if attempt n fails, as run computes it.
	failed := n - max(d.in.FirstAttempt, 1) - d.outageAttempts
	if failed < len(d.in.RetrySchedule) {
		l.RetryDelay = d.in.RetrySchedule[failed]
	} else {
		l.ScheduleSpent = true
	}
	return l
}

// park waits, with no POST and no timer but the one park deadline, until
// the endpoint's health workflow releases the delivery, an operator asks
// for an attempt (retry-now, resend) or cancels, or park_limit passes since
// the delivery first parked. It reports whether the delivery ended, and how.
func (d *delivery) park(ctx workflow.Context, a Attempt) (ended bool, s Status) {
	if d.parkDeadline == nil && a.ParkLimitSeconds > 0 {
		limit := time.Duration(a.ParkLimitSeconds) * time.Second
		d.parkDeadlineAt = workflow.Now(ctx).Add(limit)
		d.parkDeadline = workflow.NewTimerWithOptions(ctx, limit, workflow.TimerOptions{
			Summary: fmt.Sprintf("park limit %s", shortDuration(limit)),
		})
		workflow.Go(ctx, func(ctx workflow.Context) {
			if d.parkDeadline.Get(ctx, nil) == nil {
				d.parkExpired = true
			}
		})
	}
	d.parked, d.waitAfter = true, a
	d.setStatus(ctx, StatusParked)
	d.showDetails(ctx)
	if err := d.await(ctx, func() bool { return d.release || d.retryNow || d.cancelReq != nil || d.parkExpired }); err != nil {
		d.onTemporalCancel(ctx)
	}
	d.parked = false
	switch {
	case d.canErr != nil:
		return true, "" // continued as new
	case d.cancelReq != nil:
		return true, StatusCanceled
	case d.release:
		return false, "" // the next attempt is the release's
	case d.retryNow:
		d.retryNow, d.override = false, true
		return false, ""
	}
	d.state.Attempts = append(d.state.Attempts, Attempt{
		Number: d.next, StartedAt: workflow.Now(ctx), Outcome: OutcomeEndpointUnavailable,
		Error: fmt.Sprintf("parked longer than the endpoint's park limit (%s); nothing was sent", shortDuration(time.Duration(a.ParkLimitSeconds)*time.Second)),
	})
	d.next++
	return true, StatusFailed
}

// wait sleeps on a durable timer until the next attempt is due, a retry-now
// or resend cuts it short, or a cancel arrives. A timer cut short is
// cancelled, so history shows how every wait ended.
func (d *delivery) wait(ctx workflow.Context, delay time.Duration, after Attempt) {
	next := workflow.Now(ctx).Add(delay)
	d.state.NextAttemptAt, d.waitAfter = &next, after
	d.setStatus(ctx, StatusRetrying)
	d.showDetails(ctx)
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	timer := workflow.NewTimerWithOptions(timerCtx, delay, workflow.TimerOptions{
		Summary: fmt.Sprintf("wait %s after %s", shortDuration(delay), failureLabel(after)),
	})
	err := d.await(ctx, func() bool { return timer.IsReady() || d.retryNow || d.cancelReq != nil })
	if err != nil {
		d.onTemporalCancel(ctx)
	}
	if !timer.IsReady() {
		cancelTimer()
	}
	if d.canErr != nil {
		return // continued as new, NextAttemptAt carried
	}
	d.state.NextAttemptAt = nil
}

// onTemporalCancel treats a cancellation requested through Temporal (the
// UI's cancel button, `temporal workflow cancel`) like the cancel signal.
func (d *delivery) onTemporalCancel(ctx workflow.Context) {
	if d.cancelReq == nil {
		ctx, _ = workflow.NewDisconnectedContext(ctx)
		a := d.act(ctx, CancelSignal, "workflow cancellation requested through Temporal")
		d.cancelReq = &a
	}
}

// finish records the final status and lets running update handlers reply
// before the workflow completes. It uses a disconnected context, since a
// Temporal cancellation may have cancelled ctx.
//
// The final status is the close status: a delivered delivery completes, a
// failed one fails and a canceled one is canceled, each carrying its state
// (as result, failure details or cancellation details), so visibility and
// the UI tell them apart with no search-attribute upsert. Deliveries started
// before that behaviour complete with an upserted status, as they did.
func (d *delivery) finish(ctx workflow.Context, s Status) (DeliveryState, error) {
	if d.canErr != nil {
		return DeliveryState{}, d.canErr
	}
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	closeStatus := d.behavior >= behaviorCloseStatus
	if closeStatus {
		d.state.Status = s
	} else {
		d.setStatus(ctx, s)
	}
	d.showDetails(ctx)
	// The SDK's handler records nothing while replaying, so each delivery counts once.
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"endpoint": d.in.EndpointID, "status": string(s)}).
		Counter(metrics.Deliveries).Inc(1)
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return d.state, fmt.Errorf("wait for update handlers: %w", err)
	}
	if !closeStatus {
		return d.state, nil
	}
	switch s {
	case StatusFailed:
		return DeliveryState{}, temporal.NewNonRetryableApplicationError(d.failedMessage(), DeliveryFailedType, nil, d.state)
	case StatusCanceled:
		return DeliveryState{}, temporal.NewCanceledError(d.state)
	}
	return d.state, nil
}

// DeliveryFailedType is the application error type a failed delivery closes with.
const DeliveryFailedType = "DeliveryFailed"

// failedMessage says why a delivery failed, from ids and outcomes only.
func (d *delivery) failedMessage() string {
	if n := len(d.state.Attempts); n > 0 {
		last := d.state.Attempts[n-1]
		return fmt.Sprintf("delivery failed after %d attempt(s); the last was %s", n, failureLabel(last))
	}
	return "delivery failed"
}

// setStatus records a status change and mirrors it, with the number of the
// latest attempt, into search attributes; it upserts only on a change, since
// each upsert is a billable action on Temporal Cloud.
func (d *delivery) setStatus(ctx workflow.Context, s Status) {
	if d.state.Status == s {
		return
	}
	d.state.Status = s
	attempts := int64(d.next - 1)
	// Registered search attributes cannot fail to encode; an error here is a
	// bug that a workflow task failure (and retry) makes visible.
	if err := workflow.UpsertTypedSearchAttributes(ctx, StatusAttr.ValueSet(string(s)), AttemptsAttr.ValueSet(attempts)); err != nil {
		panic(fmt.Sprintf("upsert search attributes: %v", err))
	}
}

// showDetails publishes a short attempts table as the workflow's current details in the UI.
func (d *delivery) showDetails(ctx workflow.Context) {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**", d.state.Status)
	if d.state.NextAttemptAt != nil {
		fmt.Fprintf(&b, ", next attempt at %s", d.state.NextAttemptAt.UTC().Format(time.RFC3339))
	}
	b.WriteString("\n\n| # | started | outcome | status | latency |\n|---|---|---|---|---|\n")
	for _, a := range d.state.Attempts {
		code := "-"
		if a.StatusCode != 0 {
			code = strconv.Itoa(a.StatusCode)
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %dms |\n", a.Number, a.StartedAt.UTC().Format(time.RFC3339), a.Outcome, code, a.LatencyMS)
	}
	for _, a := range d.state.Actions {
		fmt.Fprintf(&b, "\n%s %s", a.At.UTC().Format(time.RFC3339), a.Name)
		if a.Reason != "" {
			fmt.Fprintf(&b, ": %s", a.Reason)
		}
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

// nextDelay is the schedule's delay, replaced by the receiver's Retry-After when it gave one.
func nextDelay(scheduled time.Duration, a Attempt) time.Duration {
	if a.RetryAfterSeconds > 0 {
		return min(time.Duration(a.RetryAfterSeconds)*time.Second, MaxRetryAfter)
	}
	return scheduled
}

// cancelReason reads a cancel signal's payload: {"reason": "..."}, a JSON
// string, or nothing. It is kept to one line of MaxReasonLength runes.
func cancelReason(raw json.RawMessage) string {
	var reason string
	var obj struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		reason = obj.Reason
	} else if json.Unmarshal(raw, &reason) != nil {
		reason = ""
	}
	reason = strings.Join(strings.FieldsFunc(reason, unicode.IsControl), " ")
	if r := []rune(reason); len(r) > MaxReasonLength {
		reason = string(r[:MaxReasonLength]) + "…"
	}
	return reason
}

// failureLabel names why an attempt failed, for timer summaries: the status code or the outcome.
func failureLabel(a Attempt) string {
	if a.StatusCode != 0 {
		return strconv.Itoa(a.StatusCode)
	}
	return string(a.Outcome)
}

// shortDuration prints 5m rather than 5m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func activityError(err error) string {
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return "attempt activity timed out (" + timeoutErr.TimeoutType().String() + "); the worker may have been lost"
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Error()
	}
	return err.Error()
}
