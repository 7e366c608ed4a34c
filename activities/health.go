package activities

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"golang.org/x/time/rate"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/workflows"
)

// Notifier starts a delivery of an operational event (deliveries.Client).
type Notifier interface {
	Notify(ctx context.Context, ep endpoint.Endpoint, eventID, eventName string, payload any) error
}

// HealthActivities are the endpoint health workflow's activities: releasing
// parked deliveries (probes and drains) and the notice of a state change.
type HealthActivities struct {
	Client    client.Client
	Namespace string
	Endpoints endpoint.Source
	// OperationsEndpoint, if set, is the endpoint id notices are delivered
	// to, as signed webhooks.
	OperationsEndpoint string
	Notifier           Notifier
}

// parkedDelivery is a parked delivery as visibility lists it.
type parkedDelivery struct {
	id        string
	eventTime time.Time
	started   time.Time
}

// Release releases an endpoint's parked deliveries, oldest event first: one
// for a probe (Limit 1), or all of them for a drain, at PerSecond across the
// fleet (this activity is the one place that releases them), and re-reading
// the list until none is left, so deliveries that parked meanwhile queue
// behind. It stops after OpenAfter consecutive failed releases (Reopen).
//
// Order: at most one release is in flight per 10/s of rate, so at a rate of
// 10/s or less each POST finishes before the next is released.
func (h *HealthActivities) Release(ctx context.Context, in workflows.ReleaseInput) (workflows.ReleaseResult, error) {
	var res workflows.ReleaseResult
	if in.PerSecond <= 0 {
		return res, errors.New("release: per_second must be positive")
	}
	activity.GetLogger(ctx).Info("releasing parked deliveries", "endpoint_id", in.EndpointID, "limit", in.Limit, "per_second", in.PerSecond)
	limiter := rate.NewLimiter(rate.Limit(in.PerSecond), 1)
	window := max(1, int(math.Ceil(in.PerSecond/10)))
	if in.Limit > 0 {
		window = min(window, in.Limit)
	}
	for {
		parked, err := h.listParked(ctx, in.EndpointID)
		if err != nil {
			return res, err
		}
		res.Parked = len(parked)
		if len(parked) == 0 || (in.Limit > 0 && res.Released >= in.Limit) {
			return res, nil
		}
		progressed, err := h.releaseAll(ctx, in, parked, limiter, window, &res)
		if err != nil || res.Reopen || (in.Limit > 0 && res.Released >= in.Limit) {
			if n, lerr := h.countParked(ctx, in.EndpointID); lerr == nil {
				res.Parked = n
			}
			return res, err
		}
		if !progressed {
			// Every listed delivery refused its release (canceled, or
			// released by an operator meanwhile) yet visibility still lists
			// them: wait for it to catch up rather than spin.
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
}

// releaseAll releases parked in order, window at a time, and reports
// whether any release was accepted.
func (h *HealthActivities) releaseAll(ctx context.Context, in workflows.ReleaseInput, parked []parkedDelivery, limiter *rate.Limiter, window int, res *workflows.ReleaseResult) (bool, error) {
	var (
		mu          sync.Mutex
		wg          sync.WaitGroup
		consecutive int
		progressed  bool
		sem         = make(chan struct{}, window)
	)
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return res.Reopen || (in.Limit > 0 && res.Released >= in.Limit)
	}
	for _, p := range parked {
		if done() {
			break
		}
		if err := limiter.Wait(ctx); err != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil || done() {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			a, err := h.releaseOne(ctx, p.id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				return // not parked any more, or the update did not complete: not counted
			}
			progressed = true
			res.Released++
			switch {
			case a.Outcome == workflows.OutcomeDelivered:
				res.Delivered++
				consecutive = 0
			case endpointFailure(a.Outcome):
				res.Failed++
				consecutive++
				if consecutive >= in.OpenAfter {
					res.Reopen = true
				}
			}
			activity.RecordHeartbeat(ctx, *res)
		}()
	}
	wg.Wait()
	return progressed, ctx.Err()
}

// endpointFailure tells the outcomes that count against the endpoint.
func endpointFailure(o workflows.Outcome) bool {
	switch o {
	case workflows.OutcomeHTTPError, workflows.OutcomeTimeout, workflows.OutcomeConnectionError, workflows.OutcomeRedirect:
		return true
	}
	return false
}

// releaseOne sends the release update and waits for the attempt it causes.
func (h *HealthActivities) releaseOne(ctx context.Context, id string) (workflows.Attempt, error) {
	var a workflows.Attempt
	handle, err := h.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   workflows.ReleaseUpdate,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = handle.Get(ctx, &a)
	}
	if err != nil {
		var nf *serviceerror.NotFound
		if !errors.As(err, &nf) && !strings.Contains(err.Error(), "not parked") {
			activity.GetLogger(ctx).Warn("release failed", "delivery_id", id, "error", err.Error())
		}
		return a, fmt.Errorf("release %s: %w", id, err)
	}
	return a, nil
}

