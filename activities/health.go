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
	"go.temporal.io/sdk/temporal"
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
// Order: one release is in flight at a time while a release's round trip
// is shorter than 1/PerSecond, so each POST finishes before the next is
// released; when it is longer, more are, so the drain keeps its rate (see pacing).
func (h *HealthActivities) Release(ctx context.Context, in workflows.ReleaseInput) (workflows.ReleaseResult, error) {
	var res workflows.ReleaseResult
	if in.Unsealed() {
		return res, unsealedActivity(ctx, "release", in.EndpointID)
	}
	var err error
	if in.PerSecond, err = h.paceable(ctx, in); err != nil {
		return res, err
	}
	activity.GetLogger(ctx).Info("releasing parked deliveries", "endpoint_id", in.EndpointID, "limit", in.Limit, "per_second", in.PerSecond)
	// Heartbeats say this worker is alive, whether or not releases are
	// finishing: releases that wait long (a slow server) must not make the
	// server start a second drain beside this one.
	defer heartbeatWhileRunning(ctx, time.Second)()
	most := maxReleasesInFlight
	if in.Limit > 0 {
		most = min(most, in.Limit)
	}
	pace := newPacing(in.PerSecond, most)
	defer func() {
		activity.GetLogger(ctx).Info("released parked deliveries", "endpoint_id", in.EndpointID, "released", res.Released,
			"delivered", res.Delivered, "failed", res.Failed, "reopen", res.Reopen, "max_in_flight", res.MaxInFlight)
	}()
	for {
		parked, err := h.listParked(ctx, in.EndpointID)
		if err != nil {
			return res, err
		}
		res.Parked = len(parked)
		if len(parked) == 0 || (in.Limit > 0 && res.Released >= in.Limit) {
			return res, nil
		}
		progressed, err := releaseAll(ctx, in, parked, pace, &res, h.releaseOne)
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

// checkPace refuses a release that cannot be paced: a rate that is not
// positive, or so slow that the wait for one release outlasts the
// activity. Retrying would not help (the limiter's wait fails at once, each
// time), so it fails for good, naming the setting.
func checkPace(ctx context.Context, in workflows.ReleaseInput) error {
	deadline, ok := ctx.Deadline()
	if in.PerSecond > 0 && !math.IsInf(in.PerSecond, 0) && (!ok || 1/in.PerSecond <= time.Until(deadline).Seconds()) {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
		"release of endpoint %s cannot be paced: circuit.drain_per_second %g would not release even one delivery before this release's deadline; set it to at least %g, its bound",
		in.EndpointID, in.PerSecond, endpoint.DefaultBounds().MinDrainPerSecond), UnpaceableReleaseError, nil)
}

// paceable is the rate the release runs at: the input's, or, when that
// cannot be paced (a health workflow still holding a circuit from before
// the bounds), the endpoint's drain_per_second as it resolves now, which
// is within them. Neither pacing, the release fails for good.
func (h *HealthActivities) paceable(ctx context.Context, in workflows.ReleaseInput) (float64, error) {
	err := checkPace(ctx, in)
	if err == nil || h.Endpoints == nil {
		return in.PerSecond, err
	}
	ep, rerr := h.Endpoints.Resolve(ctx, in.EndpointID)
	if rerr != nil {
		return 0, err
	}
	now := in
	now.PerSecond = ep.Circuit.DrainPerSecond
	if checkPace(ctx, now) != nil {
		return 0, err
	}
	if activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Warn("release at the endpoint's current drain_per_second: the health workflow's cannot be paced",
			"endpoint_id", in.EndpointID, "per_second", in.PerSecond, "current_per_second", now.PerSecond)
	}
	return now.PerSecond, nil
}

// UnpaceableReleaseError is the error type of a release whose
// drain_per_second cannot be paced.
const UnpaceableReleaseError = "UnpaceableRelease"

// pacing spaces releases at rate and bounds how many are in flight: one
// while a release's round trip (the update, the POST, the answer) is
// shorter than 1/rate, so each POST ends before the next delivery is
// released (strict event-time order); more when it is longer, so the drain
// keeps its rate (neighbours may then arrive out of order, by fewer places
// than are in flight). A release that waited for room (a slow round trip)
// leaves the rate's tokens unspent, up to a second's worth, so the releases
// after it catch up: the drain keeps its rate on average when round trips
// vary around 1/rate.
type pacing struct {
	rate    float64
	max     int
	limiter *rate.Limiter
	// trips are the latest round trips (a ring): their mean, not the
	// latest, sizes the window, so a slow one now and then (which the
	// tokens it left unspent make up for) does not reorder the drain.
	trips [16]time.Duration
	n     int
}

