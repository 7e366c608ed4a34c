// Package health is endpoint health as one worker sees it: which endpoints'
// circuits are not healthy (read from visibility, where each endpoint's
// health workflow publishes its state, so asking costs no Temporal action;
// for the endpoints it reported failures to lately, described, so a
// lagging visibility store does not delay it),
// and the reports of failed attempts to those health workflows. A success is
// only noted in memory: each failure report carries the last success its
// worker saw, which is how the health workflow tells consecutive failures
// without a report (and an action) per successful delivery.
package health

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/workflows"
)

// DefaultRefresh is how often a worker reads the circuits from visibility:
// the bound on how long it may still POST to an endpoint whose circuit opened.
const DefaultRefresh = time.Second

// Watcher knows the circuits of every endpoint that is not healthy, and
// reports failed attempts. It trusts a circuit only from a running health
// workflow on the queues the workers of TaskQueue poll.
type Watcher struct {
	Client    client.Client
	Namespace string
	TaskQueue string
	Refresh   time.Duration
	Logger    *slog.Logger
	// Metrics receives hookrelay_endpoint_state{endpoint,state}; nil: none.
	Metrics client.MetricsHandler

	mu        sync.Mutex
	states    map[string]workflows.CircuitState // endpoints whose circuit is not healthy
	shown     map[string]workflows.CircuitState // the state the gauge shows, per endpoint ever seen unhealthy
	successes map[string]time.Time              // the last success to each endpoint
	// suspects are the endpoints this worker reported a failure to lately,
	// by when: their health workflows are described at each refresh.
	suspects map[string]time.Time
	// reporting: the endpoints with a failure report of this worker in
	// flight. A burst of failures at one endpoint (thousands a second from
	// a fleet) sent as as many concurrent signals to its one health workflow
	// contended for that workflow until every signal timed out and the
	// circuit never opened (make bench-drain, 10,000 at once); one report in
	// flight per endpoint and worker keeps the signals to what the workflow
	// takes. The circuit then opens after open_after reports in a row, each
	// standing for one failure or more.
	reporting map[string]bool
	loaded    chan struct{} // closed after the first refresh
	initOnce  sync.Once
	loadOnce  sync.Once
}

