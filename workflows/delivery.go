package workflows

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// attemptTimeoutMargin is added to the endpoint's timeout to bound the attempt
// activity: long enough for signing and reading the capped body, short enough
// that a lost worker's attempt is noticed and rescheduled promptly.
const attemptTimeoutMargin = 10 * time.Second

// DeliveryWorkflow delivers one event to one endpoint. Each attempt is one
// activity execution with server-side retries off; between attempts it waits
// on a durable timer for the next delay of the schedule, or the receiver's
// Retry-After. It ends delivered, or failed on 410 or when the schedule runs out.
func DeliveryWorkflow(ctx workflow.Context, in DeliveryInput) (DeliveryState, error) {
	d, err := newDelivery(ctx, in)
	if err != nil {
		return DeliveryState{}, err
	}
	return d.run(ctx)
}

// Register registers DeliveryWorkflow under its contract name with a worker or test environment.
func Register(r interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}) {
	r.RegisterWorkflowWithOptions(DeliveryWorkflow, workflow.RegisterOptions{Name: DeliveryWorkflowName})
}

// delivery is the workflow's state between attempts.
type delivery struct {
	in    DeliveryInput
	state DeliveryState
}

func newDelivery(ctx workflow.Context, in DeliveryInput) (*delivery, error) {
	info := workflow.GetInfo(ctx)
	if in.EndpointID == "" || in.EventID == "" || in.EventName == "" || len(in.Payload) == 0 {
		return nil, temporal.NewNonRetryableApplicationError("delivery input lacks endpoint_id, event_id, event_name or payload", "InvalidInput", nil)
	}
	if in.Timeout <= 0 {
		return nil, temporal.NewNonRetryableApplicationError("delivery input timeout must be positive", "InvalidInput", nil)
	}
	d := &delivery{
		in: in,
		state: DeliveryState{
			WorkflowID: info.WorkflowExecution.ID,
			EndpointID: in.EndpointID,
			EventID:    in.EventID,
			EventName:  in.EventName,
			Status:     StatusPending,
			Attempts:   []Attempt{},
		},
	}
	if err := workflow.SetQueryHandler(ctx, StatusQuery, func() (DeliveryState, error) {
		return d.state, nil
	}); err != nil {
		return nil, fmt.Errorf("register %s query: %w", StatusQuery, err)
	}
	return d, nil
}

func (d *delivery) run(ctx workflow.Context) (DeliveryState, error) {
	for n := 1; ; n++ {
		a := d.attempt(ctx, n)
		d.state.Attempts = append(d.state.Attempts, a)
		d.state.NextAttemptAt = nil

		switch {
		case a.Outcome == OutcomeDelivered:
			return d.finish(ctx, StatusDelivered)
		case !a.Outcome.Retryable():
			return d.finish(ctx, StatusFailed)
		case n > len(d.in.RetrySchedule):
			return d.finish(ctx, StatusFailed)
		}

		delay := nextDelay(d.in.RetrySchedule[n-1], a)
		next := workflow.Now(ctx).Add(delay)
		d.state.NextAttemptAt = &next
		if err := d.setStatus(ctx, StatusRetrying); err != nil {
			return d.state, err
		}
		d.showDetails(ctx)
		timer := workflow.NewTimerWithOptions(ctx, delay, workflow.TimerOptions{
			Summary: fmt.Sprintf("wait %s after %s", delay, failureLabel(a)),
		})
		if err := timer.Get(ctx, nil); err != nil {
			return d.state, fmt.Errorf("wait before attempt %d: %w", n+1, err)
		}
	}
}

// attempt runs one attempt activity. An activity failure (a lost worker, a
// timeout of the activity itself) is recorded like any failed attempt.
func (d *delivery) attempt(ctx workflow.Context, n int) Attempt {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: d.in.Timeout + attemptTimeoutMargin,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
		Summary:             fmt.Sprintf("POST attempt %d", n),
	})
	started := workflow.Now(ctx)
	in := AttemptInput{
		DeliveryID: d.state.WorkflowID,
		EndpointID: d.in.EndpointID,
		Attempt:    n,
		EventName:  d.in.EventName,
		Payload:    d.in.Payload,
	}
	var a Attempt
	if err := workflow.ExecuteActivity(actx, AttemptActivityName, in).Get(ctx, &a); err != nil {
		a = Attempt{StartedAt: started, Outcome: OutcomeWorkerError, Error: activityError(err)}
		if ended := workflow.Now(ctx); ended.After(started) {
			a.LatencyMS = ended.Sub(started).Milliseconds()
		}
	}
	a.Number = n
	return a
}

// nextDelay is the schedule's delay, replaced by the receiver's Retry-After when it gave one.
func nextDelay(scheduled time.Duration, a Attempt) time.Duration {
	if a.RetryAfterSeconds > 0 {
		return min(time.Duration(a.RetryAfterSeconds)*time.Second, MaxRetryAfter)
	}
	return scheduled
}

func (d *delivery) finish(ctx workflow.Context, s Status) (DeliveryState, error) {
	if err := d.setStatus(ctx, s); err != nil {
		return d.state, err
	}
	d.showDetails(ctx)
	return d.state, nil
}

// setStatus records a status change and mirrors it, with the attempt count,
// into search attributes; it upserts only on a change, since each upsert is
// a billable action on Temporal Cloud.
func (d *delivery) setStatus(ctx workflow.Context, s Status) error {
	if d.state.Status == s {
		return nil
	}
	d.state.Status = s
	err := workflow.UpsertTypedSearchAttributes(ctx,
		StatusAttr.ValueSet(string(s)),
		AttemptsAttr.ValueSet(int64(len(d.state.Attempts))),
	)
	if err != nil {
		return fmt.Errorf("upsert status %s: %w", s, err)
	}
	return nil
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
	workflow.SetCurrentDetails(ctx, b.String())
}

// failureLabel names why an attempt failed, for timer summaries: the status code or the outcome.
func failureLabel(a Attempt) string {
	if a.StatusCode != 0 {
		return strconv.Itoa(a.StatusCode)
	}
	return string(a.Outcome)
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