// parkedQuery lists an endpoint's parked deliveries.
func parkedQuery(endpointID string) string {
	return fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND %s = '%s' AND %s = '%s'",
		workflows.DeliveryWorkflowName, workflows.EndpointAttr.GetName(), endpointID, workflows.StatusAttr.GetName(), workflows.StatusParked)
}

// listParked lists an endpoint's parked deliveries, oldest event first
// (then oldest start, then id).
func (h *HealthActivities) listParked(ctx context.Context, endpointID string) ([]parkedDelivery, error) {
	var out []parkedDelivery
	var token []byte
	dc := converter.GetDefaultDataConverter() // search attributes are never encrypted
	for {
		resp, err := h.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: h.Namespace, Query: parkedQuery(endpointID), PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list parked deliveries of %s: %w", endpointID, err)
		}
		for _, e := range resp.GetExecutions() {
			p := parkedDelivery{id: e.GetExecution().GetWorkflowId(), started: e.GetStartTime().AsTime()}
			if v := e.GetSearchAttributes().GetIndexedFields()[workflows.EventTimeAttr.GetName()]; v != nil {
				_ = dc.FromPayload(v, &p.eventTime)
			}
			if p.eventTime.IsZero() {
				p.eventTime = p.started // deliveries started before the event time was recorded
			}
			out = append(out, p)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
		activity.RecordHeartbeat(ctx)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case !a.eventTime.Equal(b.eventTime):
			return a.eventTime.Before(b.eventTime)
		case !a.started.Equal(b.started):
			return a.started.Before(b.started)
		}
		return a.id < b.id
	})
	return out, nil
}

func (h *HealthActivities) countParked(ctx context.Context, endpointID string) (int, error) {
	resp, err := h.Client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: h.Namespace, Query: parkedQuery(endpointID)})
	if err != nil {
		return 0, fmt.Errorf("count parked deliveries of %s: %w", endpointID, err)
	}
	return int(resp.GetCount()), nil
}

// EndpointDisabledEvent is the event name of the notice sent to the
// operations endpoint when an endpoint is disabled.
const EndpointDisabledEvent = "hookrelay.endpoint.disabled"

// notice is the payload of an endpoint state notice: ids, state, counts
// and times only.
type notice struct {
	EndpointID          string    `json:"endpoint_id"`
	AccountID           string    `json:"account_id,omitempty"`
	State               string    `json:"state"`
	Since               time.Time `json:"since"`
	Reason              string    `json:"reason"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	Parked              int       `json:"parked"`
}

// Notify writes the audit line of an endpoint's change of state and, when
// an operations endpoint is configured, delivers the notice to it as a
// signed webhook (a delivery like any other: retried, audited).
func (h *HealthActivities) Notify(ctx context.Context, in workflows.NoticeInput) error {
	activity.GetLogger(ctx).Info("endpoint state changed",
		"audit", true,
		"endpoint_id", in.EndpointID,
		"account_id", in.AccountID,
		"state", string(in.State),
		"reason", in.Reason,
		"consecutive_failures", in.ConsecutiveFailures,
		"parked", in.Parked,
	)
	if h.OperationsEndpoint == "" || in.State != workflows.CircuitDisabled {
		return nil
	}
	ops, err := h.Endpoints.Resolve(ctx, h.OperationsEndpoint)
	if err != nil {
		return fmt.Errorf("operations endpoint %q: %w", h.OperationsEndpoint, err)
	}
	// One notice per disable: its id is derived from the endpoint and when it was disabled.
	eventID := fmt.Sprintf("ntc_%s_%d", strings.ReplaceAll(in.EndpointID, ":", "-"), in.Since.Unix())
	return h.Notifier.Notify(ctx, ops, eventID, EndpointDisabledEvent, notice{
		EndpointID: in.EndpointID, AccountID: in.AccountID, State: string(in.State), Since: in.Since.UTC(),
		Reason: in.Reason, ConsecutiveFailures: in.ConsecutiveFailures, Parked: in.Parked,
	})
}