// Run refreshes the circuits until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	every := w.Refresh
	if every <= 0 {
		every = DefaultRefresh
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := w.refresh(ctx); err != nil && ctx.Err() == nil {
			w.logger().Warn("reading endpoint circuits failed; keeping the last known", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Loaded is closed once the circuits have been read once.
func (w *Watcher) Loaded() <-chan struct{} {
	w.init()
	return w.loaded
}

func (w *Watcher) init() {
	w.initOnce.Do(func() {
		w.loaded = make(chan struct{})
		w.states, w.shown, w.successes = map[string]workflows.CircuitState{}, map[string]workflows.CircuitState{}, map[string]time.Time{}
		w.suspects, w.reporting = map[string]time.Time{}, map[string]bool{}
	})
}

func (w *Watcher) refresh(ctx context.Context) error {
	w.init()
	states := map[string]workflows.CircuitState{}
	var token []byte
	for {
		resp, err := w.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: w.Namespace, Query: workflows.UnhealthyCircuitsQuery(w.TaskQueue), PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return fmt.Errorf("list endpoint circuits: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			id, _ := strings.CutPrefix(e.GetExecution().GetWorkflowId(), workflows.HealthWorkflowID(""))
			if state := workflows.CircuitOf(e.GetSearchAttributes()); id != "" && state.Parks() {
				states[id] = state
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	w.describeSuspects(ctx, states)
	w.mu.Lock()
	w.states = states
	gauge := map[string]workflows.CircuitState{}
	for id, s := range states {
		if w.shown[id] != s {
			gauge[id] = s
		}
	}
	for id, s := range w.shown {
		if _, still := states[id]; !still && s != workflows.CircuitHealthy {
			gauge[id] = workflows.CircuitHealthy
		}
	}
	for id, s := range gauge {
		w.shown[id] = s
	}
	w.mu.Unlock()
	for id, s := range gauge {
		w.logger().Info("endpoint circuit changed", "endpoint_id", id, "state", string(s))
	}
	w.showGauge(gauge)
	w.loadOnce.Do(func() { close(w.loaded) })
	return nil
}

// Visibility is written after the fact, and under a burst (thousands of
// starts and upserts queued for the visibility store) it lags by tens of
// seconds: a circuit that opened 2 s into the burst was listed open 44 s in
// (make bench-drain), every delivery meanwhile POSTing and failing. So the
// endpoints this worker reported a failure to within suspectFor have their
// health workflows described at each refresh: a description is read from
// the workflow's own state, current, and costs no action.
const (
	suspectFor = 30 * time.Second
	// maxDescribes bounds the descriptions per refresh (the most recently
	// failing endpoints first).
	maxDescribes = 64
)

// describeSuspects puts into states the circuits of the endpoints this
// worker reported failures to lately, as their health workflows hold them.
func (w *Watcher) describeSuspects(ctx context.Context, states map[string]workflows.CircuitState) {
	now := time.Now()
	w.mu.Lock()
	type suspect struct {
		id   string
		last time.Time
	}
	var recent []suspect
	for id, at := range w.suspects {
		if now.Sub(at) > suspectFor {
			delete(w.suspects, id)
			continue
		}
		recent = append(recent, suspect{id, at})
	}
	w.mu.Unlock()
	sort.Slice(recent, func(i, j int) bool { return recent[i].last.After(recent[j].last) })
	for _, sp := range recent[:min(len(recent), maxDescribes)] {
		resp, err := w.Client.DescribeWorkflowExecution(ctx, workflows.HealthWorkflowID(sp.id), "")
		if err != nil {
			continue // not started yet, or the server did not answer: visibility's word stands
		}
		info := resp.GetWorkflowExecutionInfo()
		if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || info.GetType().GetName() != workflows.HealthWorkflowName ||
			!workflows.HealthQueueTrusted(w.TaskQueue, info.GetTaskQueue()) {
			continue // not a health workflow this worker's fleet runs: it speaks for no circuit
		}
		state := workflows.CircuitOf(info.GetSearchAttributes())
		if state.Parks() {
			states[sp.id] = state
		} else if state != "" {
			delete(states, sp.id)
		}
	}
}

// showGauge sets hookrelay_endpoint_state: 1 for each endpoint's current
// state, 0 for the others, for endpoints whose state changed.
func (w *Watcher) showGauge(changed map[string]workflows.CircuitState) {
	if w.Metrics == nil {
		return
	}
	for id, current := range changed {
		for _, s := range []workflows.CircuitState{workflows.CircuitHealthy, workflows.CircuitOpen, workflows.CircuitDraining, workflows.CircuitPaused, workflows.CircuitDisabled} {
			v := 0.0
			if s == current {
				v = 1
			}
			w.Metrics.WithTags(map[string]string{"endpoint": id, "state": string(s)}).Gauge(metrics.EndpointState).Update(v)
		}
	}
}

// Circuit is the endpoint's circuit as last read: healthy unless its
// health workflow says otherwise.
func (w *Watcher) Circuit(endpointID string) workflows.CircuitState {
	w.init()
	w.mu.Lock()
	defer w.mu.Unlock()
	if s, ok := w.states[endpointID]; ok {
		return s
	}
	return workflows.CircuitHealthy
}

// Observe takes an attempt's outcome: a success is noted here only; a
// failure of the endpoint (an HTTP error, a timeout, a connection error, a
// redirect) is reported to its health workflow, started if need be.
// Reporting is best effort: a report that fails is logged, and the attempt
// stands as it is.
func (w *Watcher) Observe(ctx context.Context, ep endpoint.Endpoint, deliveryID string, rec workflows.Attempt) {
	w.init()
	switch {
	case rec.Outcome == workflows.OutcomeDelivered:
		w.mu.Lock()
		if rec.StartedAt.After(w.successes[ep.ID]) {
			w.successes[ep.ID] = rec.StartedAt
		}
		w.mu.Unlock()
		return
	case !rec.Outcome.EndpointFailure():
		return // not the endpoint's failure: nothing sent, or the receiver asked to stop
	}
	if w.Circuit(ep.ID) == workflows.CircuitOpen {
		return // already open: nothing to count, no action to spend
	}
	w.mu.Lock()
	w.suspects[ep.ID] = time.Now()
	if w.reporting[ep.ID] {
		// One report in flight per endpoint from this worker; the failures
		// that come meanwhile are not reported (see reporting).
		w.mu.Unlock()
		return
	}
	w.reporting[ep.ID] = true
	lastSuccess := w.successes[ep.ID]
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.reporting, ep.ID)
		w.mu.Unlock()
	}()
	report := workflows.FailureReport{
		EndpointID: ep.ID, AccountID: ep.AccountID, DeliveryID: deliveryID, Outcome: rec.Outcome,
		At: rec.StartedAt, LastSuccessAt: lastSuccess, Circuit: ep.Circuit,
	}
	if err := w.report(ctx, ep, report); err != nil {
		w.logger().Warn("failure report to the endpoint's health workflow failed", "endpoint_id", ep.ID, "delivery_id", deliveryID, "error", err.Error())
	}
}

func (w *Watcher) report(ctx context.Context, ep endpoint.Endpoint, r workflows.FailureReport) error {
	id := workflows.HealthWorkflowID(ep.ID)
	_, err := w.Client.SignalWithStartWorkflow(ctx, id, workflows.FailureSignal, r, workflows.HealthStartOptions(ep, w.TaskQueue),
		workflows.HealthWorkflowName, workflows.HealthInput{EndpointID: ep.ID, AccountID: ep.AccountID, Circuit: ep.Circuit})
	if err != nil {
		return fmt.Errorf("signal %s: %w", id, err)
	}
	return nil
}

func (w *Watcher) logger() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.Default()
}
