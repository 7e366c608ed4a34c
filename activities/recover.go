package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"golang.org/x/time/rate"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/workflows"
)

// FailedLister lists, from the delivery log, a page of the deliveries of
// an account's endpoint that ended failed and were created in [since,
// until), newest first, after cursor (a previous page's next; "" is the
// first page): their ids, and the next page's cursor ("" after the last).
type FailedLister interface {
	ListFailed(ctx context.Context, accountID, endpointID string, since, until time.Time, limit int, cursor string) (ids []string, next string, err error)
}

// FailedResender resends a failed delivery at most once since a time
// (*deliveries.Client.ResendFailedOnce): workflows.RecoverResent,
// workflows.RecoverAlreadyResent, or a workflows.Skip* reason.
type FailedResender interface {
	ResendFailedOnce(ctx context.Context, deliveryID string, notBefore time.Time) (string, error)
}

// RecoverActivities are the recover workflow's activities: a page of the
// delivery log, and the paced resend of a page.
type RecoverActivities struct {
	Log       FailedLister
	Resender  FailedResender
	Endpoints endpoint.Source
}

// ListFailed lists a page of an endpoint's deliveries that ended failed in
// the window, newest first.
func (r *RecoverActivities) ListFailed(ctx context.Context, in workflows.RecoverListInput) (workflows.RecoverPage, error) {
	if in.Unsealed() {
		return workflows.RecoverPage{}, unsealedActivity(ctx, "recover list", in.EndpointID)
	}
	ids, next, err := r.Log.ListFailed(ctx, in.AccountID, in.EndpointID, in.Since, in.Until, in.Limit, in.Cursor)
	if err != nil {
		return workflows.RecoverPage{}, fmt.Errorf("recover: list failed deliveries of %s: %w", in.EndpointID, err)
	}
	return workflows.RecoverPage{DeliveryIDs: ids, Next: next}, nil
}

// resendProgress is a resend page's heartbeat: how far it got, so a retry
// on another worker resumes there.
type resendProgress struct {
	Done   int                           `json:"done"`
	Result workflows.RecoverResendResult `json:"result"`
}

// ResendFailed resends the page's deliveries in order, at the endpoint's
// drain_per_second, each at most once: it heartbeats its progress after
// each, and a retry resumes after the last heartbeat; the one delivery a
// lost worker may have resent without heartbeating is found resent (its
// latest run started after the recovery did) and not resent again.
func (r *RecoverActivities) ResendFailed(ctx context.Context, in workflows.RecoverResendInput) (workflows.RecoverResendResult, error) {
	if in.Unsealed() {
		return workflows.RecoverResendResult{}, unsealedActivity(ctx, "recover resend", in.EndpointID)
	}
	var p resendProgress
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &p); err != nil {
			p = resendProgress{}
		}
	}
	limiter, err := r.pace(ctx, in.EndpointID)
	if err != nil {
		return p.Result, err
	}
	for ; p.Done < len(in.DeliveryIDs); p.Done++ {
		id := in.DeliveryIDs[p.Done]
		if err := waitHeartbeating(ctx, limiter, p); err != nil {
			return p.Result, err
		}
		outcome, err := r.Resender.ResendFailedOnce(ctx, id, in.NotBefore)
		if err != nil {
			return p.Result, fmt.Errorf("recover %s: %w", in.RecoverID, err)
		}
		switch outcome {
		case workflows.RecoverResent, workflows.RecoverAlreadyResent:
			p.Result.Resent++
		default:
			p.Result.Skipped = append(p.Result.Skipped, workflows.Skipped{DeliveryID: id, Reason: outcome})
		}
		activity.RecordHeartbeat(ctx, resendProgress{Done: p.Done + 1, Result: p.Result})
	}
	return p.Result, nil
}

// pace is a limiter at the endpoint's drain_per_second as it resolves now,
// starting empty, so the first resend is paced like the rest.
func (r *RecoverActivities) pace(ctx context.Context, endpointID string) (*rate.Limiter, error) {
	perSecond := endpoint.DefaultCircuit().DrainPerSecond
	ep, err := r.Endpoints.Resolve(ctx, endpointID)
	switch {
	case err == nil && ep.Circuit.DrainPerSecond > 0:
		perSecond = ep.Circuit.DrainPerSecond
	case err != nil && !errors.Is(err, endpoint.ErrNotFound):
		return nil, fmt.Errorf("recover: resolve endpoint %s: %w", endpointID, err)
	}
	l := rate.NewLimiter(rate.Limit(perSecond), 1)
	l.Allow()
	return l, nil
}

// waitHeartbeating waits for the limiter's next token, heartbeating the
// progress meanwhile (a slow drain rate waits up to 10 s a resend).
func waitHeartbeating(ctx context.Context, l *rate.Limiter, p resendProgress) error {
	r := l.Reserve()
	defer func() {
		if ctx.Err() != nil {
			r.Cancel()
		}
	}()
	activity.RecordHeartbeat(ctx, p)
	wait := r.Delay()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case <-deadline.C:
			return nil
		case <-tick.C:
			activity.RecordHeartbeat(ctx, p)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
