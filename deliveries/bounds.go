package deliveries

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/hookrelay/hookrelay/workflows"
)

// ErrOperatorLimit means the delivery has taken its
// workflows.MaxOperatorAttempts resends and retry-nows of the last
// workflows.OperatorWindow: the request was refused, and nothing was
// written to the delivery's history. The error is an *OperatorLimitError.
var ErrOperatorLimit = errors.New("too many resends and retry-nows")

// OperatorLimitError is a resend or retry-now refused by the bound.
type OperatorLimitError struct {
	DeliveryID string
	// RetryAfter is how long until another is accepted.
	RetryAfter time.Duration
}

func (e *OperatorLimitError) Error() string {
	return fmt.Sprintf("delivery %s: %s: at most %d per delivery per hour; the next is accepted in %s",
		e.DeliveryID, ErrOperatorLimit, workflows.MaxOperatorAttempts, e.RetryAfter)
}

// Unwrap makes errors.Is(err, ErrOperatorLimit) hold.
func (e *OperatorLimitError) Unwrap() error { return ErrOperatorLimit }

// limitError is err as an *OperatorLimitError when the workflow rejected
// the update over the bound, and nil otherwise.
func limitError(id string, err error) error {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.OperatorLimitType {
		return nil
	}
	var secs int64
	if appErr.HasDetails() {
		_ = appErr.Details(&secs)
	}
	return &OperatorLimitError{DeliveryID: id, RetryAfter: time.Duration(max(secs, 1)) * time.Second}
}

// update sends one of a delivery's updates to its open run and waits for
// stage; the bound's rejection is an *OperatorLimitError, a run that closed
// meanwhile ErrFinished.
func (c *Client) update(ctx context.Context, id, runID, name string, stage client.WorkflowUpdateStage, result any) error {
	h, err := c.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, RunID: runID, UpdateName: name, WaitForStage: stage,
	})
	switch {
	case err == nil && stage == client.WorkflowUpdateStageCompleted:
		err = h.Get(ctx, result)
	case err == nil:
		err = rejection(ctx, h)
	}
	if err == nil {
		return nil
	}
	if limit := limitError(id, err); limit != nil {
		return limit
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("delivery %s: %w", id, ErrFinished)
	}
	return fmt.Errorf("delivery %s: %s: %w", id, name, unavailable(err))
}

// rejection is the error an update waited for only until accepted was
// rejected with, if it was: a rejected update's handle holds its outcome,
// while an accepted one's asks the server, which a cancelled context cuts
// short.
func rejection(ctx context.Context, h client.WorkflowUpdateHandle) error {
	done, cancel := context.WithCancel(ctx)
	cancel()
	var appErr *temporal.ApplicationError
	if err := h.Get(done, nil); errors.As(err, &appErr) {
		return err
	}
	return nil
}

// closedOperatorTimes are when a closed delivery's resends and retry-nows
// of the last OperatorWindow were accepted, oldest first: those its last
// run was started with (prior, the runs before it) and those of its final
// state; an *OperatorLimitError when they reach the bound already.
func (c *Client) closedOperatorTimes(ctx context.Context, id string, prior []time.Time, now time.Time) ([]time.Time, error) {
	st, err := c.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	seen := map[time.Time]bool{}
	var times []time.Time
	add := func(at time.Time) {
		if now.Sub(at) < workflows.OperatorWindow && !seen[at] {
			seen[at] = true
			times = append(times, at)
		}
	}
	for _, at := range prior {
		add(at)
	}
	for _, a := range st.Actions {
		if a.Name == workflows.ResendSignal || a.Name == workflows.RetryNowSignal {
			add(a.At)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	if n := len(times); n >= workflows.MaxOperatorAttempts {
		wait := times[n-workflows.MaxOperatorAttempts].Add(workflows.OperatorWindow).Sub(now)
		return nil, &OperatorLimitError{DeliveryID: id, RetryAfter: max(wait.Round(time.Second), time.Second)}
	}
	return times, nil
}