func newPacing(perSecond float64, most int) *pacing {
	burst := min(max(int(math.Ceil(perSecond)), 1), most)
	l := rate.NewLimiter(rate.Limit(perSecond), burst)
	l.AllowN(time.Now(), burst) // start empty: the first second is paced like the rest
	return &pacing{rate: perSecond, max: most, limiter: l}
}

func (p *pacing) window() int {
	var sum time.Duration
	k := min(p.n, len(p.trips))
	for _, d := range p.trips[:k] {
		sum += d
	}
	w := 1
	if k > 0 {
		w = int(math.Ceil(p.rate * (sum / time.Duration(k)).Seconds()))
	}
	return min(max(w, 1), p.max)
}

func (p *pacing) observe(d time.Duration) {
	p.trips[p.n%len(p.trips)] = d
	p.n++
}

// releaseFunc releases one parked delivery and returns the attempt it caused.
type releaseFunc func(ctx context.Context, id string) (workflows.Attempt, error)

// releaseAll releases parked in order, paced, and reports whether any
// release was accepted.
func releaseAll(ctx context.Context, in workflows.ReleaseInput, parked []parkedDelivery, pace *pacing, res *workflows.ReleaseResult, release releaseFunc) (bool, error) {
	var (
		mu          sync.Mutex
		wg          sync.WaitGroup
		consecutive int
		progressed  bool
		inFlight    int
		finished    = make(chan struct{}, 1)
	)
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return res.Reopen || (in.Limit > 0 && res.Released+inFlight >= in.Limit)
	}
	room := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return inFlight < pace.window()
	}
	for _, p := range parked {
		// Room first, then the rate's token: a wait for room spends no
		// token, so the releases after a slow one catch up.
		for !room() && ctx.Err() == nil {
			select {
			case <-finished:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil || done() || pace.limiter.Wait(ctx) != nil || done() {
			break
		}
		mu.Lock()
		inFlight++
		res.MaxInFlight = max(res.MaxInFlight, inFlight)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			started := time.Now()
			a, err := release(ctx, p.id)
			mu.Lock()
			inFlight--
			if err == nil {
				pace.observe(time.Since(started))
				progressed = true
				res.Released++
				switch {
				case a.Outcome == workflows.OutcomeDelivered:
					res.Delivered++
					consecutive = 0
				case a.Outcome.EndpointFailure():
					res.Failed++
					consecutive++
					if consecutive >= in.OpenAfter {
						res.Reopen = true
					}
				}
				if activity.IsActivity(ctx) {
					activity.RecordHeartbeat(ctx, *res)
				}
			} // else: not parked any more, or the update did not complete: not counted
			mu.Unlock()
			select {
			case finished <- struct{}{}:
			default:
			}
		}()
	}
	wg.Wait()
	return progressed, ctx.Err()
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

// listParked lists an endpoint's parked deliveries, oldest event first
// (then oldest start, then id).
func (h *HealthActivities) listParked(ctx context.Context, endpointID string) ([]parkedDelivery, error) {
	var out []parkedDelivery
	var token []byte
	dc := converter.GetDefaultDataConverter() // search attributes are never encrypted
	for {
		resp, err := h.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: h.Namespace, Query: workflows.ParkedQuery(endpointID), PageSize: 1000, NextPageToken: token,
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
	resp, err := h.Client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: h.Namespace, Query: workflows.ParkedQuery(endpointID)})
	if err != nil {
		return 0, fmt.Errorf("count parked deliveries of %s: %w", endpointID, err)
	}
	return int(resp.GetCount()), nil
}

// maxReleasesInFlight bounds a drain's concurrent releases: enough for
// 100/s with round trips of 2 s (on server v1.29.1, the dev server's, a
// release of a delivery evicted from the worker's cache costs a failed
// workflow task and a history fetch: the update's speculative task is
// missing from the history the worker fetches; v1.32.2, the cluster's,
// includes it).
const maxReleasesInFlight = 256

// unsealedActivity refuses an activity whose input did not arrive sealed by
// a key this worker holds: only a client without the key, polling the task
// queue as a worker would, schedules one. It audits why and does nothing.
func unsealedActivity(ctx context.Context, what, endpointID string) error {
	activity.GetLogger(ctx).Warn(what+" refused", "audit", true, "endpoint_id", endpointID, "outcome", string(workflows.OutcomeInvalidInput),
		"reason", "the input did not arrive encrypted with a payload key this worker holds")
	return temporal.NewNonRetryableApplicationError(what+" input did not arrive sealed by a payload key this worker holds; refused", "InvalidInput", nil)
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
	if in.Unsealed() {
		return unsealedActivity(ctx, "notice", in.EndpointID)
	}
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
